"""Signature checks in helper processes (``chain.verifier``): the same verdicts as
``crypto.verify`` for every input, and the same after a helper dies or hangs."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from paraexec import crypto
from paraexec.chain import verifier
from paraexec.chain.node import Node, NodeConfig
from paraexec.chain.verifier import SignatureChecker
from paraexec.crypto import SigningKey
from paraexec.errors import BadSignature
from paraexec.execution.parallel.transport import WorkerPool

from .test_node import KEYS, make_chain, transfer

SIGNER = SigningKey.from_seed_text("verifier/0")


def triples(n: int) -> list[tuple[bytes, bytes, bytes]]:
    """Valid signatures, with every third one broken in a different way."""
    out = []
    for i in range(n):
        message = b"message %d" % i
        signature = SIGNER.sign(message)
        if i % 3 == 1:
            message += b"!"  # signed something else
        elif i % 3 == 2:
            signature = signature[: 1 + i % 63]  # too short: refused before PyNaCl
        out.append((SIGNER.public_key, message, signature))
    return out


@pytest.fixture
def checker():
    checker = SignatureChecker(2)
    yield checker
    checker.close()


def test_verdicts_equal_crypto_verify(checker):
    items = triples(301)  # split unevenly over the two helpers
    assert checker.verify_many(items) == [crypto.verify(*t) for t in items]
    assert checker.verify_many(items) == [i % 3 == 0 for i in range(301)]
    assert checker.verify_many(items[:9]) == [True, False, False] * 3
    assert checker.fallbacks == 0 and len(checker.pids()) == 2


def test_small_batches_are_checked_here(checker):
    """A ``submit_tx`` (one signature) costs less on its own thread than a round trip."""
    assert checker.verify_many([]) == [] and checker.pids() == []
    assert checker.verify_many(triples(verifier.SMALL_BATCH - 1)) == [i % 3 == 0 for i in range(7)]
    assert checker.pids() == []


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_lost_helper_changes_no_verdict(how):
    """A helper killed before the batch (its pipe then ends) or stopped mid-way (no answer
    within the timeout): the batch is checked on this thread, and the next gets new helpers."""
    checker = SignatureChecker(2, timeout=1.0)
    try:
        checker.start()
        first = checker.pids()
        os.kill(first[1], signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        items = triples(90)
        assert checker.verify_many(items) == [i % 3 == 0 for i in range(90)]
        assert checker.fallbacks == 1 and checker.pids() == []  # the pool was stopped (and killed)
        assert checker.verify_many(items) == [i % 3 == 0 for i in range(90)]
        again = checker.pids()
        assert checker.fallbacks == 1 and len(again) == 2 and not set(again) & set(first)
    finally:
        checker.close()


def test_a_helper_that_stops_reading_cannot_block_admission():
    """A batch larger than the pipe's buffers, sent to a helper that stopped (SIGSTOP): the
    write itself blocks, and the deadline's watchdog ends it by killing the helper."""
    checker = SignatureChecker(1, timeout=1.0, per_signature=0.0)
    try:
        checker.start()
        os.kill(checker.pids()[0], signal.SIGSTOP)
        # a 24 MB message; empty signatures are refused before PyNaCl, so the fallback is quick
        items = [(SIGNER.public_key, b"x" * (24 << 20), b"")] + [(SIGNER.public_key, b"m", b"")] * 7
        assert checker.verify_many(items) == [False] * 8
        assert checker.fallbacks == 1 and checker.pids() == []
    finally:
        checker.close()


@pytest.mark.parametrize("error", [MemoryError, KeyboardInterrupt])
def test_an_interrupted_batch_leaves_no_answer_for_the_next(monkeypatch, error):
    """An exception after the first helper got its share (here the second share's encoding):
    the batch is checked here (an ``Exception``) or the exception goes on (an interrupt), and
    the first helper's answer must not be read as the next batch's, whose signatures are all
    forged."""
    checker = SignatureChecker(2)
    real = verifier._encoder

    class FailingSecond:
        calls = 0

        def encode(self, obj):
            FailingSecond.calls += 1
            if FailingSecond.calls == 2:
                raise error("second share")
            return real.encode(obj)

    try:
        valid = [t for i, t in enumerate(triples(24)) if i % 3 == 0]
        monkeypatch.setattr(verifier, "_encoder", FailingSecond())
        if error is KeyboardInterrupt:
            with pytest.raises(KeyboardInterrupt):
                checker.verify_many(valid)
        else:
            assert checker.verify_many(valid) == [True] * len(valid) and checker.fallbacks == 1
        monkeypatch.setattr(verifier, "_encoder", real)
        forged = [(pk, message + b"!", signature) for pk, message, signature in valid]
        assert checker.verify_many(forged) == [False] * len(forged)
    finally:
        checker.close()


def test_helpers_failing_again_and_again_are_left_alone_for_a_while(monkeypatch):
    starts = []

    def cannot_spawn(self):
        starts.append(self)
        raise OSError("no processes left")

    monkeypatch.setattr(WorkerPool, "start", cannot_spawn)
    checker = SignatureChecker(1)
    for _ in range(verifier.MAX_FAILURES + 3):
        assert checker.verify_many(triples(9)) == [True, False, False] * 3
    assert len(starts) == verifier.MAX_FAILURES and checker.fallbacks == verifier.MAX_FAILURES
    checker.close()


def test_helpers_spawned_off_the_main_thread_start_with_sigint_blocked():
    """A Ctrl-C during a helper's imports (a pool replaced from an API thread) stays pending in
    it instead of killing it with a traceback: the spawning thread blocks SIGINT, and the mask
    is inherited across the exec."""
    checker = SignatureChecker(1)
    try:
        thread = threading.Thread(target=checker.start)
        thread.start()
        thread.join()
        [pid] = checker.pids()
        with open(f"/proc/{pid}/status") as status:
            blocked = next(int(line.split()[1], 16) for line in status if line.startswith("SigBlk:"))
        assert blocked & (1 << (signal.SIGINT - 1))
    finally:
        checker.close()


def test_after_close_batches_are_checked_here(checker):
    checker.start()
    checker.close()
    assert checker.pids() == [] and checker.verify_many(triples(9)) == [True, False, False] * 3
    checker.start()  # refused once closed: nothing would stop them
    assert checker.pids() == []


def test_a_node_admits_through_its_helpers(tmp_path):
    make_chain(tmp_path)
    node = Node(NodeConfig(tmp_path, verify_processes=1))
    try:
        node.start()
        assert node.signatures is not None and len(node.signatures.pids()) == 1
        good = transfer(KEYS[0], 0, 1)
        forged = bytearray(transfer(KEYS[1], 0, 2))
        forged[-1] ^= 1  # the signature is the last field of the encoded transaction
        results = node.mempool.admit_many([good, bytes(forged)])
        assert results[0].error is None and isinstance(results[1].error, BadSignature)
        assert node.signatures.fallbacks == 0
        helpers = node.signatures.pids()
    finally:
        node.stop()
    assert node.signatures.pids() == []
    for pid in helpers:  # stopped and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

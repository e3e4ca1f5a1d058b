"""Signature checks in helper processes (``chain.verifier``): the same verdicts as
``crypto.verify`` for every input, and the same after a helper dies or hangs."""

from __future__ import annotations

import os
import signal

import pytest

from paraexec import crypto
from paraexec.chain.node import Node, NodeConfig
from paraexec.chain.verifier import SignatureChecker
from paraexec.crypto import SigningKey
from paraexec.errors import BadSignature

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
    assert checker.verify_many(items[:1]) == [True]  # fewer signatures than helpers
    assert checker.fallbacks == 0 and len(checker.pids()) == 2


def test_an_empty_batch_starts_nothing(checker):
    assert checker.verify_many([]) == [] and checker.pids() == []


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


def test_after_close_batches_are_checked_here(checker):
    checker.start()
    checker.close()
    assert checker.pids() == [] and checker.verify_many(triples(6)) == [True, False, False] * 2


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

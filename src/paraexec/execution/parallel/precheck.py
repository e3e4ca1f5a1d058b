"""Signature checks of the next block, on workers that would otherwise wait.

A block's signature checks (~45 us of a signed transfer's ~55 us on the dev box) read no
state, so they need not wait for the block: when the producer knows the next block's
transactions (``Executor.announce``: the bench's next block, the mempool's next batch), the
idle worker processes check them while the coordinator runs the serial part of the current
block: the merge and the LMDB commit after a block on the workers, the whole execution of a
block run in-process. Threads cannot do this: the coordinator's Python execution holds the
GIL, and a checking thread gets it about once per switch interval (measured: 59 checks in
0.3 s beside a busy main thread, ~1% of a core).

Only as many workers check as there are cores beside the coordinator's (one on the 2-core box):
the coordinator's serial work is the block's critical path, and a third CPU-bound process on
two cores would take a third of its core away (measured: in-process blocks 10-40% slower with
both workers checking).

During a block run on the workers the coordinator mostly waits, so the announcement goes to
every worker right after the block's ``Setup``; a worker checks one signature at a time whenever
it has nothing of the block to prepare or hash (a ``Round`` that arrives meanwhile waits for at
most one check), and goes on after the block while the coordinator commits.

The protocol is two messages per worker: ``Precheck`` (its share of the announced transactions,
sent with a block's ``Setup``, or when the current block no longer needs the workers) and
``Collect`` (sent before the next block starts; the worker stops after its current handful of
transactions and answers ``Prechecked`` with a verdict per transaction it got to). Whatever it
did not get to is checked in the block as before, so a slow precheck never delays a block.

Verdicts are kept per exact wire bytes, and only positive ones: a transaction whose bytes
passed ``prepare`` (signature included) in a worker is later prepared with
``prepare_checked`` (decode only); one that failed, or was not checked, goes through the full
``prepare`` again and gets its error there. A signature's validity is a function of the bytes
alone, so the receipts cannot change; the differential tests check it.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any

from ...errors import InvariantViolation
from . import messages as m
from .transport import WorkerPool

#: Announcements shorter than this are not worth two messages per worker.
MIN_TXS = 64


class Prechecks:
    """The coordinator's side: what was announced, sent out, and found valid."""

    def __init__(self) -> None:
        self.spec: Any = None
        self.upcoming: list[bytes] = []
        #: worker -> the transactions it was sent (its verdicts come back in this order), and the
        #: spec they are checked under
        self.sent: dict[int, list[bytes]] = {}
        self.sent_spec: Any = None
        #: wire bytes whose stateless checks passed in a worker, for ``spec``
        self.verified: set[bytes] = set()
        #: transactions of blocks that were prepared without their signature check (a counter
        #: for tests and notes)
        self.used = 0

    def announce(self, runtime: Any, txs: Sequence[bytes]) -> None:
        """Remember the next block's transactions (replacing any earlier announcement), when
        the runtime checks signatures and can rebuild itself in a worker."""
        spec = getattr(runtime, "spec", None)
        if spec is None or not getattr(runtime, "verify_signatures", False) or len(txs) < MIN_TXS:
            self.upcoming = []
            return
        if spec != self.spec:
            self.spec, self.verified = spec, set()
        self.upcoming = list(txs)

    def send(self, pool: WorkerPool, specs: list[Any], every_worker: bool = False) -> None:
        """Hand the announced transactions to the idle workers, in contiguous shares.
        ``specs`` is the executor's record of the spec each worker holds (updated here).
        ``every_worker``: share among all workers, not only the cores beside the coordinator's
        (while a block runs on the workers, the coordinator mostly waits)."""
        txs, self.upcoming = self.upcoming, []
        if not txs or self.sent or not pool.started:
            return
        workers = pool.size if every_worker else helper_count(pool.size)
        size = -(-len(txs) // workers)
        spec_bytes = pickle.dumps(self.spec)
        for w in range(workers):
            share = txs[w * size : (w + 1) * size]
            if not share:
                continue
            pool.send(w, m.encode(m.Precheck(None if specs[w] == self.spec else spec_bytes, share)))
            specs[w] = self.spec
            self.sent[w] = share
        self.sent_spec = self.spec

    def collect(self, pool: WorkerPool) -> list[int]:
        """Stop the workers' prechecks and keep the positive verdicts; returns the workers whose
        ``Precheck`` failed to build its spec (``Prechecked.failed``; a ``Failed`` reply from an
        older path counts too): no verdicts from them, and no runtime, so the caller must send
        them the spec again. Raises ``WorkerLost`` if a worker died meanwhile (the block then starts
        on fresh workers, verdicts lost)."""
        if not self.sent:
            return []
        sent, self.sent = self.sent, {}
        failed = []
        for w in sent:
            pool.send(w, m.encode(m.Collect()))
        for w, share in sent.items():
            while True:
                reply = m.from_worker.decode(pool.recv(w))
                if isinstance(reply, m.Prechecked):
                    if reply.failed:
                        failed.append(w)
                    break
                if not isinstance(reply, m.Failed):
                    raise InvariantViolation(f"worker {w}: expected Prechecked, got {type(reply).__name__}")
                failed.append(w)
            if self.sent_spec == self.spec:  # else announced since under another runtime: dropped
                self.verified.update(raw for raw, ok in zip(share, reply.ok, strict=False) if ok)
        return failed

    def take(self, runtime: Any, txs: Sequence[bytes]) -> set[bytes]:
        """The verified transactions among ``txs`` (for ``runtime``), forgetting every other
        verdict: each announcement covers one block."""
        verified, self.verified = self.verified, set()
        if not verified or getattr(runtime, "spec", None) != self.spec:
            return set()
        found = verified.intersection(txs)
        self.used += len(found)
        return found

    def forget_sent(self) -> None:
        """The workers were replaced: what they were checking is lost."""
        self.sent = {}


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def helper_count(workers: int) -> int:
    """How many of ``workers`` help an in-process coordinator (checks, hashing): one per core
    beside the coordinator's, at least one. More would share those cores with the helpers."""
    return min(workers, max(1, usable_cores() - 1))


def checked_flags(raws: Sequence[bytes], verified: set[bytes]) -> bytes:
    """One byte per transaction: 1 where its signature was checked ahead (``Setup.checked``)."""
    if not verified:
        return b""
    return bytes(raw in verified for raw in raws)

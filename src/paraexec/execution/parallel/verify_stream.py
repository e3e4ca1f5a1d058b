"""A block run in-process gets its signatures checked on the workers while it runs.

Without an announcement (the first block of a run, a producer that learns its block late), a
block the coordinator runs one transaction after another used to check every signature first,
on threads (PyNaCl releases the GIL), and only then execute: ``S / P + E`` for signature work
``S`` and execution ``E``. Threads cannot overlap the checks with the execution itself (a
checking thread beside the Python-busy main thread gets the GIL about once per switch interval:
see ``precheck``), but the idle worker processes can. ``VerifyStream`` sends the unchecked
transactions to the workers in batches of ``BATCH``, in block order and round robin, all at
once; each worker answers every batch with a verdict per transaction (``Verify`` ->
``Prechecked``), and the coordinator starts executing as soon as the first batch is back,
waiting only where execution catches up with the checks: ``max((S + E) / 2, E)`` on two cores.

A verdict is used exactly as a precheck's (``precheck`` module docstring): a transaction that
passed is prepared with ``prepare_checked``, anything else with the full ``prepare``, which
reports its error. A worker that fails a batch (a spec it cannot build) leaves that batch to
the full ``prepare``; a worker that dies or stalls ends the stream (the pool is replaced, the
rest is prepared here). A stream abandoned before its last reply (the block raised) replaces
the pool too, so no stale reply is ever read as the answer to a later message.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from . import messages as m
from .transport import WorkerLost, WorkerPool

#: Transactions per ``Verify`` message: ~6 ms of signature checks for transfers on the dev box,
#: so the first batch is back quickly and a message costs far less than its checks.
BATCH = 128
#: Below this many unchecked transactions the threads are used (messages would not pay).
MIN_TXS = 512


class VerifyStream:
    """The prepared transactions of one block, verdicts arriving from the workers (see module)."""

    def __init__(
        self,
        pool: WorkerPool,
        specs: list[Any],
        restart: Callable[[], None],
        runtime: Any,
        txs: Sequence[bytes],
        verified: AbstractSet[bytes],
    ) -> None:
        self.pool = pool
        self.specs = specs
        self.restart = restart
        self.runtime = runtime
        self.txs = txs
        self.verified = verified
        todo = [i for i, raw in enumerate(txs) if raw not in verified]
        self.unchecked = len(todo)
        self.batches = [todo[i : i + BATCH] for i in range(0, len(todo), BATCH)]
        self.received = 0  # batches whose reply was read
        self.sent = False
        #: transactions prepared with a worker's positive verdict (``prepare_checked``)
        self.checked = 0

    @staticmethod
    def worth(runtime: Any, unchecked: int) -> bool:
        """A runtime the workers can rebuild, that checks signatures, and enough unchecked
        transactions to pay for the messages."""
        return (
            unchecked >= MIN_TXS
            and getattr(runtime, "spec", None) is not None
            and bool(getattr(runtime, "verify_signatures", False))
        )

    def send(self) -> None:
        """Send every batch (raises ``WorkerLost``: nothing was sent that will be read)."""
        spec = self.runtime.spec
        spec_bytes = pickle.dumps(spec)
        for k, batch in enumerate(self.batches):
            w = k % self.pool.size
            raws = [self.txs[i] for i in batch]
            self.pool.send(w, m.encode(m.Verify(None if self.specs[w] == spec else spec_bytes, raws)))
            self.specs[w] = spec
        self.sent = True

    def __iter__(self) -> Iterator[Any]:
        checked, prepare = self.runtime.prepare_checked, self.runtime.prepare
        verified, batches = self.verified, self.batches
        ok = bytearray(len(self.txs))
        for i, raw in enumerate(self.txs):
            if raw in verified:
                yield checked(raw)
                continue
            while self.received < len(batches) and batches[self.received][0] <= i:
                self._receive(ok)
            if ok[i]:
                self.checked += 1
                yield checked(raw)
            else:
                yield prepare(raw)

    def _receive(self, ok: bytearray) -> None:
        """Read the next batch's verdicts into ``ok`` (none when its worker failed or is gone)."""
        k = self.received
        self.received += 1
        if not self.sent:
            return
        w = k % self.pool.size
        try:
            reply = m.from_worker.decode(self.pool.recv(w))
        except WorkerLost:
            self.abandon()
            return
        if isinstance(reply, m.Prechecked):
            for i, verdict in zip(self.batches[k], reply.ok, strict=False):
                ok[i] = verdict
        else:  # Failed: its runtime may be missing; send the spec again next time
            self.specs[w] = None

    def abandon(self) -> None:
        """Stop reading replies: the workers are replaced unless every reply was read."""
        if self.sent and self.received < len(self.batches):
            self.restart()
        self.sent = False

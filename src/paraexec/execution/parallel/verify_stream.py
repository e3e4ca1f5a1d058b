"""A block run in-process gets its signatures checked on the workers while it runs.

Without an announcement (the first block of a run, a producer that learns its block late), or
where the workers' check of the announced block did not finish, a block the coordinator runs one
transaction after another has unchecked signatures. Threads cannot overlap their checks with the
execution (a checking thread beside the Python-busy main thread gets the GIL about once per switch
interval: see ``precheck``), but the idle worker processes can.

The checks are shared between the coordinator and the helper workers (one per core beside the
coordinator's, as for ``precheck``). The unchecked transactions are cut into batches of ``BATCH``;
the coordinator executes in block order and checks a batch itself (the full ``prepare``) unless a
helper has it (``Verify`` -> ``Prechecked``, a verdict per transaction), in which case it uses the
verdicts. Each helper holds ``AHEAD`` batches at a time and gets the next one as its reply is read
(the coordinator polls the helpers' pipes every ``POLL_EVERY`` transactions, ~1 us a poll).

Which batch a helper gets next (``_send_next``): the first one nobody has that the coordinator
will not reach before the helper has checked it. With checks costing S and execution E a
transaction (r = S/E), the helper finishes a batch sent now after the ones it holds, in about
(held + 1) * r units of one batch's execution; the coordinator crosses a helper's batch in 1 unit
and one it checks itself in 1 + r. So the batches it will cross first are counted, and while they
add up to less than the helper needs, the next free batch is left to the coordinator and the
count grows by 1 + r. When checks are cheaper than execution (r < 1) nothing is ever left out
and the coordinator checks only its first batch; when they cost more (timed on the bench's
blocks: perps r 1.3-1.7, the replay 2.2-2.7, transfers ~4) the coordinator checks every so many
batches itself, and neither side waits long for the other: each block is shared near its balance
point, the coordinator checking about (S - E) / 2S of it.

r is measured as the block runs: the coordinator times its own checks (S) and its execution of the
batches a helper checked (E); until both have a batch's worth of samples it is the last stream's
(``ratio``, kept by the executor), and ``RATIO_START`` for the first. ``SAFETY`` makes the helpers'
batches a little farther ahead than the estimate: a wait costs the coordinator its idle time, a
batch too many checks it a little more.

Until the sixteenth session there were two modes instead: the helpers took batches from the
front, in order, and from the end once the coordinator caught up with them (a wait longer than
0.618 times its execution), the two ends meeting where the work balanced; the mode was learnt
from block to block. That left the coordinator waiting batch by batch when S was a little above
E, and the helper idle after the meeting where no next block was announced (a pass's last block,
``paraexec run``): after the meeting the coordinator still executes the helper's part alone.
Meeting costs E + S*S/(E + 2S) a transaction, the balance point (E + S)/2. Measured on the bench's
perps blocks: the coordinator checked 1,216-1,408 of the 3,008 signatures of each pass's first
block (no precheck) with the two modes, 576-640 with this rule (448-640 of later blocks; waits
0-11 ms a block). With announcements the two differ only at a pass's end, where the helper
would idle, so interleaved A/B runs against the two-mode rule (same blocks, same process,
``sequential`` / new / old per round, 6-16 rounds) came out even within the box's noise: perps
0.98x and 1.01x, the replay 1.00x and 1.04x, transfers 1.00x and 0.98x. The rule is kept because it
is one rule instead of two modes and a switch, and it needs no announcement to balance a block.
Transfers still wait 4-28 ms a 10,000-transaction block for verdicts (a larger ``SAFETY`` did not
help): the helper also serves ``HashOld`` messages, which the model does not count.

Measured on the 2-core box: sending every batch to the workers at once, in block order, and
executing as the verdicts came back left the coordinator blocked on verdicts for 1.2 s of a
2.3 s transfers pass (perps: 12-17% of a pass). A helper with nothing of the block left checks
the next block's signatures (``precheck``), so it is not idle when one was announced.

A verdict is used exactly as a precheck's (``precheck`` module docstring): a transaction that
passed is prepared with ``prepare_checked``, anything else with the full ``prepare``, which
reports its error. A helper that fails a batch (a spec it cannot build) leaves that batch to
the full ``prepare``; a helper that dies or stalls ends the stream (the pool is replaced, the
rest is checked here). A stream abandoned before its last reply (the block raised) replaces
the pool too, so no stale reply is ever read as the answer to a later message.
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from . import messages as m
from .precheck import helper_count
from .transport import WorkerLost, WorkerPool

#: Transactions per ``Verify`` message: ~3 ms of signature checks for transfers on the dev box, so
#: a message costs far less than its checks, and a batch left to the coordinator is a small step.
BATCH = 64
#: Batches a helper holds at once: one being checked, one queued, so it never idles between them.
AHEAD = 2
#: Transactions the coordinator executes between two polls of the helpers' pipes (~1 us a poll).
POLL_EVERY = 16
#: r = S/E (checks over execution, per transaction) before anything was measured (module).
RATIO_START = 2.0
#: The helpers' batches are placed as if r were this much larger (module docstring).
SAFETY = 1.25
#: Below this many unchecked transactions the threads are used (messages would not pay).
MIN_TXS = 512


class VerifyStream:
    """The prepared transactions of one block, their signatures checked by the helpers and the
    coordinator (see module)."""

    def __init__(
        self,
        pool: WorkerPool,
        specs: list[Any],
        restart: Callable[[], None],
        runtime: Any,
        txs: Sequence[bytes],
        verified: AbstractSet[bytes],
        ratio: float = RATIO_START,
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
        self.helpers = list(range(helper_count(pool.size)))
        #: batches before this one are decided (a helper's, or the coordinator's); the coordinator
        #: keeps batch 0: it starts on it at once
        self.front = 1
        #: r = S/E until this stream has measured it (``ratio``)
        self.start_ratio = ratio
        #: seconds and transactions of the batches a helper checked, as the coordinator executed
        #: them (waits left out: E), and of the coordinator's own signature checks (S): what
        #: ``ratio`` is measured from
        self.executed = [0.0, 0]
        self.checks = [0.0, 0]
        self.assigned = bytearray(len(self.batches))  # batch -> 1 once sent to a helper
        #: helper -> the batches it holds, oldest first (its replies come in this order)
        self.pending: dict[int, deque[int]] = {w: deque() for w in self.helpers}
        self.owner: dict[int, int] = {}  # batch -> helper, while its reply is unread
        self.ok = bytearray(len(txs))
        self.received = 0  # replies read
        self.sent = False
        self.spec_bytes = b""
        #: transactions prepared with a helper's positive verdict (``prepare_checked``)
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
        """Hand each helper its first batches (raises ``WorkerLost``: the caller replaces the
        pool, so no reply is read later)."""
        self.spec_bytes = pickle.dumps(self.runtime.spec)
        self.sent = True
        for _ in range(AHEAD):
            for w in self.helpers:
                self._send_next(w, 0.0)

    def _send_next(self, w: int, at: float) -> None:
        """Give helper ``w`` the first batch nobody has that the coordinator (``at``: where its
        next unchecked transaction is, in batches) will not reach before the helper has checked
        it; the batches skipped on the way are the coordinator's (module)."""
        n, current = len(self.batches), int(at)
        if current >= n:
            return
        r = self.ratio() * SAFETY
        need = (len(self.pending[w]) + 1) * r  # the helper's time to this batch, in batches executed
        assigned = self.assigned
        # the coordinator's time to it, in the same unit: the rest of its batch, then the batches
        # decided already (a helper's, or its own), then those left to it here
        crossing = (current + 1 - at) * (1 if assigned[current] else 1 + r)
        k = max(self.front, current + 1)
        for j in range(current + 1, k):
            crossing += 1 if assigned[j] else 1 + r
        while crossing < need and k < n:
            crossing += 1 + r  # batch k is left to the coordinator
            k += 1
        if k >= n:
            self.front = n
            return
        self.front = k + 1
        spec = self.runtime.spec
        raws = [self.txs[i] for i in self.batches[k]]
        self.pool.send(w, m.encode(m.Verify(None if self.specs[w] == spec else self.spec_bytes, raws)))
        self.specs[w] = spec
        self.pending[w].append(k)
        self.owner[k] = w
        assigned[k] = 1

    def ratio(self) -> float:
        """r = S/E (module): measured in this stream once it has a batch's worth of both the
        coordinator's own checks and its execution of the helpers' batches, else the start value."""
        (checking, n_checked), (executing, n_executed) = self.checks, self.executed
        if n_checked < BATCH or n_executed < BATCH or executing <= 0:
            return self.start_ratio
        return (checking / n_checked) / (executing / n_executed)

    def __iter__(self) -> Iterator[Any]:
        checked, prepare = self.runtime.prepare_checked, self.runtime.prepare
        verified, ok, owner, assigned = self.verified, self.ok, self.owner, self.assigned
        executed, checks, clock = self.executed, self.checks, time.perf_counter
        j = -1  # position among the unchecked transactions
        started, waited = clock(), 0.0  # the coordinator's current batch
        by_helper, count = False, 0  # the current batch's verdicts came from a helper; its txs
        for i, raw in enumerate(self.txs):
            if i % POLL_EVERY == 0 and self.sent:
                self._poll((j + 1) / BATCH)  # where its next unchecked transaction is, in batches
            count += 1
            if raw in verified:
                yield checked(raw)
                continue
            j += 1
            k, offset = divmod(j, BATCH)
            if not offset:  # a batch starts: how long the last one took, waits left out
                now = clock()
                span = now - started - waited
                started, waited = now, 0.0
                if k and by_helper:
                    executed[0] += span
                    executed[1] += count - 1
                by_helper, count = False, 1
            if assigned[k]:  # a helper's batch: wait for its verdicts if they are not in yet
                if k in owner and self.sent:
                    waited += self._wait_for(k)
                if ok[i]:
                    by_helper = True
                    self.checked += 1
                    yield checked(raw)
                    continue
            began = clock()
            tx = prepare(raw)
            checks[0] += clock() - began
            checks[1] += 1
            yield tx

    def _wait_for(self, k: int) -> float:
        """Read replies until batch ``k``'s is in; returns the seconds waited."""
        waiting = time.perf_counter()
        while k in self.owner and self.sent:
            self._read(self.owner[k], float(k))
        return time.perf_counter() - waiting

    def _poll(self, at: float) -> None:
        """Read the replies already in (without waiting) and refill the helpers that sent them
        (the coordinator ``at``: see ``_send_next``)."""
        for w in self.helpers:
            pending = self.pending[w]
            while pending and self.sent and self.pool.has_reply(w):
                self._read(w, at)

    def _read(self, w: int, at: float) -> None:
        """Read helper ``w``'s oldest reply into ``ok`` (nothing when it failed the batch) and
        hand it its next batch (the coordinator ``at``: see ``_send_next``); a lost helper ends
        the stream (``abandon``)."""
        k = self.pending[w].popleft()
        del self.owner[k]
        self.received += 1
        try:
            reply = m.from_worker.decode(self.pool.recv(w))
            if isinstance(reply, m.Prechecked):
                for i, verdict in zip(self.batches[k], reply.ok, strict=False):
                    self.ok[i] = verdict
            else:  # Failed: its runtime may be missing; send the spec again next time
                self.specs[w] = None
            self._send_next(w, at)
        except WorkerLost:
            self.abandon(lost=True)

    def abandon(self, lost: bool = False) -> None:
        """Stop reading replies: the workers are replaced if one was ``lost`` or a reply is unread.
        What the helpers held is then checked here (no verdict: the full ``prepare``)."""
        if self.sent and (lost or self.owner):
            self.restart()
        self.sent = False
        self.owner.clear()
        for pending in self.pending.values():
            pending.clear()

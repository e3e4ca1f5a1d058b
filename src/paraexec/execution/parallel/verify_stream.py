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
(the coordinator polls the helpers' pipes every ``POLL_EVERY`` transactions, ~1 us a poll):

- *from the front* while the helpers lead: the coordinator keeps batch 0, the helpers take 1, 2, ...
  in order; when checks are cheaper than execution, they stay ahead and the coordinator checks
  nothing but its first batch;
- *from the end* once the coordinator has caught up with them and checks cost clearly more than
  execution (it waited for verdicts, in all, longer than ``CATCH_UP`` times it spent executing the
  batches the helpers checked, or passed a batch nobody had): the two ends then meet where the
  work is balanced, the coordinator checking the batches in between itself.

The mode is learnt across blocks: a stream whose own signature checks (the full ``prepare``,
timed: S) took more than 1.618 times as long per transaction as the coordinator's execution of
the batches the helpers checked (E) makes the next block's stream start from the end
(``from_end``); without both measurements, one that ended meeting from both ends does. Without
this, every block of a transfers run first paid the waits that reveal the mode: the coordinator
reaches the helpers' first front batches within a few milliseconds, then must also wait for the
front batches they already hold (measured: 15-30 ms a 10,000-transfer block).

Both rules judge by sums, not by one batch (sixteenth session). Perps checks cost about what
they execute (S ~ E), and single samples misled both ways: one wait longer than 0.618 times the
previous batch (the helper busy with a ``HashOld`` message) switched a block to the end for
good, and the first batch of a block, which the coordinator checks itself, runs slower than the
rest (cold caches), so comparing its time with the helpers' batches voted for the end too
(measured on the bench's perps blocks: the coordinator checked 1,344-1,408 of the 3,008
signatures of each pass's first block, which has no precheck, and 448 of a later block).

Why that threshold: with checks costing S and execution E a transaction, waiting batch by batch
takes ``max(E, S)`` a transaction, meeting from both ends ``E + S*S/(E + 2S)`` (the coordinator
checks the share ``S/(E + 2S)`` of the rest); the latter wins only past S = 1.618 E. Transfers
(S ~ 60 us, E ~ 15 us) and the replay (timed: S 61-86 us, E 21-41 us) meet from both ends; perps
sits at the line (timed: S 66-105 us, E 38-55 us; the checks run slower beside a busy helper) and
goes either way from block to block. After the meeting the helper is not idle when the next
block was announced: it checks that block's signatures (``precheck``). Only a pass's last block
loses that time, so the threshold, not the balance point of the two ends, is what matters.
A/B on the bench's perps blocks (``bench/probe.py perps 6``, seven runs of each version,
alternated): median 1.71x with the summed rules, 1.59x with the per-batch ones; transfers and the
replay were within their noise.

Measured on the 2-core box: sending every batch to the workers at once, in block order, and
executing as the verdicts came back left the coordinator blocked on verdicts for 1.2 s of a
2.3 s transfers pass (perps: 12-17% of a pass); checking from both ends from the start cut the
waits to ~0.1 s but made the coordinator check a third of a block whose checks cost about its
execution (perps) when the helper had nothing else to do. A helper between batches checks the
next block's signatures (``precheck``), so it is not idle when it leads.

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
#: a message costs far less than its checks and the wait at the meeting stays short.
BATCH = 64
#: Batches a helper holds at once: one being checked, one queued, so it never idles between them.
AHEAD = 2
#: Transactions the coordinator executes between two polls of the helpers' pipes (~1 us a poll).
POLL_EVERY = 16
#: The helpers take batches from the end once the coordinator's waits for verdicts add up to more
#: than this share of the time it spent executing the batches they checked: checks then cost more
#: than 1 + CATCH_UP times the execution (S > 1.618 E), past which the two ends meeting beats
#: waiting for each batch (module docstring).
CATCH_UP = 0.618
#: From the end, a helper gets no batch within this many batches of the coordinator's: it would
#: reach it before the helper (which checks the batch it holds first) got to it, and wait.
MEET_MARGIN = 2
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
        from_end: bool = False,
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
        #: the next batch to hand out from the front, and the first one handed out from the end
        self.front = 1  # the coordinator keeps batch 0: it starts on it at once
        self.tail = len(self.batches)
        #: set once the coordinator caught up with the helpers, or from the start (module)
        self.started_from_end = self.from_end = from_end
        #: seconds and transactions of the batches a helper checked, as the coordinator executed
        #: them (waits left out: E), and of the coordinator's own signature checks (S): what
        #: ``prefers_from_end`` judges by; ``waited``: seconds spent waiting for verdicts
        self.executed = [0.0, 0]
        self.checks = [0.0, 0]
        self.waited = 0.0
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
                self._send_next(w, 0)

    def _send_next(self, w: int, current: int) -> None:
        """Give helper ``w`` its next batch (see module): from the front while the coordinator
        (in batch ``current``) has not caught up, else the last one nobody has; never
        ``current`` or a batch before it, which the coordinator checks itself."""
        if not self.from_end and self.front <= current:
            self.from_end = True  # the coordinator passed the front: the helpers fell behind
        if not self.from_end:
            if self.front >= self.tail:
                return
            k = self.front
            self.front += 1
        else:
            if self.tail - 1 <= max(current + MEET_MARGIN, self.front - 1):
                return
            self.tail -= 1
            k = self.tail
        spec = self.runtime.spec
        raws = [self.txs[i] for i in self.batches[k]]
        self.pool.send(w, m.encode(m.Verify(None if self.specs[w] == spec else self.spec_bytes, raws)))
        self.specs[w] = spec
        self.pending[w].append(k)
        self.owner[k] = w
        self.assigned[k] = 1

    def prefers_from_end(self) -> bool:
        """Whether the next block's stream should start from the end (module docstring): by the
        measured cost of the coordinator's own checks (S a transaction) against its execution of
        the batches the helpers checked (E), else by the mode this stream ended in."""
        (checking, n_checked), (executing, n_executed) = self.checks, self.executed
        if not n_checked or not n_executed or executing <= 0:
            return self.from_end
        return checking / n_checked > (1 + CATCH_UP) * executing / n_executed  # S > 1.618 E

    def __iter__(self) -> Iterator[Any]:
        checked, prepare = self.runtime.prepare_checked, self.runtime.prepare
        verified, ok, owner, assigned = self.verified, self.ok, self.owner, self.assigned
        executed, checks, clock = self.executed, self.checks, time.perf_counter
        j = -1  # position among the unchecked transactions
        started, span, waited = clock(), 0.0, 0.0  # the coordinator's current batch
        by_helper, count = False, 0  # the current batch's verdicts came from a helper; its txs
        for i, raw in enumerate(self.txs):
            if i % POLL_EVERY == 0 and self.sent:
                self._poll((j + 1) // BATCH)  # the batch it is in or about to start
            count += 1
            if raw in verified:
                yield checked(raw)
                continue
            j += 1
            k, offset = divmod(j, BATCH)
            if not offset:  # a batch starts: how long the last one took, waits left out
                now = clock()
                started, span, waited = now, now - started - waited, 0.0
                if k and by_helper:
                    executed[0] += span
                    executed[1] += count - 1
                by_helper, count = False, 1
            if assigned[k]:  # a helper's batch: wait for its verdicts if they are not in yet
                if k in owner and self.sent:
                    waited += self._wait_for(k, span)
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

    def _wait_for(self, k: int, span: float) -> float:
        """Read replies until batch ``k``'s is in; returns the seconds waited. Waits adding up to
        more than ``CATCH_UP`` times the coordinator's execution of the helpers' batches (of
        ``span``, its last batch, before there is any) make the helpers take the end from now on
        (see module)."""
        waiting = time.perf_counter()
        while k in self.owner and self.sent:
            self._read(self.owner[k], k)
        waited = time.perf_counter() - waiting
        self.waited += waited
        if self.waited > CATCH_UP * (self.executed[0] or span):
            self.from_end = True
        return waited

    def _poll(self, current: int) -> None:
        """Read the replies already in (without waiting) and refill the helpers that sent them."""
        for w in self.helpers:
            pending = self.pending[w]
            while pending and self.sent and self.pool.has_reply(w):
                self._read(w, current)

    def _read(self, w: int, current: int) -> None:
        """Read helper ``w``'s oldest reply into ``ok`` (nothing when it failed the batch) and
        hand it its next batch; a lost helper ends the stream (``abandon``)."""
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
            self._send_next(w, current)
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

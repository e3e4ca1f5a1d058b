"""The coordinator's bookkeeping for one block: who gets what next, and what is final.

Assignment is static for the block, so each worker receives all its transactions with
``Setup`` and prepares them while it would otherwise wait. ``owner[i]`` names the worker of
transaction i: by position (chunk k of ``wave / workers`` transactions belongs to worker
k mod P), or, given an ``owner`` list, by key affinity (``executor`` computes it: transactions
sharing a market or sender run on one worker, in order, and never conflict with each other
across workers). Either way the block is cut into windows of ``wave`` positions, and a
worker's *chunk* is the run of its own transactions inside one window: ``own[w][a:b]`` in
the ascending list of the worker's transactions. Chunks are numbered by their first
transaction; with positional assignment each is one contiguous range. Nothing below depends on
chunks being contiguous: only on each worker running its own transactions in index order.

Rounds are not lock-step: a worker gets its next message as soon as it replies (its next chunk
while the window allows, plus every other worker's effects it has not seen yet), so a worker
that is descheduled or slow never makes the others wait at a barrier. Finality is then decided
from each worker's last validation report and what it had seen at the time.

State, per worker w: ``busy`` (a message is in flight), and for an idle worker the report of
its last message: ``first_invalid`` (lowest own transaction that failed validation, so was
re-executed), ``start`` (first transaction of the new chunk it executed, ``n`` if none) and
``seq`` (how many effect blobs existed when that message was sent: it had seen every foreign
one below ``seq``). Effect blobs are numbered in arrival order; each remembers its sender and
the lowest ``txn_idx`` it carries (``min(first_invalid, start)`` of its message).

Within one message a worker validates its pending transactions, re-executes the invalid ones,
then executes its new chunk, all in index order on one memory. So when the reply arrives, an
own transaction j is valid unless (a) it lies above ``first_invalid`` (it was validated before
that re-execution changed a value below it: the next message re-checks it), or (b) some lower
foreign transaction has an execution the worker had not seen. (b) is either in a blob numbered
>= ``seq``, or not yet reported: then its worker is busy with it or it was never sent (it lies
at or above ``hi``). Freshly executed ranges need no second validation message of their own:
they ran on top of every lower execution the worker knew, which is exactly what validation
would check (this holds for a chunk with other workers' transactions between its own: those
are at or above ``hi``, busy, or in blobs it had not seen). So the final prefix is ``[0, lo)`` with

    lo = min(hi,
             over idle w:  min(first_invalid,
                               its lowest transaction above the lowest txn_idx of any foreign
                               blob numbered >= seq: an unseen execution only affects the
                               validation of higher transactions),
             over busy w:  its lowest transaction >= lo (its in-flight message may re-run it))

It never decreases: a final transaction's lower neighbours never change again, so every
later validation of it passes. An idle worker is sent a message when it has something to
validate (it re-executed in its last message), foreign effects it has not seen, or its next
chunk starts inside the window ``[lo, lo + 2 * wave)``. Progress: when no idle worker gets a
message, no report bounds ``lo`` below ``hi``, so ``lo = hi`` and the next chunk is in the window.

Needs (optional, under key affinity: ``affinity.hinted_needs``): ``needs[j]`` names lower
transactions on other workers that ``j`` should not run before. A chunk is cut before any own
transaction that needs one at or above the chunk's first transaction, so every need of a chunk
lies below its start; the chunk is sent only once each worker it follows has replied to the
message that executed the needed transaction (``replied``). Progress still holds: the lowest
unsent chunk's needs lie below it, in chunks already sent, so once every worker is idle they
have all been replied to. Needs only delay speculation; they never decide finality.

``makespan`` models that schedule before it runs: every transaction costs one unit and every
message ``message_cost`` more, chunks start when their worker is free and the chunks holding
what they follow have finished (no window, no re-executions). The executor refuses a plan whose
modelled speedup ``n / makespan`` is too low to pay for itself.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import msgspec

from ...errors import InvariantViolation


@dataclass
class Report:
    first_invalid: int
    start: int
    seq: int


@dataclass
class Blob:
    sender: int
    min_idx: int
    effects: msgspec.Raw


class Pipeline:
    """See module docstring."""

    def __init__(
        self,
        n: int,
        workers: int,
        wave: int,
        owner: list[int] | None = None,
        needs: list[tuple[int, ...]] | None = None,
    ) -> None:
        self.n = n
        self.workers = workers
        self.wave = wave
        self.chunk = chunk = max(1, wave // workers)
        if owner is None:
            owner = [(i // chunk) % workers for i in range(n)]
        elif len(owner) != n or any(not 0 <= w < workers for w in owner):
            raise ValueError("owner must name a worker for every transaction")
        if needs is not None and (
            len(needs) != n or any(not 0 <= i < j for j, ahead in enumerate(needs) for i in ahead)
        ):
            raise ValueError("needs must name, for every transaction, only transactions below it")
        #: ``own[w]``: worker w's transactions, ascending.
        self.own: list[list[int]] = [[] for _ in range(workers)]
        for i, w in enumerate(owner):
            self.own[w].append(i)
        #: Chunks as (first txn_idx, worker, a, b): ``own[worker][a:b]`` is the worker's share of
        #: one window of ``wave`` positions; sorted by first txn_idx.
        self.chunks: list[tuple[int, int, int, int]] = []
        for w, idxs in enumerate(self.own):
            a = 0
            while a < len(idxs):
                window_end = (idxs[a] // wave + 1) * wave
                b = bisect_left(idxs, window_end, a)
                if needs is not None:  # a chunk follows only transactions below its first
                    first = idxs[a]
                    for p in range(a + 1, b):
                        if any(i >= first for i in needs[idxs[p]]):
                            b = p
                            break
                self.chunks.append((idxs[a], w, a, b))
                a = b
        self.chunks.sort()
        #: Per chunk, (worker, txn_idx) pairs: the chunk is not sent before that worker replied
        #: to the message that executed that transaction (``replied``).
        self.follows: list[tuple[tuple[int, int], ...]] = []
        for _, w, a, b in self.chunks:
            latest: dict[int, int] = {}
            if needs is not None:
                for j in self.own[w][a:b]:
                    for i in needs[j]:
                        v = owner[i]
                        if v != w and i > latest.get(v, -1):
                            latest[v] = i
            self.follows.append(tuple(latest.items()))
        #: Per worker, its highest transaction executed in a message it has replied to.
        self.replied = [-1] * workers
        #: Worker w's chunks, in order, as positions in ``chunks``.
        self.owned: list[list[int]] = [[] for _ in range(workers)]
        for k, (_, w, _, _) in enumerate(self.chunks):
            self.owned[w].append(k)
        self.next_owned = [0] * workers
        self.sent = [False] * len(self.chunks)
        self.first_unsent = 0
        self.lo = 0
        self.blobs: list[Blob] = []
        self.delivered = [0] * workers
        self.busy = [False] * workers
        self.reports: list[Report | None] = [None] * workers
        self.in_flight: list[Report | None] = [None] * workers
        self.messages = 0

    def makespan(self, message_cost: float) -> float:
        """Modelled length of the block's schedule in transaction units (module docstring)."""
        # per worker: (end position b in own[w], finish time) of its chunks so far, in order
        ends: list[list[int]] = [[] for _ in range(self.workers)]
        finishes: list[list[float]] = [[] for _ in range(self.workers)]
        free = [0.0] * self.workers
        for k, (_, w, a, b) in enumerate(self.chunks):  # by first transaction: what k follows is done
            ready = free[w]
            for v, i in self.follows[k]:
                chunk = bisect_right(ends[v], bisect_left(self.own[v], i))  # v's chunk holding i
                ready = max(ready, finishes[v][chunk])
            free[w] = ready + (b - a) + message_cost
            ends[w].append(b)
            finishes[w].append(free[w])
        return max(free, default=0.0)

    @property
    def hi(self) -> int:
        """Lowest transaction no worker has been told to execute yet."""
        if self.first_unsent < len(self.chunks):
            return self.chunks[self.first_unsent][0]
        return self.n

    @property
    def done(self) -> bool:
        return self.lo >= self.n and not any(self.busy)

    def advance(self) -> int:
        """Recompute the final prefix ``[0, lo)``; returns ``lo``."""
        bound = self.hi
        for w in range(self.workers):
            if self.busy[w]:
                bound = min(bound, self._lowest_owned(w, self.lo))
                continue
            report = self.reports[w]
            if report is None:
                continue
            mine = report.first_invalid  # its fresh chunk is bounded by unseen blobs only
            for blob in self.blobs[report.seq :]:
                if blob.sender != w and blob.min_idx < mine:
                    mine = min(mine, self._lowest_owned(w, blob.min_idx + 1))
            bound = min(bound, mine)
        if bound < self.lo:
            raise InvariantViolation(f"final prefix would shrink from {self.lo} to {bound}")
        self.lo = bound
        return bound

    def _lowest_owned(self, w: int, at_least: int) -> int:
        """Lowest transaction of worker ``w`` at or above ``at_least`` (``n`` when none)."""
        own = self.own[w]
        pos = bisect_left(own, at_least)
        return own[pos] if pos < len(own) else self.n

    def plan(self, w: int) -> tuple[int, int, list[msgspec.Raw]] | None:
        """The next message for idle worker ``w`` as (a, b, foreign effects), or None: execute
        ``own[w][a:b]`` (nothing when ``a == b``) after ingesting ``foreign`` and validating."""
        report = self.reports[w]
        must_validate = report is not None and report.first_invalid < self.n
        foreign = [b.effects for b in self.blobs[self.delivered[w] :] if b.sender != w]
        start, a, b = self.n, 0, 0
        position = self.next_owned[w]
        if position < len(self.owned[w]):
            k = self.owned[w][position]
            if self.chunks[k][0] < self.lo + 2 * self.wave and all(self.replied[v] >= i for v, i in self.follows[k]):
                start, _, a, b = self.chunks[k]
                self.next_owned[w] = position + 1
                self.sent[k] = True
                while self.first_unsent < len(self.sent) and self.sent[self.first_unsent]:
                    self.first_unsent += 1
        if not (must_validate or foreign or b > a):
            return None
        self.delivered[w] = len(self.blobs)
        self.in_flight[w] = Report(self.n, start, len(self.blobs))
        self.busy[w] = True
        self.messages += 1
        return a, b, foreign

    def on_reply(self, w: int, first_invalid: int, effects: msgspec.Raw) -> None:
        sent = self.in_flight[w]
        if not self.busy[w] or sent is None:
            raise InvariantViolation(f"unexpected reply from worker {w}")
        self.busy[w] = False
        if sent.start < self.n:  # it ran its latest chunk (one message in flight per worker)
            _, _, _, b = self.chunks[self.owned[w][self.next_owned[w] - 1]]
            self.replied[w] = self.own[w][b - 1]
        self.reports[w] = Report(first_invalid, sent.start, sent.seq)
        min_idx = min(first_invalid, sent.start)
        if min_idx < self.n:
            self.blobs.append(Blob(w, min_idx, effects))

    def undelivered(self, w: int) -> list[msgspec.Raw]:
        blobs = [b.effects for b in self.blobs[self.delivered[w] :] if b.sender != w]
        self.delivered[w] = len(self.blobs)
        return blobs

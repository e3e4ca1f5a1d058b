"""The old values of an in-process block's written keys, hashed on a worker while the block runs.

A block's root needs, for every written key, h(k, new) - h(k, old), where old is the committed
value. The new value is known only at the end of the block, but the key is known as soon as a
transaction first writes it, and its old value never changes during the block. So while the
coordinator executes a block itself (perps, the replay, ``adaptive``'s in-process plan), every
``EVERY`` transactions it sends the keys first written since the last message to one worker
(``HashOld``), which reads their committed values from LMDB and adds their h(k, old) to a running
sum, in the time it is not checking signatures. At the end (``ParallelExecutor._root``) only the
new values remain to hash: the worker hashes part of them and subtracts its old sum
(``Hash.minus_old``), the coordinator hashes the rest plus the full delta of keys first written
after the last message, so the two finish together.

When the root is deferred (``ParallelExecutor.defer_root``, ``PendingRoot``), the coordinator
first writes the block's state to LMDB and only then hashes its share, a fixed smaller one
(``split(share_here)``), so the worker takes most of the new values.

The block's write set is a dict filled in execution order, so "the keys sent so far" is its first
``sent`` keys: the split needs no bookkeeping per transaction. If anything fails (a worker lost,
a store view that does not match), the root is computed as before: nothing depends on this.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from ...types import Key, Value
from . import messages as m
from .transport import WorkerLost, WorkerPool

#: Transactions between ``HashOld`` messages (perps: ~300-400 new keys each; a message costs the
#: coordinator ~0.1 ms).
EVERY = 256
#: Cost of a key's full delta (LMDB read + two hashes) in units of one hash of its new value.
FULL_COST = 2


class OldHashes:
    """The coordinator's side for one block (see module docstring)."""

    def __init__(
        self,
        pool: WorkerPool,
        worker: int,
        lmdb_path: str,
        height: int | None,
        accumulator: bytes,
        overlay: dict,
        min_keys: int,
    ) -> None:
        self.pool = pool
        #: nothing is sent before the write set reaches this size (below it the root is hashed
        #: in-process anyway: a contended block writing a few keys sends nothing)
        self.min_keys = min_keys
        self.worker = worker
        self.lmdb_path = lmdb_path
        self.height = height
        self.accumulator = accumulator
        self.overlay: dict[Key, Value | None] = overlay
        self.sent = 0  # the overlay's first ``sent`` keys went to the worker
        self.ok = True

    def feed(self, prepared: Iterable[Any]) -> Iterator[Any]:
        """``prepared``, sending the keys written so far every ``EVERY`` transactions."""
        for count, tx in enumerate(prepared, start=1):
            yield tx
            if count % EVERY == 0:
                self.send()

    def send(self) -> None:
        if not self.ok or len(self.overlay) < self.min_keys:
            return
        # the keys after the first ``sent``, read from the end: O(new keys), not O(write set)
        keys = list(islice(reversed(self.overlay), len(self.overlay) - self.sent))
        if not keys:
            return
        message = m.HashOld(self.lmdb_path, self.height, self.accumulator, keys, self.sent == 0)
        try:
            self.pool.send(self.worker, m.encode(message))
        except WorkerLost:
            self.ok = False  # the root is computed without it (and the pool replaced there)
            return
        self.sent += len(keys)

    def split(self, share_here: float | None = None) -> tuple[list[Key], list[Key], list[Key]]:
        """(keys whose new values the worker hashes, keys whose new values the coordinator hashes,
        keys whose full delta the coordinator computes), balanced by ``FULL_COST``; with
        ``share_here`` the coordinator hashes that share of the sent keys instead (it writes
        the block to the store first: a deferred root)."""
        keys = list(self.overlay)
        sent, rest = keys[: self.sent], keys[self.sent :]
        if share_here is not None:
            mine = int(len(sent) * share_here)
            return sent[mine:], sent[:mine], rest
        units = FULL_COST * len(rest) + len(sent)
        mine = max(0, min(len(sent), units // 2 - FULL_COST * len(rest)))
        return sent[mine:], sent[:mine], rest

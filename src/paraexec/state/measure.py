"""Measure the cost of committing a block and updating the root, per written key.

The setting of the foundation issue: a state of ``state_keys`` keys (1,000,000 by default) in
LMDB, and a block of ``block_txs`` transfers (10,000) that writes two balances and one nonce
each (about 2.5 written keys per transaction once repeated keys are merged). Reported per
written key, amortised over the block:

- ``root``: ``commitment.delta`` over (key, old, new) - 2 SHAKE-256 hashes and an LMDB read of
  the old value per key - in one process, and split across ``processes`` worker processes
  (each opens the store read-only, hashes its share, returns a partial sum; ``combine`` adds);
- ``commit``: ``LmdbStore.commit_block`` (one LMDB write transaction with ``putmulti``);
- ``overlapped``: the wall time of both together when the coordinator writes the block into LMDB
  while the worker processes hash (they read old values from the last committed snapshot, which
  the open write transaction does not disturb), i.e. ``max(commit, root / processes)`` plus
  hand-off costs. ``LmdbStore.commit_block`` accepts the accumulator as a callable for this.
"""

from __future__ import annotations

import functools
import multiprocessing
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.pool import MapResult

from .. import codec
from . import commitment
from .lmdb_store import LmdbStore

_worker_store: LmdbStore | None = None


def _init_worker(path: str) -> None:
    global _worker_store
    _worker_store = LmdbStore(path, readonly=True)


def _partial_delta(items: list[tuple[bytes, bytes]]) -> int:
    assert _worker_store is not None
    _worker_store.refresh()
    return commitment.write_delta(items, _worker_store.get)


def _join(base: int, pending: MapResult[int]) -> int:
    return commitment.combine(base, *pending.get())


@dataclass
class CommitCost:
    state_keys: int
    written_keys: int
    processes: int
    root_us_per_key_1p: float
    root_us_per_key_np: float
    commit_us_per_key: float
    overlapped_us_per_key: float

    @property
    def total_us_per_key_1p(self) -> float:
        return self.root_us_per_key_1p + self.commit_us_per_key

    @property
    def total_us_per_key_np(self) -> float:
        return self.root_us_per_key_np + self.commit_us_per_key


def _key(i: int) -> bytes:
    return b"b/" + i.to_bytes(32, "big")


def build_state(path: str, state_keys: int) -> LmdbStore:
    store = LmdbStore(path)
    chunk = 200_000
    acc = 0
    for start in range(0, state_keys, chunk):
        items = {_key(i): codec.encode_int(10**12 + i) for i in range(start, min(state_keys, start + chunk))}
        acc = commitment.combine(acc, commitment.delta((k, None, v) for k, v in items.items()))
        store.commit_block(store.height + 1, items, acc, b"", b"")
    return store


def measure(state_keys: int = 1_000_000, block_txs: int = 10_000, processes: int = 2, repeat: int = 5) -> CommitCost:
    with tempfile.TemporaryDirectory(prefix="paraexec-commit-") as tmp:
        store = build_state(tmp, state_keys)
        rng = random.Random(0)
        ctx = multiprocessing.get_context("spawn")
        root_1p, root_np, commit_t, overlapped, written = [], [], [], [], 0
        with ctx.Pool(processes, initializer=_init_worker, initargs=(tmp,)) as pool:
            pool.map(_partial_delta, [[] for _ in range(processes)])  # warm the workers up
            for _ in range(repeat):
                writes: dict[bytes, bytes] = {}
                for _ in range(block_txs):  # sender balance, receiver balance, sender nonce
                    a, b = rng.randrange(state_keys), rng.randrange(state_keys)
                    writes[_key(a)] = codec.encode_int(rng.randrange(10**12))
                    writes[_key(b)] = codec.encode_int(rng.randrange(10**12))
                    writes[b"n/" + _key(a)[2:]] = codec.encode_int(rng.randrange(1000))
                items = list(writes.items())
                written = len(items)
                t0 = time.perf_counter()
                d1 = commitment.write_delta(items, store.get)
                t1 = time.perf_counter()
                parts = pool.map(_partial_delta, [items[i::processes] for i in range(processes)])
                t2 = time.perf_counter()
                if commitment.combine(0, *parts) != d1:
                    raise AssertionError("split root differs from single-process root")
                store.commit_block(store.height + 1, writes, commitment.combine(store.accumulator, d1), b"b", b"r")
                t3 = time.perf_counter()
                root_1p.append((t1 - t0) / written * 1e6)
                root_np.append((t2 - t1) / written * 1e6)
                commit_t.append((t3 - t2) / written * 1e6)
                # the same kind of block again, committed while the workers hash
                writes = {k: codec.encode_int(rng.randrange(10**12)) for k in writes}
                items = list(writes.items())
                base = store.accumulator
                t4 = time.perf_counter()
                pending = pool.map_async(_partial_delta, [items[i::processes] for i in range(processes)])
                store.commit_block(store.height + 1, writes, functools.partial(_join, base, pending), b"b", b"r")
                t5 = time.perf_counter()
                overlapped.append((t5 - t4) / written * 1e6)
        store.close()
    med = statistics.median
    return CommitCost(state_keys, written, processes, med(root_1p), med(root_np), med(commit_t), med(overlapped))

"""Preparing transactions on threads: the stateless part of a block, on every core.

``runtime.prepare`` (decode and signature check) does not depend on state or on other
transactions, and PyNaCl releases the GIL while it verifies an ed25519 signature (~45 us of a
signed transfer's ~55 us on the dev box), so even on a GIL build a thread pool checks a block's
signatures on all cores. Executors use this where they run transactions one after another anyway
(a conflict chain, a contended block run in-process): the execution stays sequential, only the
signature checks overlap. Results are the same objects ``prepare`` returns one by one, in block
order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .contract import BlockEnv, BlockOutput, Runtime, StateView
from .sequential import execute_prepared

#: Below this many items, one thread is as fast as handing chunks to a pool.
MIN_ITEMS = 64


def split(items: Sequence[Any], parts: int) -> list[Sequence[Any]]:
    """``items`` in ``parts`` contiguous, nearly equal chunks (none empty)."""
    size = max(1, -(-len(items) // max(1, parts)))
    return [items[i : i + size] for i in range(0, len(items), size)]


def map_chunks(
    pool: ThreadPoolExecutor | None, parts: int, fn: Callable[[Any], Any], items: Sequence[Any]
) -> list[Any]:
    """``[fn(x) for x in items]``, computed in ``parts`` contiguous chunks on ``pool``."""
    if pool is None or parts < 2 or len(items) < MIN_ITEMS:
        return [fn(x) for x in items]
    results = pool.map(lambda chunk: [fn(x) for x in chunk], split(items, parts))
    return [y for chunk in results for y in chunk]


def worth_threads(runtime: Runtime, n_txs: int) -> bool:
    """Whether preparing ``n_txs`` on threads can pay: only signature checks release the GIL,
    so only a runtime that says it checks them (``verify_signatures``) qualifies."""
    return n_txs >= MIN_ITEMS and bool(getattr(runtime, "verify_signatures", False))


def prepare_all(runtime: Runtime, txs: Sequence[bytes], pool: ThreadPoolExecutor | None, parts: int) -> list[Any]:
    """``runtime.prepare`` of every transaction, in block order, on ``pool``'s threads."""
    return map_chunks(pool, parts, runtime.prepare, txs)


class SignatureThreads:
    """A lazily started pool of ``threads`` threads that checks the signatures of blocks (or
    block tails) an executor runs one transaction after another.

    ``prepared`` hands ``sequential.execute_prepared`` what to run: ``prepare_all`` on the pool
    when ``worth_threads``, else a generator preparing each transaction just before it runs,
    exactly as ``sequential`` does (a list of every prepared transaction of a block, built up
    front for nothing, measured 1.5x slower: thousands of live objects wake the cyclic
    collector).
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def used(self, runtime: Runtime, n_txs: int) -> bool:
        """Whether ``prepared`` checks these signatures on the threads."""
        return self.threads > 1 and worth_threads(runtime, n_txs)

    def prepared(
        self, runtime: Runtime, txs: Sequence[bytes], verified: AbstractSet[bytes] = frozenset()
    ) -> Iterable[Any]:
        """What ``execute_prepared`` runs. Transactions in ``verified`` had their signature
        checked ahead of the block (``parallel.precheck``): they are only decoded, as they run."""
        if verified:
            rest = [raw for raw in txs if raw not in verified]
            done = iter(self.prepared(runtime, rest))
            checked = runtime.prepare_checked  # type: ignore[attr-defined]
            return (checked(raw) if raw in verified else next(done) for raw in txs)
        if not self.used(runtime, len(txs)):
            return (runtime.prepare(raw) for raw in txs)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="prepare")
        return prepare_all(runtime, txs, self._pool, self.threads)

    def execute_in_order(
        self,
        runtime: Runtime,
        txs: Sequence[bytes],
        state: StateView,
        env: BlockEnv,
        verified: AbstractSet[bytes] = frozenset(),
    ) -> BlockOutput:
        """``sequential``'s result, with ``stats.seconds`` counting the signature checks too."""
        started = time.perf_counter()
        output = execute_prepared(runtime, self.prepared(runtime, txs, verified), state, env)
        output.stats.seconds = time.perf_counter() - started
        return output

    def note(self, runtime: Runtime, n_txs: int) -> str:
        return f"signatures checked on {self.threads} threads" if self.used(runtime, n_txs) else ""

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

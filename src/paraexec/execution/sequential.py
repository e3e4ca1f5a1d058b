"""The sequential executor: the specification every other executor is checked against.

    execute_block(runtime, txs, state, env):
        overlay = {}                                  # the block's writes so far
        for txn_idx, raw in enumerate(txs):           # strictly in block order
            ctx = a TxContext reading overlay, then committed state
            receipt = runtime.execute(runtime.prepare(raw), ctx)
            overlay <- ctx.writes, and ctx.deltas resolved against the current value
        write_set = overlay
        accumulator = old accumulator + sum of h(k, new) - h(k, old) over write_set
        return BlockOutput(receipts, write_set, accumulator, root(accumulator))

Nothing here is clever on purpose: when a fast executor disagrees with this one, this one is
right.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import codec
from ..state import commitment
from ..types import Key, Value, WriteSet
from .contract import BlockEnv, BlockOutput, ExecStats, RootFn, Runtime, StateView, TxContext


class OverlayContext(TxContext):
    """A TxContext that reads the block's writes so far, then committed state."""

    __slots__ = ("overlay", "state")

    def __init__(self, env: BlockEnv, overlay: WriteSet, state: StateView) -> None:
        super().__init__(env)
        self.overlay = overlay
        self.state = state

    def _read(self, key: Key) -> Value | None:
        if key in self.overlay:
            return self.overlay[key]
        return self.state.get(key)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that overrides ``_read`` (to record reads) gets the generic ``get``
        back, which goes through it."""
        super().__init_subclass__(**kwargs)
        if "_read" in cls.__dict__ and "get" not in cls.__dict__:
            cls.get = TxContext.get  # type: ignore[method-assign]

    def get(self, key: Key) -> Value | None:
        """``TxContext.get`` with ``_read`` inlined: the hottest call of execution (a perps
        order reads ~14 keys: its accounts, and every margin input of their markets)."""
        writes = self.writes
        if key in writes:
            return writes[key]
        overlay = self.overlay
        base = overlay[key] if key in overlay else self.state.get(key)
        deltas = self.deltas
        if deltas and key in deltas:  # read after its own ``add``
            return codec.encode_int(codec.decode_int(base) + deltas[key])
        return base


def execute_prepared(
    runtime: Runtime,
    prepared: Iterable[Any],
    state: StateView,
    env: BlockEnv,
    root: Callable[[WriteSet, StateView], tuple[int, bytes] | RootFn] | None = None,
    overlay: WriteSet | None = None,
) -> BlockOutput:
    """The sequential loop over already prepared transactions (``runtime.prepare`` is stateless,
    so preparing them earlier, e.g. on threads, changes nothing). ``stats.seconds`` covers only
    this loop: work done on ``prepared`` before it started is the caller's to count. ``root``
    replaces ``finalize`` (same result, computed elsewhere: the parallel executor's workers); it
    may return a function that finishes the root later (``BlockOutput``'s pending root).
    ``overlay`` holds the writes of the transactions before these (a final prefix computed
    elsewhere); it is extended in place and becomes the result's write set."""
    started = time.perf_counter()
    if overlay is None:
        overlay = {}
    receipts = []
    for tx in prepared:
        ctx = OverlayContext(env, overlay, state)
        receipts.append(runtime.execute(tx, ctx))
        apply_effects(ctx, overlay)
    result = (root or finalize)(overlay, state)
    elapsed = time.perf_counter() - started
    stats = ExecStats("sequential", 1, executions=len(receipts), rounds=1, seconds=elapsed, worker_busy=[elapsed])
    if callable(result):
        return BlockOutput(receipts, overlay, None, None, stats, pending=result)
    return BlockOutput(receipts, overlay, *result, stats)


def apply_effects(ctx: TxContext, overlay: WriteSet) -> None:
    """Fold one transaction's writes and resolved deltas into the block overlay."""
    overlay.update(ctx.writes)
    for key, delta in ctx.deltas.items():
        overlay[key] = codec.encode_int(codec.decode_int(ctx._read(key)) + delta)


def finalize(write_set: WriteSet, state: StateView) -> tuple[int, bytes]:
    """New (accumulator, root) after applying ``write_set`` on top of ``state``."""
    acc = commitment.combine(state.accumulator, commitment.write_delta(write_set.items(), state.get))
    return acc, commitment.root_of(acc)


class SequentialExecutor:
    """Runs transactions one by one, in block order. The reference."""

    name = "sequential"

    def __init__(self, workers: int = 1) -> None:
        self.workers = 1

    def execute_block(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> BlockOutput:
        return execute_prepared(runtime, (runtime.prepare(raw) for raw in txs), state, env)

    def close(self) -> None:
        pass

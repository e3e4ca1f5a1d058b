"""Dependency analysis: a block's true dependency graph and its inherent speedup bound.

    analyze_block(runtime, txs, state, env, cost=None) -> DependencyReport

runs the block once, sequentially (it *is* the sequential executor, with a recording
``TxContext``), and records for each transaction:

    read_set[j]   keys j read from the block's state (its own earlier writes are not reads)
    write_set[j]  keys j wrote with put/delete (after rollback: a refused tx keeps only its nonce)
    delta_set[j]  keys j changed with commutative ``add`` (Aptos aggregators) without reading

Graph (read-after-write only, as multi-versioning removes write-after-read and
write-after-write hazards): for every key ``k`` that ``j`` reads, ``j`` depends on the latest
``i < j`` that wrote ``k``, and on every ``i`` after that one that added a delta to ``k`` (the
value ``j`` sees is that write plus those deltas). Deltas to keys ``j`` does not read create no
edge: that is what makes aggregators commutative.

Cost: per-transaction seconds measured in the recording run, prepare and execute timed apart
(the fastest of ``timings`` runs each, see ``analyze_block``), or the caller's ``cost`` list
(then all of it counts as execution). ``cost[j]`` is the whole (prepare + execute, so signature
checks are included when the runtime verifies them); only the execution lies on a dependency
chain: ``prepare`` reads no state, so any schedule can run it before, or beside, the chain
(the executors do: workers prepare ahead, threads check signatures of a conflict chain). The
critical path is the longest execution-weighted path through the graph:

    finish[j] = (cost[j] - prepare_cost[j]) + max(finish[i] for i in deps[j], default 0)
    critical_path = max(finish),  total_cost = T1 = sum(cost)

With P workers no schedule beats ``T1 / P`` (work) or ``critical_path`` (depth), so

    speedup_bound(P) = T1 / max(T1 / P, critical_path)

Every benchmark reports its achieved speedup next to this bound. The bound ignores
coordination, so it is an upper limit, not a prediction.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .. import codec
from ..types import Key, Value, WriteSet
from .contract import BlockEnv, BlockOutput, ExecStats, Runtime, StateView
from .sequential import OverlayContext, finalize

#: How often each transaction is timed when costs are measured (the minimum counts).
TIMINGS = 3


class RecordingContext(OverlayContext):
    """An ``OverlayContext`` that remembers which keys were read from the block's state."""

    __slots__ = ("read_set",)

    def __init__(self, env: BlockEnv, overlay: WriteSet, state: StateView) -> None:
        super().__init__(env, overlay, state)
        self.read_set: set[Key] = set()

    def _read(self, key: Key) -> Value | None:
        self.read_set.add(key)
        return super()._read(key)


@dataclass
class DependencyReport:
    """The dependency graph of one block and what it implies for parallel execution.

    ``deps[j]`` lists the transactions ``j`` depends on (ascending); ``edge_keys[(i, j)]`` the
    keys that cause the edge ``i -> j``. ``output`` is the sequential result of the block, so
    callers can check it against other executors without running it again.
    """

    read_sets: list[frozenset[Key]]
    write_sets: list[frozenset[Key]]
    delta_sets: list[frozenset[Key]]
    costs: list[float]
    deps: list[list[int]]
    edge_keys: dict[tuple[int, int], list[Key]]
    finish: list[float]
    output: BlockOutput
    #: The stateless part of ``costs`` (``runtime.prepare``): off every dependency chain.
    prepare_costs: list[float] = field(default_factory=list)
    total_cost: float = field(init=False)
    critical_path: float = field(init=False)

    def __post_init__(self) -> None:
        self.total_cost = sum(self.costs)
        self.critical_path = max(self.finish, default=0.0)

    @property
    def n_txs(self) -> int:
        return len(self.costs)

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Every dependency ``(i, j)``: ``j`` read something ``i`` wrote; sorted by ``(j, i)``."""
        return [(i, j) for j, preds in enumerate(self.deps) for i in preds]

    @property
    def conflict_rate(self) -> float:
        """Fraction of transactions with at least one dependency."""
        if not self.deps:
            return 0.0
        return sum(1 for preds in self.deps if preds) / len(self.deps)

    @property
    def critical_path_length(self) -> int:
        """Transactions on the longest dependency chain (the depth in unit costs)."""
        depth = [0] * len(self.deps)
        for j, preds in enumerate(self.deps):
            depth[j] = 1 + max((depth[i] for i in preds), default=0)
        return max(depth, default=0)

    def speedup_bound(self, workers: int) -> float:
        """``T1 / max(T1 / P, critical_path)``: no P-worker schedule can beat it."""
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if self.total_cost <= 0:
            return 1.0
        return self.total_cost / max(self.total_cost / workers, self.critical_path)

    def critical_path_without(self, ignored: Callable[[Key], bool]) -> float:
        """The critical path if every edge caused only by ``ignored`` keys did not exist.

        What-if analysis: an edge (i, j) stays when at least one of the keys behind it is not
        ignored. Made commutative (a delta), split (one key per trader or per market) or
        declared away, a class of keys could raise the bound at most to
        ``total_cost / critical_path_without(...)``; the schedule an executor achieves is a
        separate question.
        """
        prepare = self.prepare_costs or [0.0] * len(self.costs)
        execution = [c - p for c, p in zip(self.costs, prepare, strict=True)]
        finish = finish_times(execution, self.deps, lambda i, j: not all(map(ignored, self.edge_keys[(i, j)])))
        return max(finish, default=0.0)

    def hot_keys(self, n: int = 10) -> list[tuple[Key, int]]:
        """The ``n`` keys that cause the most edges, most first (ties by key, for stable output)."""
        counts: Counter[Key] = Counter()
        for keys in self.edge_keys.values():
            counts.update(keys)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]

    def summary(self, workers: int) -> dict[str, float | int]:
        """The numbers a benchmark prints next to its achieved speedup."""
        return {
            "txs": self.n_txs,
            "edges": len(self.edge_keys),
            "conflict_rate": self.conflict_rate,
            "critical_path_txs": self.critical_path_length,
            "total_cost": self.total_cost,
            "critical_path": self.critical_path,
            "speedup_bound": self.speedup_bound(workers),
        }


def analyze_block(
    runtime: Runtime,
    txs: Sequence[bytes],
    state: StateView,
    env: BlockEnv,
    cost: list[float] | None = None,
    timings: int = TIMINGS,
) -> DependencyReport:
    """Run ``txs`` sequentially with recording contexts and build the ``DependencyReport``.

    ``cost`` (one number per transaction, any unit) replaces the measured seconds, for
    deterministic tests and for cost models. Otherwise each transaction is timed ``timings``
    times against the same overlay (it is deterministic, and the overlay only changes after
    it) and the fastest time counts: one preempted or garbage-collected run would otherwise put
    a multi-millisecond "transaction" on the critical path and make the bound meaningless.
    """
    if cost is not None and len(cost) != len(txs):
        raise ValueError(f"cost has {len(cost)} entries for {len(txs)} transactions")
    started = time.perf_counter()
    overlay: WriteSet = {}
    receipts = []
    read_sets: list[frozenset[Key]] = []
    write_sets: list[frozenset[Key]] = []
    delta_sets: list[frozenset[Key]] = []
    measured: list[float] = []
    measured_prepare: list[float] = []
    clock = time.perf_counter
    extra_runs = range(max(1, timings) - 1) if cost is None else range(0)
    for raw in txs:
        ctx = RecordingContext(env, overlay, state)
        t0 = clock()
        prepared = runtime.prepare(raw)
        t1 = clock()
        receipts.append(runtime.execute(prepared, ctx))
        best_prepare, best_execute = t1 - t0, clock() - t1
        for _ in extra_runs:
            t0 = clock()
            prepared = runtime.prepare(raw)
            t1 = clock()
            runtime.execute(prepared, OverlayContext(env, overlay, state))
            best_prepare, best_execute = min(best_prepare, t1 - t0), min(best_execute, clock() - t1)
        measured.append(best_prepare + best_execute)
        measured_prepare.append(best_prepare)
        read_sets.append(frozenset(ctx.read_set))
        write_sets.append(frozenset(ctx.writes))
        delta_sets.append(frozenset(ctx.deltas))
        _apply(ctx, overlay, state)
    accumulator, root = finalize(overlay, state)
    elapsed = clock() - started
    stats = ExecStats("dependency", 1, executions=len(txs), rounds=1, seconds=elapsed, worker_busy=[elapsed])
    output = BlockOutput(receipts, overlay, accumulator, root, stats)

    costs = list(cost) if cost is not None else measured
    prepare_costs = [0.0] * len(txs) if cost is not None else measured_prepare
    deps, edge_keys = _build_graph(read_sets, write_sets, delta_sets)
    finish = finish_times([c - p for c, p in zip(costs, prepare_costs, strict=True)], deps)
    return DependencyReport(read_sets, write_sets, delta_sets, costs, deps, edge_keys, finish, output, prepare_costs)


def finish_times(
    execution: list[float], deps: list[list[int]], kept: Callable[[int, int], bool] | None = None
) -> list[float]:
    """``finish[j] = execution[j] + max(finish[i] for i in deps[j])`` (module docstring), over
    the edges ``kept(i, j)`` allows (all without it)."""
    finish = [0.0] * len(execution)
    for j, preds in enumerate(deps):
        longest = 0.0
        for i in preds:
            if finish[i] > longest and (kept is None or kept(i, j)):
                longest = finish[i]
        finish[j] = execution[j] + longest
    return finish


def _apply(ctx: RecordingContext, overlay: WriteSet, state: StateView) -> None:
    """``sequential.apply_effects`` without recording the delta resolution as a read."""
    overlay.update(ctx.writes)
    for key, delta in ctx.deltas.items():
        base = overlay[key] if key in overlay else state.get(key)
        overlay[key] = codec.encode_int(codec.decode_int(base) + delta)


def _build_graph(
    read_sets: list[frozenset[Key]], write_sets: list[frozenset[Key]], delta_sets: list[frozenset[Key]]
) -> tuple[list[list[int]], dict[tuple[int, int], list[Key]]]:
    """Read-after-write edges (see module docstring); ``edge_keys`` keys are sorted per edge."""
    last_writer: dict[Key, int] = {}  # latest put/delete of the key
    deltas_since: dict[Key, list[int]] = {}  # delta writers after that put/delete
    deps: list[list[int]] = []
    edge_keys: dict[tuple[int, int], list[Key]] = {}
    for j, reads in enumerate(read_sets):
        preds: set[int] = set()
        for key in sorted(reads):
            sources = deltas_since.get(key, [])
            writer = last_writer.get(key)
            for i in ([writer] if writer is not None else []) + sources:
                preds.add(i)
                edge_keys.setdefault((i, j), []).append(key)
        deps.append(sorted(preds))
        for key in write_sets[j]:
            last_writer[key] = j
            deltas_since.pop(key, None)
        for key in delta_sets[j]:
            deltas_since.setdefault(key, []).append(j)
    return deps, edge_keys

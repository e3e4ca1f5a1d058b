"""The benchmark harness: every executor on identical blocks, timed, and checked against sequential.

    run_bench(config, points):
        for each point (one set of workload parameters, e.g. accounts=100):
            blocks    = the workload's signed blocks 1..K, generated once     (identical input)
            ref       = sequential on a fresh store, block by block: the reference roots and,
                        before each block, the dependency analysis of that block (the bound, for
                        every worker count and every core count of the timed pairs)
            executors = make_executor(name, workers) for every pair  (sequential once, workers=1;
                        started once and reused, so process start-up is not timed)
            warm-up: each executor runs blocks 1-2 on a throwaway store (untimed)
            repeat R times, interleaved (pass r of every pair before any pass r+1, order rotated):
                a fresh store (temporary LMDB directory, or under --data)
                for each block: chain.produce_block (execution + commit + root), told the next
                block's transactions; timed from the first block's start to the last one's end
                compare every block's root with ref
            medians over the R repeats; ratios against the sequential run of the same point

Only the run of ``produce_block`` calls is timed: block generation, store creation and genesis are not. Speedups
are ratios of medians measured in the same process run, so machine load hits both sides alike.
Each result also carries the per-repeat ratios (sequential's pass of a round over this pass of the
same round), their quartiles (``speedup_quartiles``) and median (``speedup_paired_median``), the
tables' p25-p50-p75: on a noisy machine the ratio of medians alone hides how far a speedup moved
between repeats, and with few repeats it can pair passes of different rounds (a slow sequential
pass with a fast one of the other executor), where the paired median cannot; both are shown, the
ratio of medians stays the headline.
Each result records ``workers`` (the ``--workers`` value it was made with) and ``cores`` (the
cores that executor may keep busy, ``cores_used``): ``parallel`` and ``adaptive`` run a
coordinator that executes transactions itself beside their ``workers`` processes, so ``parallel
x1`` uses two cores. ``bound`` is the inherent bound of the blocks on ``cores`` cores and
``bound_efficiency`` the share of it reached (``speedup / bound``): a bound taken at ``workers``
would credit such executors with a free core and could read above 100%.
A pass of K >= 2 blocks also reports its *steady state*, blocks 2..K (``steady_speedup``, its
``steady_bound`` and ``steady_bound_efficiency``), beside the whole pass, which stays the
headline: block 1 of a pass starts cold (nothing of it was announced ahead, so no signature was
checked before it), while every later block was announced while the one before it ran, as in
``paraexec run``. Reporting both shows how much of a gap to the bound is that start.
Signature checks run inside execution unless ``verify_signatures`` is off ("already verified at
mempool admission"), so both the end-to-end and the execution-only numbers can be produced. The
node is the second case: it checks signatures at mempool admission (in a helper process,
whatever the executor) and produces blocks with ``verify_signatures=False``, announcing nothing
ahead, so what an executor gains in a node's block production is the execution-only number.

With ``aa`` a second sequential executor (``AA``) is timed like the others: an A/A test whose
ratio shows the machine's noise in that run, next to the speedups it must not be mistaken for.

A root or a receipt list that differs from sequential's (receipts compared by the digest of
their stored bytes, read after the timed pass), or an executor that raises, is recorded in
``failures``; the CLI exits non-zero when there is any. ``roots_match`` covers both.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import crypto
from ..chain import Chain, ChainConfig
from ..execution.contract import BlockEnv, BlockOutput, Executor
from ..execution.registry import make_executor
from ..execution.sequential import SequentialExecutor
from ..state import LmdbStore, MemoryStore
from ..state.store import StateStore
from ..workloads import CONTENTION_PARAM, Workload, make_workload
from . import bound as boundmod
from .machine import machine_info, process_tree_cpu

REFERENCE = "sequential"
#: A second, separate ``sequential`` executor timed like every other pair (``BenchConfig.aa``): its
#: speedup is 1.0 but for the machine's noise, so its row (and its p25-p75) is the run's own noise
#: floor, the yardstick for every other ratio of the same run (an A/A test).
AA = "sequential-aa"
#: Executors whose coordinator process executes transactions beside ``workers`` worker processes.
COORDINATOR_EXECUTES = frozenset({"parallel", "adaptive"})
Progress = Callable[[str], None]


@dataclass
class BenchConfig:
    """One benchmark invocation. ``points`` are workload parameter sets (the contention sweep)."""

    workload: str = "transfers"
    points: list[dict[str, Any]] = field(default_factory=lambda: [{"accounts": 1000}])
    block_size: int = 1000
    blocks: int = 3
    executors: list[str] = field(default_factory=lambda: [REFERENCE])
    workers: list[int] = field(default_factory=lambda: [1, 2])
    repeat: int = 1
    seed: int = 0
    verify_signatures: bool = True
    store: str = "lmdb"  # "lmdb" (the default store) or "memory"
    data_dir: str | None = None
    warmup: bool = True
    analyze: bool = True
    aa: bool = False  # also time ``AA``

    def runs(self) -> list[tuple[str, int]]:
        """The (executor, workers) pairs to time: sequential first and once (then ``AA`` once,
        with ``aa``), then the rest."""
        pairs = [(REFERENCE, 1)] + ([(AA, 1)] if self.aa else [])
        for name in self.executors:
            if name == REFERENCE:
                continue
            pairs.extend((name, w) for w in self.workers)
        return pairs

    def total_steps(self) -> int:
        """Timed blocks plus warm-ups, for a progress bar."""
        per_run = self.blocks * self.repeat + (min(2, self.blocks) if self.warmup else 0)
        return len(self.points) * len(self.runs()) * per_run


@dataclass
class BlockTiming:
    height: int
    txs: int
    seconds: float
    root: str
    executions: int
    re_executions: int
    validations: int
    aborts: int
    rounds: int
    worker_busy: list[float]
    note: str
    timeline: list[Any] | None = None
    receipts: str = ""  # digest of the block's stored receipt bytes (``receipts_digest``)


#: The columns of a results table, as the command line prints it (``commands.results_table``);
#: the HTML report adds the executions and re-executions before "re-exec/tx".
RESULT_COLUMNS = (
    "executor",
    "workers",
    "cores",
    "median s",
    "tx/s",
    "speedup",
    "p25-p50-p75",
    "bound",
    "of bound",
    "blocks 2+",
    "CPU s",
    "CPU ceiling",
    "re-exec/tx",
    "rounds",
    "par. blocks",
    "roots",
)


def receipts_digest(store: StateStore, height: int) -> str:
    """A digest of block ``height``'s receipts as the store holds them (canonical bytes)."""
    return crypto.hash32(store.get_receipts(height) or b"").hex()


def generate_blocks(workload: Workload, blocks: int, block_size: int) -> list[list[bytes]]:
    """Blocks 1..K for a fresh chain (nonces from 0), generated once and shared by every run."""
    return [workload.block(height, block_size) for height in range(1, blocks + 1)]


@contextlib.contextmanager
def fresh_store(kind: str, data_dir: str | None, name: str) -> Iterator[StateStore]:
    """A new empty store: in memory, a temporary LMDB directory, or ``data_dir/name`` (kept)."""
    if kind == "memory":
        yield MemoryStore()
        return
    if data_dir is not None:
        path = Path(data_dir) / name
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path} is not empty: give a fresh --data directory")
        store = LmdbStore(path)
        try:
            yield store
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory(prefix="paraexec-bench-") as tmp:
        store = LmdbStore(tmp)
        try:
            yield store
        finally:
            store.close()


def block_time(config: ChainConfig, height: int, seconds: int = 1) -> int:
    """Block time of ``height``: ``seconds`` apart (a workload's ``block_seconds``, else 1)."""
    return config.genesis_time + height * seconds


def reference_pass(
    chain_config: ChainConfig,
    blocks: list[list[bytes]],
    bench: BenchConfig,
    analyzer: boundmod.Analyzer | None,
    analysed: Sequence[int],
    block_seconds: int = 1,
) -> tuple[list[str], list[str], boundmod.Bounds, dict[str, Any]]:
    """Sequential on a fresh in-memory store: reference roots and receipt digests, the analysis
    of each block (its bound on each core count in ``analysed``, see ``analysed_cores``),
    outcomes."""
    bounds = boundmod.Bounds()
    outcomes = Outcomes()
    store = MemoryStore()
    Chain.create(store, chain_config)
    chain = Chain(store, chain_config, bench.verify_signatures)
    executor = SequentialExecutor()
    roots, receipts = [], []
    for txs in blocks:
        height = chain.height + 1
        if analyzer is not None:
            env = BlockEnv(height, block_time(chain_config, height, block_seconds))
            all_txs = list(txs) + chain.runtime.system_transactions(env)
            try:
                boundmod.analyze(analyzer, bounds, chain.runtime, all_txs, store, env, analysed)
            except Exception as exc:  # the analysis is advisory: a bug there must not hide the timings
                bounds.error = f"{type(exc).__name__}: {exc}"
                analyzer = None
                bounds.available = False
        block, output = chain.produce_block(txs, block_time(chain_config, height, block_seconds), executor)
        roots.append(block.header.state_root.hex())
        receipts.append(receipts_digest(store, height))
        outcomes.add(output)
    return roots, receipts, bounds, outcomes.to_json()


@dataclass
class Outcomes:
    """What the workload did, from the reference receipts: successes, failures by error, events by name.

    Not timed and not compared: it tells the reader whether a workload is realistic (how many
    orders filled, how many liquidations a shock caused, how many transactions were refused).
    """

    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)

    def add(self, output: BlockOutput) -> None:
        for receipt in output.receipts:
            if receipt.ok:
                self.ok += 1
            else:
                self.failed[receipt.error.split(":", 1)[0]] += 1
            self.events.update(event.name for event in receipt.events)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": dict(self.failed.most_common()), "events": dict(self.events.most_common())}


@dataclass
class Pass:
    """One timed pass: its blocks, and the CPU seconds it used on every core (this process,
    its threads and its worker processes; ``None`` where they cannot be read)."""

    blocks: list[BlockTiming]
    cpu_seconds: float | None = None


def timed_run(
    chain_config: ChainConfig,
    blocks: list[list[bytes]],
    executor: Executor,
    bench: BenchConfig,
    store_name: str,
    progress: Progress | None,
    label: str,
    block_seconds: int = 1,
) -> Pass:
    """One pass over all blocks on a fresh store, timed from the first ``produce_block`` to the
    end of the last.

    Each block is produced knowing the next block's transactions (``upcoming``: a producer's
    mempool holds them), so an executor may check their signatures on idle cores meanwhile.
    Such work must not escape the clock between blocks, so the pass is timed without gaps: a
    block's ``seconds`` run from the end of the previous block (the harness's own bookkeeping
    between blocks, well under a millisecond, counts too, for every executor alike). The CPU
    the pass used is read around the same span (``process_tree_cpu``).
    """
    timings = []
    with fresh_store(bench.store, bench.data_dir, store_name) as store:
        Chain.create(store, chain_config)
        chain = Chain(store, chain_config, bench.verify_signatures)
        gc.collect()  # garbage of earlier runs is not this run's cost
        cpu_before = process_tree_cpu()
        started = time.perf_counter()
        for k, txs in enumerate(blocks):
            height = chain.height + 1
            upcoming = blocks[k + 1] if k + 1 < len(blocks) else None
            block_at = block_time(chain_config, height, block_seconds)
            block, output = chain.produce_block(txs, block_at, executor, upcoming)
            ended = time.perf_counter()
            timings.append(block_timing(height, len(block.txs), ended - started, block.header.state_root.hex(), output))
            started = ended
            if progress is not None:
                progress(label)
        cpu_after = process_tree_cpu()
        for timing in timings:  # after the clock: what each block committed, to compare
            timing.receipts = receipts_digest(store, timing.height)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Pass(timings, cpu)


def block_timing(height: int, txs: int, seconds: float, root: str, output: BlockOutput) -> BlockTiming:
    stats = output.stats
    timeline = getattr(stats, "timeline", None)
    return BlockTiming(
        height=height,
        txs=txs,
        seconds=seconds,
        root=root,
        executions=stats.executions,
        re_executions=stats.re_executions(txs),
        validations=stats.validations,
        aborts=stats.aborts,
        rounds=stats.rounds,
        worker_busy=list(stats.worker_busy),
        note=stats.note,
        timeline=[list(t) for t in timeline] if timeline else None,
    )


def runs_in_parallel(b: BlockTiming) -> bool:
    """The block's transactions were executed by two or more workers at once (processes or
    threads), not one after another in one place: an executor's in-process plan reports idle
    workers even when they checked its signatures or hashed its root meanwhile."""
    return sum(1 for busy in b.worker_busy if busy > 0) >= 2


def parallel_share(result: dict[str, Any]) -> str:
    """``k/n``: timed blocks executed in parallel out of all timed blocks (``-`` if unknown)."""
    if result.get("blocks_timed") is None:
        return "-"
    return f"{result['parallel_blocks']}/{result['blocks_timed']}"


def steady_cell(r: dict[str, Any]) -> str:
    """Blocks 2..K of a pass (after block 1's cold start): speedup and share of their bound."""
    speedup, share = r.get("steady_speedup"), r.get("steady_bound_efficiency")
    if speedup is None:
        return "-"
    return f"{speedup:.2f}x" + ("" if share is None else f" {share:.0%}")


def summarize(
    name: str, workers: int, passes: list[Pass], ref_roots: list[str], ref_receipts: list[str]
) -> dict[str, Any]:
    """Medians over repeats and the root and receipts check of every block of every repeat."""
    repeats = [p.blocks for p in passes]
    cpus = [p.cpu_seconds for p in passes if p.cpu_seconds is not None]
    totals = [sum(b.seconds for b in run) for run in repeats]
    median_total = statistics.median(totals)
    # the repeat closest to the median total supplies the counters and the timeline
    typical = repeats[min(range(len(totals)), key=lambda i: abs(totals[i] - median_total))]
    txs = sum(b.txs for b in typical)
    mismatches = [
        {"repeat": r, "height": b.height, "root": b.root, "expected": ref_roots[i]}
        for r, run in enumerate(repeats)
        for i, b in enumerate(run)
        if b.root != ref_roots[i]
    ] + [
        {"repeat": r, "height": b.height, "receipts": b.receipts, "expected": ref_receipts[i]}
        for r, run in enumerate(repeats)
        for i, b in enumerate(run)
        if b.receipts != ref_receipts[i]
    ]
    per_block = []
    for i, b in enumerate(typical):
        per_block.append(
            {
                "height": b.height,
                "txs": b.txs,
                "seconds_median": statistics.median(run[i].seconds for run in repeats),
                "root": b.root,
                "executions": b.executions,
                "re_executions": b.re_executions,
                "rounds": b.rounds,
                "note": b.note,
            }
        )
    gantt_block = typical[len(typical) // 2]
    return {
        "executor": name,
        "workers": workers,
        "repeats": len(repeats),
        "txs": txs,
        "seconds_median": median_total,
        "seconds_runs": totals,
        # blocks 2..K of each pass: the steady state, after block 1's cold start (see module doc)
        "steady_seconds_median": statistics.median(sum(b.seconds for b in run[1:]) for run in repeats)
        if len(typical) > 1
        else None,
        "cpu_seconds_median": statistics.median(cpus) if cpus and len(cpus) == len(passes) else None,
        "tx_per_s": txs / median_total if median_total > 0 else None,
        "executions": sum(b.executions for b in typical),
        "re_executions": sum(b.re_executions for b in typical),
        "re_executions_per_tx": sum(b.re_executions for b in typical) / max(1, txs),
        "validations": sum(b.validations for b in typical),
        "aborts": sum(b.aborts for b in typical),
        "rounds": sum(b.rounds for b in typical),
        "parallel_blocks": sum(runs_in_parallel(b) for run in repeats for b in run),
        "blocks_timed": sum(len(run) for run in repeats),
        "notes": list(dict.fromkeys(b.note for b in typical if b.note)),
        "roots_match": not mismatches,
        "mismatches": mismatches,
        "blocks": per_block,
        "gantt": asdict(gantt_block),
        "error": None,
    }


def run_point(
    bench: BenchConfig, params: dict[str, Any], index: int, progress: Progress | None = None
) -> dict[str, Any]:
    """Benchmark one workload parameter set (see module docstring).

    Repeats are interleaved: every (executor, workers) pair runs its r-th pass before any runs its
    (r+1)-th, in an order rotated each repeat, so slow drifts in machine load (other processes on
    a shared box) hit every executor alike instead of whichever happened to run last.
    """
    workload = make_workload(bench.workload, seed=bench.seed, **params)
    chain_config = ChainConfig(workload.chain_id, workload.app_name, workload.genesis_config())
    blocks = generate_blocks(workload, bench.blocks, bench.block_size)
    analyzer = boundmod.load_analyzer() if bench.analyze else None
    block_seconds = int(getattr(workload, "block_seconds", 1))
    usable = machine_info()["cpu_usable"]
    analysed = analysed_cores(bench, usable)
    ref_roots, ref_receipts, bounds, outcomes = reference_pass(
        chain_config, blocks, bench, analyzer, analysed, block_seconds
    )
    if analyzer is None and not bounds.error:
        bounds.error = "dependency analysis not available" if bench.analyze else "analysis disabled"

    def run(pair: tuple[str, int], executor: Executor, run_blocks: list[list[bytes]], tag: str) -> Pass:
        name, workers = pair
        label = f"{name} x{workers}"
        store_name = f"p{index}-{name}-w{workers}-{tag}"
        timings = timed_run(chain_config, run_blocks, executor, bench, store_name, progress, label, block_seconds)
        return timings

    pairs = bench.runs()
    executors: dict[tuple[str, int], Executor] = {}
    repeats: dict[tuple[str, int], list[Pass]] = {pair: [] for pair in pairs}
    errors: dict[tuple[str, int], dict[str, Any]] = {}

    def fail(pair: tuple[str, int], exc: Exception) -> None:
        errors[pair] = {
            "executor": pair[0],
            "workers": pair[1],
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
            "roots_match": False,
        }

    try:
        for pair in pairs:
            try:
                executors[pair] = SequentialExecutor() if pair[0] == AA else make_executor(*pair)
                if bench.warmup:  # two blocks: the first announces the second, as in every timed pass, so
                    # whatever an executor starts on an announcement (adaptive's workers) is up before the clock
                    run(pair, executors[pair], blocks[:2], "warmup")
            except Exception as exc:
                fail(pair, exc)
        for r in range(bench.repeat):
            shift = r % len(pairs)
            for pair in pairs[shift:] + pairs[:shift]:
                if pair in errors:
                    continue
                try:
                    repeats[pair].append(run(pair, executors[pair], blocks, f"r{r}"))
                except Exception as exc:
                    fail(pair, exc)
    finally:
        for executor in executors.values():
            executor.close()
    results = [
        errors[pair] if pair in errors else summarize(*pair, repeats[pair], ref_roots, ref_receipts) for pair in pairs
    ]
    add_ratios(results, bounds, usable)
    return {
        "workload": bench.workload,
        "params": params,
        "contention_param": CONTENTION_PARAM.get(bench.workload),
        "txs_per_block": [len(b) for b in blocks],
        # a recording-driven workload (replay) that ran out of data: its last blocks are short or empty
        "data_exhausted": bool(getattr(workload, "exhausted", False)),
        # diffs of a recording's depth stream that did not follow on from the previous one (replay)
        "data_gaps": getattr(workload, "data_gaps", 0),
        # the recording a replay read (its default file, when --data-file was not given)
        "data_file": str(workload.path) if hasattr(workload, "path") else None,
        "reference_roots": ref_roots,
        "outcomes": outcomes,
        "analysis": bounds.to_json(analysed),
        "results": results,
    }


def cores_used(name: str, workers: int, usable: int) -> int:
    """The cores executor ``name`` made with ``workers`` may keep busy, at most ``usable``.

    ``parallel`` and ``adaptive`` count their worker processes beside a coordinator that is no
    idle dispatcher: it executes transactions itself (the in-process plan) while the workers check
    signatures and hash, so they use ``workers + 1`` cores. ``sequential`` uses one whatever its
    ``workers``; the thread-based executors (``blockstm``, ``access-list``) use ``workers``. The
    bound is taken at this count, so a speedup is compared with what that many cores could do.
    """
    if name in (REFERENCE, AA):
        wanted = 1
    elif name in COORDINATOR_EXECUTES:
        wanted = workers + 1
    else:
        wanted = workers
    return max(1, min(wanted, usable))


#: Core counts the bound is always computed for, whatever this machine has: what the blocks would
#: allow on a larger one (the analysis table and the line under the terminal table show them).
SCALING_CORES = (4, 8, 16)


def analysed_cores(bench: BenchConfig, usable: int) -> list[int]:
    """The core counts the dependency analysis computes the bound for: 1, every ``--workers``
    value (the analysis table and the plots show the bound by worker count), the cores of every
    timed pair (``add_ratios`` looks the bound up there) and ``SCALING_CORES``."""
    return sorted({1, *SCALING_CORES, *bench.workers} | {cores_used(name, w, usable) for name, w in bench.runs()})


def add_ratios(results: list[dict[str, Any]], bounds: boundmod.Bounds, usable: int = 1) -> None:
    """Every row's ``cores`` (``cores_used``); speedup vs the sequential run of the same point,
    the bound on the row's cores, and the share of it reached; the CPU ceiling: the speedup this
    run's total CPU would allow with all ``usable`` cores busy all the time (sequential's median
    seconds x usable / this run's CPU seconds). Below the bound, it says whether the cores ran out
    (speedup near the ceiling: the engine's own CPU overhead is the limit) or sat idle (speedup
    well below it: waits, serial phases)."""
    ref = next((r for r in results if r["executor"] == REFERENCE and not r.get("error")), None)
    for r in results:
        r["cores"] = cores_used(r["executor"], r["workers"], usable)
        if r.get("error"):
            continue
        r["speedup"] = ref["seconds_median"] / r["seconds_median"] if ref and r["seconds_median"] > 0 else None
        r["speedup_runs"] = paired_speedups(ref, r)
        r["speedup_quartiles"] = quartiles(r["speedup_runs"])
        # the other estimator: drift between rounds cancels in each pair, not in a ratio of medians
        r["speedup_paired_median"] = statistics.median(r["speedup_runs"]) if r["speedup_runs"] else None
        b = bounds.bound(r["cores"])
        r["bound"] = b
        r["bound_efficiency"] = r["speedup"] / b if b and r["speedup"] is not None else None
        steady, ref_steady = r.get("steady_seconds_median"), (ref or {}).get("steady_seconds_median")
        r["steady_speedup"] = ref_steady / steady if ref_steady and steady else None
        r["steady_bound"] = bounds.bound(r["cores"], skip=1) if r["steady_speedup"] is not None else None
        r["steady_bound_efficiency"] = (
            r["steady_speedup"] / r["steady_bound"] if r["steady_speedup"] and r["steady_bound"] else None
        )
        cpu = r.get("cpu_seconds_median")
        r["cpu_ceiling"] = ref["seconds_median"] * usable / cpu if ref and cpu else None


def paired_speedups(ref: dict[str, Any] | None, result: dict[str, Any]) -> list[float]:
    """Sequential's r-th pass over this run's r-th pass, for every repeat r: the two ran in the
    same round of the interleaved repeats (``run_point``), so each ratio sees about the same
    machine load. Empty when the repeats do not pair up (a run that failed part way)."""
    ref_runs, runs = (ref or {}).get("seconds_runs") or [], result.get("seconds_runs") or []
    if len(ref_runs) != len(runs) or not all(x > 0 for x in runs):
        return []
    return [a / b for a, b in zip(ref_runs, runs, strict=True)]


def quartiles(values: list[float]) -> list[float] | None:
    """[25th, 75th] percentile of ``values`` (inclusive method), or ``None`` with no values:
    how far a speedup moves between repeats on this machine, next to the ratio of medians."""
    if not values:
        return None
    if len(values) == 1:
        return [values[0], values[0]]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return [q1, q3]


def quartile_range(values: list[float] | None, median: float | None = None) -> str:
    """``[q1, q3]`` of the paired speedups as ``q1-q3`` for tables, ``q1-median-q3`` when the
    paired median is known (``-`` when there are none)."""
    if not values:
        return "-"
    middle = "" if median is None else f"-{median:.2f}"
    return f"{values[0]:.2f}{middle}-{values[1]:.2f}"


def failures(result: dict[str, Any]) -> list[str]:
    """Human-readable list of everything that makes the run fail (root or receipt mismatches, errors)."""
    out = []
    for point in result["points"]:
        for r in point["results"]:
            where = f"{point['params']} {r['executor']} x{r['workers']}"
            if r.get("error"):
                out.append(f"{where}: {r['error']}")
            for m in r.get("mismatches", []):
                what = "root" if "root" in m else "receipts"
                out.append(
                    f"{where}: block {m['height']} (repeat {m['repeat']}) {what} {m[what][:16]} != {m['expected'][:16]}"
                )
    return out


def run_bench(
    bench: BenchConfig, progress: Progress | None = None, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """Run every point; returns the JSON-ready result (machine, config, points, failures)."""
    started = time.time()
    points = [run_point(bench, params, i, progress) for i, params in enumerate(bench.points)]
    result: dict[str, Any] = {
        "schema": 1,
        "command": list(argv) if argv is not None else None,
        "started_unix": started,
        "elapsed_s": time.time() - started,
        "machine": machine_info(),
        "config": asdict(bench),
        "points": points,
    }
    result["failures"] = failures(result)
    result["ok"] = not result["failures"]
    return result

"""The differential suite: every registered executor, at 1, 2 and 4 workers, equals ``sequential``.

Modelled on aptos-core's block-executor proptests. Hypothesis generates synthetic blocks over key
universes of 1, 10, 100 and 1000 keys (contention from total to almost none) with indirect
writes (read/write sets that change between incarnations), injected business failures, deltas,
deletes and malformed transactions, on a pre-state with some keys committed; real blocks of
signed transfers (with invalid ones mixed in, with and without declared access lists) run through
``ChainRuntime`` at 2 to 1000 accounts, on the in-memory store and on LMDB, over consecutive
blocks; and perpetuals blocks run through the exchange application (when its workload exists).

Executors are discovered from ``registry.executor_names()``, so every executor that registers
itself is checked without touching this file. They are long-lived (worker processes are
expensive): one instance per (name, workers) for the whole module, closed at the end.

Equality is ``BlockOutput.same_result``: receipts, write set and state root. When the reference
raises (a transaction hits a real decode error), every executor must raise the same type.

Equality alone cannot tell that an executor ran in parallel at all (running in-process gives
the same result), so the path is checked too: the ``parallel`` rows must run every non-empty
block on their worker processes, and the ``adaptive`` rows (their block-size threshold lowered
to fit these blocks) must run their parallel plan, on workers, on some of the module's blocks.
Those rows speculate with the contention fallback off; one more row, ``parallel+fallback``, is the
executor as shipped, and must have bailed out of some contended block (the final prefix from the
workers, the rest in-process on top of it), a path the other rows never take.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraexec.errors import BadSignature, InsufficientBalance, ReplayedNonce, UndeclaredAccess
from paraexec.execution import BlockEnv, BlockOutput, SequentialExecutor
from paraexec.execution.access_list import free_threaded
from paraexec.execution.contract import Executor, Runtime, StateView
from paraexec.execution.registry import executor_names, make_executor
from paraexec.execution.synthetic import SyntheticRuntime
from paraexec.state import MemoryStore
from paraexec.state.lmdb_store import LmdbStore
from paraexec.workloads.transfers import nonce_reader

from .strategies import (
    UNIVERSES,
    memory_store,
    pre_state,
    synthetic_tx,
    synthetic_txs,
    transfer_block,
    transfer_chain,
)

WORKER_COUNTS = (1, 2, 4)
ENV = BlockEnv(1, 1_700_000_000)
REFERENCE = SequentialExecutor()
SWITCH_INTERVAL_S = 1e-6


@pytest.fixture(scope="module", autouse=True)
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads every few bytecodes so thread-based executors really interleave."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    yield
    sys.setswitchinterval(previous)


#: Which plan each row ran, per block, over the module (``record_path``): the adaptive rows
#: count their choices (and ``"workers"`` for a ``parallel`` choice that ran on worker processes),
#: so ``test_adaptive_rows_ran_parallel_plans`` can check the suite exercised them.
PLANS: defaultdict[tuple[str, int], Counter[str]] = defaultdict(Counter)
#: Blocks the shipped ``parallel`` row (contention fallback on) bailed out of (``record_path``).
BAILED: Counter[str] = Counter()


@pytest.fixture(scope="module")
def executors() -> Iterator[dict[tuple[str, int], Executor]]:
    made: dict[tuple[str, int], Executor] = {}
    try:
        for name in executor_names():
            if name == "sequential":
                continue
            for workers in WORKER_COUNTS:
                made[(name, workers)] = executor = make_executor(name, workers)
                if hasattr(executor, "contention_fallback"):
                    executor.contention_fallback = False  # contended blocks must exercise speculation
                if name == "adaptive":
                    # the suite's blocks (<= 400 txs) are below ``MIN_BLOCK``: without this every
                    # one would run sequential. Its contention signals still decide (after a
                    # conflicting block, every other block re-samples), speed is still measured
                    # (sequential first, then the plan, the baseline re-measured now and then:
                    # ``plan_clock``), but any measured gain keeps the plan: tiny blocks on
                    # worker processes lose to sequential on a busy machine, and would then
                    # almost never run
                    executor.min_block = 1  # type: ignore[attr-defined]  # the clock's threshold too
                    executor.clock.min_gain = 0.0  # type: ignore[attr-defined]
                    executor.probe_every = 2  # type: ignore[attr-defined]
                    if "parallel" in executor.available():  # type: ignore[attr-defined]
                        # its parallel plan speculates on the workers, as the parallel rows do
                        executor.executor("parallel").contention_fallback = False  # type: ignore[attr-defined]
        for workers in WORKER_COUNTS[1:]:  # the parallel executor with key-affinity assignment
            made[("parallel+affinity", workers)] = executor = make_executor("parallel", workers)
            executor.contention_fallback = False  # type: ignore[attr-defined]
            executor.affinity = "on"  # type: ignore[attr-defined]
            executor.min_follow_speedup = 0.0  # type: ignore[attr-defined]  # follow hints however dense
        # the parallel executor as shipped: its contention fallback on, so a contended block of 128+
        # transactions bails out (the final prefix from the workers, the rest in-process on top of
        # it) and the blocks after it run in-process (no path check for this row)
        made[("parallel+fallback", 2)] = make_executor("parallel", 2)
        yield made
    finally:
        for executor in made.values():
            executor.close()


def ran_on_workers(got: BlockOutput, workers: int) -> bool:
    """The ``parallel`` executor ran the block on its worker processes: no in-process run (no
    spec, lost or stalled workers, a bail-out), and the workers executed every transaction."""
    stats = got.stats
    return (
        "in-process" not in stats.note
        and "worker lost" not in stats.note
        and stats.note.endswith(f"{workers} worker process(es)")
        and len(stats.worker_busy) == workers
        and sum(stats.worker_busy) > 0
        and stats.executions >= len(got.receipts)
    )


def record_path(name: str, workers: int, executor: Executor, txs: Sequence[bytes], got: BlockOutput) -> None:
    """Check (parallel rows) or record (adaptive rows) which path a run took: an executor that
    silently fell back to running blocks in-process would still equal sequential."""
    if name == "adaptive":
        plan = executor.history[-1].executor  # type: ignore[attr-defined]
        PLANS[(name, workers)][plan] += 1
        if plan == "parallel":
            assert ran_on_workers(got, workers), f"{name}/{workers}: parallel plan not on the workers: {got.stats}"
            PLANS[(name, workers)]["workers"] += 1
    elif name in ("parallel", "parallel-workers", "parallel+affinity") and txs:
        assert ran_on_workers(got, workers), f"{name}/{workers}: did not run on its workers: {got.stats}"
    elif name == "parallel+fallback":
        BAILED[name] += "in-process" in got.stats.note and "aborted" in got.stats.note


def describe_difference(name: str, expected: BlockOutput, got: BlockOutput) -> str:
    if len(expected.receipts) != len(got.receipts):
        return f"{name}: {len(got.receipts)} receipts, expected {len(expected.receipts)}"
    for i, (a, b) in enumerate(zip(expected.receipts, got.receipts, strict=True)):
        if a != b:
            return f"{name}: receipt {i} is {b!r}, expected {a!r}"
    if expected.write_set != got.write_set:
        keys = sorted(expected.write_set.keys() ^ got.write_set.keys())
        keys += sorted(
            k for k in expected.write_set.keys() & got.write_set.keys() if expected.write_set[k] != got.write_set[k]
        )
        return f"{name}: write sets differ at {keys[:5]}"
    return f"{name}: state root {got.state_root.hex()} != {expected.state_root.hex()}"


def assert_all_equal(
    executors: dict[tuple[str, int], Executor],
    runtime: Runtime,
    txs: Sequence[bytes],
    state: StateView,
    env: BlockEnv = ENV,
) -> BlockOutput | None:
    """Run every executor on the block; each must match the sequential reference (or its exception)."""
    try:
        expected = REFERENCE.execute_block(runtime, txs, state, env)
    except Exception as exc:  # a real failure: every executor must raise it too
        for executor in executors.values():
            with pytest.raises(type(exc)):
                executor.execute_block(runtime, txs, state, env)
        return None
    for (name, workers), executor in executors.items():
        got = executor.execute_block(runtime, txs, state, env)
        assert got.same_result(expected), describe_difference(f"{name}/{workers}", expected, got)
        assert got.accumulator == expected.accumulator, f"{name}/{workers}: accumulator differs"
        record_path(name, workers, executor, txs, got)
    return expected


def test_blockstm_is_registered() -> None:
    names = executor_names()
    assert "sequential" in names and "blockstm" in names


def test_comparison_catches_a_wrong_executor() -> None:
    """The suite can fail: an executor that drops the last transaction's writes is caught."""

    class DropsLastWrite:
        name = "broken"

        def execute_block(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> BlockOutput:
            out = SequentialExecutor().execute_block(runtime, txs[:-1], state, env)
            tail = SequentialExecutor().execute_block(runtime, txs[-1:], state, env)
            return BlockOutput(out.receipts + tail.receipts, out.write_set, out.accumulator, out.state_root, out.stats)

        def close(self) -> None:
            pass

    from paraexec.execution.synthetic import READ, WRITE, encode_tx

    txs = [encode_tx([(WRITE, 1, 5)]), encode_tx([(READ, 1, 0), (WRITE, 2, 1)])]
    with pytest.raises(AssertionError, match="broken/1: receipt 1"):
        assert_all_equal({("broken", 1): DropsLastWrite()}, SyntheticRuntime(10), txs, MemoryStore())


@pytest.mark.parametrize("universe", UNIVERSES)
@given(data=st.data())
def test_synthetic_blocks_equal_sequential(
    executors: dict[tuple[str, int], Executor], universe: int, data: st.DataObject
) -> None:
    state = data.draw(pre_state(universe), label="pre_state")
    txs = data.draw(synthetic_txs(universe), label="txs")
    out = assert_all_equal(executors, SyntheticRuntime(universe), txs, memory_store(state))
    assert out is not None  # integer-only state never makes the reference raise


@settings(max_examples=25)
@given(data=st.data())
def test_speculative_and_real_exceptions_match_sequential(
    executors: dict[tuple[str, int], Executor], data: st.DataObject
) -> None:
    """Non-integer committed values make reads raise: only when sequential reads them is it real."""
    universe = data.draw(st.sampled_from((1, 3, 10)), label="universe")
    state = data.draw(pre_state(universe, garbage=True), label="pre_state")
    txs = data.draw(synthetic_txs(universe, max_size=25), label="txs")
    assert_all_equal(executors, SyntheticRuntime(universe), txs, memory_store(state))


@settings(max_examples=15)
@given(data=st.data())
def test_consecutive_synthetic_blocks_equal_sequential(
    executors: dict[tuple[str, int], Executor], data: st.DataObject
) -> None:
    """Executors that keep state between blocks (worker caches) must see every commit."""
    universe = data.draw(st.sampled_from((1, 10, 100)), label="universe")
    store = memory_store(data.draw(pre_state(universe), label="pre_state"))
    runtime = SyntheticRuntime(universe)
    for height in range(1, 4):
        txs = data.draw(synthetic_txs(universe, max_size=25), label=f"block {height}")
        env = BlockEnv(height, 1_700_000_000 + height)
        out = assert_all_equal(executors, runtime, txs, store, env)
        assert out is not None
        store.commit_block(height, out.write_set, out.accumulator, b"", b"")


@settings(max_examples=4)
@given(data=st.data())
def test_large_synthetic_blocks_equal_sequential(
    executors: dict[tuple[str, int], Executor], data: st.DataObject
) -> None:
    """Blocks of a few hundred transactions: past any executor's small-block shortcuts."""
    universe = data.draw(st.sampled_from((10, 1000)), label="universe")
    state = data.draw(pre_state(universe), label="pre_state")
    txs = data.draw(st.lists(synthetic_tx(universe), min_size=200, max_size=400), label="txs")
    assert assert_all_equal(executors, SyntheticRuntime(universe), txs, memory_store(state)) is not None


@pytest.mark.parametrize(
    ("accounts", "declare_access"), [(2, False), (10, False), (100, False), (1000, False), (2, True), (100, True)]
)
def test_transfer_blocks_equal_sequential(
    executors: dict[tuple[str, int], Executor], accounts: int, declare_access: bool
) -> None:
    tc = transfer_chain(accounts, declare_access=declare_access)
    store = tc.chain.store
    seen: set[int] = set()
    for height, size in ((1, 150), (2, 100)):
        txs = transfer_block(tc, size, seed=height, invalid_share=0.2)
        out = assert_all_equal(executors, tc.chain.runtime, txs, store, BlockEnv(height, 1_700_000_000 + height))
        assert out is not None
        codes = {r.code for r in out.receipts}
        assert 0 in codes and len(codes) > 1, "the block should mix successes and failures"
        seen |= codes
        store.commit_block(height, out.write_set, out.accumulator, b"", b"")
    assert {ReplayedNonce.code, BadSignature.code, InsufficientBalance.code} <= seen  # the blocks are seeded
    assert (UndeclaredAccess.code in seen) == declare_access


def test_transfer_blocks_on_lmdb_equal_sequential(executors: dict[tuple[str, int], Executor], tmp_path) -> None:
    """The same on the LMDB store, which worker processes may read directly."""
    store = LmdbStore(tmp_path / "db")
    try:
        tc = transfer_chain(10, store)
        for height in (1, 2):
            txs = transfer_block(tc, 120, seed=10 + height)
            out = assert_all_equal(executors, tc.chain.runtime, txs, store, BlockEnv(height, 1_700_000_000 + height))
            assert out is not None
            store.commit_block(height, out.write_set, out.accumulator, b"", b"")
    finally:
        store.close()


def test_exchange_blocks_equal_sequential(executors: dict[tuple[str, int], Executor]) -> None:
    """Perpetuals blocks (oracle updates, quotes, taker orders, stop-losses, cancels) through the
    exchange application, plus its end-of-block system transactions, and a price shock that
    really liquidates: takers with little collateral build leveraged positions, then two blocks
    each move every price down 9.5% (inside the oracle band). The sweep liquidates them, the
    insurance fund covers fills below bankruptcy prices, and bankrupt positions are deleveraged
    against other traders, so those paths are compared across executors too (seed 5 liquidates
    ~19 times, with ~5 fund payouts and ~12 deleveragings: only "some" is asserted)."""
    perps = pytest.importorskip("paraexec.workloads.perps")
    from paraexec.chain.chain import Chain, ChainConfig

    workload = perps.PerpsWorkload(
        accounts=24,
        markets=3,
        seed=5,
        shock_at=4,
        shock_blocks=2,
        shock_ppm=-95_000,
        taker_collateral=1_000 * perps.USDC,
    )
    chain = Chain.create(MemoryStore(), ChainConfig(workload.chain_id, "exchange", workload.genesis_config()))
    store = chain.store
    nonce_of = nonce_reader(store.get)
    events: Counter[str] = Counter()
    for height in range(1, 6):
        env = BlockEnv(height, height * workload.block_seconds)
        txs = workload.block(height, 80, nonce_of) + chain.runtime.system_transactions(env)
        out = assert_all_equal(executors, chain.runtime, txs, store, env)
        assert out is not None
        for event in (event for receipt in out.receipts for event in receipt.events):
            events[event.name] += 1
            if event.name == "liquidation" and event.attrs["insurance_delta"] < 0:
                events["insurance payout"] += 1
        store.commit_block(height, out.write_set, out.accumulator, b"", b"")
    seen = {name: events[name] for name in ("fill", "liquidation", "insurance payout", "deleveraged")}
    assert all(seen.values()), f"the blocks should trade, liquidate, draw on the fund and deleverage: {seen}"
    assert events["conditional_triggered"] > 0, "the shock should trigger stop-losses"


def test_adaptive_rows_ran_parallel_plans(executors: dict[tuple[str, int], Executor], request) -> None:
    """Runs last: over the module's blocks, every adaptive row with 2 or more workers chose a
    plan other than sequential, and ran it on worker processes (``record_path``; on a
    free-threaded build, on ``blockstm``'s threads); and the shipped ``parallel`` row bailed out
    of some contended block (its speculative prefix kept, the rest run in-process). Only
    meaningful after the module's other tests: skipped when some were not selected."""
    module = sys.modules[__name__]
    tests = {name for name in vars(module) if name.startswith("test_")}
    selected = {item.originalname for item in request.session.items if getattr(item, "module", None) is module}
    if selected != tests:
        pytest.skip(f"needs every test of the module; not selected: {sorted(tests - selected)}")
    for key in [key for key in executors if key[0] == "adaptive" and key[1] >= 2]:
        plans = PLANS[key]
        assert sum(n for plan, n in plans.items() if plan not in ("sequential", "workers")) > 0, (key, plans)
        if free_threaded():  # its plan for conflicting blocks is blockstm's threads there
            assert plans["blockstm"] > 0, (key, plans)
        elif "parallel" in executor_names():
            assert plans["workers"] > 0, (key, plans)
    if ("parallel+fallback", 2) in executors:
        assert BAILED["parallel+fallback"] > 0, "the shipped parallel row never bailed out of a contended block"

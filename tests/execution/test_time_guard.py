"""The time guard: ``parallel`` runs a large block on its workers only while they are measured
faster than running it in-process (``plan_clock``), whatever the re-execution rate says."""

from __future__ import annotations

import pytest

from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.parallel import ParallelExecutor
from paraexec.execution.parallel.executor import IN_PROCESS, WORKER_PLAN
from paraexec.execution.plan_clock import PlanClock
from paraexec.execution.registry import make_executor
from paraexec.execution.synthetic import READ, WRITE, SyntheticRuntime, encode_tx
from paraexec.state import MemoryStore

ENV = BlockEnv(1, 1_700_000_000)
RUNTIME = SyntheticRuntime(10_000)


def independent(n: int) -> list[bytes]:
    """``n`` transactions on pairwise disjoint keys: nothing for the contention fallback to see."""
    return [encode_tx([(READ, 2 * i, 0), (WRITE, 2 * i + 1, i)]) for i in range(n)]


def run_blocks(executor: ParallelExecutor, txs: list[bytes], state: MemoryStore, expected, blocks: int) -> list[str]:
    """Run ``txs`` as ``blocks`` blocks, each checked against ``expected``; their notes."""
    notes = []
    for _ in range(blocks):
        got = executor.execute_block(RUNTIME, txs, state, ENV)
        assert got.same_result(expected) and got.accumulator == expected.accumulator
        notes.append(got.stats.note)
    return notes


def test_plan_clock_measures_the_baseline_first_and_backs_off_a_losing_plan():
    clock = PlanClock("base", min_block=10, probe_every=3)
    assert clock.choose("plan", "why")[0] == "base"
    clock.record("base", 10, 1.0)
    assert clock.choose("plan", "why") == ("plan", "why; measuring it")
    clock.record("plan", 10, 0.1)  # first run of a non-baseline plan: start-up, not counted
    assert clock.seconds_per_tx == {"base": pytest.approx(0.1)}
    clock.record("plan", 10, 2.0)  # measured: it loses
    picks = [clock.choose("plan", "why") for _ in range(12)]
    assert picks[0] == ("base", "plan measured 0.50x of base on recent blocks")
    assert picks[2] == ("plan", "why; re-measuring it (was 0.50x of base)")
    # re-measured after 3 comparisons, then (the loss confirmed each time) after 6, then 12
    assert [i for i, (plan, _) in enumerate(picks) if plan == "plan"] == [2, 8]
    clock.record("base", 5, 100.0)  # small blocks are not measurements
    assert clock.seconds_per_tx["base"] == pytest.approx(0.1)
    counted = PlanClock("base", min_block=10, count_first=True)
    counted.record("plan", 10, 1.0)
    assert counted.seconds_per_tx == {"plan": pytest.approx(0.1)}


def test_a_deferred_plan_is_first_measured_at_the_first_re_measurement():
    clock = PlanClock("base", min_block=10, probe_every=3, defer_plan=True)
    assert clock.choose("plan", "why")[0] == "base"
    clock.record("base", 10, 1.0)
    picks = [clock.choose("plan", "why") for _ in range(3)]
    assert picks[0] == ("base", "plan expected to lose here, first measured in 2 block(s)")
    assert [plan for plan, _ in picks] == ["base", "base", "plan"] and picks[2][1] == "why; measuring it"
    clock.record("plan", 10, 0.2)  # measured: it wins, and is kept like any winning plan
    clock.record("plan", 10, 0.2)
    assert clock.choose("plan", "why") == ("plan", "why; measured 5.00x of base")


@pytest.mark.parametrize("cores", (2, 3))
def test_parallel_defers_its_worker_plan_where_cores_are_fewer_than_its_processes(cores):
    """2 workers and the coordinator are 3 processes: on 2 cores they share them (the worker
    plan measured slower than in-process wherever it ran on the 2-core box), so the worker
    plan waits for the first re-measurement; on 3 cores it is measured on the second block."""
    txs = independent(600)
    state = MemoryStore()
    expected = SequentialExecutor().execute_block(RUNTIME, txs, state, ENV)
    executor = ParallelExecutor(2, cores=cores)
    try:
        notes = run_blocks(executor, txs, state, expected, 3)
        on_workers = ["ran in-process" not in note for note in notes]
        # the third block follows the measurements (on 3 cores) or waits for the probe (on 2)
        assert on_workers[:2] == [False, cores == 3] and (cores == 3 or not on_workers[2]), notes
        if cores == 2:
            assert "workers expected to lose here, first measured in 15 block(s)" in notes[1]
    finally:
        executor.close()


def test_a_worker_plan_measured_slower_runs_the_block_in_process():
    txs = independent(600)
    state = MemoryStore()
    expected = SequentialExecutor().execute_block(RUNTIME, txs, state, ENV)
    executor = ParallelExecutor(2, cores=16)
    try:
        notes = run_blocks(executor, txs, state, expected, 2)
        assert notes[0].startswith("measuring the in-process baseline") and "ran in-process" in notes[0]
        assert "time guard; measuring it" in notes[1] and "ran in-process" not in notes[1]
        # the baseline booted the workers: their first block is a measurement already
        assert set(executor.clocks[False].seconds_per_tx) == {IN_PROCESS, WORKER_PLAN}
        # a machine where the workers lose (busier, or profiled): the next blocks run here
        executor.clocks[False].seconds_per_tx[WORKER_PLAN] = 10 * executor.clocks[False].seconds_per_tx[IN_PROCESS]
        got = executor.execute_block(RUNTIME, txs, state, ENV)
        assert got.same_result(expected) and got.accumulator == expected.accumulator
        assert got.stats.note.startswith("workers measured 0.") and got.stats.rounds == 1
        assert not any(got.stats.worker_busy)
        # and where they win, they run
        executor.clocks[False].seconds_per_tx[WORKER_PLAN] = executor.clocks[False].seconds_per_tx[IN_PROCESS] / 10
        got = executor.execute_block(RUNTIME, txs, state, ENV)
        assert got.same_result(expected) and "measured 10.00x of in-process" in got.stats.note
        assert any(got.stats.worker_busy)
    finally:
        executor.close()


@pytest.mark.parametrize("how", ("parallel-workers", "no contention fallback"))
def test_without_the_guard_every_large_block_goes_to_the_workers(how):
    txs = independent(600)
    state = MemoryStore()
    expected = SequentialExecutor().execute_block(RUNTIME, txs, state, ENV)
    executor = make_executor("parallel-workers", 2) if how == "parallel-workers" else ParallelExecutor(2, cores=16)
    if how == "no contention fallback":
        executor.contention_fallback = False  # as the differential tests set it
    executor.clocks[False].seconds_per_tx = {IN_PROCESS: 1e-9, WORKER_PLAN: 1.0}  # no checks ahead here
    executor.clocks[False].runs = {IN_PROCESS: 5, WORKER_PLAN: 5}
    try:
        for _ in range(2):
            got = executor.execute_block(RUNTIME, txs, state, ENV)
            assert got.same_result(expected) and got.accumulator == expected.accumulator
            assert any(got.stats.worker_busy) and "ran in-process" not in got.stats.note
    finally:
        executor.close()

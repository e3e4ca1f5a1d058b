"""Block-STM: the scheduler's transitions, and the executor on hand-driven interleavings.

The interleavings that matter (a speculative exception, a read of an ESTIMATE, an abort after a
lower transaction wrote a new location) are forced deterministically by driving one
``BlockRun`` task by task from the test thread, then letting the worker loop finish the block.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from paraexec import codec
from paraexec.errors import InvariantViolation
from paraexec.execution import BlockEnv, Receipt, SequentialExecutor, TxContext
from paraexec.execution.blockstm import BlockSTMExecutor, Scheduler, TxnStatus
from paraexec.execution.blockstm.executor import STALE_CHECK, BlockRun, BlockSTMContext, WorkerStats, _Stale, resolve
from paraexec.execution.blockstm.scheduler import EXECUTION_TASK, VALIDATION_TASK, Task
from paraexec.execution.registry import make_executor
from paraexec.execution.synthetic import (
    AWAIT,
    DELETE,
    DELTA,
    INDIRECT,
    READ,
    SPIN,
    WRITE,
    SyntheticRuntime,
    encode_tx,
    key_of,
)
from paraexec.state import MemoryStore

from .strategies import memory_store

ENV = BlockEnv(1, 1)


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


# -- scheduler ---------------------------------------------------------------------------------


def test_scheduler_runs_a_block_in_order_on_one_thread() -> None:
    s = Scheduler(2)
    assert s.next_task() == ((0, 0), EXECUTION_TASK)
    assert s.finish_execution(0, 0, wrote_new_location=True) is None
    assert s.next_task() == ((0, 0), VALIDATION_TASK)
    assert s.finish_validation(0, aborted=False) is None
    assert s.next_task() == ((1, 0), EXECUTION_TASK)
    assert s.finish_execution(1, 0, wrote_new_location=False) is None
    assert s.next_task() == ((1, 0), VALIDATION_TASK)
    assert s.finish_validation(1, aborted=False) is None
    assert not s.done()
    assert s.next_task() is None
    assert s.done() and s.num_active_tasks == 0


def test_finish_execution_hands_back_own_validation_when_nothing_new_was_written() -> None:
    s = Scheduler(3)
    first = s.next_task()
    assert s.next_task() is None  # validation of 0 attempted while it executes: skipped
    assert s.next_task() == ((1, 0), EXECUTION_TASK)
    assert first == ((0, 0), EXECUTION_TASK)
    s.finish_execution(1, 0, wrote_new_location=True)
    # validation_idx (2) is above txn 0: a re-execution that wrote nothing new validates itself only
    assert s.finish_execution(0, 0, wrote_new_location=False) == ((0, 0), VALIDATION_TASK)


def test_validation_abort_is_won_once_and_reincarnates() -> None:
    s = Scheduler(2)
    s.next_task()
    s.finish_execution(0, 0, wrote_new_location=True)
    s.next_task()  # executes txn 1 next, so execution_idx > 0
    assert s.try_validation_abort(0, 0)
    assert not s.try_validation_abort(0, 0)
    assert s.finish_validation(0, aborted=True) == ((0, 1), EXECUTION_TASK)
    assert s.status(0) == (1, TxnStatus.EXECUTING)
    assert s.validation_idx <= 1


def test_dependency_parks_and_resumes_with_next_incarnation() -> None:
    s = Scheduler(2)
    s.next_task()  # txn 0 executing
    s.next_task()  # skipped validation
    assert s.next_task() == ((1, 0), EXECUTION_TASK)
    assert s.add_dependency(1, 0) is True
    assert s.status(1) == (0, TxnStatus.ABORTING)
    s.finish_execution(0, 0, wrote_new_location=True)
    assert s.status(1) == (1, TxnStatus.READY_TO_EXECUTE)
    assert s.execution_idx == 1


def test_dependency_on_an_executed_transaction_is_refused() -> None:
    s = Scheduler(2)
    s.next_task()
    s.finish_execution(0, 0, wrote_new_location=False)
    s.next_task()
    assert s.next_task() == ((1, 0), EXECUTION_TASK)
    assert s.add_dependency(1, 0) is False
    assert s.status(1) == (0, TxnStatus.EXECUTING)


def test_illegal_transitions_are_invariant_violations() -> None:
    s = Scheduler(2)
    with pytest.raises(InvariantViolation):
        s.finish_execution(0, 0, wrote_new_location=False)  # never started
    with pytest.raises(InvariantViolation):
        s.add_dependency(0, 1)  # only lower transactions block higher ones


def test_empty_block_is_done_immediately() -> None:
    s = Scheduler(0)
    assert s.next_task() is None and s.done()


# -- executor on forced interleavings -----------------------------------------------------------


class SwallowingRuntime(SyntheticRuntime):
    """An application that catches everything, even BaseException: dependencies must survive it."""

    def execute(self, prepared, ctx: TxContext) -> Receipt:  # type: ignore[no-untyped-def]
        try:
            return super().execute(prepared, ctx)
        except BaseException:  # noqa: BLE001 - the point of this runtime
            return Receipt(0, "swallowed", [])


def drive(run: BlockRun, stats: WorkerStats, expected_kind: int) -> tuple[int, int]:
    """Ask the scheduler until it hands out a task of ``expected_kind`` (skipping empty polls)."""
    for _ in range(10):
        task = run.scheduler.next_task()
        if task is not None:
            assert task[1] == expected_kind, task
            return task[0]
    raise AssertionError("no task")


def perform(run: BlockRun, task: Task | None, stats: WorkerStats) -> None:
    """Carry out a task handed back by the scheduler, and the tasks it hands back in turn.

    A task handed out must be performed: dropping it leaks an active task and the block never ends.
    """
    while task is not None:
        version, kind = task
        task = run.try_execute(version, stats) if kind == EXECUTION_TASK else run.needs_reexecution(version, stats)


def snapshot_values(run: BlockRun, state: MemoryStore) -> dict[bytes, bytes | None]:
    return {key: resolve(result, key, state) for key, result in run.mv.snapshot().items()}  # type: ignore[arg-type]


def test_snapshot_with_deltas_equals_commit(tiny_switch_interval: None) -> None:
    state = memory_store({key_of(0): codec.encode_int(10), key_of(1): codec.encode_int(1)})
    txs = [
        encode_tx([(DELTA, 0, 5), (DELTA, 2, 1)]),
        encode_tx([(READ, 0, 0), (WRITE, 1, 3)]),
        encode_tx([(DELTA, 0, -2), (DELETE, 1, 0)]),
        encode_tx([(DELTA, 1, 4), (WRITE, 3, 1)]),
    ]
    run = BlockRun(SyntheticRuntime(10), txs, state, ENV)
    run.run_worker(WorkerStats())
    receipts, write_set = run.commit()
    expected = SequentialExecutor().execute_block(SyntheticRuntime(10), txs, state, ENV)
    assert write_set == expected.write_set and receipts == expected.receipts
    assert snapshot_values(run, state) == write_set
    assert codec.decode_int(write_set[key_of(1)]) == 4  # a delta on a deleted key starts from 0


def test_speculative_exception_is_re_executed_not_raised() -> None:
    """txn 1 first reads garbage committed at key 0 (decode error); txn 0 overwrites it first."""
    state = memory_store({key_of(0): b"\xc1"})
    txs = [encode_tx([(WRITE, 0, 7)]), encode_tx([(READ, 0, 0), (WRITE, 1, 0)])]
    runtime = SyntheticRuntime(10)
    run = BlockRun(runtime, txs, state, ENV)
    stats = WorkerStats()
    v0 = drive(run, stats, EXECUTION_TASK)
    v1 = drive(run, stats, EXECUTION_TASK)
    perform(run, run.try_execute(v1, stats), stats)
    assert isinstance(run.outputs[1].error, msgspec.DecodeError)  # type: ignore[union-attr]
    perform(run, run.try_execute(v0, stats), stats)
    run.run_worker(stats)
    assert run.scheduler.halt_error is None
    receipts, write_set = run.commit()
    expected = SequentialExecutor().execute_block(runtime, txs, state, ENV)
    assert receipts == expected.receipts and write_set == expected.write_set
    assert stats.aborts == 1 and run.scheduler.status(1) == (1, TxnStatus.EXECUTED)


@pytest.mark.parametrize("runtime", [SyntheticRuntime(10), SwallowingRuntime(10)], ids=["plain", "swallowing"])
def test_estimate_makes_reader_wait_for_re_execution(runtime: SyntheticRuntime) -> None:
    """txn 1 runs before txn 0, is aborted (its write becomes ESTIMATE), and txn 2 must wait on it."""
    state = memory_store({})
    txs = [
        encode_tx([(WRITE, 1, 5)]),
        encode_tx([(READ, 1, 0), (WRITE, 1, 1)]),
        encode_tx([(READ, 1, 0), (WRITE, 2, 0)]),
    ]
    run = BlockRun(runtime, txs, state, ENV)
    stats = WorkerStats()
    v0 = drive(run, stats, EXECUTION_TASK)
    v1 = drive(run, stats, EXECUTION_TASK)
    assert run.try_execute(v1, stats) is None  # reads key 1 from committed state
    assert run.try_execute(v0, stats) is None  # new location below txn 1: revalidate from 0
    assert run.needs_reexecution(drive(run, stats, VALIDATION_TASK), stats) is None  # txn 0 fine
    reexecute = run.needs_reexecution(drive(run, stats, VALIDATION_TASK), stats)
    assert reexecute == ((1, 1), EXECUTION_TASK) and stats.aborts == 1
    assert run.try_execute(drive(run, stats, EXECUTION_TASK), stats) is None  # txn 2 meets the ESTIMATE
    assert stats.dependencies == 1 and run.scheduler.status(2)[1] is TxnStatus.ABORTING
    follow_up = run.try_execute(reexecute[0], stats)  # txn 1 again: txn 2 is resumed
    assert run.scheduler.status(2) == (1, TxnStatus.READY_TO_EXECUTE)
    perform(run, follow_up, stats)
    run.run_worker(stats)
    assert run.scheduler.halt_error is None
    receipts, write_set = run.commit()
    expected = SequentialExecutor().execute_block(runtime, txs, state, ENV)
    assert receipts == expected.receipts and write_set == expected.write_set
    assert all(r.error != "swallowed" for r in receipts)
    assert snapshot_values(run, state) == write_set  # the paper's snapshot = the lazy commit's fold


def test_repeated_reads_of_an_outdated_value_abandon_the_incarnation() -> None:
    """A recorded read is reused within an incarnation; once a lower write makes it outdated,
    the next read-set check (every ``STALE_CHECK`` repeated reads) abandons the incarnation."""
    state = memory_store({})
    run = BlockRun(SyntheticRuntime(10), [encode_tx([(WRITE, 0, 1)])] * 2, state, ENV)
    ctx = BlockSTMContext(ENV, run.mv, 1, state)
    assert ctx.get_int(key_of(0)) == 0
    for _ in range(2 * STALE_CHECK):  # still current: reading on is harmless
        assert ctx.get_int(key_of(0)) == 0
    run.mv.record((0, 0), {}, {key_of(0): codec.encode_int(1)}, {})
    with pytest.raises(_Stale):
        for _ in range(STALE_CHECK):
            ctx.get_int(key_of(0))


@pytest.mark.parametrize("workers", [2, 4])
def test_speculation_waiting_for_a_lower_write_ends_and_equals_sequential(
    workers: int, tiny_switch_interval: None
) -> None:
    """Transaction j waits until key 0 holds j (then writes j + 1); transaction 0 is slow, so the
    other threads start transactions 1.. on a stale key 0 and must notice the lower writes. (A
    tiny switch interval makes the threads take turns while transaction 0 spins: with the default
    5 ms one thread could run the whole block alone before the others got the GIL, and then
    nothing would be abandoned: CI saw that once.)"""
    txs = [encode_tx([(WRITE, 0, 1), (SPIN, 0, 300_000)])]
    txs += [encode_tx([(AWAIT, 0, j), (WRITE, 0, j + 1)]) for j in range(1, 8)]
    state = memory_store({})
    expected = SequentialExecutor().execute_block(SyntheticRuntime(10), txs, state, ENV)
    executor = BlockSTMExecutor(workers)
    results: list[Any] = []
    runner = threading.Thread(
        target=lambda: results.append(executor.execute_block(SyntheticRuntime(10), txs, state, ENV)), daemon=True
    )
    try:
        runner.start()
        runner.join(120)
        assert results, "Block-STM never finished a block whose speculation waits for a lower write"
        assert results[0].same_result(expected)
        assert results[0].stats.executions > len(txs)  # abandoned incarnations ran again
    finally:
        if results:
            executor.close()


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_real_exception_propagates_like_sequential(workers: int, tiny_switch_interval: None) -> None:
    state = memory_store({key_of(3): b"\xc1"})
    txs = [encode_tx([(WRITE, 1, 1)]), encode_tx([(READ, 3, 0)]), encode_tx([(WRITE, 2, 2)])]
    with pytest.raises(msgspec.DecodeError):
        SequentialExecutor().execute_block(SyntheticRuntime(10), txs, state, ENV)
    executor = BlockSTMExecutor(workers)
    try:
        with pytest.raises(msgspec.DecodeError):
            executor.execute_block(SyntheticRuntime(10), txs, state, ENV)
    finally:
        executor.close()


def test_delta_on_non_integer_fails_where_sequential_does() -> None:
    state = memory_store({key_of(0): b"\xc1"})
    txs = [encode_tx([(DELTA, 0, 1)]), encode_tx([(WRITE, 1, 1)])]
    with pytest.raises(msgspec.DecodeError):
        SequentialExecutor().execute_block(SyntheticRuntime(10), txs, state, ENV)
    with pytest.raises(msgspec.DecodeError):
        BlockSTMExecutor(1).execute_block(SyntheticRuntime(10), txs, state, ENV)


class Crash(BaseException):
    """Not an Exception: a bug or an interrupt, which must stop the block, not become an output."""


class CrashingRuntime(SyntheticRuntime):
    def execute(self, prepared, ctx: TxContext) -> Receipt:  # type: ignore[no-untyped-def]
        receipt = super().execute(prepared, ctx)
        if receipt.events and receipt.events[0].attrs["acc"] == 0 and ctx.writes.get(key_of(9)) is not None:
            raise Crash()
        return receipt


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 4])
def test_base_exception_halts_every_worker(workers: int) -> None:
    txs = [encode_tx([(SPIN, 0, 200), (WRITE, i % 3, 1)]) for i in range(30)]
    txs[17] = encode_tx([(WRITE, 9, 1)])
    executor = BlockSTMExecutor(workers)
    try:
        with pytest.raises(Crash):
            executor.execute_block(CrashingRuntime(10), txs, memory_store({}), ENV)
        # the executor stays usable after a halted block
        ok = executor.execute_block(SyntheticRuntime(10), txs, memory_store({}), ENV)
        assert len(ok.receipts) == 30
    finally:
        executor.close()


def test_deltas_never_conflict(tiny_switch_interval: None) -> None:
    """Sixty increments of one hot key: no transaction reads it, so none is ever aborted."""
    txs = [encode_tx([(SPIN, 0, 50), (DELTA, 0, i - 30), (WRITE, 100 + i, i)]) for i in range(60)]
    state = memory_store({key_of(0): codec.encode_int(1000)})
    expected = SequentialExecutor().execute_block(SyntheticRuntime(1000), txs, state, ENV)
    executor = BlockSTMExecutor(4)
    try:
        for _ in range(5):
            out = executor.execute_block(SyntheticRuntime(1000), txs, state, ENV)
            assert out.same_result(expected)
            assert out.stats.aborts == 0 and out.stats.note.startswith("0 reads waited on an ESTIMATE")
    finally:
        executor.close()
    assert codec.decode_int(expected.write_set[key_of(0)]) == 1000 + sum(i - 30 for i in range(60))


def test_reads_of_deltas_resolve_base_plus_deltas(tiny_switch_interval: None) -> None:
    txs = [encode_tx([(DELTA, 0, 5)]), encode_tx([(DELTA, 0, 6)]), encode_tx([(READ, 0, 0), (WRITE, 1, 0)])]
    state = memory_store({key_of(0): codec.encode_int(100)})
    for workers in (1, 4):
        out = BlockSTMExecutor(workers).execute_block(SyntheticRuntime(10), txs, state, ENV)
        assert codec.decode_int(out.write_set[key_of(1)]) == 111
        assert codec.decode_int(out.write_set[key_of(0)]) == 111


def test_registry_builds_long_lived_reusable_executor(tiny_switch_interval: None) -> None:
    executor = make_executor("blockstm", 3)
    assert isinstance(executor, BlockSTMExecutor) and executor.workers == 3
    runtime = SyntheticRuntime(5)
    txs = [encode_tx([(READ, i % 5, 0), (INDIRECT, (i + 1) % 5, i), (SPIN, 0, 20)]) for i in range(40)]
    state = memory_store({key_of(i): codec.encode_int(i * 7) for i in range(5)})
    expected = SequentialExecutor().execute_block(runtime, txs, state, ENV)
    try:
        for _ in range(3):
            out = executor.execute_block(runtime, txs, state, ENV)
            assert out.same_result(expected)
            assert out.stats.executor == "blockstm" and out.stats.workers == 3
            assert out.stats.executions >= len(txs) and out.stats.validations >= len(txs)
            assert out.stats.rounds >= 1 and len(out.stats.worker_busy) == 3
        executor.close()
        assert executor.execute_block(runtime, txs, state, ENV).same_result(expected)  # reopens its pool
    finally:
        executor.close()


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BlockSTMExecutor(0)


def test_gc_pause_restores_the_collector_state() -> None:
    import gc

    from paraexec.execution.gc_pause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested (another block on another thread)
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # was off before: stays off
    finally:
        gc.enable()

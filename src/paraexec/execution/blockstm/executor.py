"""The Block-STM executor: ``workers`` threads run the collaborative scheduler's tasks.

    execute_block(runtime, txs, state, env):
        scheduler, mvmemory = Scheduler(n), MVMemory(n)
        on every worker thread (the caller is one of them), until scheduler.done():
            EXECUTION (txn_idx, incarnation):
                run the transaction through a BlockSTMContext (reads: own writes, then MVMemory
                below txn_idx, then committed state; every read is recorded in the read_set)
                read hit an ESTIMATE of txn b -> add_dependency(txn_idx, b), or retry if b is done
                otherwise record (read_set, write set, deltas) in MVMemory, finish_execution
            VALIDATION (txn_idx, incarnation):
                read_set still reads the same? else abort: writes -> ESTIMATE, finish_validation
        commit (lazy): fold the final outputs in block order, as sequential does

Speculative incarnations may see inconsistent state (a value written by a transaction that will
be aborted) and raise anything: a decode error, a ZeroDivisionError. Such an exception is the
incarnation's output: it writes nothing and keeps its read set, so validation decides. If the
incarnation is still valid when the block is done, its reads are exactly what sequential
execution reads, the exception is real, and the commit raises it where the sequential executor
would (the first one in block order). A speculative incarnation may also loop on a stale value
(it re-reads a key until it changes, but an incarnation reuses its recorded reads): every
``STALE_CHECK`` repeated reads its read set is checked against MVMemory, and an outdated one
abandons the incarnation, which runs again on the current memory (``BlockSTMContext``).
Reads of a key with deltas below are resolved in the
context (base + sum of deltas); the transaction's own deltas stay deltas in MVMemory, so hot
counters do not make writers conflict.

The commit folds each transaction's final output (writes, then its deltas resolved against the
block's state so far) in index order: this is MVMemory's snapshot at the end of the block, and it
fails in the same place as ``sequential.apply_effects`` if a delta lands on a non-integer value.

Committed state is read through ``SharedStateView``: the first read of a key takes a lock (a
store's ``get`` need not be thread-safe; LMDB's shared read cursor is not), later reads hit a cache.

Performance, stated: on GIL builds the threads take turns, so this executor is *slower* than
``sequential``. The algorithm's own Python work (scheduler tasks, MVMemory reads and records,
validation) costs ~15-30 us per transaction against ~5 us for a bare transfer, so a 10,000-transfer
block without signature checks runs at roughly 0.15-0.3x sequential, and 0.5-0.8x with signature
checks (PyNaCl releases the GIL, done lazily in each transaction's first execution, so those
overlap). On free-threaded builds the same code runs the threads truly in parallel: every shared
structure is guarded by a lock. For GIL builds use the multi-process ``parallel`` executor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ... import codec
from ...errors import InvariantViolation
from ...types import Key, Value, Version, WriteSet
from ..contract import BlockEnv, BlockOutput, ExecStats, Receipt, Runtime, StateView, TxContext
from ..gc_pause import gc_paused
from ..sequential import finalize
from .mvmemory import NOT_FOUND, Dependency, MVMemory, ReadDescriptor, Resolved, Versioned
from .scheduler import EXECUTED, EXECUTION_TASK, Scheduler, Task

_UNPREPARED: Any = object()
_MISSING: Any = object()
#: Idle polls that only yield the GIL before a worker starts sleeping between polls.
_SPIN_POLLS = 16
_IDLE_SLEEP_S = 50e-6


#: Repeated reads of recorded keys between two checks of an incarnation's read set (``_Stale``).
STALE_CHECK = 4096


class _Stale(BaseException):
    """An incarnation's recorded reads are outdated while it still runs: abandon it, run it again."""


class _Blocked(BaseException):
    """A read met an ESTIMATE: abandon this incarnation (BaseException, so apps cannot swallow it)."""

    def __init__(self, blocking_txn_idx: int) -> None:
        super().__init__(blocking_txn_idx)
        self.blocking_txn_idx = blocking_txn_idx


def resolve(descriptor: ReadDescriptor, key: Key, state: StateView) -> Value | None:
    """The value a recorded read stands for (may raise when a delta's base is not an integer)."""
    kind = type(descriptor)
    if kind is Versioned:
        return descriptor.value  # type: ignore[union-attr]
    if descriptor is NOT_FOUND:
        return state.get(key)
    if kind is Resolved:
        base = descriptor.base_value  # type: ignore[union-attr]
    else:  # Unresolved: deltas all the way down to committed state
        base = state.get(key)
    return codec.encode_int(codec.decode_int(base) + descriptor.delta)  # type: ignore[union-attr]


class SharedStateView:
    """Committed state shared by the worker threads: reads are serialised and cached.

    A store's ``get`` need not be thread-safe (LMDB's read cursor is not: two threads moving it at
    once return each other's values), so the first read of a key takes a lock; later reads of the
    key hit the cache without one. Committed state does not change during a block.
    """

    __slots__ = ("state", "_cache", "_lock")

    def __init__(self, state: StateView) -> None:
        self.state = state
        self._cache: dict[Key, Value | None] = {}
        self._lock = threading.Lock()

    def get(self, key: Key) -> Value | None:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            with self._lock:
                value = self._cache[key] = self.state.get(key)
        return value  # type: ignore[no-any-return]

    @property
    def accumulator(self) -> int:
        return self.state.accumulator


class BlockSTMContext(TxContext):
    """A TxContext reading MVMemory below ``txn_idx``, recording every read in ``read_set``.

    A key is read from MVMemory once per incarnation; later reads reuse the recorded answer, so
    an incarnation sees one consistent value per key (as Aptos' captured reads do). That makes a
    loop that re-reads a key until it holds some value (code only safe on consistent state)
    spin forever on a stale speculative value: so every ``STALE_CHECK`` repeated reads the
    read set is checked against MVMemory, and once any read is outdated the incarnation is
    abandoned (``_Stale``) and run again on what the memory holds now.
    """

    __slots__ = ("mv", "txn_idx", "state", "read_set", "blocked_on", "repeats")

    def __init__(self, env: BlockEnv, mv: MVMemory, txn_idx: int, state: StateView) -> None:
        super().__init__(env)
        self.mv = mv
        self.txn_idx = txn_idx
        self.state = state
        self.read_set: dict[Key, ReadDescriptor] = {}
        self.blocked_on: int | None = None
        self.repeats = 0

    def _read(self, key: Key) -> Value | None:
        descriptor = self.read_set.get(key)
        if descriptor is None:
            result = self.mv.read(key, self.txn_idx)
            if type(result) is Dependency:
                self.blocked_on = result.txn_idx
                raise _Blocked(result.txn_idx)
            self.read_set[key] = result  # type: ignore[assignment]
            descriptor = result  # type: ignore[assignment]
        else:
            self.repeats += 1
            if self.repeats % STALE_CHECK == 0 and self.outdated():
                raise _Stale()
        if type(descriptor) is Versioned:  # the common case, inline
            return descriptor.value  # type: ignore[union-attr]
        return resolve(descriptor, key, self.state)  # type: ignore[arg-type]

    def outdated(self) -> bool:
        """Some recorded read would now read something else (a lower transaction wrote since)."""
        read, txn_idx = self.mv.read, self.txn_idx
        return any(read(key, txn_idx) != recorded for key, recorded in self.read_set.items())


@dataclass(slots=True)
class _Output:
    """What an incarnation produced: a receipt, or the exception it raised (then no writes)."""

    receipt: Receipt | None
    error: Exception | None
    writes: dict[Key, Value | None]
    deltas: dict[Key, int]


@dataclass(slots=True)
class WorkerStats:
    executions: int = 0
    validations: int = 0
    aborts: int = 0
    dependencies: int = 0
    busy: float = 0.0


class BlockRun:
    """One block's shared state: scheduler, MVMemory, prepared transactions and outputs."""

    def __init__(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> None:
        n = len(txs)
        self.runtime = runtime
        self.txs = txs
        self.shared_state = SharedStateView(state)
        self.env = env
        self.scheduler = Scheduler(n)
        self.mv = MVMemory(n)
        self.prepared: list[Any] = [_UNPREPARED] * n
        self.outputs: list[_Output | None] = [None] * n

    def run_worker(self, stats: WorkerStats) -> None:
        """The paper's thread loop; a bug here halts every thread (and is re-raised by the caller)."""
        scheduler = self.scheduler
        task: Task | None = None
        idle = 0
        perf = time.perf_counter
        try:
            while not scheduler.done_marker:
                if task is None:
                    task = scheduler.next_task()
                    if task is None:
                        idle += 1
                        time.sleep(0 if idle < _SPIN_POLLS else _IDLE_SLEEP_S)
                        continue
                    idle = 0
                started = perf()
                version, kind = task
                if kind is EXECUTION_TASK:
                    task = self.try_execute(version, stats)
                else:
                    task = self.needs_reexecution(version, stats)
                stats.busy += perf() - started
        except BaseException as exc:  # noqa: BLE001 - stop all threads, the caller re-raises
            scheduler.halt(exc)

    def try_execute(self, version: Version, stats: WorkerStats) -> Task | None:
        txn_idx, incarnation = version
        runtime = self.runtime
        while True:
            ctx = BlockSTMContext(self.env, self.mv, txn_idx, self.shared_state)
            receipt: Receipt | None = None
            error: Exception | None = None
            try:
                prepared = self.prepared[txn_idx]
                if prepared is _UNPREPARED:
                    prepared = self.prepared[txn_idx] = runtime.prepare(self.txs[txn_idx])
                receipt = runtime.execute(prepared, ctx)
            except _Blocked:
                pass
            except _Stale:
                stats.executions += 1
                continue  # nothing of it was recorded: run the same version on the memory as it is now
            except Exception as exc:  # speculative or real: validation decides (module docstring)
                error = exc
            stats.executions += 1
            if ctx.blocked_on is not None:
                stats.dependencies += 1
                if self.scheduler.add_dependency(txn_idx, ctx.blocked_on):
                    return None
                continue  # the blocking transaction finished meanwhile: run this version again
            if error is None:
                output = _Output(receipt, None, ctx.writes, ctx.deltas)
            else:
                output = _Output(None, error, {}, {})
            self.outputs[txn_idx] = output
            wrote_new_location = self.mv.record(version, ctx.read_set, output.writes, output.deltas)
            return self.scheduler.finish_execution(txn_idx, incarnation, wrote_new_location)

    def needs_reexecution(self, version: Version, stats: WorkerStats) -> Task | None:
        txn_idx, incarnation = version
        stats.validations += 1
        aborted = not self.mv.validate_read_set(txn_idx) and self.scheduler.try_validation_abort(txn_idx, incarnation)
        if aborted:
            stats.aborts += 1
            self.mv.convert_writes_to_estimates(txn_idx)
        return self.scheduler.finish_validation(txn_idx, aborted)

    def commit(self) -> tuple[list[Receipt], WriteSet]:
        """Fold the final outputs in block order; raise the first real exception, as sequential."""
        scheduler = self.scheduler
        state = self.shared_state
        overlay: WriteSet = {}
        receipts: list[Receipt] = []
        for txn_idx, output in enumerate(self.outputs):
            if output is None or scheduler.status(txn_idx)[1] is not EXECUTED:
                raise InvariantViolation(f"block done but txn {txn_idx} has no executed output")
            if output.error is not None:
                raise output.error
            receipts.append(output.receipt)  # type: ignore[arg-type]
            overlay.update(output.writes)
            for key, delta in output.deltas.items():
                base = overlay[key] if key in overlay else state.get(key)
                overlay[key] = codec.encode_int(codec.decode_int(base) + delta)
        return receipts, overlay


class BlockSTMExecutor:
    """Block-STM on ``workers`` threads (the calling thread is one); long-lived, reusable."""

    name = "blockstm"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers - 1, thread_name_prefix="blockstm")
            return self._pool

    def execute_block(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> BlockOutput:
        started = time.perf_counter()
        worker_stats = [WorkerStats() for _ in range(self.workers)]
        with gc_paused():
            run = BlockRun(runtime, txs, state, env)
            if self.workers > 1 and txs:
                pool = self._get_pool()
                futures = [pool.submit(run.run_worker, stats) for stats in worker_stats[1:]]
                run.run_worker(worker_stats[0])
                for future in futures:
                    future.result()
            else:
                run.run_worker(worker_stats[0])
            if run.scheduler.halt_error is not None:
                raise run.scheduler.halt_error
            receipts, write_set = run.commit()
        accumulator, root = finalize(write_set, state)
        elapsed = time.perf_counter() - started
        stats = ExecStats(
            self.name,
            self.workers,
            executions=sum(s.executions for s in worker_stats),
            validations=sum(s.validations for s in worker_stats),
            aborts=sum(s.aborts for s in worker_stats),
            rounds=1 + max((run.scheduler.status(i)[0] for i in range(len(txs))), default=0),
            seconds=elapsed,
            worker_busy=[s.busy for s in worker_stats],
            note=(
                f"{sum(s.dependencies for s in worker_stats)} reads waited on an ESTIMATE (dependencies); "
                f"validation restarted lower {run.scheduler.decrease_cnt} times (decrease_cnt)"
            ),
        )
        return BlockOutput(receipts, write_set, accumulator, root, stats)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

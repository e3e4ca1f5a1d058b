"""The coordinator of the multi-process parallel executor (algorithm: package docstring)."""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ...errors import InvariantViolation
from ...state import commitment
from ..contract import BlockEnv, BlockOutput, ExecStats, Receipt, Runtime, StateView
from ..sequential import OverlayContext, SequentialExecutor, apply_effects, finalize
from . import messages as m
from .pipeline import Pipeline
from .transport import WorkerLost, WorkerPool

_receipts_decoder = msgspec.msgpack.Decoder(list[Receipt])

#: Default wave W: chunks of W / workers transactions, at most 2 W transactions beyond the final
#: prefix in flight. Smaller waves mean more messages, larger ones more aborts (the chance that a
#: transaction read a key another worker wrote in flight grows with W / accounts). Measured on the
#: 2-core box, 10,000 signed transfers per block, 2 workers (/tmp script, medians of 3 blocks):
#: W=128 gave 1.49x / 1.34x / 1.02x at 10,000 / 1,000 / 100 accounts, W=512 1.45x / 0.98x /
#: 0.97x (at 1,000 and 100 accounts W=512 aborts enough to trip the contention fallback); W=64
#: was no better than 128.
WAVE = 128
#: Attempts at a block when workers die before falling back to running it in-process.
MAX_ATTEMPTS = 3
#: Contention fallback. A block is judged once its executions reach its sample size
#: (``BAIL_AFTER``, or a third of a smaller block, at least ``MIN_SAMPLE``): when more than
#: ``CONTENDED_ABORT_RATE`` of them were re-executions, speculation stops (the final prefix comes
#: back from the workers and the rest runs in-process) and the next blocks, of any size, run
#: in-process; then parallel execution is probed again. The pause starts at ``CONTENDED_SKIP``
#: blocks and doubles (up to ``MAX_SKIP``) while probes keep failing, so a workload that is
#: contended for good pays for one bailed-out probe in ``MAX_SKIP + 1`` blocks, not one in nine.
CONTENDED_ABORT_RATE = 0.3
BAIL_AFTER = 1000
MIN_SAMPLE = 128
CONTENDED_SKIP = 8
MAX_SKIP = 64


def sample_size(n: int) -> int:
    """Executions after which a block of ``n`` transactions is judged for contention."""
    return min(BAIL_AFTER, max(MIN_SAMPLE, n // 3))


class WorkerFailed(Exception):
    """A worker raised outside transaction execution (a bug, or a non-transaction error)."""


class ParallelExecutor:
    """Block-STM over long-lived worker processes, in a bounded window (see package docstring).

    ``wave`` sets the chunk size (``wave / workers``) and the speculation window (transactions
    beyond the final prefix never exceed ``2 * wave``). ``contention_fallback=False`` keeps
    every block on the workers however much it re-executes (the differential tests use it, so
    contended blocks exercise speculation, not the fallback). ``before_round`` is a test hook called
    with the number of messages sent so far before each ``Round`` (the kill test uses it).
    """

    name = "parallel"

    def __init__(self, workers: int = 2, wave: int = WAVE, contention_fallback: bool = True) -> None:
        if wave < 1:
            raise ValueError("wave must be positive")
        self.workers = max(1, int(workers))
        self.wave = wave
        self.pool = WorkerPool(self.workers)
        self._specs: list[Any] = [None] * self.workers
        self.before_round: Callable[[int], None] | None = None
        #: Committed-state reads the coordinator served to workers (0 when they read LMDB).
        self.served_reads = 0
        #: ``Fetch`` round trips those reads took (workers batch a chunk's hinted keys in one).
        self.served_fetches = 0
        self.contention_fallback = contention_fallback
        self._skip_parallel = 0
        self._next_skip = CONTENDED_SKIP
        self._last_abort_rate = 0.0
        self._judged = False  # the last block on the workers reached its sample size

    # -- lifecycle ---------------------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        return self.pool.pids()

    def close(self) -> None:
        """Stop the worker processes (a later block starts fresh ones)."""
        self.pool.stop(graceful=m.encode(m.Shutdown()))
        self._specs = [None] * self.workers

    def _restart(self) -> None:
        self.pool.stop()
        self._specs = [None] * self.workers

    # -- execution ---------------------------------------------------------------------------

    def execute_block(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> BlockOutput:
        started = time.perf_counter()
        txs = list(txs)
        if getattr(runtime, "spec", None) is None:
            return self._in_process(runtime, txs, state, env, started, "runtime has no spec: ran in-process")
        if not txs:
            return self._in_process(runtime, txs, state, env, started, "empty block: ran in-process")
        if self._skip_parallel > 0 and self.contention_fallback:
            self._skip_parallel -= 1
            note = (
                f"a recent block re-executed {self._last_abort_rate:.0%} of its transactions: ran in-process "
                f"(parallel probed again in {self._skip_parallel} block(s))"
            )
            return self._in_process(runtime, txs, state, env, started, note)
        notes: list[str] = []
        for _ in range(MAX_ATTEMPTS):
            try:
                if not self.pool.started:
                    self.pool.start()
                output = self._run(runtime, txs, state, env, started)
            except WorkerLost as exc:
                notes.append(f"worker lost ({exc}); block re-run on fresh workers")
                self._restart()
                continue
            except WorkerFailed as exc:
                self._restart()
                self._in_process(runtime, txs, state, env, started, "")  # raises the genuine error, if any
                raise InvariantViolation(f"parallel worker failed where sequential succeeded:\n{exc}") from None
            except BaseException:
                self._restart()  # workers are mid-block in an unknown state
                raise
            if notes:
                output.stats.note = "; ".join([*notes, output.stats.note])
            self._after_block()
            return output
        return self._in_process(runtime, txs, state, env, started, "; ".join([*notes, "gave up: ran in-process"]))

    def _after_block(self) -> None:
        """Pause parallel execution after a contended block (backing off while probes fail)."""
        if not (self.contention_fallback and self._judged):
            return
        if self._last_abort_rate > CONTENDED_ABORT_RATE:
            self._skip_parallel = self._next_skip
            self._next_skip = min(MAX_SKIP, 2 * self._next_skip)
        else:
            self._next_skip = CONTENDED_SKIP

    def _in_process(
        self, runtime: Runtime, txs: list[bytes], state: StateView, env: BlockEnv, started: float, note: str
    ) -> BlockOutput:
        output = SequentialExecutor().execute_block(runtime, txs, state, env)
        output.stats = ExecStats(
            self.name,
            self.workers,
            executions=len(txs),
            rounds=1,
            seconds=time.perf_counter() - started,
            worker_busy=[0.0] * self.workers,
            note=note,
        )
        return output

    def _run(self, runtime: Runtime, txs: list[bytes], state: StateView, env: BlockEnv, started: float) -> BlockOutput:
        n, n_workers, pool = len(txs), self.workers, self.pool
        pipe = Pipeline(n, n_workers, self.wave)
        mark = time.perf_counter()
        self._setup(runtime.spec, txs, pipe, state, env)
        timeline: list[tuple[int, float, float, str]] = [(-1, mark - started, time.perf_counter() - started, "setup")]
        executions = aborts = 0
        sample: float = sample_size(n) if self.contention_fallback else math.inf
        bail = False  # too many re-executions: stop speculating, finish the block in-process
        while True:
            pipe.advance()
            if pipe.done or (bail and not any(pipe.busy)):
                break
            for w in range(n_workers):
                if bail or pipe.busy[w]:
                    continue
                plan = pipe.plan(w)
                if plan is None:
                    continue
                if self.before_round is not None:
                    self.before_round(pipe.messages)
                start, end, foreign = plan
                pool.send(w, m.encode(m.Round(pipe.lo, start, end, foreign)))
            if not any(pipe.busy):
                raise InvariantViolation(f"parallel executor stalled at {pipe.lo}/{n}")
            w, reply = self._receive(state)
            pipe.on_reply(w, reply.first_invalid, reply.effects)
            executions += reply.executed
            aborts += reply.aborted
            if not bail and executions >= sample and aborts > CONTENDED_ABORT_RATE * executions:
                bail = True
        upto = pipe.lo
        self._last_abort_rate = aborts / max(1, executions)
        self._judged = executions >= sample
        for w in range(n_workers):
            pool.send(w, m.encode(m.Finish(upto, upto == n, pipe.undelivered(w))))
        finished: list[m.Finished] = self._collect(state)
        mark = time.perf_counter()
        if any(f.raised for f in finished):
            # A final incarnation raised: sequential raises it too; let it do so for real.
            self._in_process(runtime, txs, state, env, started, "")
            raise InvariantViolation("a final transaction raised in a worker but not in sequential")
        write_set: dict[bytes, bytes | None] = {}
        for f in finished:
            write_set.update(m.writes_decoder.decode(f.writes))
        receipts = _merge_receipts(finished, pipe.ranges, upto)
        note = f"window of {2 * self.wave} txs, ranges of {pipe.chunk}, {n_workers} worker process(es)"
        if upto == n:
            accumulator = commitment.combine(
                state.accumulator, *(int.from_bytes(f.accumulator_delta, "little") for f in finished)
            )
        else:  # bailed out: the final prefix [0, upto) came from the workers, the rest runs here
            for raw in txs[upto:]:
                ctx = OverlayContext(env, write_set, state)
                receipts.append(runtime.execute(runtime.prepare(raw), ctx))
                apply_effects(ctx, write_set)
            accumulator, _ = finalize(write_set, state)
            note = f"{aborts} of {executions} executions aborted: ran txs {upto}..{n - 1} in-process; {note}"
        timeline.append((-1, mark - started, time.perf_counter() - started, "merge" if upto == n else "in-process"))
        for w, f in enumerate(finished):
            timeline.extend((w, start - started, end - started, label) for start, end, label in f.spans)
        stats = ExecStats(
            self.name,
            n_workers,
            executions=sum(f.executions for f in finished) + n - upto,
            validations=sum(f.validations for f in finished),
            aborts=sum(f.aborts for f in finished),
            rounds=-(-pipe.messages // n_workers),
            seconds=time.perf_counter() - started,
            worker_busy=[f.busy for f in finished],
            note=note,
            timeline=timeline,
        )
        return BlockOutput(receipts, write_set, accumulator, commitment.root_of(accumulator), stats)

    def _setup(self, spec: Any, txs: list[bytes], pipe: Pipeline, state: StateView, env: BlockEnv) -> None:
        lmdb_path = _lmdb_path(state)
        height = getattr(state, "height", None) if lmdb_path is not None else None
        accumulator = state.accumulator.to_bytes(commitment.LATTICE_BYTES, "little")
        for w in range(self.workers):
            spec_bytes = None if self._specs[w] == spec else pickle.dumps(spec)
            chunks = pipe.own_ranges(w)
            own: list[bytes] = []
            for start, end in chunks:
                own.extend(txs[start:end])
            setup = m.Setup(w, self.workers, len(txs), env, spec_bytes, lmdb_path, height, accumulator, chunks, own)
            self.pool.send(w, m.encode(setup))
            self._specs[w] = spec

    def _receive(self, state: StateView) -> tuple[int, Any]:
        """The next reply from any worker, serving committed-state reads meanwhile."""
        while True:
            for w in self.pool.ready(list(range(self.workers))):
                msg = self._reply(w, state)
                if msg is not None:
                    return w, msg

    def _collect(self, state: StateView) -> list[Any]:
        """One reply per worker, serving their committed-state reads meanwhile."""
        replies: list[Any] = [None] * self.workers
        waiting = list(range(self.workers))
        while waiting:
            for w in self.pool.ready(waiting):
                msg = self._reply(w, state)
                if msg is not None:
                    replies[w] = msg
                    waiting.remove(w)
        return replies

    def _reply(self, w: int, state: StateView) -> Any:
        """Read worker ``w``'s next message: serve a ``Fetch`` (``None``), raise on ``Failed``, else return it."""
        msg = m.from_worker.decode(self.pool.recv(w))
        if isinstance(msg, m.Fetch):
            self.served_reads += len(msg.keys)
            self.served_fetches += 1
            self.pool.send(w, m.encode(m.Values([state.get(k) for k in msg.keys])))
            return None
        if isinstance(msg, m.Failed):
            raise WorkerFailed(msg.traceback)
        return msg


def _lmdb_path(state: StateView) -> str | None:
    """The store's directory when workers can open it read-only themselves."""
    from ...state.lmdb_store import LmdbStore

    return state.path if isinstance(state, LmdbStore) else None


def _merge_receipts(finished: list[m.Finished], ranges: list[tuple[int, int, int]], upto: int) -> list[Receipt]:
    """Interleave the workers' receipt lists (transactions below ``upto``) back into block order."""
    lists = [pickle.loads(f.receipts) if f.receipts_pickled else _receipts_decoder.decode(f.receipts) for f in finished]
    positions = [0] * len(finished)
    receipts: list[Receipt] = []
    for start, end, w in ranges:
        if start >= upto:
            break
        count = min(end, upto) - start
        pos = positions[w]
        receipts.extend(lists[w][pos : pos + count])
        positions[w] = pos + count
    return receipts

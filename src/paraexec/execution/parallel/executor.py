"""The coordinator of the multi-process parallel executor (algorithm: package docstring)."""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import msgspec

from ...errors import InvariantViolation
from ...state import commitment
from ..contract import BlockEnv, BlockOutput, ExecStats, Receipt, RootFn, Runtime, StateView
from ..plan_clock import PlanClock
from ..prepare import SignatureThreads
from ..sequential import execute_prepared, finalize
from . import messages as m
from .affinity import affinity_owner, hinted_needs, peek_all
from .old_hashes import OldHashes
from .pending_root import PendingRoot
from .pipeline import Pipeline
from .precheck import Prechecks, checked_flags, helper_count, usable_cores
from .transport import WorkerLost, WorkerPool, WorkerStalled
from .verify_stream import RATIO_START, VerifyStream

_receipts_decoder = msgspec.msgpack.Decoder(list[Receipt])

log = logging.getLogger(__name__)

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
#: Seconds the coordinator waits for any awaited worker before it declares the workers stalled.
#: A speculative incarnation reads a snapshot no sequential run ever sees (some lower writes
#: known, others not), and code that is only safe on consistent state (a walk of a structure
#: that is acyclic in every committed state, a wait for an invariant) may then never end: in a
#: worker process nothing changes under it while it runs, so it would spin forever. Past this
#: limit the workers are replaced (the spinning one killed), the block runs in-process, one
#: transaction after another on consistent state (``sequential``'s result), and parallel
#: execution pauses as after a contended block. No message legitimately takes this long (a
#: chunk is milliseconds of work); a slower one only costs this detour, never a wrong result.
STALL_TIMEOUT = 30.0
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


#: Key affinity (``affinity="auto"``, the assignment itself: ``affinity``). Peeking costs the
#: coordinator ~2 us a transaction, before the workers can start, so affinity is used only where
#: it saves much more: a block goes by key affinity once a block assigned by position wasted at
#: least ``AFFINITY_ON`` seconds per transaction on re-executions (re-executions per transaction
#: x CPU per execution: perps orders measured ~60 us, 10,000 transfers over 1,000 accounts ~7 us,
#: where affinity measured slower), and goes back to positions once an affinity block wasted less
#: than ``AFFINITY_OFF``. An assignment that would load one worker (one hot market:
#: ``affinity.AFFINITY_SLACK``) is not used.
AFFINITY_ON = 10e-6
AFFINITY_OFF = 1e-6
#: Under affinity, chunks aim at ``CHUNK_SECONDS`` of work each (from the last block's CPU per
#: execution), at least ``MIN_CHUNK`` transactions and at most ``wave / workers``: heavy
#: transactions (perps orders, ~100 us) get small chunks, so few are in flight at once and few
#: read a value another worker is still writing.
CHUNK_SECONDS = 0.002
MIN_CHUNK = 4
#: Following the hints (``hinted_needs``) turns conflicts into waits, which the contention
#: fallback (it counts re-executions) cannot see. So the schedule is modelled before the block
#: runs (``Pipeline.makespan``: a message costs ``MESSAGE_SECONDS`` over the last block's CPU per
#: execution in transaction units), and key affinity is refused like one that loads one worker
#: (the block goes by position, or in-process after a contended one) when the modelled speedup
#: is below ``MIN_FOLLOW_SPEEDUP``: a transaction costs ~1.6x as much on a worker as in the
#: coordinator (multi-version reads and writes, effects; measured on perps orders, fifth
#: session), so below that the workers lose to running the block in-process. Measured (AMD box,
#: 2 workers): perps blocks modelled at 1.2-1.4x ran at 1.2x on the workers against 1.5x
#: in-process; the demo's 800-order blocks modelled at 0.9-1.1x ran at 0.97x against 1.45x.
MESSAGE_SECONDS = 150e-6
MIN_FOLLOW_SPEEDUP = 1.6
#: A block run in-process has its state root hashed by this process and one worker per other
#: core together (``_root``) from this many written keys (~4-5 us of hashing each on the slow
#: 2-core box; sending one costs ~0.2 us, waking a worker ~1-3 ms, hidden behind this process's
#: own share). Perps blocks (3,200-4,200 written keys, tenth session): the root took 10-14 ms
#: against 16-19 ms hashed here alone. When the workers hashed everything while this process
#: waited, it was measured slower than hashing here at ~2,000 keys.
HASH_ON_WORKERS = 2000
#: Share of a deferred root's keys (``_root``) this process hashes once it has written the
#: block's state. Measured on 10,000-transfer blocks without signatures (2-core box, per block):
#: the LMDB write ~45-60 ms, the helper's hashing of every key's new value ~70 ms (message
#: decoding included); with 0 this process then waited ~30 ms for the helper, with 0.2-0.35
#: ~0-5 ms. With 0.3, root + commit took 80 ms a block against 97.5 ms not deferred, and a 4-block
#: pass 0.80 s against 0.90 s (medians of 15 passes each, runs alternated).
DEFERRED_SHARE_HERE = 0.3
#: Time guard (``time_guard``): the worker plan runs a large block only while it is measured
#: faster than running blocks in-process (``plan_clock``). The contention fallback judges the
#: worker plan by its re-executions, which depend on timing and say nothing about speed: under a
#: profiler (slower workers, fewer aborts) perps blocks stayed on the workers at ~4.4 s a pass
#: against ~0.6 s in-process (eleventh session). Blocks whose signatures were partly checked
#: ahead (announced by the producer) and blocks that check all their own are timed apart
#: (``ParallelExecutor.clocks``): the first kind is much faster per transaction on either plan,
#: so a plan measured only on cold blocks (the first after a start) would look slower than it is
#: (measured: `parallel` kept the worker plan at 1.54x against 1.70x in-process on 1,000-account
#: transfers, its in-process baseline having been timed on a cold block). Plan names in the notes:
WORKER_PLAN = "workers"
IN_PROCESS = "in-process"


def sample_size(n: int) -> int:
    """Executions after which a block of ``n`` transactions is judged for contention."""
    return min(BAIL_AFTER, max(MIN_SAMPLE, n // 3))


class Assignment(NamedTuple):
    """A block's assignment: ``owner`` per transaction (``None``: by position), the ``wave``,
    ``how`` (for the note), and whether key affinity was wanted but ``rejected`` (one key would
    load one worker)."""

    owner: list[int] | None
    wave: int
    how: str
    rejected: bool = False
    needs: list[tuple[int, ...]] | None = None
    #: the pipeline already cut for this assignment (used by the first attempt only)
    pipeline: Pipeline | None = None


class WorkerFailed(Exception):
    """A worker raised outside transaction execution (a bug, or a non-transaction error)."""


class ParallelExecutor:
    """Block-STM over long-lived worker processes, in a bounded window (see package docstring).

    ``wave`` sets the chunk size (``wave / workers``) and the speculation window (transactions
    beyond the final prefix never exceed ``2 * wave``). ``contention_fallback=False`` keeps
    every block on the workers however much it re-executes (the differential tests use it, so
    contended blocks exercise speculation, not the fallback). ``stall_timeout``: see
    ``STALL_TIMEOUT``. ``follow_hints``: under key affinity, a chunk waits for the transactions
    on other workers it shares a hint key with (``hinted_needs``). ``time_guard``: large blocks
    go to the workers only while they are measured faster than in-process (``WORKER_PLAN``); off
    with ``contention_fallback=False`` too (every block on the workers). ``cores``: the usable
    cores (default: this process's CPU affinity); with fewer than ``workers + 1`` the worker plan
    is measured late (see ``clocks``). ``before_round`` is a test hook called with the number of
    messages sent so far before each ``Round`` (the kill test uses it).
    """

    name = "parallel"
    #: Hand the announced next block's signature checks to the workers with a block's ``Setup``
    #: (they check one at a time whenever they would wait for a chunk), not only after it.
    precheck_in_block = True
    #: ``MIN_FOLLOW_SPEEDUP`` (tests set 0: follow the hints however little they promise).
    min_follow_speedup = MIN_FOLLOW_SPEEDUP
    #: Return an in-process block's root pending while the helpers hash it (``_root``).
    defer_root = True

    def __init__(
        self,
        workers: int = 2,
        wave: int = WAVE,
        contention_fallback: bool = True,
        affinity: str = "auto",
        stall_timeout: float = STALL_TIMEOUT,
        follow_hints: bool = True,
        time_guard: bool = True,
        cores: int | None = None,
    ) -> None:
        if wave < 1:
            raise ValueError("wave must be positive")
        if affinity not in ("auto", "on", "off"):
            raise ValueError("affinity must be 'auto', 'on' or 'off'")
        self.workers = max(1, int(workers))
        self.wave = wave
        self.pool = WorkerPool(self.workers, stall_timeout)
        self._specs: list[Any] = [None] * self.workers
        self.before_round: Callable[[int], None] | None = None
        #: Committed-state reads the coordinator served to workers (0 when they read LMDB).
        self.served_reads = 0
        #: ``Fetch`` round trips those reads took (workers batch a chunk's hinted keys in one).
        self.served_fetches = 0
        #: Written keys of in-process blocks whose root contribution the workers hashed.
        self.hashed_on_workers = 0
        #: Written keys of in-process blocks whose old values a worker hashed while they ran.
        self.old_hashed_ahead = 0
        #: The in-process block now running, when a worker hashes its old values (``old_hashes``).
        self._old_hashes: OldHashes | None = None
        #: The last block's root, while its helpers may still be hashing it (``PendingRoot``).
        self._pending_root: PendingRoot | None = None
        #: Counts worker replacements: a pending root whose workers were replaced hashes here.
        self.generation = 0
        #: Transactions of in-process blocks prepared with a worker's verdict from ``VerifyStream``.
        self.stream_verified = 0
        #: The next ``VerifyStream``'s estimate of checks over execution (the last one's measure).
        self._stream_ratio = RATIO_START
        #: Blocks whose workers stalled (``STALL_TIMEOUT``) and that then ran in-process.
        self.stalls = 0
        self.contention_fallback = contention_fallback
        self.affinity = affinity
        self.follow_hints = follow_hints
        self.time_guard = time_guard
        #: Recent seconds per transaction of the worker plan and of in-process blocks, by whether
        #: the block had signatures checked ahead (``_clock``). The workers are up before the
        #: first worker-plan block is timed (the in-process baseline boots them), so it counts.
        #: With fewer usable ``cores`` than the worker plan's processes (the workers and this
        #: one), its first measurement is deferred (``PlanClock.defer_plan``): they would share
        #: cores, and on the 2-core box it measured slower than in-process wherever it ran
        #: (10,000 signed transfers: 0.58-0.85x a block; perps and unsigned transfers likewise).
        self.cores = usable_cores() if cores is None else cores
        oversubscribed = self.cores < self.workers + 1
        self.clocks = {
            ahead: PlanClock(IN_PROCESS, count_first=True, defer_plan=oversubscribed) for ahead in (True, False)
        }
        #: Checks signatures for blocks (or block tails) run in-process: the worker processes
        #: are idle then, and signature checks release the GIL, so they still use every core.
        self._signatures = SignatureThreads(self.workers)
        #: Signature checks of the announced next block, on workers between blocks.
        self._prechecks = Prechecks()
        self._affinity_mode = False  # auto: the last blocks on the workers conflicted
        self._cost_per_execution = 0.0  # CPU seconds per execution on the workers, last block
        self._skip_parallel = 0
        self._next_skip = CONTENDED_SKIP
        self._last_abort_rate = 0.0
        self._judged = False  # the last block on the workers reached its sample size
        self._used_affinity = False  # the last block on the workers went by key affinity
        self._affinity_rejected = False  # ... or would have, but one worker would get too much

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def stall_timeout(self) -> float | None:
        return self.pool.stall_timeout

    @stall_timeout.setter
    def stall_timeout(self, seconds: float | None) -> None:
        self.pool.stall_timeout = seconds

    def worker_pids(self) -> list[int]:
        return self.pool.pids()

    def close(self) -> None:
        """Stop the worker processes (a later block starts fresh ones) and the prepare threads.
        A pending root is not waited for: read later, it is hashed here (``generation``)."""
        self._pending_root = None
        self.generation += 1
        self.pool.stop(graceful=m.encode(m.Shutdown()))
        self._specs = [None] * self.workers
        self._prechecks = Prechecks()
        self._signatures.close()

    def _restart(self) -> None:
        self.generation += 1
        self.pool.stop()
        self._specs = [None] * self.workers
        self._prechecks.forget_sent()

    def announce(self, runtime: Runtime, txs: Sequence[bytes]) -> None:
        """The next block will (most likely) hold ``txs``: its signatures are checked on the
        workers while they would otherwise wait during this block (see ``precheck``)."""
        self._prechecks.announce(runtime, txs)

    @property
    def prechecked(self) -> int:
        """Transactions run so far whose signature a worker had checked ahead of their block."""
        return self._prechecks.used

    def _take_prechecks(self, runtime: Runtime | None, txs: list[bytes]) -> set[bytes]:
        """Collect the workers' verdicts on this block's transactions (stopping their checks)."""
        try:
            for w in self._prechecks.collect(self.pool):
                self._specs[w] = None  # its Precheck raised before it held the spec
        except WorkerLost:
            self._restart()
        return self._prechecks.take(runtime, txs)

    def drop_prechecks(self) -> None:
        """Stop the workers' checks and forget the announcement (another executor runs next)."""
        self._settle_root()
        self._prechecks.upcoming = []
        self._take_prechecks(None, [])  # verdicts dropped

    def _send_prechecks(self, every_worker: bool = False) -> None:
        """Hand the announced next block to the idle workers (starting them if need be);
        ``every_worker``: to all of them (see ``Prechecks.send``)."""
        if not self._prechecks.upcoming:
            return
        try:
            if not self.pool.started:
                self.pool.start()
            self._prechecks.send(self.pool, self._specs, every_worker)
        except WorkerLost:
            self._restart()

    # -- execution ---------------------------------------------------------------------------

    def execute_block(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> BlockOutput:
        self._settle_root()
        started = time.perf_counter()
        txs = list(txs)
        verified = self._take_prechecks(runtime, txs)
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
            return self._in_process(runtime, txs, state, env, started, note, verified)
        guard = ""
        clock = self._clock(verified)
        if self.time_guard and self.contention_fallback and len(txs) >= clock.min_block:
            plan, guard = clock.choose(WORKER_PLAN, "time guard")
            if plan == IN_PROCESS:
                if not self.pool.started:  # measured as it runs in steady state: workers up
                    self._boot_workers(state)
                    started = time.perf_counter()
                return self._in_process(runtime, txs, state, env, started, guard + ": ran in-process", verified)
        assigned = self._assignment(runtime, txs)
        if assigned.rejected and self._contended() and not self._affinity_rejected:
            # By position the last block conflicted, and key affinity would load one worker (one
            # hot key) or serialise them: running it on the workers again would only repeat the loss.
            self._affinity_rejected = True
            self._after_block()
            self._skip_parallel = max(0, self._skip_parallel - 1)  # this block is one of them
            why = assigned.how.partition("(")[2].rstrip(")")
            note = f"a recent block re-executed {self._last_abort_rate:.0%} by position, and {why}"
            return self._in_process(runtime, txs, state, env, started, note + ": ran in-process", verified)
        notes: list[str] = []
        for _ in range(MAX_ATTEMPTS):
            try:
                if not self.pool.started:
                    self.pool.start()
                output = self._run(runtime, txs, state, env, started, assigned, verified)
            except WorkerStalled as exc:
                self._restart()
                self.stalls += 1
                self._pause_parallel()  # as after a contended block
                note = f"workers stalled ({exc}): replaced, block ran in-process"
                return self._in_process(runtime, txs, state, env, started, "; ".join([*notes, note]), measured=False)
            except WorkerLost as exc:
                notes.append(f"worker lost ({exc}); block re-run on fresh workers")
                self._restart()
                verified = set()  # keep the retry as plain as possible
                continue
            except WorkerFailed as exc:
                self._restart()
                # raises the genuine error, if any; not a measurement (it includes the failed attempt)
                self._in_process(runtime, txs, state, env, started, "", measured=False)
                raise InvariantViolation(f"parallel worker failed where sequential succeeded:\n{exc}") from None
            except BaseException:
                self._restart()  # workers are mid-block in an unknown state
                raise
            if not notes:  # a block that lost workers is not a measurement of the plan
                clock.record(WORKER_PLAN, len(txs), output.stats.seconds)
            output.stats.note = "; ".join(filter(None, [*notes, guard, output.stats.note]))
            self._after_block()
            return output
        note = "; ".join([*notes, "gave up: ran in-process"])
        return self._in_process(runtime, txs, state, env, started, note, measured=False)

    def _contended(self) -> bool:
        """The last block on the workers was judged and re-executed too much."""
        return self.contention_fallback and self._judged and self._last_abort_rate > CONTENDED_ABORT_RATE

    def _after_block(self) -> None:
        """Pause parallel execution after a contended block (backing off while probes fail)."""
        if not (self.contention_fallback and self._judged):
            return
        if self._last_abort_rate > CONTENDED_ABORT_RATE:
            if self._affinity_mode and not (self._used_affinity or self._affinity_rejected):
                return  # by position it conflicted: the next block tries key affinity, no pause
            self._pause_parallel()
        else:
            self._next_skip = CONTENDED_SKIP

    def _pause_parallel(self) -> None:
        """Run the next blocks in-process, a pause twice as long as the last (up to ``MAX_SKIP``)."""
        self._skip_parallel = self._next_skip
        self._next_skip = min(MAX_SKIP, 2 * self._next_skip)

    def execute_in_process(
        self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv, note: str = ""
    ) -> BlockOutput:
        """``sequential``'s result computed here, one transaction after another, while the
        workers check the announced next block's signatures (and this block's were checked
        ahead where announced): the ``adaptive`` executor's sequential plan. The workers are
        started first if they will be needed (checks, hashing: ``verify_stream``, ``precheck``,
        ``_root``), outside ``stats.seconds`` (a one-off cost that would make the plan look slow
        to ``adaptive``'s measurements)."""
        self._settle_root()
        txs = list(txs)
        streams = VerifyStream.worth(runtime, len(txs))
        if not self.pool.started and (self._prechecks.upcoming or len(txs) >= HASH_ON_WORKERS or streams):
            self._boot_workers(state)
        started = time.perf_counter()
        verified = self._take_prechecks(runtime, txs)
        return self._in_process(runtime, txs, state, env, started, note, verified)

    def _clock(self, verified: set[bytes]) -> PlanClock:
        """The time guard's measurements for a block with (or without) signatures checked ahead."""
        return self.clocks[bool(verified)]

    def start(self, state: StateView) -> None:
        """Start the worker processes now (a node at start-up, ``run`` before its first block)
        rather than inside the first block that needs them: spawning takes ~0.1-0.5 s a process,
        which that block's time would otherwise show. A failure to start (no processes left, a
        worker that died booting) is logged and left to the first block, which retries."""
        if self.pool.started:
            return
        try:
            self._boot_workers(state)
        except Exception as exc:
            log.warning("parallel workers not started (%s): the first block tries again", exc)
            self._restart()

    def _boot_workers(self, state: StateView) -> None:
        """Start the worker processes and wait until each has booted (a round trip each)."""
        try:
            self.pool.start()
            for w in range(self.workers):
                self.pool.send(w, m.encode(m.Collect()))
            self._collect(state)
        except (WorkerLost, WorkerFailed):
            self._restart()

    def _in_process(
        self,
        runtime: Runtime,
        txs: list[bytes],
        state: StateView,
        env: BlockEnv,
        started: float,
        note: str,
        verified: set[bytes] | None = None,
        measured: bool = True,
    ) -> BlockOutput:
        """Run the block here (``_execute_here``); ``measured``: its time counts as the
        in-process plan's for the time guard (not after stalls or lost workers)."""
        verified = verified or set()
        clock = self._clock(verified)
        output, threads = self._execute_here(runtime, txs, state, env, verified)
        if verified:
            threads = ", ".join(filter(None, [f"{len(verified)} signatures checked ahead by the workers", threads]))
        if note and threads:
            note += f"; {threads}"
        elif threads:
            note = threads
        output.stats = ExecStats(
            self.name,
            self.workers,
            executions=len(txs),
            rounds=1,
            seconds=time.perf_counter() - started,
            worker_busy=[0.0] * self.workers,
            note=note,
        )
        if measured:
            seconds, pending = output.stats.seconds, self._pending_root
            if output.root_pending and pending is not None:
                # the plan's time includes what is left of the root once the caller reads it
                pending.on_done = lambda took: clock.record(IN_PROCESS, len(txs), seconds + took)
            else:
                clock.record(IN_PROCESS, len(txs), seconds)
        return output

    def _execute_here(
        self,
        runtime: Runtime,
        txs: list[bytes],
        state: StateView,
        env: BlockEnv,
        verified: set[bytes],
        overlay: dict[bytes, bytes | None] | None = None,
    ) -> tuple[BlockOutput, str]:
        """``execute_prepared`` of ``txs`` in this process (a whole block, or the tail after a
        bail-out: ``overlay``), their signatures checked on the workers as they run or on the
        threads first; returns the output and a note on where the signatures were checked."""
        stream = self._verify_stream(runtime, txs, verified)
        if stream is None:
            prepared: Iterable[Any] = self._signatures.prepared(runtime, txs, verified)  # on threads, first
            where = self._signatures.note(runtime, len(txs) - len(verified))
        else:
            prepared = stream
            where = f"signatures checked by {len(stream.helpers)} worker process(es) and here as the block ran"
        self._send_prechecks()  # the workers check the next block's once idle
        if overlay is None:
            overlay = {}
            self._old_hashes = self._old_hashes_for(state, overlay, len(txs))
            if self._old_hashes is not None:
                prepared = self._old_hashes.feed(prepared)
        try:
            output = execute_prepared(runtime, prepared, state, env, self._root, overlay)
        finally:
            self._old_hashes = None
            if stream is not None:
                stream.abandon()
                self.stream_verified += stream.checked
                self._stream_ratio = stream.ratio()
        return output, where

    def _verify_stream(self, runtime: Runtime, txs: list[bytes], verified: set[bytes]) -> VerifyStream | None:
        """A block run here checks its signatures on the workers as it runs, when they are up
        and the block is worth it (``verify_stream``); ``None``: the threads check them first."""
        if not self.pool.started or not VerifyStream.worth(runtime, len(txs)):
            return None  # cheap test first: building a stream lists every unchecked transaction
        stream = VerifyStream(self.pool, self._specs, self._restart, runtime, txs, verified, self._stream_ratio)
        if not VerifyStream.worth(runtime, stream.unchecked):
            return None
        try:
            stream.send()
        except WorkerLost:
            self._restart()  # some batches may be out: their replies must never be read later
            return None
        return stream

    def _old_hashes_for(self, state: StateView, overlay: dict, n_txs: int) -> OldHashes | None:
        """An ``OldHashes`` for a block of ``n_txs`` about to run here, when its write set will
        likely be hashed with the workers (``_root``)."""
        lmdb_path = _lmdb_path(state)
        if lmdb_path is None or self.workers < 2 or not self.pool.started or n_txs < HASH_ON_WORKERS // 2:
            return None
        accumulator = state.accumulator.to_bytes(commitment.LATTICE_BYTES, "little")
        height = getattr(state, "height", None)
        return OldHashes(self.pool, 0, lmdb_path, height, accumulator, overlay, HASH_ON_WORKERS // 2)

    def _root(self, write_set: dict[bytes, bytes | None], state: StateView) -> tuple[int, bytes] | RootFn:
        """``sequential.finalize`` of a block run here, its hashing split between this process
        and idle workers (they read the old values from LMDB themselves) where that pays: a
        large write set on an LMDB store with workers running. The helpers are one worker per
        core beside this one, the same ones that check the next block's signatures
        (``Prechecks.send``): a worker takes a message before going on with its checks, so the
        hashing gets that core to itself (another worker would share it with the checks, at
        half speed). A share a worker cannot hash (its store view does not match) is hashed here.

        With ``defer_root`` the helpers get most of it, and the root is returned pending
        (``PendingRoot``): the caller writes the block's state to LMDB while they hash, and this
        process hashes what is left once the write is done (``DEFERRED_SHARE_HERE`` of the keys
        whose old values were hashed ahead, plus the keys first written after ``old_hashes``'
        last message; nothing of a plain split). The write and the helpers' hashing then overlap
        instead of following each other (measurements: ``DEFERRED_SHARE_HERE``).
        Without it, this process hashes a share as large as each helper's while they hash.
        The time guard's in-process clock counts the root's residual (``PendingRoot.on_done``):
        the plan is timed by what it costs on the critical path, the LMDB write aside.
        """
        lmdb_path = _lmdb_path(state)
        if lmdb_path is None or len(write_set) < HASH_ON_WORKERS or self.workers < 2:
            return finalize(write_set, state)
        old = self._old_hashes
        finish = None
        if old is not None and old.ok and old.sent and old.overlay is write_set and self.pool.started:
            finish = self._start_with_old(old, write_set, state)
        if finish is None and self.pool.started:
            finish = self._start_split(lmdb_path, write_set, state)
        if finish is None:
            return finalize(write_set, state)
        if not self.defer_root:
            return self._finish_root(finish, write_set, state)
        self._pending_root = PendingRoot(self, finish, write_set, state)
        return self._pending_root

    def _start_with_old(
        self, old: OldHashes, write_set: dict[bytes, bytes | None], state: StateView
    ) -> Callable[[], int | None] | None:
        """Send ``old``'s worker the new values of the keys whose old values it hashed during
        the block (see ``old_hashes``); returns the function that hashes the rest here and
        combines (``None`` from it, or here: the caller hashes as usual)."""
        theirs, mine, rest = old.split(DEFERRED_SHARE_HERE if self.defer_root else None)
        try:
            message = m.Hash(old.lmdb_path, old.height, old.accumulator, {k: write_set[k] for k in theirs}, True)
            self.pool.send(old.worker, m.encode(message))
        except WorkerLost:
            self._restart()
            return None

        def finish() -> int | None:
            try:
                own = commitment.write_delta(((k, write_set[k]) for k in rest), state.get)
                own += commitment.sum_of(mine, write_set.get)
                reply = self._collect(state, [old.worker])[old.worker]
            except (WorkerLost, WorkerFailed):
                self._restart()
                return None
            if not isinstance(reply, m.Hashed):
                raise InvariantViolation(f"expected Hashed, got {type(reply).__name__}")
            if reply.delta is None:
                return None
            self.hashed_on_workers += len(theirs)
            self.old_hashed_ahead += old.sent
            return commitment.combine(state.accumulator, own, int.from_bytes(reply.delta, "little"))

        return finish

    def _start_split(
        self, lmdb_path: str, write_set: dict[bytes, bytes | None], state: StateView
    ) -> Callable[[], int | None] | None:
        """Send each helper its share of the write set; returns the function that hashes this
        process's share (none when the root is deferred) and combines."""
        helpers = list(range(helper_count(self.workers)))
        items = list(write_set.items())
        n = len(helpers) + (0 if self.defer_root else 1)
        shares = [dict(items[i::n]) for i in range(n)]
        own = {} if self.defer_root else shares.pop()
        accumulator = state.accumulator.to_bytes(commitment.LATTICE_BYTES, "little")
        height = getattr(state, "height", None)
        try:
            for w, share in zip(helpers, shares, strict=True):
                self.pool.send(w, m.encode(m.Hash(lmdb_path, height, accumulator, share)))
        except WorkerLost:
            self._restart()
            return None

        def finish() -> int | None:
            try:
                deltas = [commitment.write_delta(own.items(), state.get)]
                replies = self._collect(state, helpers)
            except (WorkerLost, WorkerFailed):
                self._restart()
                return None
            for w, share in zip(helpers, shares, strict=True):
                reply = replies[w]
                if not isinstance(reply, m.Hashed):
                    raise InvariantViolation(f"expected Hashed, got {type(reply).__name__}")
                if reply.delta is None:
                    deltas.append(commitment.write_delta(share.items(), state.get))
                else:
                    deltas.append(int.from_bytes(reply.delta, "little"))
                    self.hashed_on_workers += len(share)
            return commitment.combine(state.accumulator, *deltas)

        return finish

    def _finish_root(
        self, finish: Callable[[], int | None], write_set: dict[bytes, bytes | None], state: StateView
    ) -> tuple[int, bytes]:
        """(accumulator, root) from ``finish``, or hashed here when the workers could not."""
        combined = finish()
        if combined is None:
            return finalize(write_set, state)
        return combined, commitment.root_of(combined)

    def _settle_root(self) -> None:
        """Finish a pending root before the workers get other messages (its reply comes first)."""
        pending, self._pending_root = self._pending_root, None
        if pending is not None:
            pending.drain()

    def _run(
        self,
        runtime: Runtime,
        txs: list[bytes],
        state: StateView,
        env: BlockEnv,
        started: float,
        assigned: Assignment,
        verified: set[bytes],
    ) -> BlockOutput:
        n, n_workers, pool = len(txs), self.workers, self.pool
        mark = time.perf_counter()
        owner, wave = assigned.owner, assigned.wave
        pipe = assigned.pipeline
        if pipe is None or pipe.messages:  # a retry after a lost worker starts afresh
            pipe = Pipeline(n, n_workers, wave, owner, assigned.needs)
        self._setup(runtime.spec, txs, pipe, state, env, verified)
        if self.precheck_in_block:
            # The next block's signatures fill the workers' waits for their next chunk: the
            # coordinator only waits meanwhile, so every worker checks a share.
            self._send_prechecks(every_worker=True)
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
                a, b, foreign = plan
                pool.send(w, m.encode(m.Round(pipe.lo, a, b, foreign)))
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
        self._used_affinity = owner is not None
        self._affinity_rejected = assigned.rejected
        for w in range(n_workers):
            pool.send(w, m.encode(m.Finish(upto, upto == n, pipe.undelivered(w))))
        finished: list[m.Finished] = self._collect(state)
        mark = time.perf_counter()
        self._send_prechecks()  # the workers are idle until the next block
        if any(f.raised for f in finished):
            # A final incarnation raised: sequential raises it too; let it do so for real.
            self._in_process(runtime, txs, state, env, started, "", measured=False)
            raise InvariantViolation("a final transaction raised in a worker but not in sequential")
        write_set: dict[bytes, bytes | None] = {}
        for f in finished:
            write_set.update(m.writes_decoder.decode(f.writes))
        receipts = _merge_receipts(finished, pipe.own, upto)
        busy = sum(f.busy for f in finished)
        self._cost_per_execution = busy / max(1, sum(f.executions for f in finished))
        if self.affinity == "auto":
            waste = self._last_abort_rate * self._cost_per_execution  # seconds per transaction
            self._affinity_mode = waste >= (AFFINITY_OFF if owner is not None else AFFINITY_ON)
        note = f"{assigned.how}, window of {2 * wave} txs, chunks of {pipe.chunk}, {n_workers} worker process(es)"
        if verified:
            note += f", {len(verified)} signatures checked ahead"
        if upto == n:
            accumulator = commitment.combine(
                state.accumulator, *(int.from_bytes(f.accumulator_delta, "little") for f in finished)
            )
        else:  # bailed out: the final prefix [0, upto) came from the workers, the rest runs here
            rest, threads = self._execute_here(runtime, txs[upto:], state, env, verified, overlay=write_set)
            receipts.extend(rest.receipts)
            accumulator = rest.accumulator
            threads = f" ({threads})" if threads else ""
            note = f"{aborts} of {executions} executions aborted: ran txs {upto}..{n - 1} in-process{threads}; {note}"
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

    def _assignment(self, runtime: Runtime, txs: list[bytes]) -> Assignment:
        """How this block goes to the workers: by key affinity when it is on and balances."""
        use = self.affinity == "on" or (self.affinity == "auto" and self._affinity_mode)
        if not use or self.workers < 2:
            return Assignment(None, self.wave, "by position")
        peeked = peek_all(runtime, txs)
        owner = affinity_owner(runtime, txs, self.workers, peeked)
        if owner is None:
            return Assignment(None, self.wave, "by position (key affinity would load one worker)", rejected=True)
        largest = max(1, self.wave // self.workers)
        chunk = largest
        if self._cost_per_execution > 0:
            chunk = max(MIN_CHUNK, min(largest, round(CHUNK_SECONDS / self._cost_per_execution)))
        wave = chunk * self.workers
        if not self.follow_hints:
            return Assignment(owner, wave, "by key affinity")
        needs = hinted_needs(runtime, peeked, owner)
        pipe = Pipeline(len(txs), self.workers, wave, owner, needs)
        message_cost = MESSAGE_SECONDS / self._cost_per_execution if self._cost_per_execution > 0 else 0.0
        modelled = len(txs) / max(1.0, pipe.makespan(message_cost))
        if modelled < self.min_follow_speedup:
            how = f"by position (key affinity would wait too much: modelled {modelled:.2f}x)"
            return Assignment(None, self.wave, how, rejected=True)
        how = f"by key affinity, following hints (modelled {modelled:.2f}x)"
        return Assignment(owner, wave, how, needs=needs, pipeline=pipe)

    def _setup(
        self, spec: Any, txs: list[bytes], pipe: Pipeline, state: StateView, env: BlockEnv, verified: set[bytes]
    ) -> None:
        lmdb_path = _lmdb_path(state)
        height = getattr(state, "height", None) if lmdb_path is not None else None
        accumulator = state.accumulator.to_bytes(commitment.LATTICE_BYTES, "little")
        for w in range(self.workers):
            spec_bytes = None if self._specs[w] == spec else pickle.dumps(spec)
            own = pipe.own[w]
            raws = [txs[i] for i in own]
            checked = checked_flags(raws, verified)
            setup = m.Setup(
                w, self.workers, len(txs), env, spec_bytes, lmdb_path, height, accumulator, own, raws, checked
            )
            self.pool.send(w, m.encode(setup))
            self._specs[w] = spec

    def _receive(self, state: StateView) -> tuple[int, Any]:
        """The next reply from any worker, serving committed-state reads meanwhile."""
        while True:
            for w in self.pool.ready(list(range(self.workers))):
                msg = self._reply(w, state)
                if msg is not None:
                    return w, msg

    def _collect(self, state: StateView, workers: Sequence[int] | None = None) -> list[Any]:
        """One reply per worker (of ``workers``, default all; ``None`` for the others), serving
        their committed-state reads meanwhile."""
        replies: list[Any] = [None] * self.workers
        waiting = list(range(self.workers)) if workers is None else list(workers)
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


def _merge_receipts(finished: list[m.Finished], own: list[list[int]], upto: int) -> list[Receipt]:
    """Put the workers' receipt lists (each in its own transactions' order) back in block order,
    transactions below ``upto`` only."""
    lists = [pickle.loads(f.receipts) if f.receipts_pickled else _receipts_decoder.decode(f.receipts) for f in finished]
    receipts: list[Any] = [None] * upto
    for idxs, got in zip(own, lists, strict=True):
        for txn_idx, receipt in zip(idxs, got, strict=False):  # ``got`` stops at upto
            receipts[txn_idx] = receipt
    return receipts

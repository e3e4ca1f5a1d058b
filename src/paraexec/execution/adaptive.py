"""The adaptive executor: per block, pick the plan that cannot lose, from cheap signals.

Every plan returns the sequential result, so the choice only decides speed; the adaptive
executor's job is never to pick a plan slower than ``sequential``. It decides before running
anything, from signals that cost microseconds, in this order (first match wins):

    1. workers < 2                                 -> sequential  (nothing to run in parallel;
                                                      the signatures still go to the worker, below)
    2. block smaller than ``min_block``            -> sequential  (fixed costs of a parallel
                                                      round exceed the work of a small block)
    3. recent blocks conflicting: the last ``blockstm`` block's re-executions per transaction
       (averaged with the ones before) exceeded ``max_reexec``, or the last sample (step 4)
       showed contention                           -> sequential  (speculation is wasted work);
       one block in ``probe_every`` re-checks with a sample instead, and only goes back to
       speculation when it shows half the contention of the limit (no blind, losing probes).
       ``parallel``'s re-executions are not used: it answers contention itself (key
       affinity, bail-out, pauses), so step 7 judges it by its measured speed
    4. contention sample (when there is no re-execution history, so for every ``parallel``
       block): of the first ``sample`` txs, the fraction whose hint keys (sender nonce,
       balances, market) meet an earlier one's from another affinity group (``parallel``
       runs a group on one worker, in order), or everything when one group dominates the
       sample; above ``max_sample_conflict``      -> sequential
    5. the peeked transactions all declare access lists and threads run Python in parallel
       (free-threaded build)                       -> access-list  (no speculation at all);
       on a GIL build access-list runs levels in one thread or ships them to processes, which
       measured 0.8-0.9x (signatures pre-verified) and 0.8-1.13x (end to end) on the shared
       2-core box, below ``parallel`` (1.33x end to end in the same run), so it is not picked
    6. otherwise the speculative plan that scales on this build: ``parallel`` (processes) on a
       GIL build, ``blockstm`` (threads) on a free-threaded one, whichever is registered;
       none                                        -> sequential
    7. measured speed: the plan of steps 5-6 runs only while its recent seconds per tx (its
       own ``ExecStats.seconds``, blocks of ``min_block`` txs or more, first block of an
       executor left out: it starts workers) beat sequential's by ``min_gain``; otherwise
                                                   -> sequential. Sequential is measured first
       (that block costs nothing against sequential), then the plan; one large block in
       ``probe_every`` re-measures the plan not in use, so a machine that gets busier (or
       quieter) is followed; while re-measurements keep confirming that the plan loses, the
       wait between them doubles (up to ``8 * probe_every``), so a losing plan costs little.
       This is what keeps a plan that wins elsewhere from losing here, e.g. worker processes
       on a 2-core box shared with other work (module ``plan_clock``, which ``parallel`` also
       uses to choose between its worker plan and running a block in-process).

When the plan is ``sequential`` and the runtime checks signatures, the transactions still run
one after another, but their signatures are checked first on ``workers`` threads (module
``prepare``: PyNaCl releases the GIL), so a conflicting block uses every core where it can.
With ``parallel`` available and the next block announced (``announce``), the sequential plan
runs inside the ``parallel`` executor (``execute_in_process``): its idle worker processes check
the next block's signatures while this block executes (``parallel.precheck``).

Peeking uses the runtime's ``peek`` (decode without the signature check, a few us) when it
has one. The choice and its reason go into ``ExecStats.note`` ("parallel: ..."), and
``history`` keeps the last choices for tests and reports. The executors it delegates to are
created on first use and kept for the executor's lifetime (worker processes start once).

Thresholds are parameters; the defaults are conservative guesses for 2 workers (with P
workers, speculation wins roughly while (1 + re-executions per tx) / P stays well below 1)
and should be re-tuned from ``paraexec bench`` results.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .access_list import declared_access, free_threaded
from .contract import BlockEnv, BlockOutput, Executor, Runtime, StateView
from .plan_clock import MAX_PROBE_FACTOR, MIN_BLOCK, MIN_GAIN, PROBE_EVERY, PlanClock
from .prepare import SignatureThreads
from .registry import executor_names, make_executor, register

MAX_REEXEC = 0.25
MAX_SAMPLE_CONFLICT = 0.5
SAMPLE = 64
DECLARED_PEEK = 4
SPECULATIVE = ("parallel", "blockstm")


@dataclass(frozen=True)
class Choice:
    """The plan for one block and why."""

    executor: str
    reason: str


class AdaptiveExecutor:
    """See module docstring."""

    name = "adaptive"

    def __init__(
        self,
        workers: int = 1,
        *,
        min_block: int = MIN_BLOCK,
        max_reexec: float = MAX_REEXEC,
        max_sample_conflict: float = MAX_SAMPLE_CONFLICT,
        sample: int = SAMPLE,
        probe_every: int = PROBE_EVERY,
        min_gain: float = MIN_GAIN,
        threads_scale: bool | None = None,
        available: Sequence[str] | None = None,
        factory: Callable[[str, int], Executor] = make_executor,
    ) -> None:
        self.workers = max(1, workers)
        self.max_reexec = max_reexec
        self.max_sample_conflict = max_sample_conflict
        self.sample = sample
        self.probe_every = probe_every
        self.threads_scale = free_threaded() if threads_scale is None else threads_scale
        self._available = list(available) if available is not None else None
        self._factory = factory
        self._executors: dict[str, Executor] = {}
        self.recent_reexec: float | None = None  # EMA of re-executions per tx, speculative plans only
        self.contended: str | None = None  # why recent blocks count as conflicting, if they do
        self._contended_blocks = 0
        #: step 7: recent seconds per tx of each plan against sequential's (an executor's first
        #: block is not counted unless it is ``sequential``: it includes starting workers; the
        #: sequential plan starts ``parallel``'s workers before its timed part)
        self.clock = PlanClock("sequential", min_block, probe_every, min_gain, MAX_PROBE_FACTOR)
        self.history: list[Choice] = []
        self._signatures = SignatureThreads(self.workers)

    @property
    def min_block(self) -> int:
        """Blocks smaller than this run ``sequential`` (step 2) and are not timed (step 7): one
        threshold, kept by the clock, so that lowering it lowers both."""
        return self.clock.min_block

    @min_block.setter
    def min_block(self, value: int) -> None:
        self.clock.min_block = value

    # -- deciding -----------------------------------------------------------------------------

    def available(self) -> list[str]:
        if self._available is None:
            self._available = [n for n in executor_names() if n != self.name]
        return self._available

    def choose(self, runtime: Runtime, txs: Sequence[bytes]) -> Choice:
        """The plan for ``txs`` (see module docstring): the signals' plan, checked against speed."""
        plan = self._by_signals(runtime, txs)
        if plan.executor == "sequential":
            return plan
        return self._by_speed(plan)

    def _by_speed(self, plan: Choice) -> Choice:
        """Step 7: keep ``plan`` only while it is measured faster than sequential (``PlanClock``)."""
        return Choice(*self.clock.choose(plan.executor, plan.reason))

    def _by_signals(self, runtime: Runtime, txs: Sequence[bytes]) -> Choice:
        """Steps 1-6 of the module docstring; records contention-probe bookkeeping."""
        n = len(txs)
        if self.workers < 2:
            return Choice("sequential", "1 worker")
        if n < self.min_block:
            return Choice("sequential", f"small block ({n} < {self.min_block} txs)")
        peek: Callable[[bytes], Any] = getattr(runtime, "peek", runtime.prepare)
        probing = False
        if self.contended is not None:
            self._contended_blocks += 1
            if self._contended_blocks % self.probe_every:
                return Choice("sequential", f"recent blocks conflicting ({self.contended})")
            probing = True  # re-check with a sample, with hysteresis: only clear contention passes
        if self.recent_reexec is None or probing:
            window = min(n, self.sample, max(16, n // 16))
            try:
                conflict = sample_conflict(runtime, [peek(raw) for raw in txs[:window]])
            except Exception:  # a hint that raises must not stop the block: assume the worst
                conflict = 1.0
            limit = self.max_sample_conflict / 2 if probing else self.max_sample_conflict
            if conflict > limit:
                self.contended = f"{conflict:.0%} of a {window}-tx sample share keys"
                return Choice("sequential", f"conflicting block: {self.contended}")
            if probing:  # contention is gone: forget the old history
                self.recent_reexec = None
                self.contended = None
                self._contended_blocks = 0
        available = self.available()
        step = max(1, n // DECLARED_PEEK)
        peeked = [peek(txs[i]) for i in range(0, n, step)][:DECLARED_PEEK]
        # a transaction that failed its stateless checks "declares" nothing: it says nothing
        # about whether the block's valid ones declare their keys
        valid = [p for p in peeked if getattr(p, "error", None) is None]
        all_declared = bool(valid) and all(d is not None for d in declared_access(runtime, valid))
        speculative = self._speculative_plan(available)
        if all_declared and self.threads_scale and "access-list" in available:
            return Choice("access-list", "declared access lists: scheduled without speculation")
        if speculative is not None:
            why = "declared, but on a GIL build processes with speculation beat access-list; " if all_declared else ""
            return Choice(speculative, f"{why}large block, low contention")
        return Choice("sequential", "no executor that scales on this build is registered")

    def _speculative_plan(self, available: Sequence[str]) -> str | None:
        order = ("blockstm", "parallel") if self.threads_scale else ("parallel",)
        return next((name for name in order if name in available), None)

    # -- running ------------------------------------------------------------------------------

    def executor(self, name: str) -> Executor:
        """The long-lived executor ``name`` (created on first use)."""
        ex = self._executors.get(name)
        if ex is None:
            ex = self._executors[name] = self._factory(name, self.workers if name != "sequential" else 1)
        return ex

    def execute_block(self, runtime: Runtime, txs: Sequence[bytes], state: StateView, env: BlockEnv) -> BlockOutput:
        started = time.perf_counter()
        choice = self.choose(runtime, txs)
        self.history.append(choice)
        del self.history[:-64]
        decided = time.perf_counter() - started
        ran = time.perf_counter()
        threads = ""
        parallel = self._parallel()
        if choice.executor == "sequential" and parallel is not None:
            # one transaction after another here; this block's signatures were checked ahead by
            # the idle worker processes (or are checked on threads), the next block's are now
            output = parallel.execute_in_process(runtime, txs, state, env)
        elif choice.executor == "sequential" and self._signatures.used(runtime, len(txs)):
            output = self._signatures.execute_in_order(runtime, txs, state, env)
            threads = f"; {self._signatures.note(runtime, len(txs))}"
        else:
            if parallel is not None and choice.executor != "parallel":
                parallel.drop_prechecks()  # another plan uses the cores now
            output = self.executor(choice.executor).execute_block(runtime, txs, state, env)
        wall = time.perf_counter() - ran
        inner = output.stats
        if choice.executor in SPECULATIVE and choice.executor != "parallel" and txs:
            # ``parallel`` answers contention itself (key affinity, bail-out, pauses): its
            # re-executions say little about its speed, which step 7 measures directly.
            self._observe(inner.re_executions(len(txs)) / len(txs))
        self.clock.record(choice.executor, len(txs), inner.seconds if inner.seconds > 0 else wall)
        note = f"{choice.executor}: {choice.reason} (decided in {1e6 * decided:.0f} us){threads}"
        if inner.note:
            note += f"; {inner.note}"
        output.stats = dataclasses.replace(inner, executor=self.name, seconds=time.perf_counter() - started, note=note)
        return output

    def start(self, state: StateView) -> None:
        """Start the ``parallel`` executor's workers now (see ``ParallelExecutor.start``)."""
        parallel = self._parallel()
        if parallel is not None:
            parallel.start(state)

    def announce(self, runtime: Runtime, txs: Sequence[bytes]) -> None:
        """The next block's transactions (``Chain.produce_block``'s ``upcoming``): handed to
        the ``parallel`` executor, whose idle workers check their signatures ahead."""
        parallel = self._parallel()
        if parallel is not None:
            parallel.announce(runtime, txs)

    def _parallel(self) -> Any:
        """The ``parallel`` executor when it is available: its worker processes also check
        signatures for the sequential plan, with one worker too (as ``parallel`` x1 does: the
        coordinator executes while the worker checks; before, ``adaptive`` x1 ran plain
        sequential at 1.0x beside ``parallel`` x1's 1.7x end to end)."""
        if "parallel" not in self.available():
            return None
        parallel = self.executor("parallel")
        return parallel if hasattr(parallel, "execute_in_process") else None

    def _observe(self, reexec_per_tx: float) -> None:
        """Fold one speculative block's re-executions per tx into the recent average."""
        old = self.recent_reexec
        self.recent_reexec = reexec_per_tx if old is None else (old + reexec_per_tx) / 2
        self._contended_blocks = 0
        self.contended = None
        if self.recent_reexec > self.max_reexec:
            self.contended = f"{self.recent_reexec:.2f} re-executions/tx"

    def close(self) -> None:
        for ex in self._executors.values():
            ex.close()
        self._executors.clear()
        self._signatures.close()


#: ``sample_conflict``: a sample whose largest affinity group holds more than this share cannot
#: be split across workers (one hot market), whatever its keys.
DOMINANT_GROUP = 0.8
_MIXED = object()


def sample_conflict(runtime: Runtime, prepared: Sequence[Any]) -> float:
    """Fraction of ``prepared`` whose hint keys meet the keys of an earlier one that would run on
    another worker.

    With the runtime's ``affinity_key`` (what the ``parallel`` executor assigns workers by),
    transactions of one affinity group run in order on one worker and do not conflict with each
    other: a transaction counts when one of its keys was touched by another group; and a sample
    whose largest group holds more than ``DOMINANT_GROUP`` of it counts as fully conflicting
    (one worker would get everything). Without ``affinity_key`` every transaction is its own
    group: any shared key counts. A transaction without an affinity key (it failed its
    stateless checks: it touches no key) is left out: a block of malformed transactions is not
    a conflicting one.
    """
    if not prepared:
        return 0.0
    key_of = getattr(runtime, "affinity_key", None)
    groups: Counter[Any] = Counter()
    touched: dict[bytes, Any] = {}  # hint key -> the one group that touched it, or _MIXED
    hits = 0
    counted = 0
    for p in prepared:
        group = key_of(p) if key_of is not None else object()
        if group is None:  # failed its stateless checks: touches no key, runs anywhere
            continue
        counted += 1
        groups[group] += 1
        keys = runtime.hint_keys(p)
        if any(touched.get(k, group) != group for k in keys):  # _MIXED equals no group
            hits += 1
        for k in keys:
            touched[k] = group if touched.get(k, group) == group else _MIXED
    if not counted:
        return 0.0
    if key_of is not None and groups.most_common(1)[0][1] > DOMINANT_GROUP * counted:
        return 1.0
    return hits / counted


register("adaptive", AdaptiveExecutor)

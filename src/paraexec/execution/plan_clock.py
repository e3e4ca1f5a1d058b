"""Keep a plan only while it is measured faster than a baseline plan.

Every plan returns the sequential result, so choosing one only decides speed, and speed
depends on the machine: worker processes that win on an idle 16-core box lose on a 2-core box
shared with other work, or under a profiler that slows them down. Signals computed before a
block runs (contention samples, re-execution rates) cannot see that; the block's own measured
seconds can. Two executors choose this way: ``adaptive`` (a speculative plan against
``sequential``) and ``parallel`` (its worker plan against running the block in-process).

The rule (``choose``): measure the baseline first (that block costs nothing against it), then
the plan (its first measured block is not counted when it starts processes); keep the plan
while its recent seconds per transaction beat the baseline's by ``min_gain`` (``count_first``:
the plan's first block counts too, for a caller that started its processes before timing it). Every
``probe_every`` comparisons, re-measure the plan not in use, so a machine that gets busier or
quieter is followed; while re-measurements keep confirming that the plan loses, the wait
between them doubles (up to ``max_probe_factor * probe_every``), so a losing plan costs one
block in many. Blocks under ``min_block`` transactions are neither measured nor decided: fixed
costs dominate them.

``defer_plan``: the plan is expected to lose here (``parallel``'s worker plan on a machine with
fewer cores than its processes), so it is first measured only at the first re-measurement,
``probe_every`` comparisons after the baseline, rather than on the block after it. Measuring a
losing plan costs a whole block at its speed; a long-running node still measures it (and keeps
it if it wins), a short run may never try it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_BLOCK = 500
PROBE_EVERY = 16
MAX_PROBE_FACTOR = 8
MIN_GAIN = 1.05


@dataclass
class PlanClock:
    """Recent seconds per transaction of each plan, and the choice they imply (module docstring)."""

    baseline: str
    min_block: int = MIN_BLOCK
    probe_every: int = PROBE_EVERY
    min_gain: float = MIN_GAIN
    max_probe_factor: int = MAX_PROBE_FACTOR
    count_first: bool = False
    defer_plan: bool = False
    #: recent average per plan (each new block counts half), blocks of ``min_block`` or more
    seconds_per_tx: dict[str, float] = field(default_factory=dict)
    #: blocks run per plan, measured or not
    runs: dict[str, int] = field(default_factory=dict)
    _since_probe: int = 0  # comparisons since the last re-measurement
    _probe_interval: int = 0  # doubles while re-measurements confirm a loss

    def __post_init__(self) -> None:
        self._probe_interval = self.probe_every

    def choose(self, plan: str, reason: str) -> tuple[str, str]:
        """``plan`` or the baseline for the next block, and why (``reason``: why ``plan`` was wanted)."""
        base = self.baseline
        self._since_probe += 1
        refresh = self._since_probe >= self._probe_interval
        if refresh:
            self._since_probe = 0
        theirs = self.seconds_per_tx.get(base)
        mine = self.seconds_per_tx.get(plan)
        if theirs is None or (mine is None and not self.defer_plan):
            self._since_probe = 0  # the next re-measurement counts from the first comparison
        if theirs is None:
            return base, f"measuring the {base} baseline before {plan} ({reason})"
        if mine is None:
            if self.defer_plan and not refresh:
                return (
                    base,
                    f"{plan} expected to lose here, first measured in {self._probe_interval - self._since_probe} block(s)",
                )
            return plan, f"{reason}; measuring it"
        gain = theirs / mine
        if gain >= self.min_gain:
            self._probe_interval = self.probe_every
            if refresh:
                return base, f"re-measuring the {base} baseline ({plan} was {gain:.2f}x)"
            return plan, f"{reason}; measured {gain:.2f}x of {base}"
        if refresh:  # each re-measurement of a losing plan doubles the wait for the next one
            self._probe_interval = min(self.max_probe_factor * self.probe_every, 2 * self._probe_interval)
            return plan, f"{reason}; re-measuring it (was {gain:.2f}x of {base})"
        return base, f"{plan} measured {gain:.2f}x of {base} on recent blocks"

    def record(self, plan: str, n_txs: int, seconds: float) -> None:
        """Fold a block's seconds per tx into ``plan``'s recent average. A plan's first block is
        not counted unless it is the baseline or ``count_first``: it may include starting worker
        processes."""
        runs = self.runs[plan] = self.runs.get(plan, 0) + 1
        if n_txs < self.min_block or seconds <= 0 or (runs == 1 and plan != self.baseline and not self.count_first):
            return
        old = self.seconds_per_tx.get(plan)
        per_tx = seconds / n_txs
        self.seconds_per_tx[plan] = per_tx if old is None else (old + per_tx) / 2

"""The adaptive executor's choices on small, conflicting and declared blocks, and its results."""

from __future__ import annotations

import pytest

from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.adaptive import AdaptiveExecutor, sample_conflict
from paraexec.execution.registry import make_executor
from paraexec.execution.synthetic import READ, WRITE, SyntheticRuntime, encode_tx
from paraexec.state import MemoryStore

ENV = BlockEnv(1, 1)
RUNTIME = SyntheticRuntime(100_000)
ALL = ["access-list", "blockstm", "parallel", "sequential"]


#: Seconds per transaction the fake executors report (the adaptive executor's speed signal).
FAKE_SPEED = {"sequential": 1.0, "parallel": 0.5, "blockstm": 0.5, "access-list": 0.5}


class FakeExecutor:
    """The sequential result under another name, reporting ``reexec`` re-executions per tx
    and ``per_tx`` seconds per transaction."""

    def __init__(self, name: str, reexec: float = 0.0) -> None:
        self.name = name
        self.reexec = reexec
        self.per_tx = FAKE_SPEED[name]
        self.blocks = 0
        self.closed = False

    def execute_block(self, runtime, txs, state, env):
        self.blocks += 1
        out = SequentialExecutor().execute_block(runtime, txs, state, env)
        out.stats.executor = self.name
        out.stats.executions = len(txs) + int(self.reexec * len(txs))
        out.stats.seconds = self.per_tx * len(txs)
        return out

    def close(self):
        self.closed = True


class Factory:
    def __init__(self, reexec: float = 0.0) -> None:
        self.made: dict[str, FakeExecutor] = {}
        self.reexec = reexec

    def __call__(self, name: str, workers: int) -> FakeExecutor:
        assert name not in self.made, "executors are long-lived: created once"
        self.made[name] = FakeExecutor(name, self.reexec if name in ("parallel", "blockstm") else 0.0)
        return self.made[name]


def adaptive(workers=2, threads_scale=False, available=ALL, reexec=0.0, measured=True, **kw):
    """An adaptive executor over fakes; ``measured``: as if every plan's speed were known (the
    fakes' speeds), so the signal rules decide alone."""
    factory = Factory(reexec)
    ex = AdaptiveExecutor(workers, threads_scale=threads_scale, available=available, factory=factory, **kw)
    if measured:
        ex.clock.seconds_per_tx = dict(FAKE_SPEED)
        ex.clock.runs = dict.fromkeys(FAKE_SPEED, 1)
    return ex, factory


def independent(n, declared=False, offset=0):
    """n txs on pairwise disjoint keys."""
    return [
        encode_tx(
            [(READ, offset + 2 * i, 0), (WRITE, offset + 2 * i + 1, 1)], ([2 * i], [2 * i + 1]) if declared else None
        )
        for i in range(n)
    ]


def conflicting(n):
    return [encode_tx([(READ, 0, 0), (WRITE, 0, i)]) for i in range(n)]


def run(ex, txs):
    return ex.execute_block(RUNTIME, txs, MemoryStore(), ENV)


def test_one_worker_and_small_blocks_go_sequential():
    ex, _ = adaptive(workers=1)
    assert run(ex, independent(600)).stats.note.startswith("sequential: 1 worker")
    ex, _ = adaptive()
    out = run(ex, independent(100))
    assert ex.history[-1].executor == "sequential" and "small block (100 < 500" in out.stats.note


def test_large_independent_block_goes_parallel_on_gil_builds():
    ex, factory = adaptive()
    out = run(ex, independent(600))
    assert ex.history[-1].executor == "parallel"
    assert out.stats.executor == "adaptive" and out.stats.note.startswith("parallel: large block, low contention")
    assert "measured 2.00x of sequential" in out.stats.note
    assert factory.made["parallel"].blocks == 1


def test_free_threaded_builds_prefer_blockstm_threads():
    ex, _ = adaptive(threads_scale=True)
    run(ex, independent(600))
    assert ex.history[-1].executor == "blockstm"


def test_nothing_scalable_registered_means_sequential():
    ex, _ = adaptive(available=["sequential", "blockstm"])  # GIL build: blockstm threads give ~1x
    run(ex, independent(600))
    assert ex.history[-1].executor == "sequential"


def test_conflicting_sample_goes_sequential_and_stays_there_without_resampling():
    ex, factory = adaptive(probe_every=4)
    out = run(ex, conflicting(600))
    assert ex.history[-1].executor == "sequential" and "conflicting block" in out.stats.note
    for _ in range(3):
        run(ex, independent(600))  # not probed yet: still sequential, no sample taken
        assert ex.history[-1].executor == "sequential" and "recent blocks conflicting" in ex.history[-1].reason
    run(ex, independent(600))  # 4th block since: the probe samples, finds no contention
    assert ex.history[-1].executor == "parallel"
    assert "parallel" in factory.made


def test_recent_reexecutions_switch_to_sequential_until_a_probe_clears():
    """For ``blockstm`` (free-threaded builds) re-executions are the contention signal."""
    ex, factory = adaptive(reexec=1.0, probe_every=3, threads_scale=True)
    run(ex, independent(600))
    assert ex.history[-1].executor == "blockstm"  # the sample saw no conflict...
    assert ex.recent_reexec == pytest.approx(1.0)  # ...but the run re-executed every tx
    for _ in range(2):
        run(ex, independent(600))
        assert ex.history[-1].executor == "sequential"
        assert "1.00 re-executions/tx" in ex.history[-1].reason
    run(ex, conflicting(600))  # probe block (3rd since): the sample still conflicts
    assert ex.history[-1].executor == "sequential" and "conflicting block" in ex.history[-1].reason
    factory.made["blockstm"].reexec = 0.0
    choices = []
    for _ in range(3):
        run(ex, independent(600))
        choices.append(ex.history[-1].executor)
    assert choices == ["sequential", "sequential", "blockstm"]  # next probe clears it
    assert ex.recent_reexec == 0.0


def test_parallel_reexecutions_are_left_to_it_and_its_measured_speed_decides():
    """``parallel`` answers contention itself (key affinity, bail-out): its re-executions do not
    switch the adaptive executor to sequential; its measured speed does."""
    ex, factory = adaptive(reexec=1.0)
    for _ in range(3):
        run(ex, independent(600))
    assert [c.executor for c in ex.history] == ["parallel"] * 3 and ex.recent_reexec is None
    factory.made["parallel"].per_tx = 2.0  # now it measures slower than sequential
    for _ in range(3):
        run(ex, independent(600))
    assert ex.history[-1].executor == "sequential" and "measured" in ex.history[-1].reason


def test_sample_conflict_counts_only_keys_shared_across_affinity_groups():
    from paraexec.chain import Chain, ChainConfig
    from paraexec.workloads import make_workload

    rates = {}
    for accounts in (2, 10_000):
        wl = make_workload("transfers", accounts=accounts, seed=0)
        cfg = ChainConfig(wl.chain_id, wl.app_name, wl.genesis_config())
        store = MemoryStore()
        Chain.create(store, cfg)
        runtime = Chain(store, cfg, False).runtime
        rates[accounts] = sample_conflict(runtime, [runtime.peek(raw) for raw in wl.block(1, 64)])
    assert rates[2] > 0.8 and rates[10_000] < 0.1, rates  # 2 accounts: every sender pays the other


def test_low_reexecution_rate_keeps_speculating():
    ex, _ = adaptive(reexec=0.1)
    for _ in range(3):
        run(ex, independent(600))
    assert [c.executor for c in ex.history] == ["parallel"] * 3


def test_declared_blocks_use_access_list_where_threads_scale():
    ex, _ = adaptive(threads_scale=True)
    out = run(ex, independent(600, declared=True))
    assert ex.history[-1].executor == "access-list" and "declared access lists" in out.stats.note


def test_declared_blocks_on_gil_builds_prefer_processes_when_available():
    ex, _ = adaptive()
    run(ex, independent(600, declared=True))
    assert ex.history[-1].executor == "parallel" and ex.history[-1].reason.startswith("declared, but")
    ex, _ = adaptive(available=["access-list", "sequential"])  # access-list alone would lose here
    run(ex, independent(600, declared=True))
    assert ex.history[-1].executor == "sequential"


def test_partly_declared_block_is_not_treated_as_declared():
    ex, _ = adaptive(threads_scale=True)
    txs = independent(300, declared=True) + independent(300, offset=10_000)
    run(ex, txs)
    assert ex.history[-1].executor == "blockstm"


def test_close_closes_every_executor_it_made():
    ex, factory = adaptive()
    run(ex, independent(600))
    run(ex, independent(10))
    ex.close()
    assert set(factory.made) == {"parallel", "sequential"}
    assert all(e.closed for e in factory.made.values())


def test_sample_conflict_counts_txs_meeting_earlier_keys():
    prepared = [RUNTIME.prepare(raw) for raw in [*independent(3, offset=100), *conflicting(2)]]
    assert sample_conflict(RUNTIME, prepared) == pytest.approx(1 / 5)
    assert sample_conflict(RUNTIME, []) == 0.0


@pytest.mark.parametrize(
    ("txs", "plans", "reasons"),
    [
        (
            independent(600, declared=True),
            ["sequential", "access-list"],
            ["measuring the sequential baseline before access-list", "declared access lists: scheduled"],
        ),
        (conflicting(600), ["sequential", "sequential"], ["conflicting block", "recent blocks conflicting"]),
        (independent(50), ["sequential", "sequential"], ["small block (50 < 500", "small block (50 < 500"]),
    ],
    ids=["declared", "conflicting", "small"],
)
def test_real_executors_give_the_sequential_result(txs, plans, reasons):
    """Each block runs twice on real executors: the first measures the sequential baseline,
    the second runs the plan the signals pick (access-list for the declared block, which
    really schedules levels); both give the sequential result."""
    ex = AdaptiveExecutor(2, threads_scale=True, available=["access-list", "sequential"])
    try:
        expected = SequentialExecutor().execute_block(RUNTIME, txs, MemoryStore(), ENV)
        for plan, reason in zip(plans, reasons, strict=True):
            out = ex.execute_block(RUNTIME, txs, MemoryStore(), ENV)
            assert out.same_result(expected), ex.history[-1]
            assert ex.history[-1].executor == plan and ex.history[-1].reason.startswith(reason), ex.history[-1]
            assert out.stats.executor == "adaptive" and out.stats.note.startswith(f"{plan}: {reason}")
        if plans[-1] == "access-list":  # the access-list executor ran it: its schedule is in the note
            assert "1 levels (widest 600)" in out.stats.note, out.stats.note
    finally:
        ex.close()


def test_registered_under_its_name():
    ex = make_executor("adaptive", 2)
    try:
        assert isinstance(ex, AdaptiveExecutor) and ex.workers == 2
        assert "adaptive" not in ex.available() and "sequential" in ex.available()
    finally:
        ex.close()


def test_with_the_registered_executors_choices_run_and_equal_sequential():
    """End to end on whatever the registry holds (worker processes included on GIL builds)."""
    from paraexec.execution.registry import executor_names

    ex = AdaptiveExecutor(2, min_block=100, threads_scale=False)
    try:
        blocks = [
            independent(300),
            independent(300),
            independent(300),
            independent(300),
            conflicting(300),
            independent(300, declared=True),
        ]
        outs = []
        for txs in blocks:
            outs.append(ex.execute_block(RUNTIME, txs, MemoryStore(), ENV))
            expected = SequentialExecutor().execute_block(RUNTIME, txs, MemoryStore(), ENV)
            assert outs[-1].same_result(expected), ex.history[-1]
        speculative = "parallel" if "parallel" in executor_names() else "sequential"
        choices = [c.executor for c in ex.history]
        # baseline, then measuring (parallel's first block, with its start-up, is not counted)
        assert choices[:3] == ["sequential", speculative, speculative]
        # block 5 conflicts; whether it ran speculatively depends on the speed measured here,
        # but if it did and re-executed a lot, block 6 must not speculate
        if choices[4] == "parallel" and outs[4].stats.executions > 300 * (1 + ex.max_reexec):
            assert choices[5] == "sequential"
    finally:
        ex.close()


def test_speed_is_measured_sequential_first_and_a_winning_plan_is_kept():
    ex, factory = adaptive(measured=False, probe_every=5)
    for _ in range(9):
        run(ex, independent(600))
    reasons = [c.reason for c in ex.history]
    assert [c.executor for c in ex.history] == ["sequential"] + ["parallel"] * 6 + ["sequential", "parallel"]
    assert reasons[0].startswith("measuring the sequential baseline")
    assert reasons[1].endswith("measuring it") and reasons[2].endswith("measuring it")  # 1st run: worker start-up
    assert reasons[3].endswith("measured 2.00x of sequential")
    # re-measured 5 comparisons after the measurement (measuring blocks do not count)
    assert reasons[7].startswith("re-measuring the sequential baseline")  # free: it is sequential
    assert ex.clock.seconds_per_tx["parallel"] == pytest.approx(0.5)


def test_a_plan_measured_slower_than_sequential_is_dropped_and_rarely_re_measured():
    ex, factory = adaptive(measured=False, probe_every=5)
    run(ex, independent(600))
    factory.made["sequential"].per_tx = 1.0
    FAKE_SPEED_SLOW = 1.5
    for _ in range(14):
        run(ex, independent(600))
        if "parallel" in factory.made:
            factory.made["parallel"].per_tx = FAKE_SPEED_SLOW  # a busy machine: processes lose
    choices = [c.executor for c in ex.history]
    # measured, re-measured 5 comparisons later, which confirms the loss: the next one waits 10
    assert choices == ["sequential", "parallel", "parallel"] + ["sequential"] * 4 + ["parallel"] + ["sequential"] * 7
    assert ex.history[3].reason == "parallel measured 0.67x of sequential on recent blocks"
    assert "re-measuring it (was 0.67x" in ex.history[7].reason


def test_small_blocks_do_not_count_as_speed_measurements():
    ex, factory = adaptive(measured=False)
    run(ex, independent(100))
    assert ex.clock.seconds_per_tx == {}
    run(ex, independent(600))
    assert ex.clock.seconds_per_tx == {"sequential": pytest.approx(1.0)}


def test_a_block_of_malformed_transactions_is_not_a_conflicting_one():
    """Transactions that fail their stateless checks touch no key: they neither make a sample
    "share keys" (which would also keep the next blocks sequential) nor count as declared."""
    from paraexec.chain import Chain, ChainConfig
    from paraexec.workloads import make_workload

    workload = make_workload("transfers", accounts=100_000)
    chain = Chain.create(MemoryStore(), ChainConfig(workload.chain_id, "transfers", workload.genesis_config()))
    runtime = chain.runtime
    garbage = [b"\x91\xc4\x01" + bytes([i % 256]) for i in range(600)]
    assert sample_conflict(runtime, [runtime.peek(raw) for raw in garbage]) == 0.0
    ex, _ = adaptive()
    ex.execute_block(runtime, garbage, chain.store, ENV)
    assert "share keys" not in ex.history[-1].reason and "declared" not in ex.history[-1].reason
    ex.execute_block(runtime, workload.block(1, 600), chain.store, ENV)
    assert ex.history[-1].executor == "parallel", ex.history[-1].reason

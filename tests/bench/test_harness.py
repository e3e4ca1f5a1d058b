"""The benchmark harness: identical blocks for every executor, medians, ratios, and the root check."""

from __future__ import annotations

import json
import multiprocessing
import time
from types import SimpleNamespace

import pytest

from paraexec.bench.bound import Bounds, class_limits, key_class, key_label
from paraexec.bench.harness import (
    AA,
    BenchConfig,
    BlockTiming,
    add_ratios,
    analysed_cores,
    cores_used,
    paired_speedups,
    parallel_share,
    quartile_range,
    quartiles,
    run_bench,
    runs_in_parallel,
)
from paraexec.bench.machine import process_tree_cpu
from paraexec.execution import SequentialExecutor, registry
from paraexec.execution.contract import BlockOutput
from paraexec.execution.dependency import DependencyReport

TINY = dict(workload="transfers", points=[{"accounts": 8}], block_size=20, blocks=2, workers=[1, 2], repeat=2)


class RootFlipper(SequentialExecutor):
    """Sequential, except block 2's root is wrong: the harness must notice."""

    name = "root-flipper"

    def execute_block(self, runtime, txs, state, env) -> BlockOutput:
        out = super().execute_block(runtime, txs, state, env)
        if env.height == 2:
            out.state_root = bytes(32)
        return out


class ReceiptForger(SequentialExecutor):
    """Sequential, except block 1's first receipt claims another outcome (same root)."""

    name = "receipt-forger"

    def execute_block(self, runtime, txs, state, env) -> BlockOutput:
        import msgspec

        out = super().execute_block(runtime, txs, state, env)
        if env.height == 1:
            out.receipts[0] = msgspec.structs.replace(out.receipts[0], error="FORGED")
        return out


class Exploder(SequentialExecutor):
    name = "exploder"

    def execute_block(self, runtime, txs, state, env) -> BlockOutput:
        raise RuntimeError("boom")


@pytest.fixture
def fake_executors(monkeypatch):
    monkeypatch.setitem(registry.EXECUTORS, "root-flipper", lambda workers: RootFlipper())
    monkeypatch.setitem(registry.EXECUTORS, "exploder", lambda workers: Exploder())
    monkeypatch.setitem(registry.EXECUTORS, "receipt-forger", lambda workers: ReceiptForger())


def test_sequential_run_is_complete_and_json_ready():
    calls = []
    bench = BenchConfig(**TINY, executors=["sequential"])
    result = run_bench(bench, progress=calls.append)
    json.dumps(result)  # JSON-serialisable as written by the CLI
    assert result["ok"] and result["failures"] == []
    assert len(calls) == bench.total_steps() == 1 * (2 * 2 + 2)  # blocks x repeats + a two-block warm-up
    assert {"cpu_model", "cpu_count", "python", "platform"} <= set(result["machine"])
    (point,) = result["points"]
    assert point["params"] == {"accounts": 8} and point["txs_per_block"] == [20, 20]
    (seq,) = point["results"]
    assert seq["executor"] == "sequential" and seq["speedup"] == 1.0
    assert seq["speedup_runs"] == [1.0, 1.0] and seq["speedup_quartiles"] == [1.0, 1.0]
    assert len(seq["seconds_runs"]) == 2 and seq["seconds_median"] > 0
    assert seq["cpu_seconds_median"] > 0 and seq["cpu_ceiling"] > 0  # Linux: /proc is there
    assert seq["executions"] == 40 and seq["re_executions"] == 0 and seq["notes"] == []
    assert seq["parallel_blocks"] == 0 and seq["blocks_timed"] == 4 and parallel_share(seq) == "0/4"
    assert [b["root"] for b in seq["blocks"]] == point["reference_roots"]
    assert point["outcomes"] == {"ok": 40, "failed": {}, "events": {}}
    assert len(set(point["reference_roots"])) == 2


def test_the_aa_row_is_a_second_sequential_run_timed_like_the_others():
    """``aa``: a separate sequential executor, one core, its own passes: speedup about 1 (its
    spread is the run's noise), its roots checked like any executor's."""
    bench = BenchConfig(**TINY, executors=["sequential", "parallel"], aa=True)
    assert bench.runs() == [("sequential", 1), (AA, 1), ("parallel", 1), ("parallel", 2)]
    result = run_bench(bench)
    assert result["ok"]
    seq, again = result["points"][0]["results"][:2]
    assert again["executor"] == AA and again["workers"] == 1 and again["cores"] == 1
    assert again["roots_match"] and len(again["seconds_runs"]) == 2
    assert again["seconds_runs"] != seq["seconds_runs"]  # timed apart, not a copy of the reference
    assert again["speedup"] == pytest.approx(seq["seconds_median"] / again["seconds_median"])
    assert cores_used(AA, 4, 8) == 1


def test_the_steady_state_is_blocks_two_onwards_of_every_pass():
    """``steady_*``: the medians of blocks 2..K of each pass, their ratio to sequential's and the
    bound of those blocks; a one-block pass has no steady state."""
    result = run_bench(BenchConfig(**{**TINY, "blocks": 3, "workers": [2]}, executors=["sequential", "parallel"]))
    seq, par = result["points"][0]["results"]
    for r in (seq, par):
        assert r["steady_seconds_median"] < r["seconds_median"]
    assert par["steady_speedup"] == pytest.approx(seq["steady_seconds_median"] / par["steady_seconds_median"])
    assert seq["steady_speedup"] == pytest.approx(1.0)
    bounds = result["points"][0]["analysis"]["blocks"][1:]
    assert par["steady_bound"] is not None and par["steady_bound"] <= max(b["bound"][str(par["cores"])] for b in bounds)
    single = run_bench(BenchConfig(**{**TINY, "blocks": 1, "repeat": 1}, executors=["sequential"]))
    assert single["points"][0]["results"][0]["steady_speedup"] is None


def test_speedup_quartiles_pair_the_repeats_of_one_round():
    """Each repeat is divided by sequential's repeat of the same round (not sorted first), and
    runs that do not pair up give no quartiles rather than misleading ones."""
    ref = {"seconds_runs": [2.0, 4.0, 2.0, 2.0, 3.0]}
    run = {"seconds_runs": [1.0, 4.0, 0.5, 2.0, 1.0]}
    assert paired_speedups(ref, run) == [2.0, 1.0, 4.0, 1.0, 3.0]
    assert quartiles(paired_speedups(ref, run)) == [1.0, 3.0]
    assert quartile_range([1.0, 3.0]) == "1.00-3.00" and quartile_range(None) == "-"
    assert paired_speedups(ref, {"seconds_runs": [1.0, 2.0]}) == []  # a run that failed part way
    assert paired_speedups(None, run) == [] and quartiles([]) is None and quartiles([1.5]) == [1.5, 1.5]
    assert quartile_range([1.0, 3.0], 2.0) == "1.00-2.00-3.00"


def test_the_paired_median_is_shown_beside_the_ratio_of_medians():
    """Three rounds where the machine drifted: sequential 0.926 / 0.679 / 1.003 s, the other
    executor 0.810 / 0.479 / 0.569 s. The ratio of medians pairs sequential's middle pass with
    another round's (1.63x); the rounds' own ratios are 1.14 / 1.42 / 1.76, median 1.42x.
    Both are reported (``speedup``, ``speedup_paired_median``)."""
    from paraexec.bench.bound import Bounds

    rows = [
        {"executor": "sequential", "workers": 1, "seconds_median": 0.926, "seconds_runs": [0.926, 0.679, 1.003]},
        {"executor": "parallel", "workers": 2, "seconds_median": 0.569, "seconds_runs": [0.810, 0.479, 0.569]},
    ]
    add_ratios(rows, Bounds(), usable=2)
    assert rows[1]["speedup"] == pytest.approx(0.926 / 0.569)
    assert rows[1]["speedup_paired_median"] == pytest.approx(0.679 / 0.479)
    assert rows[0]["speedup_paired_median"] == 1.0


def _burn(seconds: float, ready) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass
    ready.set()
    time.sleep(60)


def test_process_tree_cpu_counts_this_process_and_live_worker_processes():
    """A pass's CPU covers the worker processes of an executor, not only the coordinator."""
    before = process_tree_cpu()
    if before is None:
        pytest.skip("no /proc on this platform")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_burn, args=(0.5, ready), daemon=True)
    child.start()
    try:
        assert ready.wait(60)
        assert process_tree_cpu() - before >= 0.45  # /proc counts in clock ticks (10 ms)
    finally:
        child.kill()
        child.join()


def test_every_registered_executor_agrees_with_sequential():
    names = registry.executor_names()
    bench = BenchConfig(**{**TINY, "repeat": 1}, executors=names)
    result = run_bench(bench)
    assert result["failures"] == []
    rows = result["points"][0]["results"]
    expected = 1 + sum(len(bench.workers) for n in names if n != "sequential")
    assert len(rows) == expected
    usable = result["machine"]["cpu_usable"]
    for r in rows:
        assert r["roots_match"] and r["speedup"] > 0
        assert r["cores"] == cores_used(r["executor"], r["workers"], usable)
    analysis = result["points"][0]["analysis"]
    if analysis["available"]:  # the bound of every row's cores was analysed
        assert {str(c) for c in analysed_cores(bench, usable)} == set(analysis["bound"])
        assert all(r["bound"] == analysis["bound"][str(r["cores"])] for r in rows)


def test_root_mismatch_and_crash_are_failures(fake_executors):
    bench = BenchConfig(**{**TINY, "repeat": 1, "workers": [1]}, executors=["sequential", "root-flipper", "exploder"])
    result = run_bench(bench)
    assert not result["ok"]
    rows = {r["executor"]: r for r in result["points"][0]["results"]}
    assert rows["sequential"]["roots_match"]
    flipper = rows["root-flipper"]
    assert not flipper["roots_match"]
    assert [m["height"] for m in flipper["mismatches"]] == [2]
    assert "boom" in rows["exploder"]["error"]
    assert any("root-flipper" in f and "block 2" in f for f in result["failures"])
    assert any("exploder" in f for f in result["failures"])


def test_a_receipt_that_differs_is_a_failure_even_with_the_right_root(fake_executors):
    """The contract is the same receipts *and* root: the bench compares both."""
    bench = BenchConfig(**{**TINY, "repeat": 2, "workers": [1]}, executors=["sequential", "receipt-forger"])
    result = run_bench(bench)
    forger = result["points"][0]["results"][1]
    assert not result["ok"] and not forger["roots_match"]
    assert [(m["repeat"], m["height"]) for m in forger["mismatches"]] == [(0, 1), (1, 1)]
    assert all(m.get("receipts") for m in forger["mismatches"])
    assert any("receipt-forger" in f and "block 1" in f and "receipts" in f for f in result["failures"])


def test_signature_checks_can_be_switched_off_with_the_same_roots():
    on = run_bench(BenchConfig(**{**TINY, "repeat": 1}, executors=["sequential"]))
    off = run_bench(BenchConfig(**{**TINY, "repeat": 1}, executors=["sequential"], verify_signatures=False))
    assert off["ok"] and off["config"]["verify_signatures"] is False
    assert on["points"][0]["reference_roots"] == off["points"][0]["reference_roots"]


def test_contention_sweep_gives_one_point_per_value():
    bench = BenchConfig(**{**TINY, "repeat": 1, "blocks": 1}, executors=["sequential"])
    bench.workload = "hotspot"
    bench.points = [{"accounts": 30, "hot_ratio": 0.0}, {"accounts": 30, "hot_ratio": 1.0}]
    result = run_bench(bench)
    assert [p["params"]["hot_ratio"] for p in result["points"]] == [0.0, 1.0]
    assert result["points"][0]["contention_param"] == "hot_ratio"
    a0, a1 = (p["analysis"] for p in result["points"])
    if a0["available"]:  # all traffic through one hot account: more conflicts than none
        assert a1["conflict_rate"] > a0["conflict_rate"]


def test_data_dir_keeps_stores_and_refuses_reuse(tmp_path):
    bench = BenchConfig(**{**TINY, "repeat": 1, "blocks": 1}, executors=["sequential"], data_dir=str(tmp_path))
    assert run_bench(bench)["ok"]
    assert (tmp_path / "p0-sequential-w1-r0" / "data.mdb").exists()
    again = run_bench(bench)
    assert not again["ok"] and "not empty" in again["failures"][0]


def test_memory_store_option():
    result = run_bench(BenchConfig(**{**TINY, "repeat": 1}, executors=["sequential"], store="memory"))
    assert result["ok"]


def fake_report(total, critical, bound_by_w, hot):
    return SimpleNamespace(
        total_cost=total,
        critical_path=critical,
        conflict_rate=0.5,
        edges=[(0, 1)],
        speedup_bound=lambda w: bound_by_w[w],
        hot_keys=lambda n: hot[:n],
    )


def test_bound_is_time_weighted_over_blocks():
    bounds = Bounds()
    bounds.add(1, 10, fake_report(10.0, 5.0, {1: 1.0, 2: 2.0}, [(b"b/\x01", 3)]), [1, 2])
    bounds.add(2, 10, fake_report(30.0, 30.0, {1: 1.0, 2: 1.0}, [(b"b/\x01", 2), (b"m/0", 1)]), [1, 2])
    # block 1 needs >= 5 units on 2 workers, block 2 needs 30: 40 / 35
    assert bounds.bound(2) == pytest.approx(40 / 35)
    assert bounds.bound(1) == pytest.approx(1.0)
    assert bounds.bound(2, skip=1) == pytest.approx(1.0)  # blocks 2.. only (the steady state)
    out = bounds.to_json([1, 2])
    assert out["hot_keys"][0] == ["b/<01>", 5]
    assert out["edges"] == 2


def hand_built_report(costs, edge_keys):
    """A ``DependencyReport`` of ``len(costs)`` transactions whose edges are ``edge_keys``."""
    deps = [sorted(i for (i, j) in edge_keys if j == t) for t in range(len(costs))]
    finish = [0.0] * len(costs)
    for j, preds in enumerate(deps):
        finish[j] = costs[j] + max((finish[i] for i in preds), default=0.0)
    empty = [frozenset()] * len(costs)
    return DependencyReport(empty, empty, empty, costs, deps, edge_keys, finish, None, [0.0] * len(costs))


def test_what_limits_the_bound_is_the_bound_without_each_class_of_keys():
    # block 1: 0 -> 1 (a market's book), 1 -> 2 (another book and a nonce), 2 -> 3 (a nonce)
    one = hand_built_report(
        [1.0, 2.0, 3.0, 4.0],
        {(0, 1): [b"m/\x01/bk"], (1, 2): [b"m/\x02/bk", b"n/\x05"], (2, 3): [b"n/\x06"]},
    )
    assert one.critical_path == 10.0
    assert class_limits(one) == {"m/*/bk": (2, 9.0), "n/*": (2, 6.0)}  # 1 -> 2 stays for either
    # block 2: 0 -> 1 through a nonce only
    two = hand_built_report([4.0, 4.0], {(0, 1): [b"n/\x07"]})
    bounds = Bounds()
    bounds.add(1, 4, one, [1, 2])
    bounds.add(2, 2, two, [1, 2])
    assert bounds.unlimited() == pytest.approx(18 / 18)
    limits = bounds.limits([2])
    assert [r["keys"] for r in limits] == ["n/*", "m/*/bk"]  # the larger gain first
    nonce, book = limits
    assert nonce["edges"] == 3 and book["edges"] == 2
    assert nonce["bound_without"]["unlimited"] == pytest.approx(18 / (6 + 4))
    assert nonce["bound_without"]["2"] == pytest.approx(18 / (max(5, 6) + max(4, 4)))
    assert book["bound_without"]["unlimited"] == pytest.approx(18 / (9 + 8))  # block 2 has no book edge
    out = bounds.to_json([2])
    assert out["limits"] == limits and out["unlimited"] == pytest.approx(1.0)
    assert key_class(b"x/m/\x00\x02/lv/\x01xy") == "x/m/*/lv/*"
    assert key_class(b"b/" + bytes(range(10))) == "b/*" and key_class(b"x/insurance") == "x/insurance"


def test_bound_unavailable_without_analysis():
    assert Bounds().bound(2) is None
    assert Bounds(error="x").to_json([2]) == {"available": False, "error": "x"}


def test_key_labels_are_readable():
    assert key_label(b"fee/pool") == "fee/pool"
    assert key_label(b"b/" + bytes(range(10))) == "b/<000102030405..>"
    assert key_label(b"x/m/\x00\x02/px") == "x/m/<0002>/px"
    assert key_label(b"x/sa/\x01ab\x02") == "x/sa/<01616202>"
    assert key_label(b"b/=ab\x01") == "b/<3d616201>"  # printable key bytes after the prefix stay hex
    assert key_label(b"b/q\x01") == "b/<7101>"
    assert key_label(b"x/m/\x00\x01/lv/\x01xy") == "x/m/<0001>/lv/<017879>"
    assert key_label(b"x/insurance") == "x/insurance"


def test_repeats_are_interleaved_and_rotated(monkeypatch):
    calls: list[str] = []

    class Recording(SequentialExecutor):
        def __init__(self, label):
            super().__init__()
            self.label = label

        def execute_block(self, runtime, txs, state, env):
            calls.append(self.label)
            return super().execute_block(runtime, txs, state, env)

    monkeypatch.setitem(registry.EXECUTORS, "sequential", lambda workers: Recording("S"))
    monkeypatch.setitem(registry.EXECUTORS, "rec-a", lambda workers: Recording("A"))
    monkeypatch.setitem(registry.EXECUTORS, "rec-b", lambda workers: Recording("B"))
    bench = BenchConfig(**{**TINY, "blocks": 1, "repeat": 3, "workers": [1]}, executors=["rec-a", "rec-b"])
    result = run_bench(bench)
    assert result["ok"]
    # warm-ups in pair order, then each repeat rotated by one
    assert "".join(calls) == "SAB" + "SAB" + "ABS" + "BSA"


def test_the_warm_up_announces_a_block_as_the_timed_passes_do(monkeypatch):
    """What an executor starts on an announcement (adaptive starts its workers to check the next
    block's signatures) is up before the clock: a warm-up of block 1 alone left that start-up
    in the first timed pass, 1.7 s against 0.16 s for the later ones with 300-transaction blocks."""
    calls: list[str] = []

    class Recording(SequentialExecutor):
        def announce(self, runtime, txs):
            calls.append("N")

        def execute_block(self, runtime, txs, state, env):
            calls.append("E")
            return super().execute_block(runtime, txs, state, env)

    monkeypatch.setitem(registry.EXECUTORS, "rec", lambda workers: Recording())
    bench = BenchConfig(**{**TINY, "blocks": 3, "repeat": 1, "workers": [1]}, executors=["rec"])
    calls_before = len(calls)
    assert run_bench(bench)["ok"]
    recorded = "".join(calls[calls_before:])
    assert recorded == "NEE" + "NENEE", recorded  # (announced before executed) warm-up: two blocks; timed: three


def test_a_block_counts_as_parallel_only_when_two_workers_executed_it():
    def timing(busy):
        return BlockTiming(1, 10, 0.1, "", 10, 0, 0, 0, 1, busy, "")

    assert runs_in_parallel(timing([0.2, 0.1, 0.0]))
    assert not runs_in_parallel(timing([0.3]))  # sequential: one worker, itself
    assert not runs_in_parallel(timing([0.0, 0.0]))  # an in-process plan: idle workers
    assert not runs_in_parallel(timing([0.3, 0.0]))
    assert parallel_share({}) == "-"


def test_cores_used_counts_the_coordinator_that_executes_too():
    assert cores_used("sequential", 4, 8) == 1
    assert cores_used("parallel", 1, 8) == 2 and cores_used("adaptive", 3, 8) == 4
    assert cores_used("blockstm", 3, 8) == 3 and cores_used("access-list", 2, 8) == 2
    assert cores_used("parallel", 2, 2) == 2 and cores_used("blockstm", 4, 2) == 2  # capped at the usable cores
    assert cores_used("blockstm", 0, 8) == 1 and cores_used("parallel", 1, 0) == 1  # at least one


def test_bound_is_analysed_and_taken_at_the_cores_a_row_uses():
    bench = BenchConfig(**TINY, executors=["sequential", "parallel", "blockstm"])
    assert analysed_cores(bench, usable=8) == [1, 2, 3, 4, 8, 16]  # parallel x2 keeps 3 cores busy
    assert analysed_cores(bench, usable=2) == [1, 2, 4, 8, 16]  # 4, 8, 16: what a larger machine could do
    bounds = Bounds()
    bounds.add(1, 10, fake_report(10.0, 2.0, {1: 1.0, 2: 1.5, 3: 2.0}, []), [1, 2, 3])

    def row(name, workers, seconds):
        return {"executor": name, "workers": workers, "seconds_median": seconds, "seconds_runs": [seconds]}

    rows = [row("sequential", 1, 3.0), row("parallel", 1, 2.0), row("blockstm", 1, 3.0), row("parallel", 2, 1.5)]
    add_ratios(rows, bounds, usable=8)
    seq, par1, stm1, par2 = rows
    assert [r["cores"] for r in rows] == [1, 2, 1, 3]
    assert seq["bound"] == 1.0 and stm1["bound"] == 1.0
    assert par1["bound"] == 1.5 and par1["bound_efficiency"] == pytest.approx(1.0)  # not 150% of a 1-core bound
    assert par2["bound"] == 2.0 and par2["bound_efficiency"] == pytest.approx(1.0)
    add_ratios(rows, bounds, usable=2)
    assert par2["cores"] == 2 and par2["bound"] == 1.5
    failed = [row("sequential", 1, 3.0), {"executor": "parallel", "workers": 2, "error": "boom"}]
    add_ratios(failed, bounds, usable=8)
    assert failed[1]["cores"] == 3 and "bound" not in failed[1]  # tables show an error row's cores too

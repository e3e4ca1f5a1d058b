"""``paraexec bench`` end to end through the CLI: files written, exit codes, argument errors."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from paraexec.bench.commands import bound_text, split_list, sweep_points
from paraexec.cli import app
from paraexec.execution import SequentialExecutor, registry

runner = CliRunner()
TINY = ["--accounts", "8", "--block-size", "15", "--blocks", "2", "--workers", "1,2", "--repeat", "1", "--no-progress"]


def test_bench_writes_json_and_report(tmp_path):
    out, html = tmp_path / "new" / "r.json", tmp_path / "other" / "r.html"  # folders made as needed
    result = runner.invoke(
        app, ["bench", *TINY, "--executors", "sequential", "--aa", "--json", str(out), "--report", str(html)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["ok"] and data["points"][0]["results"][0]["executor"] == "sequential"
    assert data["points"][0]["results"][1]["executor"] == "sequential-aa" and "sequential-aa" in result.output
    assert data["points"][0]["results"][0]["cores"] == 1 and "cores" in result.output  # a table column
    assert data["command"][:2] == ["paraexec", "bench"] or data["command"][0] == "paraexec"
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_an_output_path_that_cannot_be_made_exits_2_before_running(tmp_path):
    (tmp_path / "file").write_text("")
    result = runner.invoke(
        app, ["bench", *TINY, "--executors", "sequential", "--json", str(tmp_path / "file" / "r.json")]
    )
    assert result.exit_code == 2 and "cannot write" in result.output


def test_bad_outputs_workers_and_data_are_refused_before_running(tmp_path, monkeypatch):
    """A directory as --json/--report, --workers outside 1..256 and a --data in use are refused in a
    second, nothing run (``run_bench`` would fail the test); nothing is left behind."""
    import paraexec.bench.commands as commands

    monkeypatch.setattr(commands, "run_bench", lambda *a, **k: pytest.fail("ran"))
    (tmp_path / "adir").mkdir()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "p0-sequential-w1-r0").mkdir()
    cases = [
        (["--json", str(tmp_path / "adir")], "cannot write"),
        (["--report", str(tmp_path / "adir")], "cannot write"),
        (["--workers", "0"], "--workers must list counts 1..256"),
        (["--workers", "1,-1"], "--workers must list counts 1..256"),
        (["--workers", "2,257"], "--workers must list counts 1..256"),
        (["--accounts", "10,2000000"], "--accounts must list counts up to 1,000,000"),
        (["--data", str(tmp_path / "used")], "is not empty"),
        (["--executors", ""], "--executors names none"),
        (["--store", "memory", "--data", str(tmp_path / "kept")], "--store memory has none"),
    ]
    for args, message in cases:
        result = runner.invoke(
            app, ["bench", *TINY, *(["--executors", "sequential"] if "--executors" not in args else []), *args]
        )
        assert result.exit_code == 2 and message in " ".join(result.stderr.split()), (args, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "used"]


def test_repeated_executors_and_worker_counts_are_timed_once(tmp_path):
    out = tmp_path / "r.json"
    args = ["--executors", "sequential,blockstm,blockstm", "--workers", "2,2", "--json", str(out)]
    result = runner.invoke(app, ["bench", *TINY[:6], "--repeat", "1", "--no-progress", *args])
    assert result.exit_code == 0, result.output
    rows = [(r["executor"], r["workers"]) for r in json.loads(out.read_text())["points"][0]["results"]]
    assert rows == [("sequential", 1), ("blockstm", 2)]


def test_unknown_executor_and_workload_exit_2():
    assert runner.invoke(app, ["bench", *TINY, "--executors", "sequential,nope"]).exit_code == 2
    assert runner.invoke(app, ["bench", *TINY, "--workload", "nope", "--executors", "sequential"]).exit_code == 2


class Wrong(SequentialExecutor):
    def execute_block(self, runtime, txs, state, env):
        out = super().execute_block(runtime, txs, state, env)
        out.state_root = b"\x01" * 32
        return out


def test_root_mismatch_exits_nonzero(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.EXECUTORS, "wrong", lambda workers: Wrong())
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["bench", *TINY, "--executors", "sequential,wrong", "--json", str(out)])
    assert result.exit_code == 1
    assert not json.loads(out.read_text())["ok"]


def test_list_parsing_and_sweeps():
    assert split_list("1, 2,,4", int) == [1, 2, 4]
    with pytest.raises(ValueError, match="--accounts: '1e3' is not an integer"):
        split_list("10,1e3", int, "--accounts")
    points = sweep_points("hotspot", {"accounts": [100], "hot_ratio": [0.1, 0.9], "markets": [8]})
    assert points == [{"accounts": 100, "hot_ratio": 0.1}, {"accounts": 100, "hot_ratio": 0.9}]
    assert sweep_points("transfers", {"accounts": [2, 10], "hot_ratio": [0.5]}) == [{"accounts": 2}, {"accounts": 10}]


@pytest.mark.parametrize("flag", ["--no-verify-signatures", "--verify-signatures"])
def test_signature_flag_reaches_config(tmp_path, flag):
    out = tmp_path / "r.json"
    result = runner.invoke(
        app, ["bench", *TINY, "--executors", "sequential", flag, "--json", str(out), "--store", "memory"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["config"]["verify_signatures"] is (flag == "--verify-signatures")


@pytest.mark.parametrize(
    "workload_args",
    [
        ["--workload", "perps", "--accounts", "12", "--markets", "3", "--block-size", "40"],
        ["--workload", "replay", "--accounts", "10", "--block-size", "40"],
    ],
    ids=["perps", "replay"],
)
def test_exchange_workloads_end_to_end(tmp_path, workload_args):
    pytest.importorskip("paraexec.exchange.genesis", reason="the exchange application is not there yet")
    if "replay" in workload_args:
        from paraexec.workloads.binance import default_data_file

        if not default_data_file().exists():
            pytest.skip("shared market data not present")
    names = ["sequential"] + [n for n in ("parallel",) if n in registry.executor_names()]
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    args = [
        "bench",
        *workload_args,
        "--blocks",
        "2",
        "--workers",
        "2",
        "--repeat",
        "1",
        "--no-progress",
        "--executors",
        ",".join(names),
        "--json",
        str(out),
        "--report",
        str(html),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["ok"] and len(data["points"][0]["results"]) == len(names)
    analysis = data["points"][0]["analysis"]
    assert analysis["available"] in (True, False)
    if analysis["available"]:  # the bound on unlimited workers and what limits it, on the terminal too
        on_cores = " / ".join(bound_text(analysis["bound"][c]) for c in ("4", "8", "16"))
        assert f"bound on 4 / 8 / 16 cores {on_cores}x, on unlimited workers" in result.output
        assert f"on unlimited workers {bound_text(analysis['unlimited'])}x" in result.output
        assert {r["keys"] for r in analysis["limits"]} & {"x/m/*/bk/*", "x/m/*/st", "n/*", "x/sa/*"}
    assert "<img" in html.read_text()
    if "replay" in workload_args:  # the recording it replayed is named in the result
        from paraexec.workloads.binance import default_data_file

        assert data["points"][0]["data_file"] == str(default_data_file())
        assert f"Market data replayed: <code>{default_data_file()}</code>" in html.read_text()
    else:
        assert data["points"][0]["data_file"] is None
    assert data["points"][0]["outcomes"]["events"].get("order", 0) > 0  # the exchange really traded


def test_bad_workload_parameters_exit_2(tmp_path):
    args = ["bench", *TINY, "--executors", "sequential", "--workload", "hotspot", "--hot-ratio", "1.5"]
    assert runner.invoke(app, args).exit_code == 2
    args = ["bench", *TINY, "--executors", "sequential", "--workload", "replay", "--data-file", str(tmp_path / "x.gz")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not found" in result.output


def test_the_table_labels_points_by_what_varies_and_says_when_parallel_ran_in_process():
    from paraexec.bench.commands import in_process_line, point_label, varying_keys

    points = [{"params": {"accounts": 1000, "hot_ratio": r, "hot_accounts": 10}, "results": []} for r in (0.1, 0.9)]
    varying = varying_keys(points)
    assert varying == {"hot_ratio"} and [point_label(p, varying) for p in points] == ["hot_ratio=0.1", "hot_ratio=0.9"]
    assert bound_text(6526.54) == "6,527" and bound_text(21.84) == "21.8" and bound_text(1.994) == "1.99"
    ran = {"executor": "parallel", "workers": 2, "parallel_blocks": 0, "blocks_timed": 6}
    points[0]["results"] = [ran, {**ran, "executor": "adaptive", "parallel_blocks": 2}, {**ran, "executor": "blockstm"}]
    points[0]["results"].append({**ran, "workers": 1})  # one worker never counts as two at once
    line = in_process_line(points[0])
    assert line.startswith("accounts=1000,hot_ratio=0.1,hot_accounts=10: parallel x2 had no timed block")
    assert "adaptive" not in line and "blockstm" not in line and "x1" not in line
    points[0]["results"][0]["parallel_blocks"] = 1
    assert in_process_line(points[0]) == ""


def test_bench_warns_of_access_list_without_declarations_and_of_a_busy_machine():
    from paraexec.bench.commands import bench_warnings, busy_cores

    assert bench_warnings("transfers", ["sequential", "access-list"], True, False, 0.1) == []
    assert "declare no keys" in bench_warnings("transfers", ["access-list"], False, False, None)[0]
    assert "declare no keys" in bench_warnings("perps", ["access-list"], True, False, None)[0]
    [busy] = bench_warnings("perps", ["sequential", "parallel"], False, False, 1.7)
    assert "used 1.7 cores" in busy and "--aa adds" in busy
    [busy] = bench_warnings("perps", ["sequential", "parallel"], False, True, 1.7)
    assert "the sequential-aa row shows" in busy
    sampled = busy_cores(0.05)
    assert sampled is None or 0.0 <= sampled <= (os.cpu_count() or 1) + 0.01

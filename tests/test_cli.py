"""The CLI refuses bad input cleanly and round-trips a small chain (run -> replay -> inspect)."""

from __future__ import annotations

from typer.testing import CliRunner

from paraexec.cli import app

runner = CliRunner()


def text(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_unknown_executor_or_workload_exits_2_without_creating_a_store(tmp_path):
    data = tmp_path / "chain"
    for args in (
        ["run", "--data", str(data), "--executor", "nope"],
        ["run", "--data", str(data), "--workload", "nope"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "unknown" in text(result)
    assert not data.exists()


def test_run_replay_inspect_round_trip(tmp_path):
    data = str(tmp_path / "chain")
    result = runner.invoke(app, ["run", "--data", data, "--accounts", "10", "--block-size", "20", "--blocks", "2"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["replay", "--data", data])
    assert result.exit_code == 0 and "every root and receipt matches" in text(result)
    result = runner.invoke(app, ["inspect", "--data", data, "--height", "2"])
    assert result.exit_code == 0 and "txs=20" in text(result)
    # a different workload on the same store is refused, not mixed in
    result = runner.invoke(app, ["run", "--data", data, "--accounts", "11", "--blocks", "1"])
    assert result.exit_code == 1 and "different chain" in text(result)

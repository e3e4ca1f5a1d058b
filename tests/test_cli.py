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


def test_run_announces_each_next_block_and_continues_a_chain(tmp_path, monkeypatch):
    """``run`` produces every block knowing the next one (the last knows none), the same blocks
    as without the announcement; a second ``run`` on the store continues its nonces."""
    from paraexec.chain import Chain

    seen: list[tuple[list[bytes], list[bytes] | None]] = []
    produce = Chain.produce_block

    def recording(self, txs, time, executor, upcoming=None):
        seen.append((list(txs), None if upcoming is None else list(upcoming)))
        return produce(self, txs, time, executor, upcoming)

    monkeypatch.setattr(Chain, "produce_block", recording)
    data = str(tmp_path / "chain")
    args = ["run", "--data", data, "--accounts", "10", "--block-size", "20", "--blocks", "3"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert [u for _, u in seen] == [seen[1][0], seen[2][0], None]
    second = runner.invoke(app, [*args[:-1], "2"])  # nonces continue from the chain
    assert second.exit_code == 0 and len(seen) == 5
    lines = [line.split() for r in (first, second) for line in r.output.splitlines()]
    rows = [row for row in lines if len(row) == 7 and row[0].isdigit()]  # height txs ok s tx/s re-exec root
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert all(row[1] == row[2] == "20" for row in rows)  # every transfer valid: the nonces were right
    result = runner.invoke(app, ["replay", "--data", data])
    assert result.exit_code == 0 and "every root and receipt matches" in text(result)

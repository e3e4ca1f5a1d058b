"""The ``make demo`` showcase on a tiny market: produced, replay-verified, reported."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("paraexec.exchange.genesis", reason="the exchange application is not there yet")

from paraexec.bench.showcase import showcase  # noqa: E402


def test_tiny_showcase(tmp_path):
    app = typer.Typer()
    app.command()(showcase)
    report = tmp_path / "report.html"
    args = [
        "--data",
        str(tmp_path / "chain"),
        "--report",
        str(report),
        "--accounts",
        "16",
        "--markets",
        "2",
        "--blocks",
        "4",
        "--block-size",
        "60",
        "--shock-at",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "yes" in result.output and "HTML report" in result.output
    assert (tmp_path / "chain" / "data.mdb").exists()
    assert report.read_text().startswith("<!DOCTYPE html>")

"""The golden scenarios as vectors: files in sync with their definitions, all passing, runner can fail."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from paraexec.cli import app
from paraexec.exchange.vectors import load_vector, run_vector

from .golden import VECTOR_DIR, render, vectors

VECTORS = vectors()


def test_vector_files_match_their_definitions():
    on_disk = {p.name for p in VECTOR_DIR.glob("*.json")}
    assert on_disk == set(VECTORS), "run `python -m tests.exchange.golden` to regenerate"
    for name, data in VECTORS.items():
        assert (VECTOR_DIR / name).read_text() == render(data), name


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_passes(name):
    assert run_vector(load_vector(VECTOR_DIR / name)) == []


def test_wrong_expectations_are_reported():
    vector = copy.deepcopy(VECTORS["fill_with_fees.json"])
    vector["post"]["fee_pool"] += 1
    vector["post"]["subaccounts"][0]["balance"] -= 1
    vector["blocks"][0]["expect"][1]["events"][0]["attrs"]["taker_fee"] = 2_500_001
    problems = run_vector(vector)
    assert len(problems) == 3
    assert any("fee_pool" in p for p in problems) and any("taker_fee" in p for p in problems)


def test_cli_runs_vectors_and_exits_nonzero_on_failure(tmp_path):
    runner = CliRunner()
    good = runner.invoke(app, ["vectors", "run", str(VECTOR_DIR / "fill_with_fees.json")])
    assert good.exit_code == 0, good.output
    assert "pass" in good.output
    broken = copy.deepcopy(VECTORS["price_band_rejection.json"])
    broken["blocks"][0]["expect"][0]["code"] = 0
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    bad = runner.invoke(app, ["vectors", "run", str(path), str(VECTOR_DIR / "fill_with_fees.json")])
    assert bad.exit_code == 1
    assert "FAIL" in bad.output and "1 passed, 1 failed" in bad.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "Expected `object`, got `array`"),
        ('{"name": "x", "steps": "zz"}', "missing required field `config`"),
        ('{"config": {}, "blocks": [{"time": "x"}]}', "at `$.blocks[0].time`"),
        ('{"config": {}, "blocks": [{"time": 1, "txs": [{"signer": "bob", "type": "Nope"}]}]}', "['bob']"),
        ("{bad", "not a vector"),
    ],
)
def test_a_malformed_vector_is_reported_with_the_place_that_is_wrong(tmp_path, text, message):
    from paraexec.exchange.vectors import MalformedVector

    path = tmp_path / "v.json"
    path.write_text(text)
    with pytest.raises(MalformedVector, match="not a vector") as raised:
        load_vector(path)
    assert message in str(raised.value)

"""The replay workload: real Binance order flow signed as exchange blocks, on a small slice."""

from __future__ import annotations

import gzip
import itertools
from collections import Counter

import pytest

pytest.importorskip("paraexec.exchange.genesis", reason="the exchange application is not there yet")

from paraexec.chain import Chain, ChainConfig  # noqa: E402
from paraexec.execution import SequentialExecutor  # noqa: E402
from paraexec.state import MemoryStore  # noqa: E402
from paraexec.workloads.binance import default_data_file  # noqa: E402
from paraexec.workloads.replay import ReplayWorkload  # noqa: E402

from .test_binance import SLICE  # noqa: E402


@pytest.fixture(scope="module")
def real_slice(tmp_path_factory):
    source = default_data_file()
    if not source.exists():
        pytest.skip(f"shared market data not present at {source}")
    path = tmp_path_factory.mktemp("data") / "slice.gz"
    with gzip.open(source, "rt") as src, gzip.open(path, "wt") as dst:
        dst.writelines(itertools.islice(src, 4000))
    return path


def run(workload, blocks, size):
    config = ChainConfig(workload.chain_id, workload.app_name, workload.genesis_config())
    chain = Chain.create(MemoryStore(), config)
    return [chain.produce_block(workload.block(h, size), h, SequentialExecutor())[1] for h in range(1, blocks + 1)]


def test_units(real_slice):
    w = ReplayWorkload(data_file=str(real_slice), accounts=4, makers=2)
    m = w.market
    # 61,800.30 USD in cents -> oracle price units -> subticks, and back to USD
    price = w.price_of_cents(6_180_030)
    assert price * 10**m.price_exponent * 100 == pytest.approx(6_180_030)
    assert w.quantums_of(1) % m.step_base_quantums == 0  # 0.001 BTC, a step multiple
    assert w.quantums_of(1000) == 10 ** (-m.atomic_resolution)  # 1 BTC


def test_tiny_inline_slice_runs(tmp_path):
    path = tmp_path / "tiny.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(SLICE) + "\n")
    w = ReplayWorkload(data_file=str(path), accounts=6, makers=2)
    outputs = run(w, blocks=3, size=10)
    assert w.exhausted
    events = Counter(e.name for out in outputs for r in out.receipts for e in r.events)
    assert events["deposit"] == 6 and events["order"] >= 3


def test_real_slice_is_deterministic_and_executes(real_slice):
    params = dict(data_file=str(real_slice), accounts=20, makers=4, band_bps=3)
    a, b = ReplayWorkload(**params), ReplayWorkload(**params)
    blocks_a = [a.block(h, 150) for h in (1, 2, 3)]
    assert blocks_a == [b.block(h, 150) for h in (1, 2, 3)]
    outputs = run(ReplayWorkload(**params), blocks=6, size=150)
    receipts = [r for out in outputs for r in out.receipts]
    events = Counter(e.name for r in receipts for e in r.events)
    assert sum(r.ok for r in receipts) / len(receipts) > 0.9
    assert events["order"] > 100 and events["order_canceled"] > 10 and events["fill"] > 0
    assert events["oracle_price"] >= 1


def test_missing_data_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-file"):
        ReplayWorkload(data_file=str(tmp_path / "absent.gz"))


def test_the_first_block_of_orders_after_long_deposits_has_a_fresh_oracle(real_slice):
    """With many accounts and small blocks the deposits take more than the oracle's staleness
    (60 s blocks): the first block that trades refreshes the oracle before its first order."""
    w = ReplayWorkload(data_file=str(real_slice), accounts=600, makers=20, band_bps=3)
    chain = Chain.create(MemoryStore(), ChainConfig(w.chain_id, w.app_name, w.genesis_config()))
    times = [h * w.block_seconds for h in range(1, 18)]  # 600 deposits: blocks 1..15 (900 s), then orders
    outputs = [chain.produce_block(w.block(h, 40), t, SequentialExecutor())[1] for h, t in enumerate(times, 1)]
    codes = Counter(r.code for out in outputs for r in out.receipts)
    assert codes[212] == 0, codes  # STALE_ORACLE
    assert sum(e.name == "order" for out in outputs for r in out.receipts for e in r.events) > 0


def test_run_says_when_the_recording_ran_out(tmp_path):
    from typer.testing import CliRunner

    from paraexec.cli import app

    path = tmp_path / "tiny.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(SLICE) + "\n")
    args = ["run", "--workload", "replay", "--data-file", str(path), "--accounts", "20", "--block-size", "10"]
    result = CliRunner().invoke(app, [*args, "--blocks", "5", "--data", str(tmp_path / "chain")])
    assert result.exit_code == 0, result.output
    assert "recording ran out" in " ".join(result.output.split())

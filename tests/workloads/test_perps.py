"""The perps market simulation: deterministic, realistic mix, and shocks that liquidate."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("paraexec.exchange.genesis", reason="the exchange application is not there yet")

from paraexec.chain import Chain, ChainConfig  # noqa: E402
from paraexec.codec import decode  # noqa: E402
from paraexec.exchange.payloads import PAYLOAD_TYPES  # noqa: E402
from paraexec.execution import SequentialExecutor  # noqa: E402
from paraexec.state import MemoryStore  # noqa: E402
from paraexec.transaction import Payload, decode_signed  # noqa: E402
from paraexec.workloads.perps import PerpsWorkload  # noqa: E402


def payloads(workload, txs):
    out = []
    for raw in txs:
        envelope = decode(decode_signed(raw, workload.chain_id).payload, Payload)
        out.append(decode(bytes(envelope.body), PAYLOAD_TYPES[envelope.type]))
    return out


def run_chain(workload, blocks, size):
    chain = Chain.create(MemoryStore(), ChainConfig(workload.chain_id, workload.app_name, workload.genesis_config()))
    outputs = []
    for height in range(1, blocks + 1):
        _, output = chain.produce_block(workload.block(height, size), height, SequentialExecutor())
        outputs.append(output)
    return outputs


def test_deterministic_from_seed():
    a, b, c = (
        PerpsWorkload(accounts=20, markets=3, seed=1),
        PerpsWorkload(accounts=20, markets=3, seed=1),
        PerpsWorkload(accounts=20, markets=3, seed=2),
    )
    assert [a.block(h, 40) for h in (1, 2)] == [b.block(h, 40) for h in (1, 2)]
    assert a.genesis_config() == b.genesis_config()
    assert c.block(1, 40) != PerpsWorkload(accounts=20, markets=3, seed=1).block(1, 40)


def test_blocks_in_order_only():
    w = PerpsWorkload(accounts=10, markets=2)
    w.block(1, 10)
    with pytest.raises(ValueError, match="in order"):
        w.block(3, 10)


def test_every_block_updates_every_market_and_volume_follows_zipf():
    w = PerpsWorkload(accounts=40, markets=6, seed=3)
    orders: Counter[int] = Counter()
    for height in (1, 2, 3):
        ps = payloads(w, w.block(height, 300))
        oracle_markets = [p.market_id for p in ps if type(p).__name__ == "OracleUpdate"]
        assert sorted(oracle_markets) == list(range(6))
        orders.update(p.market_id for p in ps if type(p).__name__ == "PlaceOrder")
    ranked = [m for m, _ in orders.most_common()]
    assert ranked[0] == 0 and set(ranked[:2]) == {0, 1}  # BTC and ETH dominate
    assert orders[0] > 2 * orders[5]


def test_simulation_executes_and_a_shock_liquidates():
    w = PerpsWorkload(accounts=60, markets=2, seed=0, shock_at=5, shock_blocks=3)
    outputs = run_chain(w, blocks=8, size=200)
    receipts = [r for out in outputs for r in out.receipts]
    events = Counter(e.name for r in receipts for e in r.events)
    ok = sum(r.ok for r in receipts) / len(receipts)
    assert ok > 0.6, Counter(r.error.split(":")[0] for r in receipts if not r.ok)
    assert events["fill"] > 100 and events["oracle_price"] == 2 * 8
    before = Counter(e.name for out in outputs[:4] for r in out.receipts for e in r.events)
    assert before["liquidation"] == 0
    assert events["liquidation"] > 0
    # takers' stop-losses: stored untriggered, and the crash fires them in the market ticks
    assert before["conditional_triggered"] == 0 and events["conditional_triggered"] > 0
    statuses = Counter(e.attrs["status"] for r in receipts for e in r.events if e.name == "order")
    assert statuses["UNTRIGGERED"] > 0


def test_compressed_block_time_applies_hourly_funding():
    w = PerpsWorkload(accounts=12, markets=1, seed=4)
    chain = Chain.create(MemoryStore(), ChainConfig(w.chain_id, w.app_name, w.genesis_config()))
    rates = 0
    for height in range(1, 3600 // w.block_seconds + 2):
        _, out = chain.produce_block(w.block(height, 20), height * w.block_seconds, SequentialExecutor())
        rates += sum(e.name == "funding_rate" for r in out.receipts for e in r.events)
    assert rates == 1


def test_a_shock_beyond_the_oracle_price_band_is_refused():
    """The chain refuses an oracle move beyond the market's band: a generator that shocked past
    it would desync from the chain's prices and stall every later block on a stale oracle."""
    from paraexec.workloads.perps import PerpsWorkload

    with pytest.raises(ValueError, match="price band"):
        PerpsWorkload(accounts=20, markets=2, shock_at=2, shock_ppm=-150_000)
    PerpsWorkload(accounts=20, markets=2, shock_at=2, shock_ppm=-90_000)  # within the band

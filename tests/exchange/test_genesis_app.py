"""Dev genesis, the Application surface (hints, system payloads, registration) and queries."""

from __future__ import annotations

import json

from paraexec.apps import load_app
from paraexec.chain import Chain, ChainConfig
from paraexec.exchange import keys
from paraexec.exchange.app import ExchangeApp
from paraexec.exchange.genesis import dev_genesis, dev_keys, oracle_keys
from paraexec.exchange.payloads import BUY, IOC, SELL, MarketTick, OracleUpdate, PlaceOrder
from paraexec.exchange.queries import StateReader
from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.state import MemoryStore
from paraexec.transaction import decode_payload_envelope, encode_payload, sign


def test_dev_genesis_is_deterministic_json_with_keys_to_sign():
    cfg = dev_genesis("seed-a", accounts=5, markets=10)
    assert json.loads(json.dumps(cfg)) == cfg == dev_genesis("seed-a", accounts=5, markets=10)
    assert dev_genesis("seed-b", accounts=5)["accounts"] != cfg["accounts"]
    assert sorted(cfg["accounts"]) == sorted(k.public_key.hex() for k in dev_keys("seed-a", 5))
    assert cfg["oracles"] == [k.public_key.hex() for k in oracle_keys("seed-a")]
    tickers = [m["ticker"] for m in cfg["markets"]]
    assert tickers[:3] == ["BTC-USD", "ETH-USD", "SOL-USD"] and len(set(tickers)) == 10


def test_dev_chain_trades_in_every_market():
    cfg = dev_genesis("dev", accounts=2, markets=8)
    chain = Chain.create(MemoryStore(), ChainConfig("dev", "exchange", cfg))
    maker, taker = dev_keys("dev", 2)
    oracle = oracle_keys("dev")[0]
    txs, nonces = [], {maker.public_key: 0, taker.public_key: 0, oracle.public_key: 0}

    def tx(key, payload):
        nonces[key.public_key] += 1
        return sign(key, "dev", nonces[key.public_key] - 1, encode_payload(payload))

    reader = StateReader(chain.store.get, chain.store.items, cfg)
    for m in cfg["markets"]:
        price = reader.markets[m["id"]].price_to_subticks(m["initial_price"])
        txs.append(tx(oracle, OracleUpdate(m["id"], m["initial_price"])))
        txs.append(tx(maker, PlaceOrder(m["id"], 0, 1, SELL, m["step_base_quantums"] * 10, price)))
        txs.append(tx(taker, PlaceOrder(m["id"], 0, 1, BUY, m["step_base_quantums"] * 10, price, time_in_force=IOC)))
    _, out = chain.produce_block(txs, 1, SequentialExecutor())
    assert all(r.ok for r in out.receipts), [r.error for r in out.receipts if not r.ok]
    assert len(out.receipts) == len(txs) + 8  # one MarketTick per market
    assert sum(1 for r in out.receipts for e in r.events if e.name == "fill") == 8
    view = reader.subaccount(taker.public_key)
    assert len(view["positions"]) == 8 and not view["liquidatable"]


def test_app_surface():
    app = load_app("exchange", dev_genesis(accounts=1, markets=3))
    assert isinstance(app, ExchangeApp) and app.name == "exchange"
    ticks = app.system_payloads(BlockEnv(5, 5))
    assert [decode_payload_envelope(t).type for t in ticks] == ["MarketTick"] * 3
    assert ticks[1] == encode_payload(MarketTick(1))
    owner = b"\x01" * 32
    hints = app.hint_keys(owner, PlaceOrder(2, 3, 1, BUY, 1, 1))
    assert hints == (keys.market_prefix(2), keys.subaccount(keys.subaccount_id(owner, 3)))
    # different markets never share a hint key, the same market always does
    assert app.hint_keys(owner, PlaceOrder(1, 0, 1, BUY, 1, 1))[0] != hints[0]
    # hints run before validation: out-of-range ids give no hint instead of crashing the scheduler
    assert app.hint_keys(owner, PlaceOrder(70_000, 300, 1, BUY, 1, 1)) == ()


def test_queries_book_and_market():
    cfg = dev_genesis("q", accounts=2, markets=1)
    chain = Chain.create(MemoryStore(), ChainConfig("q", "exchange", cfg))
    a, _ = dev_keys("q", 2)
    price = 6_000_000_000
    txs = [
        sign(a, "q", i, encode_payload(PlaceOrder(0, 0, i, SELL, 1_000_000 * (i + 1), price + 100_000 * (i % 2))))
        for i in range(3)
    ]
    chain.produce_block(txs, 1, SequentialExecutor())
    reader = StateReader(chain.store.get, chain.store.items, cfg)
    assert reader.book(0) == {"bids": [], "asks": [[price, 4_000_000, 2], [price + 100_000, 2_000_000, 1]]}
    market = reader.market(0)
    assert market["oracle_price"] == price and market["open_interest"] == 0 and market["params"]["ticker"] == "BTC-USD"
    assert reader.insurance_fund() == cfg["insurance_fund"]

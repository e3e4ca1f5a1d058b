"""End to end on an exchange chain: orders through the client, fills in receipts and events,
positions/margin/liquidation price, markets and books over JSON-RPC, fills and book updates
over WebSocket."""

from __future__ import annotations

from paraexec.client import Client
from paraexec.client.load import wallet_of
from paraexec.exchange.genesis import dev_keys
from paraexec.exchange.market import Market
from paraexec.exchange.payloads import BUY, IOC, SELL

from .nodeproc import NodeProcess, init_exchange_chain


def test_orders_fills_queries_and_subscriptions(tmp_path):
    data = tmp_path / "chain"
    init_exchange_chain(data, accounts=4, markets=2)
    maker, taker = (wallet_of(k, "paraexec-dev") for k in dev_keys(accounts=2))
    with NodeProcess(data, block_time=0.2) as node, Client(node.url) as client:
        markets = client.markets()
        assert [m["ticker"] for m in markets] == ["BTC-USD", "ETH-USD"]
        btc = Market.from_config(markets[0]["params"])
        price = btc.price_to_subticks(markets[0]["oracle_price"])
        size = btc.step_base_quantums * 10
        for w in (maker, taker):
            w.sync_nonce(client)
        with client.subscribe("fills", "book") as sub:
            ask = client.submit_and_wait(maker.place_order(0, SELL, size, price, client_id=1))
            assert ask["ok"] and ask["events"][0]["attrs"]["status"] == "RESTING"
            book = client.book(0)
            assert book["asks"] == [[price, size, 1]] and book["bids"] == []
            hit = client.submit_and_wait(taker.place_order(0, BUY, size // 2, price, client_id=1, time_in_force=IOC))
            assert hit["ok"]
            fill = next(e["attrs"] for e in hit["events"] if e["name"] == "fill")
            assert (fill["market"], fill["quantums"], fill["subticks"]) == (0, size // 2, price)

            got = {}
            while not {"fills", "book"} <= got.keys() or got["book"]["books"]["0"]["asks"][0][1] != size // 2:
                topic, result = sub.next_message(timeout=10)
                got[topic] = result
            assert got["fills"]["fills"][0]["quantums"] == size // 2

        sub_ = client.subaccount(taker.address, 0)
        assert sub_["positions"][0]["size"] == size // 2 and sub_["positions"][0]["ticker"] == "BTC-USD"
        assert sub_["tnc"] > sub_["imr"] > sub_["mmr"] > 0 and not sub_["liquidatable"]
        maker_pos = client.subaccount(maker.address, 0)["positions"][0]
        assert maker_pos["size"] == -(size // 2)
        account = client.account(taker.address)
        assert account["nonce"] == 1 and account["bank"] > 0 and account["subaccount_0"] == sub_
        assert client.book(0)["asks"] == [[price, size - size // 2, 1]]
        trades = client.trades(market_id=0)
        assert trades[-1]["quantums"] == size // 2 and trades[-1]["taker"].startswith(taker.address.hex())
        events = client.events(max(0, client.height() - 50), name="fill")
        assert any(e["attrs"]["quantums"] == size // 2 for e in events)
        hot = client.hot_keys(height=next(e["height"] for e in events))
        assert hot["keys"], "the tick transactions and the order share the market's keys"

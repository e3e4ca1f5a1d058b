"""Hand-computed golden scenarios, written out as test vectors under tests/vectors/.

Every expected number below is derived by hand in the comments (BTC-USD: 1 BTC = 1e10 base
quantums, price exponent -5 so 50,000 USD = 5_000_000_000 = subticks; 1 USDC = 1e6 quote
quantums; IMF 5%, MMF 60% of IMF = 3%; taker fee 500 ppm, maker fee 100 ppm; liquidation fee
15,000 ppm, spread-to-MMR 150%, bankruptcy adjustment 100%).

``python -m tests.exchange.golden`` rewrites the JSON files; ``test_vectors.py`` checks that the
files equal these definitions and that every vector passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paraexec.exchange.genesis import dev_market
from paraexec.exchange.payloads import BUY, IOC, MARKET, POST_ONLY, SELL, STOP_LOSS

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"
USDC = 10**6
BTC = 10**10
KEYS = {
    "alice": "x/alice",
    "bob": "x/bob",
    "carol": "x/carol",
    "dave": "x/dave",
    "oracle": "x/oracle",
    "mallory": "x/mallory",
}


def px(usd: int) -> int:
    """USD per BTC -> oracle price = subticks (price exponent -5)."""
    return usd * 100_000


def cfg(subaccounts: dict[str, int], insurance: int = 0, **market: Any) -> dict[str, Any]:
    m = dev_market(0)
    m.update({"initial_price": px(50_000), "oi_lower_cap": 0, "oi_upper_cap": 0, "staleness_s": 3600})
    m.update(market)
    return {
        "genesis_time": 0,
        "markets": [m],
        "oracles": ["oracle"],
        "oracle_quorum": 1,
        "fees": {"taker_ppm": 500, "maker_ppm": 100},
        "accounts": {name: 1_000_000 * USDC for name in ("alice", "bob", "carol", "dave")},
        "subaccounts": [[name, 0, amount] for name, amount in subaccounts.items()],
        "insurance_fund": insurance,
    }


def order(signer: str, client_id: int, side: int, quantums: int, usd: int, **extra: Any) -> dict[str, Any]:
    args = {
        "market_id": 0,
        "subaccount": 0,
        "client_id": client_id,
        "side": side,
        "quantums": quantums,
        "subticks": px(usd),
        **extra,
    }
    return {"signer": signer, "type": "PlaceOrder", "args": args}


def oracle(usd: int) -> dict[str, Any]:
    return {"signer": "oracle", "type": "OracleUpdate", "args": {"market_id": 0, "price": px(usd)}}


def vector(
    name: str, description: str, config: dict[str, Any], blocks: list[dict[str, Any]], post: dict[str, Any]
) -> dict[str, Any]:
    return {"name": name, "description": description, "keys": KEYS, "config": config, "blocks": blocks, "post": post}


def fill_with_fees() -> dict[str, Any]:
    # 0.1 BTC at 50,000 = 5,000 USDC = 5e9. Taker fee 5e9 * 500e-6 = 2.5e6, maker 5e9 * 100e-6 = 5e5.
    # alice 10,000 + 5,000 - 0.5 = 14,999.5 USDC; bob 10,000 - 5,000 - 2.5 = 4,997.5 USDC.
    return vector(
        "fill_with_fees",
        "A resting ask filled by an IOC buy: maker/taker fees into the fee pool.",
        cfg({"alice": 10_000 * USDC, "bob": 10_000 * USDC}),
        [
            {
                "time": 1,
                "txs": [
                    order("alice", 1, SELL, BTC // 10, 50_000),
                    order("bob", 1, BUY, BTC // 10, 50_000, time_in_force=IOC),
                ],
                "expect": [
                    {"code": 0, "events": [{"name": "order", "attrs": {"status": "RESTING"}}]},
                    {
                        "code": 0,
                        "events": [
                            {
                                "name": "fill",
                                "attrs": {
                                    "taker": "bob/0",
                                    "maker": "alice/0",
                                    "quantums": BTC // 10,
                                    "subticks": px(50_000),
                                    "quote": 5_000 * USDC,
                                    "taker_fee": 2_500_000,
                                    "maker_fee": 500_000,
                                },
                            },
                            {"name": "order", "attrs": {"status": "FILLED", "filled": BTC // 10}},
                        ],
                    },
                ],
            }
        ],
        {
            "subaccounts": [
                {"owner": "alice", "balance": 14_999_500_000, "positions": {"0": -BTC // 10}},
                {"owner": "bob", "balance": 4_997_500_000, "positions": {"0": BTC // 10}},
            ],
            "fee_pool": 3_000_000,
            "open_interest": {"0": BTC // 10},
            "book": {"0": {"bids": [], "asks": []}},
        },
    )


def funding_over_hours() -> dict[str, Any]:
    # After the 0.1 BTC fill, carol bids 0.2 BTC at 50,050 (10,010 USDC: deep enough for the
    # market's 10,000 USDC impact notional, so the impact bid is 50,050): premium = 50/50,000 =
    # 1,000 ppm from t = 1 on (far inside the clamps: premium 60 x (5% - 3%) = 120%, rate
    # 6 x 2% = 12%). Samples are weighted by the time they stand: the first hour saw premium 0 for
    # its first second (before any block) and 1,000 ppm for 3,599 s: floor(3,599,000 / 3,600) = 999
    # ppm; the next two 1,000 ppm (the bid stands all hour). d_index = rate * value_nano_per_quantum
    # / 8e6, with value_nano_per_quantum = 5e9 (5 quote quantums per base quantum): 624,375, then
    # 625,000 per hour: index 624,375 (t = 3600), 1,249,375 (7200), 1,874,375 (10800). bob (long
    # 1e9) pays 1e9 * 1,874,375 / 1e9 = 1,874,375 quote quantums (~ 5,000 USDC * 0.1% * 3 / 8);
    # alice receives it. bob then withdraws 1 USDC: 4,997,500,000 - 1,874,375 - 1,000,000 =
    # 4,994,625,625; alice deposits 1 USDC: 14,999,500,000 + 1,874,375 + 1,000,000 = 15,002,374,375.
    hourly = [
        {
            "time": t,
            "txs": [oracle(50_000)],
            "expect_ticks": [
                {"code": 0, "events": [{"name": "funding_rate", "attrs": {"rate_8h_ppm": rate, "index": idx}}]}
            ],
        }
        for t, rate, idx in ((3600, 999, 624_375), (7200, 1_000, 1_249_375), (10800, 1_000, 1_874_375))
    ]
    return vector(
        "funding_over_hours",
        "Premium samples from a bid above the oracle, weighted by time; three hourly fundings settle lazily.",
        cfg({"alice": 10_000 * USDC, "bob": 10_000 * USDC, "carol": 1_000 * USDC}),
        [
            {
                "time": 1,
                "txs": [
                    order("alice", 1, SELL, BTC // 10, 50_000),
                    order("bob", 1, BUY, BTC // 10, 50_000, time_in_force=IOC),
                    order("carol", 1, BUY, BTC // 5, 50_050),
                ],
            },
            *hourly,
            {
                "time": 10801,
                "txs": [
                    {"signer": "bob", "type": "Withdraw", "args": {"subaccount": 0, "amount": USDC}},
                    {"signer": "alice", "type": "Deposit", "args": {"subaccount": 0, "amount": USDC}},
                ],
                "expect": [
                    {
                        "code": 0,
                        "events": [{"name": "withdraw"}, {"name": "funding_settled", "attrs": {"amount": -1_874_375}}],
                    },
                    {
                        "code": 0,
                        "events": [{"name": "deposit"}, {"name": "funding_settled", "attrs": {"amount": 1_874_375}}],
                    },
                ],
            },
        ],
        {
            "subaccounts": [
                {"owner": "alice", "balance": 15_002_374_375, "positions": {"0": -BTC // 10}},
                {"owner": "bob", "balance": 4_994_625_625, "positions": {"0": BTC // 10}},
            ],
            "banks": {"alice": 999_999 * USDC, "bob": 1_000_001 * USDC},
        },
    )


def _long_one_btc() -> dict[str, Any]:
    # bob (3,000 USDC) buys 1 BTC at 50,000 from alice: bob balance 3,000 - 50,000 - 25 = -47,025
    # USDC; TNC 2,975 >= IMR 2,500. alice 100,000 + 50,000 - 5 = 149,995 USDC, short 1 BTC.
    return {
        "time": 1,
        "txs": [order("alice", 1, SELL, BTC, 50_000), order("bob", 1, BUY, BTC, 50_000, time_in_force=IOC)],
        "expect": [{"code": 0}, {"code": 0, "events": [{"name": "order", "attrs": {"status": "FILLED"}}]}],
    }


def liquidation_pays_insurance() -> dict[str, Any]:
    # Oracle 48,450: bob TNC = -47,025 + 48,450 = 1,425 < MMR = 3% * 48,450 = 1,453.5 -> liquidatable.
    # Fillable price: ABR = 1e6 * (1,453.5 - 1,425) / 1,453.5 = 19,607 ppm (floor);
    # spread = 19,607e-6 * 1.5 * 1,453.5e6 = 42,748,261 (floor); (48,450e6 - 42,748,261) / 1 BTC
    # = 48,407.25 USD -> rounded up to the 1 USD tick: 48,408.
    # Bankruptcy quote = 48,450 - 1,425 = 47,025 USDC. carol's bid fills at 48,420 (>= 48,408):
    # surplus 48,420 - 47,025 = 1,395 USDC; fee = 1.5% * 48,420 = 726.3 USDC < surplus -> fund +726.3.
    # bob: -47,025 + 48,420 - 726.3 = 668.7 USDC, flat. carol: 10,000 - 48,420 - 4.842 (maker fee).
    # fees: 25 + 5 (first trade) + 4.842 = 34.842 USDC.
    return vector(
        "liquidation_pays_insurance",
        "A liquidation filled above the bankruptcy price pays the fee to the fund.",
        cfg({"alice": 100_000 * USDC, "bob": 3_000 * USDC, "carol": 10_000 * USDC}),
        [
            _long_one_btc(),
            {
                "time": 2,
                "txs": [
                    oracle(48_450),
                    order("carol", 1, BUY, BTC, 48_420),
                    {"signer": "dave", "type": "Liquidate", "args": {"owner": "bob", "subaccount": 0, "market_id": 0}},
                ],
                "expect": [
                    {"code": 0},
                    {"code": 0},
                    {
                        "code": 0,
                        "events": [
                            {
                                "name": "fill",
                                "attrs": {
                                    "taker": "bob/0",
                                    "maker": "carol/0",
                                    "subticks": px(48_420),
                                    "liquidation": True,
                                    "maker_fee": 4_842_000,
                                },
                            },
                            {
                                "name": "liquidation",
                                "attrs": {
                                    "subaccount": "bob/0",
                                    "filled": BTC,
                                    "deleveraged": 0,
                                    "fillable_subticks": px(48_408),
                                    "insurance_delta": 726_300_000,
                                    "tnc_after": 668_700_000,
                                },
                            },
                        ],
                    },
                ],
            },
        ],
        {
            "subaccounts": [
                {"owner": "bob", "balance": 668_700_000, "positions": {}},
                {"owner": "carol", "balance": -38_424_842_000, "positions": {"0": BTC}},
            ],
            "insurance_fund": 726_300_000,
            "fee_pool": 34_842_000,
            "open_interest": {"0": BTC},
        },
    )


def liquidation_draws_insurance() -> dict[str, Any]:
    # Oracle 46,500: bob TNC = -47,025 + 46,500 = -525 (bankrupt). ABR clamps to 100%; spread =
    # 1.5 * MMR 1,395 = 2,092.5 -> fillable (46,500 - 2,092.5) = 44,407.5 -> 44,408 (up).
    # Bankruptcy quote 46,500 + 525 = 47,025. carol's bid at 46,000: surplus = -1,025 USDC,
    # paid by the fund (10,000 -> 8,975). bob ends at exactly 0. The end-of-block sweep does it.
    return vector(
        "liquidation_draws_insurance",
        "A liquidation below bankruptcy: the insurance fund covers the loss.",
        cfg({"alice": 100_000 * USDC, "bob": 3_000 * USDC, "carol": 10_000 * USDC}, insurance=10_000 * USDC),
        [
            _long_one_btc(),
            {
                "time": 2,
                "txs": [order("carol", 1, BUY, BTC, 46_000), oracle(46_500)],
                "expect": [{"code": 0}, {"code": 0}],
                "expect_ticks": [
                    {
                        "code": 0,
                        "events": [
                            {"name": "fill", "attrs": {"taker": "bob/0", "subticks": px(46_000), "liquidation": True}},
                            {
                                "name": "liquidation",
                                "attrs": {
                                    "subaccount": "bob/0",
                                    "filled": BTC,
                                    "fillable_subticks": px(44_408),
                                    "insurance_delta": -1_025 * USDC,
                                    "tnc_after": 0,
                                },
                            },
                        ],
                    }
                ],
            },
        ],
        {
            "subaccounts": [
                {"owner": "bob", "balance": 0, "positions": {}},
                {"owner": "carol", "balance": -36_004_600_000, "positions": {"0": BTC}},
            ],
            "insurance_fund": 8_975 * USDC,
        },
    )


def deleveraging() -> dict[str, Any]:
    # As above with an empty fund: the fill at 46,000 needs 1,025 USDC the fund does not have, so
    # matching stops and bob's 1 BTC is offset against alice's short at the bankruptcy price
    # 47,025: bob receives 47,025 -> 0; alice pays 47,025: 149,995 - 47,025 = 102,970 USDC, flat.
    # carol's bid stays on the book.
    return vector(
        "deleveraging",
        "The fund cannot cover a bankrupt position: ADL against the opposite side.",
        cfg({"alice": 100_000 * USDC, "bob": 3_000 * USDC, "carol": 10_000 * USDC}),
        [
            _long_one_btc(),
            {
                "time": 2,
                "txs": [order("carol", 1, BUY, BTC, 46_000), oracle(46_500)],
                "expect_ticks": [
                    {
                        "code": 0,
                        "events": [
                            {
                                "name": "deleveraged",
                                "attrs": {
                                    "liquidated": "bob/0",
                                    "offsetting": "alice/0",
                                    "quantums": BTC,
                                    "quote": 47_025 * USDC,
                                },
                            },
                            {
                                "name": "liquidation",
                                "attrs": {"filled": 0, "deleveraged": BTC, "insurance_delta": 0, "tnc_after": 0},
                            },
                        ],
                    }
                ],
            },
        ],
        {
            "subaccounts": [
                {"owner": "bob", "balance": 0, "positions": {}},
                {"owner": "alice", "balance": 102_970 * USDC, "positions": {}},
            ],
            "insurance_fund": 0,
            "open_interest": {"0": 0},
            "book": {"0": {"bids": [[px(46_000), BTC, 1]], "asks": []}},
        },
    )


def withdrawal_refused_for_margin() -> dict[str, Any]:
    # bob long 1 BTC: TNC 2,975, IMR 2,500. Withdrawing 500 leaves 2,475 < 2,500: refused (204).
    # 475 leaves exactly 2,500: accepted; bank 1,000,000 + 475 USDC.
    return vector(
        "withdrawal_refused_for_margin",
        "A withdrawal that would break initial margin is refused.",
        cfg({"alice": 100_000 * USDC, "bob": 3_000 * USDC}),
        [
            _long_one_btc(),
            {
                "time": 2,
                "txs": [
                    {"signer": "bob", "type": "Withdraw", "args": {"subaccount": 0, "amount": 500 * USDC}},
                    {"signer": "bob", "type": "Withdraw", "args": {"subaccount": 0, "amount": 475 * USDC}},
                ],
                "expect": [{"code": 204}, {"code": 0}],
            },
        ],
        {
            "subaccounts": [{"owner": "bob", "balance": -47_500 * USDC, "positions": {"0": BTC}}],
            "banks": {"bob": 1_000_475 * USDC},
        },
    )


def stale_oracle_pause() -> dict[str, Any]:
    # Staleness limit 60 s. At t=61 the genesis price (t=0) is stale: orders are refused (212).
    # A fresh update at t=62 reopens the market.
    return vector(
        "stale_oracle_pause",
        "Trading pauses while the oracle price is older than the staleness limit.",
        cfg({"alice": 10_000 * USDC}, staleness_s=60),
        [
            {"time": 61, "txs": [order("alice", 1, BUY, BTC // 100, 49_000)], "expect": [{"code": 212}]},
            {
                "time": 62,
                "txs": [oracle(50_000), order("alice", 2, BUY, BTC // 100, 49_000)],
                "expect": [{"code": 0}, {"code": 0, "events": [{"name": "order", "attrs": {"status": "RESTING"}}]}],
            },
        ],
        {"book": {"0": {"bids": [[px(49_000), BTC // 100, 1]], "asks": []}}},
    )


def price_band_rejection() -> dict[str, Any]:
    # Band 10%: 50,000 -> 56,000 is +12%: refused (211). 54,000 (+8%) is accepted.
    return vector(
        "price_band_rejection",
        "An oracle update moving more than the band is refused.",
        cfg({}),
        [
            {
                "time": 1,
                "txs": [oracle(56_000), oracle(54_000)],
                "expect": [
                    {"code": 211},
                    {"code": 0, "events": [{"name": "oracle_price", "attrs": {"price": px(54_000)}}]},
                ],
            }
        ],
        {},
    )


def stop_order_trigger() -> dict[str, Any]:
    # bob buys 0.1 BTC at 50,000 (taker: -5,000 - 2.5). He places a reduce-only market stop-loss
    # sell, trigger 49,500. The oracle falls to 49,400 <= 49,500: at the end of that block the
    # stop fires and sells into alice's bid at 49,000: +4,900 - 2.45 fee.
    # bob: 10,000 - 5,002.5 + 4,897.55 = 9,895.05 USDC, flat.
    return vector(
        "stop_order_trigger",
        "A stop-loss fires when the oracle crosses its trigger and fills at the end of the block.",
        cfg({"alice": 10_000 * USDC, "bob": 10_000 * USDC, "dave": 10_000 * USDC}),
        [
            {
                "time": 1,
                "txs": [
                    order("dave", 1, SELL, BTC // 10, 50_000),
                    order("bob", 1, BUY, BTC // 10, 50_000, time_in_force=IOC),
                    order("alice", 1, BUY, BTC // 10, 49_000),
                    order(
                        "bob",
                        2,
                        SELL,
                        BTC // 10,
                        0,
                        order_type=MARKET,
                        time_in_force=IOC,
                        reduce_only=True,
                        condition=STOP_LOSS,
                        trigger_subticks=px(49_500),
                    ),
                ],
                "expect": [
                    {"code": 0},
                    {"code": 0},
                    {"code": 0},
                    {"code": 0, "events": [{"name": "order", "attrs": {"status": "UNTRIGGERED"}}]},
                ],
            },
            {"time": 2, "txs": [oracle(49_600)], "expect": [{"code": 0}], "expect_ticks": [{"code": 0, "events": []}]},
            {
                "time": 3,
                "txs": [oracle(49_400)],
                "expect_ticks": [
                    {
                        "code": 0,
                        "events": [
                            {"name": "conditional_triggered", "attrs": {"subaccount": "bob/0", "client_id": 2}},
                            {
                                "name": "fill",
                                "attrs": {
                                    "taker": "bob/0",
                                    "maker": "alice/0",
                                    "subticks": px(49_000),
                                    "taker_fee": 2_450_000,
                                },
                            },
                            {"name": "order", "attrs": {"status": "FILLED"}},
                        ],
                    }
                ],
            },
        ],
        {
            "subaccounts": [
                {"owner": "bob", "balance": 9_895_050_000, "positions": {}},
                {"owner": "alice", "positions": {"0": BTC // 10}},
            ],
            "book": {"0": {"bids": [], "asks": []}},
        },
    )


def bad_input() -> dict[str, Any]:
    # Each refused with its code and no state change: the book keeps only alice's ask at 50,100.
    bad = [
        (order("bob", 1, BUY, 0, 50_000), 202),  # zero size
        (order("bob", 2, BUY, -BTC, 50_000), 202),  # negative size
        (order("bob", 3, BUY, 1_500_000, 50_000), 202),  # not a step multiple (step 1e6)
        (
            {
                **order("bob", 4, BUY, BTC // 100, 50_000),
                "args": {**order("bob", 4, BUY, BTC // 100, 50_000)["args"], "subticks": px(50_000) + 1},
            },
            203,
        ),  # off tick
        (
            {
                **order("bob", 5, BUY, BTC // 100, 50_000),
                "args": {**order("bob", 5, BUY, BTC // 100, 50_000)["args"], "market_id": 7},
            },
            201,
        ),  # unknown market
        (order("bob", 6, BUY, BTC // 100, 50_000, time_in_force=IOC, reduce_only=True), 206),  # no position
        (order("bob", 8, BUY, BTC // 100, 50_000, reduce_only=True), 219),  # reduce-only must be IOC / FOK
        (order("bob", 7, BUY, BTC // 100, 50_100, time_in_force=POST_ONLY), 205),  # post-only crossing the ask
        ({"signer": "mallory", "type": "OracleUpdate", "args": {"market_id": 0, "price": px(50_001)}}, 210),
        ({"signer": "bob", "type": "CancelOrder", "args": {"market_id": 0, "subaccount": 0, "client_id": 99}}, 208),
        ({"signer": "bob", "type": "MarketTick", "args": {"market_id": 0}}, 103),  # system payload by a user
    ]
    return vector(
        "bad_input",
        "Malformed or refused orders and updates: typed failure receipts, no state change.",
        cfg({"alice": 10_000 * USDC, "bob": 10_000 * USDC}),
        [
            {"time": 1, "txs": [order("alice", 1, SELL, BTC // 100, 50_100)], "expect": [{"code": 0}]},
            {"time": 2, "txs": [tx for tx, _ in bad], "expect": [{"code": code} for _, code in bad]},
        ],
        {
            "subaccounts": [{"owner": "bob", "balance": 10_000 * USDC, "positions": {}}],
            "book": {"0": {"bids": [], "asks": [[px(50_100), BTC // 100, 1]]}},
            "fee_pool": 0,
            "open_interest": {"0": 0},
        },
    )


def open_interest_scaled_margin() -> dict[str, Any]:
    # OI caps 0 .. 100,000 USDC. After block 1, OI = 1 BTC = 50,000 USDC notional (snapshot at the
    # end of the block): IMF = 5% + 95% * 50,000 / 100,000 = 52.5%. carol (10,000 USDC) bids
    # 0.5 BTC at 50,000: TNC if filled = 10,000 - 12.5 fee = 9,987.5 < IMR 25,000 * 52.5% = 13,125:
    # refused (204; at the base 5% it would need only 1,250). 0.3 BTC: IMR 7,875 <= 9,992.5: rests.
    return vector(
        "open_interest_scaled_margin",
        "dYdX OIMF: initial margin rises with open interest between the caps.",
        cfg({"alice": 100_000 * USDC, "bob": 100_000 * USDC, "carol": 10_000 * USDC}, oi_upper_cap=100_000 * USDC),
        [
            {
                "time": 1,
                "txs": [order("alice", 1, SELL, BTC, 50_000), order("bob", 1, BUY, BTC, 50_000, time_in_force=IOC)],
            },
            {
                "time": 2,
                "txs": [order("carol", 1, BUY, BTC // 2, 50_000), order("carol", 2, BUY, BTC // 10 * 3, 50_000)],
                "expect": [{"code": 204}, {"code": 0, "events": [{"name": "order", "attrs": {"status": "RESTING"}}]}],
            },
        ],
        {"open_interest": {"0": BTC}, "book": {"0": {"bids": [[px(50_000), BTC // 10 * 3, 1]], "asks": []}}},
    )


def oracle_quorum_median() -> dict[str, Any]:
    # Three oracles, quorum 2. The first report (51,000) is only stored; the second (53,000) makes
    # two fresh reports: their mean 52,000 (rounded up, as dYdX) becomes the price. The third
    # (52,500): median of 51,000 / 52,500 / 53,000 = 52,500. A non-oracle key is refused (210).
    config = cfg({})
    config["oracles"] = ["oracle", "dave", "carol"]
    config["oracle_quorum"] = 2
    report = [
        {"signer": s, "type": "OracleUpdate", "args": {"market_id": 0, "price": px(p)}}
        for s, p in (("oracle", 51_000), ("dave", 53_000), ("carol", 52_500), ("bob", 52_000))
    ]
    return vector(
        "oracle_quorum_median",
        "Several oracle keys: the price is the median of fresh reports once a quorum reported.",
        config,
        [
            {
                "time": 1,
                "txs": report,
                "expect": [
                    {"code": 0, "events": [{"name": "oracle_report", "attrs": {"reports": 1}}]},
                    {"code": 0, "events": [{"name": "oracle_price", "attrs": {"price": px(52_000)}}]},
                    {"code": 0, "events": [{"name": "oracle_price", "attrs": {"price": px(52_500)}}]},
                    {"code": 210},
                ],
            }
        ],
        {},
    )


SCENARIOS = [
    fill_with_fees,
    funding_over_hours,
    liquidation_pays_insurance,
    liquidation_draws_insurance,
    deleveraging,
    withdrawal_refused_for_margin,
    stale_oracle_pause,
    price_band_rejection,
    stop_order_trigger,
    bad_input,
    open_interest_scaled_margin,
    oracle_quorum_median,
]


def vectors() -> dict[str, dict[str, Any]]:
    return {f"{fn.__name__}.json": fn() for fn in SCENARIOS}


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def write() -> None:
    VECTOR_DIR.mkdir(exist_ok=True)
    for name, data in vectors().items():
        (VECTOR_DIR / name).write_text(render(data))


if __name__ == "__main__":
    write()

"""Collateral transfers, market status, take-profit orders and conditional cancel/failure."""

from __future__ import annotations

from paraexec.exchange.payloads import (
    BUY,
    IOC,
    POST_ONLY,
    SELL,
    TAKE_PROFIT,
    CancelOrder,
    Deposit,
    OracleUpdate,
    PlaceOrder,
    TransferCollateral,
)

from .harness import ALICE, BOB, BTC, CAROL, ORACLE, USDC, Harness, btc_market, config, events

P50 = 5_000_000_000


def test_transfer_between_subaccounts_respects_margin():
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC}))
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, BTC, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
    )
    # bob: TNC 2,975, IMR 2,500 -> at most 475 USDC may leave
    assert h.run(BOB, TransferCollateral(0, CAROL.public_key, 0, 476 * USDC)).code == 204
    assert h.run(BOB, TransferCollateral(0, BOB.public_key, 3, 475 * USDC)).ok
    assert h.balance(BOB, 3) == 475 * USDC
    # a subaccount without positions cannot go negative
    assert h.run(BOB, TransferCollateral(3, CAROL.public_key, 0, 476 * USDC)).code == 101
    assert h.run(CAROL, Deposit(0, 2_000_000 * USDC)).code == 101  # bank holds 1M
    assert h.run(CAROL, Deposit(200, USDC)).code == 216  # subaccount number out of range


def test_market_status_gates_orders():
    markets = [
        btc_market(),
        {**btc_market(status="post_only"), "id": 1, "ticker": "PO-USD"},
        {**btc_market(status="final_settlement"), "id": 2, "ticker": "FS-USD"},
    ]
    h = Harness(config({ALICE: 100_000 * USDC}, markets=markets))
    assert h.run(ALICE, PlaceOrder(1, 0, 1, BUY, BTC // 10, P50)).code == 213
    assert h.run(ALICE, PlaceOrder(1, 0, 2, BUY, BTC // 10, P50, time_in_force=POST_ONLY)).ok
    assert h.run(ALICE, PlaceOrder(2, 0, 3, BUY, BTC // 10, P50, time_in_force=POST_ONLY)).code == 213


def test_take_profit_buy_triggers_when_price_falls_and_rests_as_limit():
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 100_000 * USDC}))
    # bob is short; take-profit buy at or below 49,000 oracle, as a GTC limit at 49,100
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, BUY, BTC // 10, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, SELL, BTC // 10, P50, time_in_force=IOC)),
    )
    r = h.run(
        BOB,
        PlaceOrder(
            0,
            0,
            2,
            BUY,
            BTC // 10,
            4_910_000_000,
            condition=TAKE_PROFIT,
            trigger_subticks=4_900_000_000,
        ),
    )
    assert events(r, "order")[0]["status"] == "UNTRIGGERED"
    assert h.block(h.tx(ORACLE, OracleUpdate(0, 4_950_000_000)))[-1].events == []
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_900_000_000)))[-1]
    assert [e.name for e in tick.events] == ["conditional_triggered", "order"]
    assert h.reader.book(0)["bids"] == [[4_910_000_000, BTC // 10, 1]]
    assert h.run(BOB, CancelOrder(0, 0, 2)).ok  # the triggered order is now a normal resting order


def test_conditional_cancel_and_failed_trigger():
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 100 * USDC}))
    # bob cannot afford 1 BTC: the order is accepted untriggered, fails at trigger time
    assert h.run(BOB, PlaceOrder(0, 0, 1, BUY, BTC, P50, condition=TAKE_PROFIT, trigger_subticks=4_950_000_000)).ok
    assert h.run(BOB, PlaceOrder(0, 0, 2, BUY, BTC, P50, condition=TAKE_PROFIT, trigger_subticks=4_800_000_000)).ok
    assert h.run(BOB, PlaceOrder(0, 0, 2, BUY, BTC, P50)).code == 209  # id 2 is taken
    assert events(h.run(BOB, CancelOrder(0, 0, 2)), "order_canceled")[0]["conditional"] is True
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_950_000_000)))[-1]
    failed = events(tick, "conditional_failed")
    assert tick.ok and failed[0]["code"] == 204 and failed[0]["client_id"] == 1
    assert h.reader.book(0) == {"bids": [], "asks": []}
    assert h.run(BOB, CancelOrder(0, 0, 1)).code == 208

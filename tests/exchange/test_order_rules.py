"""Order rules as dYdX v4 has them (each test fails on the rule it names being broken): per-fill
margin for orders that do not rest, no maker rebate on liquidation fills, fee settings that cannot
drain the fee pool, expired orders freeing their client id, post-only orders crossing only their
own orders, and collateral that cannot leave an account valued at a stale price."""

from __future__ import annotations

import pytest

from paraexec.exchange.payloads import BUY, IOC, POST_ONLY, SELL, OracleUpdate, PlaceOrder, Withdraw

from .harness import ALICE, BOB, BTC, CAROL, ORACLE, USDC, Harness, config, events

P50 = 5_000_000_000  # 50,000 USD in subticks
TICK = 100_000  # 1 USD


def order(client_id: int, side: int, quantums: int, subticks: int, **extra) -> PlaceOrder:
    return PlaceOrder(0, 0, client_id, side, quantums, subticks, **extra)


def test_an_ioc_order_is_checked_per_fill_not_at_its_slippage_limit():
    """Bob (3,000 USDC) buys 0.5 BTC IOC with a limit 10% over the ask: it fills at 50,000 (IMR
    1,250 + fee), though filling all of it at 55,000 would not be collateralised. The limit is
    a bound on the fill price, not a price the order is assumed to pay."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC}))
    assert h.run(ALICE, order(1, SELL, BTC, P50)).ok
    receipt = h.run(BOB, order(1, BUY, BTC // 2, P50 * 11 // 10, time_in_force=IOC))
    assert receipt.ok, receipt.error
    assert events(receipt, "order")[0]["status"] == "FILLED" and h.size(BOB) == BTC // 2


def test_what_would_rest_must_fit_the_margin_and_the_fills_before_it_stand():
    """A GTC buy of 1 BTC at 55,000 against a 0.5 BTC ask: the half that fills is checked per
    fill; resting the other half at 55,000 would leave Bob under initial margin, so it does not
    rest (UNDERCOLLATERALIZED) and the fill stands. With nothing filled the order is refused."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC}))
    assert h.run(ALICE, order(1, SELL, BTC // 2, P50)).ok
    receipt = h.run(BOB, order(1, BUY, BTC, P50 * 11 // 10))
    assert receipt.ok and events(receipt, "order")[0]["status"] == "UNDERCOLLATERALIZED"
    assert h.size(BOB) == BTC // 2 and h.reader.book(0) == {"bids": [], "asks": []}
    assert h.run(BOB, order(2, BUY, BTC, P50 * 11 // 10)).code == 204  # nothing to fill: refused


def test_a_limit_order_whose_first_fill_is_unaffordable_is_refused_whole():
    """Crossing or not, a limit order that fills nothing for lack of margin is refused (204) and
    changes nothing, as one that could not rest is."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC}))
    assert h.run(ALICE, order(1, SELL, 2 * BTC, P50)).ok
    assert h.run(BOB, order(1, BUY, 2 * BTC, P50 * 98 // 100)).code == 204  # crosses nothing
    assert h.run(BOB, order(2, BUY, 2 * BTC, P50)).code == 204  # its first (whole) fill is unaffordable
    assert h.size(BOB) == 0 and h.reader.book(0)["asks"] == [[P50, 2 * BTC, 1]]


def test_a_liquidation_fill_pays_no_maker_rebate():
    """Liquidations pay no taker fee, so (as dYdX) their makers get no rebate: the fee pool must
    not pay out what no fill paid in."""
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 5_000 * USDC, CAROL: 100_000 * USDC},
        fees={"taker_ppm": 500, "maker_ppm": -100},
        insurance_fund=1_000_000 * USDC,
    )
    h = Harness(cfg)
    assert h.run(ALICE, order(1, SELL, BTC, P50)).ok
    assert h.run(BOB, order(1, BUY, BTC, P50, time_in_force=IOC)).ok
    assert h.run(CAROL, order(1, BUY, BTC, P50 - 2_000 * TICK)).ok  # a bid at 48,000
    h.run(ORACLE, OracleUpdate(0, 4_840_000_000))
    before = h.reader.fee_pool()
    receipts = h.block(h.tx(ORACLE, OracleUpdate(0, 4_600_000_000)))
    fills = [e.attrs for r in receipts for e in r.events if e.name == "fill" and e.attrs["liquidation"]]
    assert fills and all(f["maker_fee"] == 0 and f["taker_fee"] == 0 for f in fills)
    assert h.reader.fee_pool() == before


@pytest.mark.parametrize(
    "fees", [{"taker_ppm": 100, "maker_ppm": -500}, {"taker_ppm": -1, "maker_ppm": 100}], ids=("rebate", "taker")
)
def test_fee_settings_that_would_drain_the_fee_pool_are_refused_at_genesis(fees):
    with pytest.raises(ValueError, match="taker_ppm"):
        Harness(config({ALICE: USDC}, fees=fees))


def test_an_oracle_quorum_beyond_the_oracle_keys_is_refused_at_genesis():
    with pytest.raises(ValueError, match="oracle_quorum"):
        Harness(config({ALICE: USDC}, oracle_quorum=2))


def test_an_expired_order_frees_its_client_id_and_leaves_the_book_query():
    """dYdX frees a short-term order's id once its block has passed; here the expired order
    waits on the book for a taker, so re-using its id removes it (order_removed, expired)."""
    h = Harness(config({ALICE: 100_000 * USDC}))
    assert h.run(ALICE, order(1, SELL, BTC // 10, P50 + TICK, good_til_block=2)).ok  # block 1
    assert h.reader.book(0)["asks"] == [[P50 + TICK, BTC // 10, 1]]
    h.block()
    h.block()  # block 3: expired
    assert h.reader.book(0)["asks"] == []  # no longer shown
    receipt = h.run(ALICE, order(1, SELL, BTC // 10, P50 + 2 * TICK))  # block 4: the same id
    assert receipt.ok, receipt.error
    assert [e["reason"] for e in events(receipt, "order_removed")] == ["expired"]
    assert h.reader.book(0)["asks"] == [[P50 + 2 * TICK, BTC // 10, 1]]
    assert h.run(ALICE, order(1, SELL, BTC // 10, P50)).code == 209  # live again: taken


def test_a_post_only_order_crossing_only_its_own_order_rests():
    """dYdX removes the owner's crossing order as a self-trade and rests the post-only order
    (it refuses only one that would trade with someone else)."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 100_000 * USDC}))
    assert h.run(ALICE, order(1, SELL, BTC // 10, P50)).ok
    receipt = h.run(ALICE, order(2, BUY, BTC // 10, P50 + TICK, time_in_force=POST_ONLY))
    assert receipt.ok, receipt.error
    assert [e["reason"] for e in events(receipt, "order_removed")] == ["self_trade"]
    assert h.reader.book(0) == {"bids": [[P50 + TICK, BTC // 10, 1]], "asks": []}
    assert h.run(BOB, order(1, SELL, BTC // 10, P50, time_in_force=POST_ONLY)).code == 205  # Alice's bid: refused


def test_collateral_cannot_leave_an_account_valued_at_a_stale_price():
    """With the oracle stale, trading and liquidation pause; a holder of that market cannot
    withdraw on the strength of the old price either (STALE_ORACLE). Without a position it can."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 6_000 * USDC, CAROL: 1_000 * USDC}))  # staleness 3,600 s
    assert h.run(ALICE, order(1, SELL, BTC, P50)).ok
    assert h.run(BOB, order(1, BUY, BTC, P50, time_in_force=IOC)).ok
    h.block(time=5_000)
    assert h.run(BOB, Withdraw(0, 3_400 * USDC)).code == 212
    assert h.run(CAROL, Withdraw(0, 100 * USDC)).ok

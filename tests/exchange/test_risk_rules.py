"""Who pays, and when: deleveraging, maintenance margin under open-interest scaling, the sweep's
budget, the withdrawal gate, the funding premium and interval (dYdX v4 rules; each test fails on
the rule it names being broken)."""

from __future__ import annotations

import pytest

from paraexec.exchange import keys
from paraexec.exchange.errors import WithdrawalsGated
from paraexec.exchange.genesis import dev_market
from paraexec.exchange.market import Market
from paraexec.exchange.payloads import (
    BUY,
    IOC,
    SELL,
    CancelOrder,
    Liquidate,
    OracleUpdate,
    PlaceOrder,
    TransferCollateral,
    Withdraw,
)

from .harness import ALICE, BOB, BTC, CAROL, DAVE, ORACLE, USDC, Harness, btc_market, config, events

P50 = 5_000_000_000  # 50,000 USD in subticks


def long_bob_short_alice(h: Harness) -> None:
    """Bob long 1 BTC from Alice at 50,000."""
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, BTC, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
    )


def test_deleveraging_skips_a_counterparty_it_would_leave_undercollateralised(monkeypatch):
    """dYdX offsets a bankrupt position only against accounts that stay collateralised: Alice
    (short BTC against Bob, long ETH) is healthy before, and both markets fall ~27% in three blocks.
    Offsetting Bob at his bankruptcy price would leave her TNC negative, so she is skipped."""
    import paraexec.exchange.app as appmod

    eth = {**dev_market(1), "oi_lower_cap": 0, "oi_upper_cap": 0, "staleness_s": 3600}
    h = Harness(config({ALICE: 20_000 * USDC, BOB: 3_000 * USDC, CAROL: 200_000 * USDC}, markets=[btc_market(), eth]))
    eth_price = eth["initial_price"]
    long_bob_short_alice(h)
    h.block(
        h.tx(CAROL, PlaceOrder(1, 0, 1, SELL, 31_500 * 10**6, eth_price)),
        h.tx(ALICE, PlaceOrder(1, 0, 2, BUY, 31_500 * 10**6, eth_price, time_in_force=IOC)),
    )
    monkeypatch.setattr(appmod.ExchangeApp, "system_payloads", lambda self, env: [])  # no sweep: Liquidate below
    btc, ether = P50, eth_price
    for _ in range(3):  # the oracle band allows 10% a block
        btc, ether = btc * 9 // 10, ether * 9 // 10
        h.block(h.tx(ORACLE, OracleUpdate(0, btc)), h.tx(ORACLE, OracleUpdate(1, ether)))
    alice = h.reader.subaccount(ALICE.public_key)
    assert alice["tnc"] > alice["mmr"] and h.reader.subaccount(BOB.public_key)["tnc"] < 0
    receipt = h.run(DAVE, Liquidate(BOB.public_key, 0, 0))
    assert receipt.code == 222 and not receipt.events  # LIQUIDATION_NOT_FILLED: it closed nothing
    monkeypatch.undo()  # the end-of-block sweep tries, and skips Alice the same way
    tick = h.block()[-2]  # the BTC market's tick (then ETH's)
    assert not events(tick, "deleveraged")
    assert events(tick, "deleverage_skipped")[0]["offsetting"] == keys.subaccount_id(ALICE.public_key, 0).hex()
    after = h.reader.subaccount(ALICE.public_key)
    assert after["tnc"] == alice["tnc"] and h.size(ALICE) == -BTC  # untouched
    assert h.get_int(keys.WITHDRAW_GATE) > 0  # Bob is still bankrupt: the gate is up


def test_open_interest_does_not_make_an_untouched_account_liquidatable():
    """OIMF raises the initial margin only: others trading 3 BTC between themselves leaves Bob's
    maintenance margin, and his standing, where they were at an unchanged price."""
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 6_000 * USDC, CAROL: 100_000 * USDC, DAVE: 100_000 * USDC},
        markets=[btc_market(oi_lower_cap=100_000 * USDC, oi_upper_cap=200_000 * USDC)],
    )
    h = Harness(cfg)
    long_bob_short_alice(h)
    before = h.reader.subaccount(BOB.public_key)
    h.block(
        h.tx(CAROL, PlaceOrder(0, 0, 1, SELL, 3 * BTC, P50)),
        h.tx(DAVE, PlaceOrder(0, 0, 1, BUY, 3 * BTC, P50, time_in_force=IOC)),
    )
    h.block()
    after = h.reader.subaccount(BOB.public_key)
    assert h.reader.market(0)["open_interest_snapshot"] == 4 * BTC
    assert after["imr"] > before["imr"]  # 4 BTC of OI is above the lower cap
    assert after["mmr"] == before["mmr"] == 1_500 * USDC and not after["liquidatable"]
    assert h.size(BOB) == BTC


def test_a_solvent_account_is_not_deleveraged_when_the_fund_cannot_cover_its_fills():
    """Empty insurance fund; Bob is liquidatable but solvent (TNC > 0), and the only bid is below
    his bankruptcy price. dYdX deleverages only at TNC < 0: his position stays, his equity his."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC, CAROL: 100_000 * USDC}, insurance_fund=0))
    long_bob_short_alice(h)
    receipts = h.block(
        h.tx(CAROL, PlaceOrder(0, 0, 1, BUY, BTC, 4_701_000_000)), h.tx(ORACLE, OracleUpdate(0, 4_788_000_000))
    )
    liquidations = [e for r in receipts for e in events(r, "liquidation")]
    assert liquidations and all(e["deleveraged"] == 0 and e["filled"] == 0 for e in liquidations)
    assert not [e for r in receipts for e in events(r, "deleveraged")]
    bob = h.reader.subaccount(BOB.public_key)
    assert bob["tnc"] == 855 * USDC and bob["liquidatable"] and h.size(BOB) == BTC


def test_the_sweep_budget_counts_only_liquidations_that_closed_something():
    """sweep_limit 1: a liquidatable account no bid can fill comes first in the holder list; it
    must not use up the budget, so the bankrupt account after it is still liquidated."""
    low, high = sorted([ALICE, BOB, CAROL], key=lambda k: keys.subaccount_id(k.public_key, 0))[:2]
    cfg = config(
        {low: 2_500 * USDC, high: 3_000 * USDC, DAVE: 200_000 * USDC},
        insurance_fund=100_000 * USDC,
        liquidation={"sweep_limit": 1},
    )
    h = Harness(cfg)
    h.block(
        h.tx(DAVE, PlaceOrder(0, 0, 1, SELL, BTC, P50)),
        h.tx(high, PlaceOrder(0, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
    )
    receipts = h.block(
        h.tx(ORACLE, OracleUpdate(0, 4_800_000_000)),
        h.tx(DAVE, PlaceOrder(0, 0, 2, SELL, BTC, 4_800_000_000)),
        h.tx(low, PlaceOrder(0, 0, 1, BUY, BTC, 4_800_000_000, time_in_force=IOC)),
        h.tx(ORACLE, OracleUpdate(0, 4_690_000_000)),
        h.tx(DAVE, PlaceOrder(0, 0, 3, BUY, BTC, 4_600_000_000)),
    )
    assert all(r.ok for r in receipts), [r.error for r in receipts]
    h.block()
    assert h.reader.subaccount(low.public_key)["liquidatable"] and h.size(low) == BTC  # nothing fills it
    assert h.size(high) == 0  # reached despite the budget of 1


def test_collateral_transfers_are_gated_like_withdrawals():
    """While the gate is up (a liquidation left negative TNC), collateral may not leave a
    subaccount by a transfer either (dYdX: withdrawals and transfers blocked)."""
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 3_000 * USDC},
        liquidation={"min_position_notional": 1_000 * USDC, "max_position_portion_ppm": 500_000},
    )
    h = Harness(cfg)
    long_bob_short_alice(h)
    h.block(h.tx(ORACLE, OracleUpdate(0, 4_650_000_000)))
    assert h.get_int(keys.WITHDRAW_GATE) > 0
    gated = WithdrawalsGated.code
    assert h.run(ALICE, Withdraw(0, 10_000 * USDC)).code == gated
    receipt = h.run(ALICE, TransferCollateral(0, CAROL.public_key, 0, 10_000 * USDC))
    assert receipt.code == gated and not events(receipt, "transfer") and h.balance(CAROL) == 0


def test_an_expired_bid_does_not_set_the_funding_rate():
    """A good-til-block bid 0.5% (5,000 ppm) over the oracle, live in block 2 only, stays on the
    book until a taker walks over it: only block 2's sample may count it, for the one second
    block 2's book stood (as a live bid it would have counted for 3,598 s: 4,997 ppm)."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 100_000 * USDC, CAROL: 100_000 * USDC}))
    long_bob_short_alice(h)
    assert h.run(CAROL, PlaceOrder(0, 0, 7, BUY, BTC // 4, P50 + 25_000_000, good_til_block=2)).ok
    for t in range(3, 3600, 600):
        h.block(time=t)
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=3600)[-1]
    [funding] = events(tick, "funding_rate")
    assert funding["samples"] == 8 and funding["rate_8h_ppm"] == 5_000 * 1 // 3_600  # blocks at 1, 2, 3, 603, ...
    # still stored until a taker walks over it (only its effect is gone; book queries hide it)
    assert h.chain.store.get(keys.level(0, BUY, P50 + 25_000_000)) is not None and not h.reader.book(0)["bids"]


@pytest.mark.parametrize("interval_s", [3600, 8 * 3600])
def test_funding_pays_the_8_hour_rate_whatever_the_interval(interval_s):
    """0.1% per 8 hours on 1 BTC at 50,000 USD: 50 USDC after 8 hours, paid hourly or at once."""
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 100_000 * USDC},
        markets=[btc_market(default_funding_ppm=1_000, staleness_s=10**9)],
        funding={"interval_s": interval_s},
    )
    h = Harness(cfg)
    long_bob_short_alice(h)
    for hour in range(1, 9):
        h.block(time=3600 * hour)
    assert h.reader.subaccount(BOB.public_key)["funding_pending"] == -50 * USDC


def test_genesis_refuses_a_market_whose_prices_are_fractions_of_a_subtick():
    """Such a price could floor to 0 subticks and crash the funding premium's division."""
    with pytest.raises(ValueError, match="whole subticks"):
        Market.from_config(btc_market(price_exponent=-8, initial_price=500))


@pytest.mark.parametrize("field", ["staleness_s", "max_price_move_ppm"])
def test_genesis_refuses_a_market_without_a_staleness_limit_or_a_price_band(field):
    """The oracle band divides the anchor's age by ``staleness_s``: a zero would fail every
    oracle update of the market with a ZeroDivisionError instead of a receipt."""
    with pytest.raises(ValueError, match="must be positive"):
        Market.from_config(btc_market(**{field: 0}))


def test_an_untriggered_conditional_order_expires_at_its_good_til_block():
    """dYdX's EndBlocker removes expired stateful orders before it triggers conditional ones: an
    order good until block 3 is gone in block 4's tick (oracle fresh or not) and never fires."""
    from paraexec.exchange.payloads import TAKE_PROFIT, CancelOrder

    h = Harness(config({ALICE: 100_000 * USDC, BOB: 100_000 * USDC}))
    take_profit = PlaceOrder(
        0, 0, 7, BUY, BTC // 10, 4_910_000_000, condition=TAKE_PROFIT, trigger_subticks=4_900_000_000, good_til_block=3
    )
    assert events(h.run(BOB, take_profit), "order")[0]["status"] == "UNTRIGGERED"  # block 1
    h.block()
    assert h.block()[-1].events == []  # block 3: still live
    removed = events(h.block(time=h.time + 7200)[-1], "order_removed")  # block 4, the oracle is stale
    assert [(e["client_id"], e["reason"], e["conditional"]) for e in removed] == [(7, "expired", True)]
    assert all(h.chain.store.get(keys.conditionals(0, i)) is None for i in range(keys.CONDITIONAL_SHARDS))
    assert h.run(BOB, CancelOrder(0, 0, 7)).code == 208
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_900_000_000)))[-1]
    assert not events(tick, "conditional_triggered") and h.reader.book(0) == {"bids": [], "asks": []}


def test_untriggered_conditional_orders_are_capped(monkeypatch):
    """Every market tick reads the market's whole conditional lists: a subaccount, and each of
    the market's lists, may hold only so many untriggered orders (CONDITIONAL_ORDER_LIMIT); a
    cancel frees a place. With two lists, Bob and Carol share one here and Alice has the other."""
    import paraexec.exchange.matching as matching
    from paraexec.exchange.payloads import STOP_LOSS, CancelOrder
    from paraexec.exchange.records import CONDITIONALS_DECODER

    monkeypatch.setattr(matching, "MAX_CONDITIONAL_PER_SUBACCOUNT", 2)
    monkeypatch.setattr(matching, "MAX_CONDITIONAL_PER_SHARD", 3)
    monkeypatch.setattr(keys, "CONDITIONAL_SHARDS", 2)
    shard = {k: keys.conditional_shard(k.public_key) for k in (ALICE, BOB, CAROL)}
    assert shard[BOB] == shard[CAROL] != shard[ALICE], shard
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 100_000 * USDC, CAROL: 100_000 * USDC}))

    def stop(client_id: int) -> PlaceOrder:
        return PlaceOrder(
            0, 0, client_id, SELL, BTC // 10, 4_000_000_000, condition=STOP_LOSS, trigger_subticks=P50 // 2
        )

    assert h.run(BOB, stop(1)).ok and h.run(BOB, stop(2)).ok
    assert h.run(BOB, stop(3)).code == 221  # two per subaccount and market
    assert h.run(CAROL, stop(1)).ok
    assert h.run(CAROL, stop(2)).code == 221  # three in their list
    assert h.run(ALICE, stop(1)).ok and h.run(ALICE, stop(2)).ok  # her own list has room
    assert h.run(BOB, CancelOrder(0, 0, 1)).ok and h.run(CAROL, stop(2)).ok
    lists = [CONDITIONALS_DECODER.decode(h.chain.store.get(keys.conditionals(0, i))) for i in (0, 1)]
    assert [len(lists[shard[ALICE]]), len(lists[shard[BOB]])] == [2, 3]


def test_deleveraging_does_not_wait_for_the_liquidation_cap():
    """The per-block notional cap limits liquidation *fills* (dYdX counts only those): with the cap
    at 0, a solvent liquidatable account is refused (LIQUIDATION_LIMIT) while a bankrupt one is
    deleveraged whole, and its deleveraged notional is not counted as liquidated."""
    from paraexec.exchange.records import USAGE_DECODER

    cfg = config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC}, liquidation={"max_notional_per_block": 0})
    h = Harness(cfg)
    long_bob_short_alice(h)
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_780_000_000)))[-1]  # 47,800: TNC ~775 < MMR ~1,434
    assert [e["code"] for e in events(tick, "liquidation_skipped")] == [220] and h.size(BOB) == BTC
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_650_000_000)))[-1]  # 46,500: TNC < 0
    liquidation = events(tick, "liquidation")[0]
    assert (liquidation["quantums"], liquidation["filled"], liquidation["deleveraged"]) == (0, 0, BTC)
    assert h.size(BOB) == 0 and h.size(ALICE) == 0
    usage = USAGE_DECODER.decode(h.chain.store.get(keys.liquidation_usage(keys.subaccount_id(BOB.public_key, 0))))
    assert usage.notional == 0


def bob_long_under_a_quarter_portion() -> Harness:
    """Bob long 1 BTC from Alice; a liquidation closes at most 25% of a position (at least 1,000
    USDC of it); Carol has the money to bid for all of it; the fund holds 1M USDC."""
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 3_000 * USDC, CAROL: 200_000 * USDC},
        liquidation={"max_position_portion_ppm": 250_000, "min_position_notional": 1_000 * USDC},
        insurance_fund=1_000_000 * USDC,
    )
    h = Harness(cfg)
    long_bob_short_alice(h)
    return h


def test_a_position_is_liquidated_at_most_once_a_block():
    """The position portion (25% here) is a per-block limit, as dYdX's PositionBlockLimits: four
    ``Liquidate`` transactions for Bob in one block, then the sweep, close 25% of his position,
    not 25% of what each found left (76% with the fund paying each time); the next block may
    take the next portion."""
    h = bob_long_under_a_quarter_portion()
    receipts = h.block(
        h.tx(ORACLE, OracleUpdate(0, 4_780_000_000)),  # 47,800: TNC ~775 < MMR ~1,434, solvent
        h.tx(CAROL, PlaceOrder(0, 0, 1, BUY, BTC, 4_681_200_000)),  # a bid for all of it, at the fillable price
        *(h.tx(DAVE, Liquidate(BOB.public_key, 0, 0)) for _ in range(4)),
    )
    assert receipts[2].ok and events(receipts[2], "liquidation")[0]["filled"] == BTC // 4
    assert [r.code for r in receipts[3:6]] == [220, 220, 220]  # LIQUIDATION_LIMIT, nothing changed
    assert [e["code"] for e in events(receipts[-1], "liquidation_skipped")] == [220]  # the sweep too
    assert h.size(BOB) == 3 * BTC // 4
    tick = h.block()[-1]  # a new block: the sweep takes the next portion
    assert events(tick, "liquidation")[0]["filled"] == 3 * BTC // 16 and h.size(BOB) == 9 * BTC // 16


def test_a_partly_filled_liquidation_is_not_deleveraged():
    """Bob is bankrupt (TNC < 0) but the book bids for his whole position and the fund can pay:
    his liquidation order fills whole, the position portion (25%), and stops only there. So the
    rest waits for the next blocks' liquidations (as dYdX) instead of being deleveraged against
    Alice, a profitable trader, at Bob's bankruptcy price."""
    h = bob_long_under_a_quarter_portion()
    h.block(h.tx(CAROL, PlaceOrder(0, 0, 1, BUY, BTC, 4_640_000_000)))  # 46,400
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_650_000_000)))[-1]  # 46,500: Bob's TNC -525 USDC
    liquidation = events(tick, "liquidation")[0]
    assert (liquidation["filled"], liquidation["deleveraged"]) == (BTC // 4, 0)
    assert liquidation["tnc_after"] < 0 and not events(tick, "deleveraged")
    assert h.size(ALICE) == -BTC and h.size(BOB) == 3 * BTC // 4  # Alice keeps her position
    h.block()  # the next portions go to Carol's bid, block by block
    assert h.size(BOB) < 3 * BTC // 4 and h.size(ALICE) == -BTC


def test_a_bankrupt_position_the_book_takes_one_step_of_is_deleveraged_in_that_block():
    """Where this differs from dYdX on purpose: Carol bids one step (0.0001 BTC) a block just
    above bankrupt Bob's fillable price. An order that fills less than its size means the book
    (or the fund) cannot take the position, so the rest is deleveraged against Alice at once;
    under dYdX's rule (deleverage only when nothing filled) Bob would stay open, the fund paying
    each fill and withdrawals gated, for as long as Carol kept bidding."""
    h = Harness(
        config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC, CAROL: 200_000 * USDC}, insurance_fund=1_000_000 * USDC)
    )
    long_bob_short_alice(h)
    step = 1_000_000
    tick = h.block(
        h.tx(ORACLE, OracleUpdate(0, 4_650_000_000)),  # 46,500: Bob's TNC about -525 USDC
        h.tx(CAROL, PlaceOrder(0, 0, 100, BUY, step, 4_450_000_000)),  # 44,500, above his fillable price
    )[-1]
    liquidation = events(tick, "liquidation")[0]
    assert (liquidation["filled"], liquidation["deleveraged"]) == (step, BTC - step)
    assert h.size(BOB) == 0 and h.size(ALICE) == -step and h.size(CAROL) == step


def test_the_sweep_order_follows_the_adjusted_bankruptcy_ratio_exactly():
    """The sweep's key is dYdX's ABR = clamp(BA * (1 - TNC / TMMR), 0, 1), not TNC / MMR: with a
    bankruptcy adjustment BA below 1 a deeper bankrupt account still ranks first, and with BA
    above 1 every account past 1 - 1/BA ties (then the larger position goes first)."""
    from fractions import Fraction

    from paraexec.exchange.ledger import Risk
    from paraexec.exchange.liquidation import LiquidationConfig, adjusted_bankruptcy_ratio

    def abr(ba_ppm, tnc, mmr=100):
        return adjusted_bankruptcy_ratio(LiquidationConfig(bankruptcy_adjustment_ppm=ba_ppm), Risk(tnc, 0, mmr))

    assert [abr(1_000_000, t) for t in (-200, -1, 0, 50, 99)] == [1, 1, 1, Fraction(1, 2), Fraction(1, 100)]
    assert [abr(500_000, t) for t in (-200, -50, 0, 50)] == [1, Fraction(3, 4), Fraction(1, 2), Fraction(1, 4)]
    assert [abr(2_000_000, t) for t in (-50, 0, 50, 60)] == [1, 1, 1, Fraction(4, 5)]
    assert abr(1_000_000, -5, mmr=0) == 0  # no margin requirement: no adjustment (the fillable price's rule)


def test_the_sweep_liquidates_the_most_underwater_holder_first():
    """With room for one liquidation a block (``sweep_limit`` 1) and two liquidatable longs, the
    sweep takes Bob, whose TNC is the smaller share of his MMR, although Dave comes first in the
    holder list (sorted by subaccount id), as dYdX sorts its liquidation orders; Dave follows in
    the next block."""
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 2_900 * USDC, CAROL: 200_000 * USDC, DAVE: 3_100 * USDC},
        liquidation={"sweep_limit": 1},
        insurance_fund=1_000_000 * USDC,
    )
    h = Harness(cfg)
    bob, dave = (keys.subaccount_id(k.public_key, 0) for k in (BOB, DAVE))
    assert dave < bob  # the holder list would take Dave first
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, 2 * BTC, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
        h.tx(DAVE, PlaceOrder(0, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
    )
    h.block(h.tx(CAROL, PlaceOrder(0, 0, 1, BUY, 2 * BTC, 4_700_000_000)))  # 47,000 for both
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_780_000_000)))[-1]  # TNC 700 and 900 < MMR ~1,434
    assert [e["subaccount"] for e in events(tick, "liquidation")] == [bob.hex()]
    assert h.size(BOB) == 0 and h.size(DAVE) == BTC
    tick = h.block()[-1]
    assert [e["subaccount"] for e in events(tick, "liquidation")] == [dave.hex()] and h.size(DAVE) == 0


def test_the_sweep_gates_withdrawals_for_a_bankrupt_holder_it_does_not_liquidate():
    """The gate must stay up while a negative-TNC account exists, as dYdX re-arms it every block
    one is seen - also when the sweep's budget (here 0: liquidation by transaction only) leaves
    the account untouched."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC}, liquidation={"sweep_limit": 0}))
    long_bob_short_alice(h)
    h.block(h.tx(ORACLE, OracleUpdate(0, 4_650_000_000)))  # block 2: Bob bankrupt, nobody liquidates
    assert h.size(BOB) == BTC and h.get_int(keys.WITHDRAW_GATE) == 2 + 50
    for _ in range(60):
        h.block()
    assert h.get_int(keys.WITHDRAW_GATE) == 62 + 50  # re-armed every block
    assert h.run(ALICE, Withdraw(0, USDC)).code == 215


def test_oracle_updates_in_one_block_cannot_compound_past_the_band():
    """The band is measured from the price at the start of the block: with quorum 1, three 9%
    moves in one block would take the price 27% (a 10% band); the second and third are refused,
    and the next block may move 10% again from where the first left it."""
    h = Harness(config({ALICE: USDC}))
    first, second = P50 * 91 // 100, P50 * 91 * 91 // 10_000
    receipts = h.block(*(h.tx(ORACLE, OracleUpdate(0, p)) for p in (first, second, second * 91 // 100)))
    assert [r.code for r in receipts[:3]] == [0, 211, 211]
    assert h.run(ORACLE, OracleUpdate(0, second)).ok  # next block: 9% from the first


def test_the_band_widens_with_the_price_age_so_an_outage_cannot_pause_a_market_for_good():
    """A feed that comes back after an outage during which the price fell 25% (a 10% band, a
    one-hour staleness limit): two hours on, the band is 30% and the update is accepted, trading
    resumes. An hour on it would be 20%: refused, and the old price stays. The same move with a
    fresh anchor is refused, so a fresh market keeps its 10% band."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 100_000 * USDC}))
    assert h.run(ORACLE, OracleUpdate(0, P50), time=10).ok  # the anchor: 50,000 at t=10
    fallen = P50 * 75 // 100
    assert h.run(ORACLE, OracleUpdate(0, fallen), time=20).code == 211  # fresh: 10%
    assert h.run(ORACLE, OracleUpdate(0, fallen), time=10 + 3600).code == 211  # 1 h: 20%
    assert h.reader.market(0)["oracle_price"] == P50
    assert h.run(ALICE, PlaceOrder(0, 0, 1, SELL, BTC, fallen)).code == 212  # stale: paused
    receipts = h.block(
        h.tx(ORACLE, OracleUpdate(0, fallen)),  # 2 h: 30%
        h.tx(ORACLE, OracleUpdate(0, P50 * 71 // 100)),  # same block: the same anchor, the same 30%
        h.tx(ORACLE, OracleUpdate(0, P50 * 69 // 100)),  # 31%: beyond it
        time=10 + 7200,
    )
    assert [r.code for r in receipts[:3]] == [0, 0, 211]
    assert h.reader.market(0)["oracle_price"] == P50 * 71 // 100
    assert h.run(ALICE, PlaceOrder(0, 0, 2, SELL, BTC, fallen)).ok  # fresh again: trading resumes
    assert h.run(ORACLE, OracleUpdate(0, P50 * 71 * 85 // 10_000)).code == 211  # and the band is 10% again


def test_a_whole_deleverage_at_an_inexact_price_leaves_exactly_zero():
    """The bankruptcy price uses the change of the position's (floored) value, value(size + delta)
    - value(size), as dYdX's DNNV, not the floored value of delta: closing a bankrupt position
    whole leaves its owner at exactly 0, not a quote quantum above, at a price where
    1.0001 BTC is worth a fraction of a quote quantum more than its floor."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC}))
    size = BTC + btc_market()["step_base_quantums"]
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, size, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, size, P50, time_in_force=IOC)),
    )
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_650_000_001)))[-1]
    assert events(tick, "deleveraged")[0]["quantums"] == size
    assert h.size(BOB) == 0 and h.balance(BOB) == 0


def test_stale_blocks_sample_a_zero_premium():
    """dYdX counts a market without a valid price as a zero premium vote: a bid 0.5% over the
    oracle, placed at t = 2 in an hour whose oracle price (of t = 0, staleness 60 s) goes stale
    at t = 60, counts for the 58 s its price was fresh, not until the next block (t = 600) nor
    for the rest of the hour."""
    h = Harness(
        config(
            {ALICE: 100_000 * USDC, BOB: 100_000 * USDC, CAROL: 100_000 * USDC}, markets=[btc_market(staleness_s=60)]
        )
    )
    long_bob_short_alice(h)  # t=1: premium 0
    assert h.run(CAROL, PlaceOrder(0, 0, 7, BUY, BTC // 4, P50 + 25_000_000), time=2).ok  # 5,000 ppm
    for t in range(600, 3600, 600):  # five blocks with a stale oracle
        h.block(time=t)
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=3600)[-1]
    [funding] = events(tick, "funding_rate")
    assert funding["samples"] == 7 and funding["rate_8h_ppm"] == 5_000 * 58 // 3_600


def test_a_burst_of_blocks_weighs_the_time_its_book_stood_not_its_block_count():
    """A bid 0.5% over the oracle stands from t = 2 to t = 10, seen by 49 of the hour's 51
    samples (49 blocks in the second it is placed, as a node that produces blocks on demand
    can): it sets the premium for those 8 s, 5,000 x 8 / 3,600 = 11 ppm, not the 4,711 ppm that
    counting every block once gave (layout 7, which counted the closing block too: 49 x 5,000 /
    52). A book that stands no time counts nothing: the 48 blocks at t = 2 after the first add no
    weight of their own."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 100_000 * USDC, CAROL: 100_000 * USDC}))
    long_bob_short_alice(h)  # t = 1: premium 0
    assert h.run(CAROL, PlaceOrder(0, 0, 7, BUY, BTC // 4, P50 + 25_000_000), time=2).ok
    for _ in range(48):
        h.block(time=2)
    assert h.run(CAROL, CancelOrder(0, 0, 7), time=10).ok
    [funding] = events(h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=3600)[-1], "funding_rate")
    assert funding["samples"] == 51 and funding["rate_8h_ppm"] == 5_000 * 8 // 3_600


def test_a_sample_stops_counting_when_its_price_goes_stale():
    """A node that produces blocks only when transactions arrive may have none for an hour, and
    then no oracle update either: the last sample holds while its oracle price is fresh (here
    59 s: placed at t = 1, price of t = 0, staleness 60 s), and the silent rest of the hour
    counts as a zero premium, as dYdX pads its missed samples with zeros."""
    h = Harness(config({CAROL: 100_000 * USDC}, markets=[btc_market(staleness_s=60)]))
    assert h.run(CAROL, PlaceOrder(0, 0, 7, BUY, BTC // 4, P50 + 25_000_000), time=1).ok
    [funding] = events(h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=3600)[-1], "funding_rate")
    assert funding["samples"] == 1 and funding["rate_8h_ppm"] == 5_000 * 59 // 3_600


def test_a_genesis_whose_exchange_clock_differs_from_the_chain_is_refused():
    """Funding and the oracle's staleness start at the exchange's ``genesis_time``; a chain whose
    blocks start elsewhere would open with a funding catch-up over the gap (one interval's premium,
    the default rate for the rest) and every price stale, so such a genesis is refused. (The
    funding integral also starts at the interval's start, whatever the blocks' times.)"""
    with pytest.raises(ValueError, match="genesis_time 10000 differs from the chain's genesis_time 0"):
        Harness(config({CAROL: 100_000 * USDC}, genesis_time=10_000))


@pytest.mark.parametrize(
    ("funding", "error"),
    [
        ({"interval_s": 0}, "interval"),
        ({"premium_clamp_factor_ppm": -1}, "clamps"),
        ({"interval_s": 2**60}, "2\\*\\*63"),
    ],
)
def test_a_genesis_with_funding_that_cannot_run_is_refused(funding, error):
    with pytest.raises(ValueError, match=error):
        Harness(config({CAROL: USDC}, funding=funding))


def test_the_market_query_predicts_the_rate_from_the_interval_so_far():
    """``get_markets`` shows when the next funding is due and the rate it would charge if the
    rest of the hour averaged what its part so far did: a 0.5% bid from t = 0, cancelled at
    t = 1,800, reads 5,000 ppm until then, 3,333 at t = 2,700 (1,800 of 2,700 s), and the hour
    charges 2,500; the new hour's prediction starts from its first sample (0: no bid)."""
    h = Harness(config({CAROL: 100_000 * USDC}))
    assert h.run(CAROL, PlaceOrder(0, 0, 7, BUY, BTC // 4, P50 + 25_000_000), time=0).ok
    market = h.reader.market(0)
    assert (market["next_funding_time"], market["predicted_funding_rate_8h_ppm"]) == (3_600, 5_000)
    h.block(time=900)
    assert h.reader.market(0)["predicted_funding_rate_8h_ppm"] == 5_000
    assert h.run(CAROL, CancelOrder(0, 0, 7), time=1_800).ok
    assert h.reader.market(0)["predicted_funding_rate_8h_ppm"] == 5_000
    h.block(time=2_700)
    assert h.reader.market(0)["predicted_funding_rate_8h_ppm"] == 5_000 * 1_800 // 2_700
    [funding] = events(h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=3_600)[-1], "funding_rate")
    market = h.reader.market(0)
    assert funding["rate_8h_ppm"] == market["funding_rate_8h_ppm"] == 2_500
    assert (market["next_funding_time"], market["predicted_funding_rate_8h_ppm"]) == (7_200, 0)


def test_the_block_that_closes_an_interval_samples_the_next():
    """The closing block's book stands from its own time on: a bid placed in the block at t =
    3,600 leaves the first hour at premium 0 and sets the second (one sample each, apart from
    the blocks between)."""
    h = Harness(config({CAROL: 100_000 * USDC}))
    h.block(time=1)
    bid = h.tx(CAROL, PlaceOrder(0, 0, 1, BUY, BTC // 4, P50 + 25_000_000))
    [first] = events(h.block(h.tx(ORACLE, OracleUpdate(0, P50)), bid, time=3600)[-1], "funding_rate")
    assert (first["samples"], first["rate_8h_ppm"]) == (1, 0)
    [second] = events(h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=7200)[-1], "funding_rate")
    assert (second["samples"], second["rate_8h_ppm"]) == (1, 5_000)


def test_after_a_gap_the_premium_counts_for_one_interval_and_the_default_for_the_rest():
    """A chain silent for five hours: dYdX's catch-up ticks charge the premium once, then the
    default rate (their samples were cleared by the first). The first hour's premium: the bid
    placed at t = 2 held to its end, 5,000 ppm x 3,598 s / 3,600 s = 4,997 ppm. Index step, in nano
    quote quantums per base quantum at 50,000 USD (5e9): (5,997 + 4 x 1,000) ppm x 1 h / 8 h x
    5e9 / 1e6."""
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 100_000 * USDC, CAROL: 100_000 * USDC},
        markets=[btc_market(default_funding_ppm=1_000, staleness_s=10**9)],
    )
    h = Harness(cfg)
    long_bob_short_alice(h)
    assert h.run(CAROL, PlaceOrder(0, 0, 7, BUY, BTC // 4, P50 + 25_000_000), time=2).ok
    [funding] = events(h.block(time=5 * 3600)[-1], "funding_rate")
    assert (funding["periods"], funding["rate_8h_ppm"]) == (5, 5_000 * 3_598 // 3_600 + 1_000)
    assert funding["index"] == (5_997 + 4 * 1_000) * 5_000_000_000 // 8_000_000


def test_no_collateral_leaves_through_a_trade_while_a_held_market_is_stale():
    """Alice is long in market 1, whose oracle goes stale: her margin would value that position
    at an old price. A withdrawal was refused already; a trade in market 0 is a way out too (she
    overpays Bob, who withdraws the difference), so while any market she holds is stale her
    orders are refused and her resting orders are dropped (STALE_ORACLE), and she is not
    liquidated on the strength of the old price either."""
    from paraexec.exchange.payloads import Liquidate, Withdraw

    m1 = btc_market(id=1, ticker="B2-USD", staleness_s=60)
    h = Harness(
        config(
            {ALICE: 10_000 * USDC, BOB: 10_000 * USDC, CAROL: 1_000_000 * USDC, DAVE: 100_000 * USDC},
            markets=[btc_market(staleness_s=60), m1],
        )
    )
    h.block(
        h.tx(CAROL, PlaceOrder(1, 0, 1, SELL, BTC, P50)),
        h.tx(ALICE, PlaceOrder(1, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
    )
    h.block(
        h.tx(DAVE, PlaceOrder(0, 0, 1, BUY, BTC // 10, P50)),
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, BTC // 10, P50, time_in_force=IOC)),  # short 0.1 in market 0
        h.tx(ALICE, PlaceOrder(0, 0, 2, SELL, BTC // 10, P50 + 1_000_000_000)),  # and an ask resting there
    )
    assert h.size(ALICE, 1) == BTC
    h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=100)  # market 1's price is now 100 s old
    assert h.run(ALICE, Withdraw(0, USDC), time=101).code == 212
    over = h.block(
        h.tx(ORACLE, OracleUpdate(0, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, SELL, BTC // 10, 2 * P50)),
        h.tx(ALICE, PlaceOrder(0, 0, 3, BUY, BTC // 10, 2 * P50, time_in_force=IOC)),
        time=102,
    )
    assert over[2].code == 212 and not events(over[2], "fill")  # STALE_ORACLE: she cannot overpay
    sweep = PlaceOrder(0, 0, 5, BUY, BTC // 10, P50 + 1_000_000_000, time_in_force=IOC)
    taker = h.block(h.tx(DAVE, sweep), time=103)[0]
    assert [(e["client_id"], e["reason"]) for e in events(taker, "order_removed")] == [(2, "stale_oracle")]
    assert not events(taker, "fill") and h.size(ALICE) == -BTC // 10
    # market 0 is fresh, but her account holds market 1 too: STALE_ORACLE, not NOT_LIQUIDATABLE
    assert h.run(BOB, Liquidate(ALICE.public_key, 0, 0), time=104).code == 212


def test_a_triggered_order_that_overflows_a_record_fails_alone_not_the_market_tick():
    """A value too big for a fixed-width record (here the maker's balance beyond 64 bits) fails
    a transaction with code 9. Inside the market tick it must fail only its own step: escaping,
    it failed the whole tick every block (the order was never removed), and funding, the OI
    snapshot and the sweep stopped for good."""
    from paraexec.exchange.payloads import STOP_LOSS, CancelOrder

    h = Harness(config({ALICE: 2**64 - 10**9, BOB: 100_000 * USDC}))
    assert h.run(ALICE, PlaceOrder(0, 0, 1, SELL, BTC // 10, P50 + 100_000)).ok
    stop = PlaceOrder(
        0, 0, 7, BUY, BTC // 10, P50 + 200_000, time_in_force=IOC, condition=STOP_LOSS, trigger_subticks=P50 + 5_000_000
    )
    assert h.run(BOB, stop).ok
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, P50 + 6_000_000)))[-1]
    assert tick.ok, tick.error
    failed = events(tick, "conditional_failed")
    assert [(e["client_id"], e["code"], e["error"]) for e in failed] == [(7, 9, "VALUE_OUT_OF_RANGE")]
    assert h.run(BOB, CancelOrder(0, 0, 7)).code == 208  # gone, not retried every block
    assert h.size(BOB) == 0 and h.balance(ALICE) == 2**64 - 10**9
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, P50 + 6_000_000)), time=3600)[-1]
    assert tick.ok and events(tick, "funding_rate")  # the market's hourly funding still runs


@pytest.mark.parametrize(
    ("bids", "premium"),
    [
        ([(1_000_000, P50 + 25_000_000)], 0),  # 0.0001 BTC: too thin for the impact notional
        ([(BTC // 4, P50 + 25_000_000)], 5_000),  # one level deep enough: its price
        # 5,050 USDC at 50,500 then 4,950 USDC of the 50,100 level: average 50,301.20..., so
        # (50,301.20 / 50,000 - 1) x 1e6 = 6,024.1 ppm, rounded toward zero
        ([(BTC // 10, P50 + 50_000_000), (BTC // 5, P50 + 10_000_000)], 6_024),
    ],
)
def test_the_premium_samples_the_impact_bid_not_the_best_bid(bids, premium):
    """dYdX samples the average price of filling the market's impact notional (10,000 USDC for
    BTC), so a dust order far from the oracle does not move the funding rate, and a thin best
    level counts only for its share of the impact order. (The bids stand the whole hour: placed
    at t = 0, the genesis time.)"""
    h = Harness(config({CAROL: 100_000 * USDC}))
    h.block(*(h.tx(CAROL, PlaceOrder(0, 0, i, BUY, q, px)) for i, (q, px) in enumerate(bids)), time=0)
    [funding] = events(h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=3600)[-1], "funding_rate")
    assert (funding["samples"], funding["rate_8h_ppm"]) == (1, premium)


def test_a_zero_impact_notional_samples_the_best_bid():
    """A market configured with ``impact_notional`` 0 samples the best live price (dYdX's rule
    for a zero impact notional): the dust bid that the default BTC market ignores counts."""
    h = Harness(config({CAROL: 100_000 * USDC}, markets=[btc_market(impact_notional=0)]))
    h.block(h.tx(CAROL, PlaceOrder(0, 0, 1, BUY, 1_000_000, P50 + 25_000_000)), time=0)
    [funding] = events(h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=3600)[-1], "funding_rate")
    assert (funding["samples"], funding["rate_8h_ppm"]) == (1, 5_000)

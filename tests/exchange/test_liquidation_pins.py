"""Pins for liquidation and fee arithmetic that no other exchange test held in place: the
insurance fund's fee clamped to the fill's surplus, the rounding of the liquidation order's
fillable price (one exact rational computation, rounded once, in the liquidated account's
favour, never below one tick), and maker rebates on ordinary (non-liquidation) fills.

Numbers use the harness BTC-USD market (1 BTC = 1e10 base quantums, 1 USD = 100,000 subticks,
IMF 5%, MMF 60% of IMF = 3%, liquidation fee 1.5%, spread-to-MMR 150%, bankruptcy adjustment
100%) unless a test changes it; every expected value is derived in the test's comments."""

from __future__ import annotations

from typing import Any

import pytest

from paraexec.exchange import keys
from paraexec.exchange.app import ExchangeApp
from paraexec.exchange.ledger import Account, Ledger, Position
from paraexec.exchange.liquidation import LiquidationConfig, fillable_subticks
from paraexec.exchange.payloads import BUY, IOC, SELL, Liquidate, OracleUpdate, PlaceOrder
from paraexec.execution.contract import BlockEnv, TxContext

from .harness import ALICE, BOB, BTC, CAROL, DAVE, ORACLE, USDC, Harness, btc_market, config, events

P50 = 5_000_000_000  # 50,000 USD in subticks (= oracle price units)


def order(client_id: int, side: int, quantums: int, subticks: int, **extra: Any) -> PlaceOrder:
    return PlaceOrder(0, 0, client_id, side, quantums, subticks, **extra)


# -- 1. the insurance fund's fee is clamped to the surplus ------------------------------------


def test_liquidation_fee_is_clamped_to_the_surplus_over_bankruptcy():
    """A fill just above the bankruptcy price leaves a surplus smaller than the liquidation fee
    (1.5% of the fill's quote): the fund takes the surplus and no more (dYdX: the fee is
    min(surplus, quote x fee rate)), so the liquidated account ends at TNC exactly 0, never
    below, and quote collateral is only moved, never created or destroyed.

    Bob (3,000 USDC) buys 1 BTC at 50,000 from Alice: balance 3,000 - 50,000 - 25 (taker fee)
    = -47,025 USDC. Oracle 47,100: TNC 75 < MMR 3% x 47,100 = 1,413 -> liquidatable.
    Fillable: ABR = (1,413 - 75) / 1,413, spread = ABR x 1.5 x 1,413 = 2,007 USDC, so the limit
    is 47,100 - 2,007 = 45,093 USD. Carol's bid at 47,200 fills it (at the maker's price).
    Bankruptcy quote = 47,100 - 75 = 47,025 USDC; surplus = 47,200 - 47,025 = 175 USDC; the
    fee 1.5% x 47,200 = 708 USDC is more, so the fund takes 175 and Bob ends at 0 (with the
    unclamped fee he would end at 175 - 708 = -533 USDC). Carol pays the 100 ppm maker fee,
    4.72 USDC, to the fee pool; the liquidation pays no taker fee."""
    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC, CAROL: 10_000 * USDC}))
    assert h.run(ALICE, order(1, SELL, BTC, P50)).ok
    assert h.run(BOB, order(1, BUY, BTC, P50, time_in_force=IOC)).ok
    assert h.balance(BOB) == -47_025 * USDC

    subs = [ALICE, BOB, CAROL]

    def total() -> int:
        return sum(h.balance(k) for k in subs) + h.reader.insurance_fund() + h.reader.fee_pool()

    before_total, before_fees, before_fund = total(), h.reader.fee_pool(), h.reader.insurance_fund()
    receipts = h.block(
        h.tx(ORACLE, OracleUpdate(0, 4_710_000_000)),
        h.tx(CAROL, order(1, BUY, BTC, 4_720_000_000)),
        h.tx(DAVE, Liquidate(BOB.public_key, 0, 0)),
    )
    assert all(r.ok for r in receipts), [r.error for r in receipts]
    (fill,) = events(receipts[2], "fill")
    assert fill["liquidation"] and fill["subticks"] == 4_720_000_000 and fill["quantums"] == BTC
    assert fill["taker_fee"] == 0 and fill["maker_fee"] == 4_720_000
    (liq,) = events(receipts[2], "liquidation")
    assert liq["fillable_subticks"] == 4_509_300_000  # 45,093 USD
    surplus = 47_200 * USDC - 47_025 * USDC
    assert 0 < surplus < 708 * USDC  # the case this test is about: surplus below the fee
    assert liq["filled"] == BTC and liq["deleveraged"] == 0
    assert liq["insurance_delta"] == surplus == 175 * USDC
    assert liq["tnc_after"] == 0
    assert h.balance(BOB) == 0 and h.size(BOB) == 0
    assert h.reader.subaccount(BOB.public_key)["tnc"] == 0
    assert h.reader.insurance_fund() - before_fund == 175 * USDC
    assert h.reader.fee_pool() - before_fees == 4_720_000  # Carol's maker fee only
    assert total() == before_total  # moved between accounts, fund and fee pool: conserved


# -- 2. the fillable price: exact, rounded once, in the account's favour, >= one tick -----------


class _GenesisContext(TxContext):
    """A transaction context over a genesis state (a plain dict), for calling the pure
    liquidation arithmetic on hand-built accounts."""

    def __init__(self, state: dict[bytes, bytes]) -> None:
        super().__init__(BlockEnv(1, 1))
        self.state = state

    def _read(self, key: bytes) -> bytes | None:
        return self.state.get(key)


def _fillable(size: int, balance: int, **market: Any) -> tuple[int, int, int]:
    """(fillable subticks, TNC, MMR) of an account holding ``size`` of market 0 (funding index
    0, as at genesis) with quote ``balance``, at the market's initial oracle price."""
    cfg = config({}, markets=[btc_market(**market)])
    app = ExchangeApp(cfg)
    lg = Ledger(_GenesisContext(app.genesis(cfg)), app.markets)
    acc = Account(keys.subaccount_id(BOB.public_key, 0), balance, {0: Position(size, 0, 0)})
    risk = lg.risk(acc, 0)
    return fillable_subticks(lg, LiquidationConfig(), lg.market(0), acc, risk), risk.tnc, risk.mmr


def test_a_shorts_fillable_price_rounds_down_to_a_tick():
    """Buying back a short, the limit rounds *down* to a tick (the liquidated account's favour:
    it never pays more than the exact fillable price; dYdX ConvertFillablePriceToSubticks
    rounds buys down, sells up).

    Short 1 BTC at oracle 50,000: value -50,000 USDC, MMR 1,500 USDC. TNC = MMR - 1.5 USDC, so
    ABR = 1.5 / 1,500 = 0.001 and spread = 0.001 x 1.5 x 1,500 = 2.25 USDC: the exact limit is
    (-50,000 - 2.25) / -1 BTC = 50,002.25 USD = 5,000,225,000 subticks, k + 0.25 ticks.
    Rounded down: 50,002 USD (rounding up would give 50,003)."""
    price, tnc, mmr = _fillable(-BTC, 50_000 * USDC + 1_498_500_000)
    assert (tnc, mmr) == (1_498_500_000, 1_500 * USDC)
    assert price == 5_000_200_000


def test_a_longs_fillable_price_rounds_up_to_a_tick():
    """The mirror case: selling a long, the limit rounds *up* to a tick (the account never
    sells below the exact fillable price). Long 1 BTC at 50,000 with TNC = MMR - 1.5 USDC:
    exact limit 50,000 - 2.25 = 49,997.75 USD -> 49,998 USD (down would give 49,997)."""
    price, tnc, mmr = _fillable(BTC, -50_000 * USDC + 1_498_500_000)
    assert (tnc, mmr) == (1_498_500_000, 1_500 * USDC)
    assert price == 4_999_800_000


@pytest.mark.parametrize(
    ("size", "balance", "expected"),
    [
        # long: (48,450e6 - 42,749,998.5) / 10 = 4,840,725,000.15 -> up: 4,840,725,001
        (BTC, 1_425_000_001 - 48_450 * USDC, 4_840_725_001),
        # short: (-48,450e6 - 42,749,998.5) / -10 = 4,849,274,999.85 -> down: 4,849,274,999
        (-BTC, 1_425_000_001 + 48_450 * USDC, 4_849_274_999),
    ],
    ids=("long", "short"),
)
def test_the_fillable_price_is_exact_rational_arithmetic_rounded_once(size, balance, expected):
    """On a market with 1-subtick ticks (step 0.1 BTC so that fills stay whole quote quantums)
    the limit is the exact rational (PNNV - ABR x SMMR x PMMR) / PS, rounded once, as dYdX's
    big.Rat computation. Oracle 48,450: MMR 1,453.5 USDC, TNC 1,425.000001 USDC, so
    ABR x 1.5 x PMMR = 1.5 x (MMR - TNC) = 42,749,998.5 quote quantums exactly. Rounding step by
    step instead (ABR to whole ppm, 19,607, then the spread to whole quantums, 42,748,261)
    would give 4,840,725,174 for the long: 173 subticks off."""
    price, tnc, mmr = _fillable(
        size, balance, step_base_quantums=10**9, subticks_per_tick=1, initial_price=4_845_000_000
    )
    assert (tnc, mmr) == (1_425_000_001, 1_453_500_000)
    assert price == expected


def test_a_buy_back_below_one_tick_is_limited_at_one_tick():
    """A limit is never below one tick (an order at 0 subticks is invalid, and would cross
    nothing): at an oracle price of 0.1 USD per BTC (10,000 subticks, a tick is 100,000) a
    bankrupt short's exact limit, (0.1 + 1.5 x 0.003) USD = 10,450 subticks, rounds down to 0
    and is lifted to one tick, 100,000.

    Short 1 BTC: value -0.1 USDC, MMR 3,000 quote quantums; balance 0.1 USDC -> TNC 0, ABR 1."""
    price, tnc, mmr = _fillable(-BTC, 100_000, initial_price=10_000)
    assert (tnc, mmr) == (0, 3_000)
    assert price == 100_000


# -- 3. maker rebates on ordinary fills -------------------------------------------------------


def test_a_maker_rebate_is_paid_on_an_ordinary_fill_rounded_toward_zero():
    """With a negative maker fee (-100 ppm) an ordinary fill credits the maker a rebate of
    quote x 100e-6 rounded toward zero (in the protocol's favour), paid out of the taker's fee
    in the fee pool. Only liquidation fills clamp the maker rate at 0.

    A market with 1,000-subtick ticks so that the fill's quote is 12,345,678 quote quantums:
    0.0002 BTC (2e6 base quantums) at 6,172,839,000 subticks -> 2e6 x 6,172,839,000 x 1e-9.
    Maker fee ceil(-1,234.5678) = -1,234 (flooring would pay 1,235); taker fee
    ceil(6,172.839) = 6,173; the fee pool gains 6,173 - 1,234 = 4,939."""
    price = 6_172_839_000
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 100_000 * USDC},
        markets=[btc_market(subticks_per_tick=1_000, initial_price=price)],
        fees={"taker_ppm": 500, "maker_ppm": -100},
    )
    h = Harness(cfg)
    assert h.run(ALICE, order(1, SELL, 2_000_000, price)).ok
    alice, bob, pool = h.balance(ALICE), h.balance(BOB), h.reader.fee_pool()
    receipt = h.run(BOB, order(1, BUY, 2_000_000, price, time_in_force=IOC))
    assert receipt.ok, receipt.error
    (fill,) = events(receipt, "fill")
    assert fill["quote"] == 12_345_678 and not fill["liquidation"]
    assert fill["maker_fee"] == -1_234
    assert fill["taker_fee"] == 6_173
    assert h.balance(ALICE) - alice == 12_345_678 + 1_234  # sold, plus the rebate
    assert h.balance(BOB) - bob == -12_345_678 - 6_173
    assert h.reader.fee_pool() - pool == 6_173 - 1_234

"""Units, margin (OIMF), funding direction, liquidation caps and the withdrawal gate."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from paraexec.exchange import keys
from paraexec.exchange.market import Market
from paraexec.exchange.payloads import BUY, IOC, SELL, OracleUpdate, PlaceOrder, Withdraw
from paraexec.exchange.units import ceil_div, ppm_ceil, scale_ceil, scale_floor

from .harness import ALICE, BOB, BTC, CAROL, ORACLE, USDC, Harness, btc_market, config, events

P50 = 5_000_000_000


def test_rounding_directions():
    assert ceil_div(7, 2) == 4 and ceil_div(-7, 2) == -3
    assert scale_floor(-15, -1) == -2 and scale_ceil(-15, -1) == -1 and scale_floor(15, 2) == 1500
    assert ppm_ceil(1, 1) == 1 and ppm_ceil(0, 500) == 0


def test_market_conversions_and_oimf():
    m = Market.from_config(btc_market(oi_lower_cap=1_000 * USDC, oi_upper_cap=2_000 * USDC))
    assert m.fill_quote(BTC, P50) == 50_000 * USDC
    assert m.value_floor(-1, 5_000_000_001) == -6  # -5.000000001 rounds toward -infinity
    assert m.notional_ceil(-1, 5_000_000_001) == 6
    assert m.imf_effective(500 * USDC) == 50_000
    assert m.imf_effective(1_500 * USDC) == 50_000 + 950_000 // 2
    assert m.imf_effective(5_000 * USDC) == 1_000_000


@given(
    qce=st.integers(-12, 4),
    resolution=st.integers(-12, 4),
    price_exponent=st.integers(-12, 4),
    quantums=st.integers(-(10**12), 10**12),
    price=st.integers(1, 10**12),
)
def test_conversions_equal_the_unit_functions(qce, resolution, price_exponent, quantums, price):
    """``Market`` keeps each conversion's power of ten as (multiplier, divisor): the results
    must be exactly ``scale_floor`` / ``scale_ceil`` for exponents of either sign."""
    m = replace(
        Market.from_config(btc_market()),
        quantum_conversion_exponent=qce,
        atomic_resolution=resolution,
        price_exponent=price_exponent,
    )
    value_exponent = resolution + price_exponent + 6
    assert m.fill_quote(quantums, price) == scale_floor(quantums * price, qce)
    assert m.value_floor(quantums, price) == scale_floor(quantums * price, value_exponent)
    assert m.notional_ceil(quantums, price) == scale_ceil(abs(quantums) * price, value_exponent)
    assert m.to_config() == {
        **Market.from_config(btc_market()).to_config(),
        **{"quantum_conversion_exponent": qce, "atomic_resolution": resolution, "price_exponent": price_exponent},
    }


def test_open_interest_scaled_margin_uses_end_of_block_snapshot():
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 100_000 * USDC}, markets=[btc_market(oi_lower_cap=0, oi_upper_cap=100_000 * USDC)]
    )
    h = Harness(cfg)
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, BTC, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
    )
    # OI 1 BTC = 50,000 USDC notional: IMF = 5% + 95% * 50,000 / 100,000 = 52.5% -> IMR 26,250 USDC;
    # the maintenance margin keeps the base IMF (dYdX): 50,000 * 5% * 60% = 1,500 USDC
    assert h.reader.market(0)["open_interest_snapshot"] == BTC
    view = h.reader.subaccount(BOB.public_key)
    assert view["imr"] == 26_250 * USDC and view["mmr"] == 1_500 * USDC


def test_negative_premium_makes_shorts_pay():
    h = Harness(config({ALICE: 10_000 * USDC, BOB: 10_000 * USDC, CAROL: 1_000 * USDC}))
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, BTC // 10, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, BTC // 10, P50, time_in_force=IOC)),
        h.tx(CAROL, PlaceOrder(0, 0, 1, SELL, BTC // 4, P50 - 50 * 100_000)),
    )  # ask 49,950, deeper than the 10,000 USDC impact notional: -1,000 ppm
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, P50)), time=3600)[-1]
    # held from t = 1, so 3,599 s of the hour: -999.7 ppm, rounded toward zero (as dYdX) to -999;
    # -999 x 5e9 / 8e6 = -624,375
    assert events(tick, "funding_rate")[0]["index"] == -624_375
    view = h.reader.subaccount(BOB.public_key)
    assert view["funding_pending"] == 624_375  # the long receives ~0.624 USDC
    assert h.reader.subaccount(ALICE.public_key)["funding_pending"] == -624_375


def test_bankrupt_position_is_deleveraged_whole_and_gates_withdrawals():
    # bob long 1 BTC with TNC -525 at 46,500, no bids, empty fund. The liquidation cap (50% of
    # the notional) limits the liquidation *order* only: a bankrupt account's whole position is
    # offset against alice at its bankruptcy price, as dYdX (delta = -position):
    # -dnnv + 525 * (1,395 / 1,395) = 46,500 + 525. Bob ends at TNC 0, but a bankrupt account
    # was seen: withdrawals are gated for 50 blocks.
    cfg = config(
        {ALICE: 100_000 * USDC, BOB: 3_000 * USDC},
        liquidation={"min_position_notional": 1_000 * USDC, "max_position_portion_ppm": 500_000},
    )
    h = Harness(cfg)
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, BTC, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
    )
    tick = h.block(h.tx(ORACLE, OracleUpdate(0, 4_650_000_000)))[-1]
    adl = events(tick, "deleveraged")[0]
    assert adl["quantums"] == BTC and adl["quote"] == 47_025_000_000
    liquidation = events(tick, "liquidation")[0]
    assert liquidation["quantums"] == BTC // 2 and liquidation["filled"] == 0 and liquidation["deleveraged"] == BTC
    assert liquidation["tnc_after"] == 0
    assert h.size(BOB) == 0 and h.size(ALICE) == 0 and h.balance(BOB) == 0
    assert h.get_int(keys.WITHDRAW_GATE) == 2 + 50
    assert h.run(ALICE, Withdraw(0, USDC)).code == 215


def test_liquidate_refuses_healthy_accounts():
    from paraexec.exchange.payloads import Liquidate

    h = Harness(config({ALICE: 100_000 * USDC, BOB: 3_000 * USDC}))
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, BTC, P50)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, BTC, P50, time_in_force=IOC)),
    )
    assert h.run(CAROL, Liquidate(BOB.public_key, 0, 0)).code == 214
    view = h.reader.subaccount(BOB.public_key)
    # liquidation price: TNC(p) = MMR(p): -47,025 + p = 0.03 p -> p = 48,479.38 USD, rounded down
    assert view["positions"][0]["liquidation_price"] == 4_847_938_144

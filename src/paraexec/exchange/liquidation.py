"""Liquidations, the insurance fund and deleveraging (dYdX x/clob liquidations, v4 formulas).

A subaccount is liquidatable when TNC < total MMR. ``liquidate(sub, market)`` (the permissionless
``Liquidate`` transaction, or the end-of-block sweep over the market's holders, most underwater
first: ``app``):

    size to close   whole position if its notional <= min_position_notional, else
                    max(min_position_notional, notional * max_position_portion), further capped
                    by the subaccount's per-block max_notional_per_block, which counts the
                    notional of liquidation *fills* only (dYdX UpdateSubaccountLiquidationInfo).
                    With the cap used up, a solvent account gets LIQUIDATION_LIMIT and a
                    bankrupt one goes straight to deleveraging. One liquidation per position
                    and block (dYdX ErrSubaccountHasLiquidatedPerpetual): a second one in the
                    same block, by transaction or by the sweep, gets LIQUIDATION_LIMIT, so the
                    position portion really is a per-block limit (several ``Liquidate``
                    transactions would otherwise each close the portion of what was left)
    fillable price  (PNNV - ABR * SMMR * PMMR) / PS, ABR = clamp(BA * (1 - TNC / TMMR), 0, 1)
                    (PNNV position value, PS its size, PMMR its MMR, SMMR the spread-to-MMR
                    ratio, BA the bankruptcy adjustment), computed exactly and rounded once, to
                    a tick in the liquidated account's favour (up when selling a long, down
                    when buying back a short), as dYdX GetFillablePrice
    match           an IOC order at the fillable price against the book, no taker fee; makers
                    are checked and pay maker fees as usual. Per fill of delta base quantums:
                        bankruptcy = -(value(size + delta) - value(size)) - TNC * |dMMR| / TMMR
                                     (rounded up; dYdX GetBankruptcyPriceInQuoteQuantums)
                        surplus    = fill quote received - bankruptcy
                        surplus >= 0: the fund receives min(surplus, quote * liquidation_fee),
                                      the fee rounded down
                        surplus <  0: the fund pays -surplus (the account ends at bankruptcy);
                                      if the fund (or the per-block insurance cap) cannot, the
                                      matching stops
    deleverage      only when the liquidation order did not fill whole (nothing, or less than
                    its size: the book or the fund could not take it) and the account is
                    bankrupt (TNC < 0) with a position left. An order that filled whole was
                    stopped only by the position portion: the rest is liquidated in the next
                    blocks while the book and the fund can take it, instead of closing
                    profitable traders at once. dYdX (LiquidateSubaccountsAgainstOrderbook, then
                    CanDeleverageSubaccount) deleverages only orders that filled nothing, which
                    lets a bid of one step a block keep a bankrupt account open, the fund paying
                    and withdrawals gated, for as long as the bidder likes; here that block
                    deleverages the rest. A solvent account whose fills the fund cannot cover
                    keeps the rest of its position until a better bid comes. Offset the *whole*
                    remaining position (dYdX: delta = -position, whatever the liquidation cap)
                    against opposite positions at the bankruptcy price, ranked by profit ratio x
                    leverage (highest first, ties by subaccount id) - Hyperliquid/Binance-style
                    ADL ranking, where dYdX starts at a pseudo-random holder; a counterparty
                    the offset would leave under-collateralised (``Ledger.allows``, the rule
                    every fill obeys) is skipped. Deleveraging does not use up the notional
                    cap. What no counterparty can take stays open and is retried every block
    gate            if TNC is still negative, withdrawals are gated for withdraw_gate_blocks
                    (the end-of-block sweep also re-arms it for every bankrupt holder it sees,
                    liquidated or not: see ``app``)

A liquidation needs a fresh oracle price in every market the account holds, not only the one
it closes (STALE_ORACLE): its TNC and MMR would count a position at an old price. A
``Liquidate`` transaction that closes nothing is refused (LIQUIDATION_NOT_FILLED, in ``app``)
rather than reported as a liquidation of 0; the sweep simply tries again next block.

The insurance fund is a hot aggregate: inflows are ``ctx.add`` deltas; it is read only when a
fill needs a payout, which makes that liquidation depend on every earlier inflow in the block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..execution.contract import TxContext
from . import keys
from .book import Book
from .errors import LiquidationLimit, NotLiquidatable
from .ledger import Account, Ledger, Risk
from .market import Market
from .matching import Fees, match, signed
from .payloads import BUY, SELL
from .records import HOLDERS_DECODER, USAGE_DECODER, LiquidationUsage, encode
from .units import PPM, ceil_div, ppm_floor


@dataclass(frozen=True)
class LiquidationConfig:
    liquidation_fee_ppm: int = 15_000
    bankruptcy_adjustment_ppm: int = 1_000_000
    spread_to_mmr_ppm: int = 1_500_000
    min_position_notional: int = 1_000_000_000  # 1,000 USDC
    max_position_portion_ppm: int = 1_000_000
    max_notional_per_block: int = 10**15
    max_insurance_lost_per_block: int = 10**15
    sweep_limit: int = 32
    withdraw_gate_blocks: int = 50


def position_mmr(lg: Ledger, market: Market, size: int) -> int:
    return lg.position_parts(market.id, size)[2]


def bankruptcy_quote(lg: Ledger, market: Market, acc: Account, risk: Risk, delta: int) -> int:
    """Quote quantums the account must receive for a position change of ``delta`` so that its
    share of TNC is used up exactly (dYdX GetBankruptcyPriceInQuoteQuantums), rounded up."""
    size = acc.size(market.id)
    price = lg.price(market.id)
    dnnv = market.value_floor(size + delta, price) - market.value_floor(size, price)
    dmmr = abs(position_mmr(lg, market, size) - position_mmr(lg, market, size + delta))
    if risk.mmr == 0:
        return -dnnv - risk.tnc
    return ceil_div(-dnnv * risk.mmr - risk.tnc * dmmr, risk.mmr)


def adjusted_bankruptcy_ratio(cfg: LiquidationConfig, risk: Risk) -> Fraction:
    """ABR = clamp(BA * (1 - TNC / TMMR), 0, 1), exact (0 without a margin requirement): how far
    towards the bankruptcy price the fillable price goes. Within one market the fillable price's
    distance from the oracle grows with it, so the sweep takes the largest first (dYdX
    ``SortLiquidationOrders``)."""
    if risk.mmr <= 0:
        return Fraction(0)
    return min(
        Fraction(1), max(Fraction(0), Fraction(cfg.bankruptcy_adjustment_ppm * (risk.mmr - risk.tnc), PPM * risk.mmr))
    )


def fillable_subticks(lg: Ledger, cfg: LiquidationConfig, market: Market, acc: Account, risk: Risk) -> int:
    """The liquidation order's limit in subticks (see module docstring): exact rational
    arithmetic, one rounding at the end, as dYdX's big.Rat computation."""
    size = acc.size(market.id)
    pnnv = market.value_floor(size, lg.price(market.id))
    pmmr = position_mmr(lg, market, size)
    abr = adjusted_bankruptcy_ratio(cfg, risk)
    numerator = pnnv - abr * Fraction(cfg.spread_to_mmr_ppm, PPM) * pmmr  # quote quantums
    subticks = numerator / (size * Fraction(10) ** market.quantum_conversion_exponent)
    raw = math.ceil(subticks) if size > 0 else math.floor(subticks)
    return market.subticks_round(raw, up=size > 0)


@dataclass
class _Fund:
    """Insurance fund effects of one liquidation: net delta, payouts, the balance read once."""

    delta: int = 0
    lost: int = 0
    base: int | None = None
    short: bool = False


def liquidate(lg: Ledger, fees: Fees, cfg: LiquidationConfig, sub_id: bytes, market_id: int) -> int:
    """Liquidate the account's position in the market (see module doc); returns the base
    quantums closed, by fills and deleveraging (0: nothing could be closed this time)."""
    market = lg.market(market_id)
    lg.must_be_fresh(market)
    ctx = lg.ctx
    acc = lg.account(sub_id)
    lg.must_hold_fresh(acc)  # its TNC and MMR would count a position at an old price
    size = acc.size(market.id)
    risk = lg.risk(acc, market.id)
    if size == 0 or not risk.liquidatable:
        raise NotLiquidatable(f"TNC {risk.tnc} >= MMR {risk.mmr} or no position")
    usage_key = keys.liquidation_usage(sub_id)
    raw = ctx.get(usage_key)
    usage = USAGE_DECODER.decode(raw) if raw else LiquidationUsage(lg.height, 0, 0)
    if usage.height != lg.height:
        usage = LiquidationUsage(lg.height, 0, 0)
    if market.id in usage.markets:
        raise LiquidationLimit(f"position in market {market.id} already liquidated in this block")
    price = lg.price(market.id)
    notional = market.notional_ceil(size, price)
    if notional <= cfg.min_position_notional:
        cap = notional
    else:
        cap = max(cfg.min_position_notional, ppm_floor(notional, cfg.max_position_portion_ppm))
    cap = min(cap, cfg.max_notional_per_block - usage.notional)
    if cap <= 0 and risk.tnc >= 0:
        raise LiquidationLimit(f"notional liquidated this block: {usage.notional}")
    side = SELL if size > 0 else BUY
    fund = _Fund()
    quantums = filled = limit = 0
    if cap > 0:
        step = market.step_base_quantums
        quantums = abs(size) if cap >= notional else max(step, abs(size) * cap // notional // step * step)
        limit = fillable_subticks(lg, cfg, market, acc, risk)
        filled = _match_liquidation(lg, fees, cfg, market, sub_id, side, quantums, limit, usage, fund)
    deleveraged = 0
    now = lg.account(sub_id)
    if filled < quantums or not filled:  # not filled whole: the book or the fund ran out (module doc)
        if now.size(market.id) and lg.risk(now).tnc < 0:
            deleveraged = deleverage(lg, market, sub_id, side, abs(now.size(market.id)))
    if fund.delta:
        ctx.add(keys.INSURANCE, fund.delta)
    ctx.put(
        usage_key,
        encode(
            LiquidationUsage(
                lg.height,
                usage.notional + market.notional_ceil(filled, price),
                usage.insurance_lost + fund.lost,
                (*usage.markets, market.id),
            )
        ),
    )
    after = lg.risk(lg.account(sub_id))
    if after.tnc < 0:
        arm_withdraw_gate(ctx, lg.height + cfg.withdraw_gate_blocks)
    ctx.emit(
        "liquidation",
        market=market.id,
        subaccount=sub_id.hex(),
        quantums=quantums,
        filled=filled,
        deleveraged=deleveraged,
        fillable_subticks=limit,
        insurance_delta=fund.delta,
        tnc_after=after.tnc,
    )
    lg.flush()
    return filled + deleveraged


def arm_withdraw_gate(ctx: TxContext, until: int) -> None:
    """Gate withdrawals and transfers until height ``until`` (never shortening the gate).

    The market tick's sweep arms it for every bankrupt holder it sees, whether its
    liquidation closed anything, was refused or was never tried (sweep budget spent), so the
    gate stays up while a negative-TNC account exists, as dYdX re-arms it every block one is
    seen."""
    if ctx.get_int(keys.WITHDRAW_GATE) < until:
        ctx.put_int(keys.WITHDRAW_GATE, until)


def _match_liquidation(
    lg: Ledger,
    fees: Fees,
    cfg: LiquidationConfig,
    market: Market,
    sub_id: bytes,
    side: int,
    quantums: int,
    limit: int,
    usage: LiquidationUsage,
    fund: _Fund,
) -> int:
    """The liquidation order: IOC at ``limit`` against the book, each fill settled against the
    bankruptcy price through the insurance fund (``fund`` collects the effects); returns the
    base quantums filled."""
    ctx = lg.ctx

    def taker_after(q: int, fill_price: int) -> Account | None:
        cur = lg.account(sub_id)
        delta = signed(side, q)
        quote = market.fill_quote(q, fill_price)
        received = -signed(side, quote)
        surplus = received - bankruptcy_quote(lg, market, cur, lg.risk(cur, market.id), delta)
        if surplus < 0:
            need = -surplus
            if usage.insurance_lost + fund.lost + need > cfg.max_insurance_lost_per_block:
                fund.short = True
                return None
            if fund.base is None:
                fund.base = ctx.get_int(keys.INSURANCE)  # the only read of the hot fund key
            if fund.base + fund.delta < need:
                fund.short = True
                return None
            fund.lost += need
            fund_delta = surplus
        else:
            fund_delta = min(surplus, ppm_floor(quote, cfg.liquidation_fee_ppm))
        fund.delta += fund_delta
        after = cur.copy()
        after.trade(market.id, delta, received - fund_delta, lg.funding(market.id).index)
        return after

    book = Book(ctx, market.id)
    filled, _ = match(
        lg, book, fees, market, sub_id, 0, side, quantums, limit, taker_after, lambda q: q, liquidation=True
    )
    book.flush()
    return filled


def adl_rank(lg: Ledger, market: Market, acc: Account) -> tuple[int, bytes]:
    """Sort key (lower first): profit ratio (ppm) x leverage (ppm), highest first, then id."""
    pos = acc.positions[market.id]
    value = market.value_floor(pos.size, lg.price(market.id))
    pnl = value - pos.entry_quote
    pnl_ppm = pnl * PPM // max(abs(pos.entry_quote), 1)
    tnc = lg.risk(acc, market.id).tnc
    leverage_ppm = abs(value) * PPM // tnc if tnc > 0 else 10**18
    return (-(pnl_ppm * leverage_ppm), acc.sub_id)


def deleverage(lg: Ledger, market: Market, sub_id: bytes, side: int, quantums: int) -> int:
    """Offset up to ``quantums`` of the account's position against opposite positions at the
    bankruptcy price; returns the quantums offset."""
    raw = lg.ctx.get(keys.holders(market.id))
    members = HOLDERS_DECODER.decode(raw) if raw else []
    victim_sign = 1 if side == SELL else -1  # the liquidated position's sign
    candidates = []
    for other in members:
        if other == sub_id:
            continue
        acc = lg.account(other)
        if acc.size(market.id) * victim_sign < 0:
            candidates.append(acc)
    candidates.sort(key=lambda a: adl_rank(lg, market, a))
    left = quantums
    for counter in candidates:
        if left == 0:
            break
        q = min(left, abs(counter.size(market.id)))
        acc = lg.account(sub_id)
        delta = signed(side, q)
        quote = bankruptcy_quote(lg, market, acc, lg.risk(acc, market.id), delta)
        liquidated = acc.copy()
        liquidated.trade(market.id, delta, quote, lg.funding(market.id).index)
        before = lg.account(counter.sub_id)
        offset = before.copy()
        offset.trade(market.id, -delta, -quote, lg.funding(market.id).index)
        if not lg.allows(before, offset, market.id):  # the bankruptcy price would sink it too
            lg.ctx.emit("deleverage_skipped", market=market.id, offsetting=counter.sub_id.hex(), quantums=q)
            continue
        lg.replace(liquidated)
        lg.replace(offset)
        left -= q
        lg.ctx.emit(
            "deleveraged",
            market=market.id,
            liquidated=sub_id.hex(),
            offsetting=counter.sub_id.hex(),
            quantums=q,
            quote=quote,
            side=side,
        )
    return quantums - left

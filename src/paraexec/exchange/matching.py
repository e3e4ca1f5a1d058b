"""Orders and matching: price-time priority on the per-market book.

place_order(order):
    validate: market, status, size (> 0, step multiple), price (> 0, tick multiple), expiry,
              fresh oracle; conditional orders are stored untriggered and stop here (at most
              MAX_CONDITIONAL_PER_SUBACCOUNT per subaccount and MAX_CONDITIONAL_PER_MARKET per
              market: the market tick reads the whole list every block; an untriggered order
              past its good_til_block is removed by the tick, as dYdX's EndBlocker does)
    a client id held by a live order -> DUPLICATE_ORDER (an expired good-til-block order no
              longer holds it: it is removed and the id reused)
    post-only that would cross a live order of another subaccount -> POST_ONLY_WOULD_CROSS
              (rejected; the owner's own crossing orders are removed as self-trades, as dYdX)
    reduce-only that is not IOC or FOK -> INVALID_ORDER (dYdX: a resting reduce-only order
              could outlive the position it reduces, or come to grow the opposite one)
    reduce-only that would not reduce the position -> REDUCE_ONLY_WOULD_INCREASE
    walk the opposite side best price first while it crosses the limit (the taker is checked
    fill by fill at the fill's price, as dYdX; the limit only bounds the price):
        each resting order FIFO:
            expired (good_til_block < height)        -> removed
            same subaccount (self-trade prevention)  -> the resting (maker) order is removed
            q = min(taker left, maker left), capped by a reduce-only taker's position
            maker after the fill not collateralised  -> maker order removed, continue
            taker after the fill not collateralised  -> stop (status UNDERCOLLATERALIZED; a
                                                        limit order that filled nothing is
                                                        rejected: UNDERCOLLATERALIZED, 204)
            else: both trade at the maker's price; taker pays taker fee, maker pays maker fee
                  (a liquidation pays no taker fee and its makers get no rebate)
    the rest: FOK -> FOK_NOT_FULLY_FILLED (whole transaction rejected); IOC / market ->
    canceled; GTC / post-only -> rests at the back of its price level if the account stays
    collateralised with all of it filled at its price (taker fee included), so no order rests
    beyond its margin; else it does not rest (UNDERCOLLATERALIZED; rejected if nothing filled)

Fees: ``fee = quote * fee_ppm / 1e6`` rounded up (a negative maker fee is a rebate rounded
toward zero); both go to the fee pool with ``ctx.add``. Fills are at the maker's price, and a
fill's quote amount is exact (see ``units``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import keys
from .book import Book, opposite
from .errors import (
    ConditionalOrderLimit,
    DuplicateOrder,
    FokNotFilled,
    InvalidOrder,
    InvalidPrice,
    InvalidSize,
    InvalidSubaccount,
    MarketNotActive,
    OrderExpired,
    OrderNotFound,
    OrderStatus,
    PostOnlyWouldCross,
    ReduceOnlyWouldIncrease,
    Undercollateralized,
)
from .ledger import Account, Ledger
from .market import STATUS_FINAL_SETTLEMENT, STATUS_POST_ONLY, Market
from .payloads import (
    BUY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    MAX_SUBACCOUNT,
    NONE,
    POST_ONLY,
    SELL,
    STOP_LOSS,
    TAKE_PROFIT,
    PlaceOrder,
)
from .records import (
    CONDITIONALS_DECODER,
    ORDER_REF_DECODER,
    ConditionalOrder,
    OrderRef,
    RestingOrder,
    encode,
    expired,
)
from .units import ppm_ceil

#: Given (quantums, subticks), the taker's account after the fill, or None to stop matching.
TakerAfter = Callable[[int, int], Account | None]


@dataclass(frozen=True)
class Fees:
    taker_ppm: int
    maker_ppm: int

    def __post_init__(self) -> None:
        """A maker rebate larger than the taker fee would pay out of the fee pool what no fill
        paid in (dYdX's fee tiers require the lowest maker fee + lowest taker fee >= 0)."""
        if self.taker_ppm < 0 or self.taker_ppm + self.maker_ppm < 0:
            raise ValueError(f"fees: taker_ppm {self.taker_ppm} must be >= 0 and >= -maker_ppm {self.maker_ppm}")


def crosses(side: int, limit: int | None, price: int) -> bool:
    """Does a taker on ``side`` with ``limit`` (None: no limit) trade at ``price``?"""
    if limit is None:
        return True
    return price <= limit if side == BUY else price >= limit


def signed(side: int, quantums: int) -> int:
    return quantums if side == BUY else -quantums


def must_be_subaccount(number: int) -> None:
    if not 0 <= number <= MAX_SUBACCOUNT:
        raise InvalidSubaccount(f"subaccount {number} outside 0..{MAX_SUBACCOUNT}")


def validate(lg: Ledger, market: Market, p: PlaceOrder) -> None:
    """Stateless-ish checks shared by direct and triggered orders."""
    must_be_subaccount(p.subaccount)
    if p.side not in (BUY, SELL) or p.order_type not in (LIMIT, MARKET):
        raise InvalidOrder(f"side {p.side}, type {p.order_type}")
    if p.time_in_force not in (GTC, IOC, FOK, POST_ONLY) or p.condition not in (NONE, STOP_LOSS, TAKE_PROFIT):
        raise InvalidOrder(f"time in force {p.time_in_force}, condition {p.condition}")
    if not 0 <= p.client_id < 2**32:
        raise InvalidOrder(f"client id {p.client_id}")
    if p.quantums <= 0 or p.quantums % market.step_base_quantums:
        raise InvalidSize(f"{p.quantums} base quantums (step {market.step_base_quantums})")
    if p.order_type == LIMIT and (p.subticks <= 0 or p.subticks % market.subticks_per_tick):
        raise InvalidPrice(f"{p.subticks} subticks (tick {market.subticks_per_tick})")
    if p.order_type == MARKET and p.time_in_force in (GTC, POST_ONLY):
        raise InvalidOrder("market orders are IOC or FOK")
    if p.reduce_only and p.time_in_force not in (IOC, FOK):
        # dYdX allows reduce-only on IOC/FOK orders only: one that rests could outlive the
        # position it was to reduce, or, when that position flips, grow the new one
        raise InvalidOrder("reduce-only orders are IOC or FOK")
    if expired(p.good_til_block, lg.height):
        raise OrderExpired(f"good til block {p.good_til_block} < height {lg.height}")
    if market.status == STATUS_FINAL_SETTLEMENT:
        raise MarketNotActive(f"{market.ticker} is in final settlement")
    if market.status == STATUS_POST_ONLY and p.time_in_force != POST_ONLY:
        raise MarketNotActive(f"{market.ticker} accepts post-only orders only")


def place_order(lg: Ledger, fees: Fees, owner: bytes, p: PlaceOrder, triggered: bool = False) -> OrderStatus:
    market = lg.market(p.market_id)
    validate(lg, market, p)
    lg.must_be_fresh(market)
    sub_id = keys.subaccount_id(owner, p.subaccount)
    order_key = keys.order(market.id, sub_id, p.client_id)
    book = Book(lg.ctx, market.id)
    if not triggered:
        _must_be_free(lg, market, book, sub_id, p.client_id)
    if p.condition != NONE and not triggered:
        return _store_conditional(lg, market, sub_id, p)
    acc = lg.account(sub_id)
    lg.must_hold_fresh(acc)  # its margin would value a position at an old price
    position = acc.size(market.id)
    if p.reduce_only and (position == 0 or (position > 0) == (p.side == BUY)):
        raise ReduceOnlyWouldIncrease(f"position {position}, side {p.side}")
    limit = None if p.order_type == MARKET else p.subticks
    if p.time_in_force == POST_ONLY:  # only another subaccount's live order refuses it (dYdX)
        best = book.best_live(opposite(p.side), lg.height, excluding=sub_id)
        if best is not None and crosses(p.side, limit, best):
            raise PostOnlyWouldCross(f"opposite order at {best}")
    funding_index = lg.funding(market.id).index  # fixed while a transaction runs (market tick only)

    def taker_after(q: int, price: int) -> Account | None:
        current = lg.account(sub_id)
        quote = market.fill_quote(q, price)
        after = current.copy()
        fee = ppm_ceil(quote, fees.taker_ppm)
        after.trade(market.id, signed(p.side, q), -signed(p.side, quote) - fee, funding_index)
        return after if lg.allows(current, after, market.id) else None

    def taker_cap(q: int) -> int:
        return min(q, abs(lg.account(sub_id).size(market.id))) if p.reduce_only else q

    filled, stopped = match(
        lg,
        book,
        fees,
        market,
        sub_id,
        p.client_id,
        p.side,
        p.quantums,
        limit,
        taker_after,
        taker_cap,
        liquidation=False,
    )
    remaining = p.quantums - filled
    if stopped and not filled and limit is not None:  # as when it could not rest: refused whole
        raise Undercollateralized(f"the first fill of {p.quantums} at {limit} needs more collateral")
    if stopped and p.time_in_force != FOK:
        status = OrderStatus.UNDERCOLLATERALIZED
    elif remaining == 0:
        status = OrderStatus.FILLED
    elif p.time_in_force == FOK:
        raise FokNotFilled(f"filled {filled} of {p.quantums}")
    elif p.time_in_force == IOC or p.order_type == MARKET:
        status = OrderStatus.CANCELED
    elif not _rest_fits(lg, fees, market, sub_id, p.side, remaining, p.subticks, funding_index):
        if not filled:  # nothing happened: refuse the order (its transaction changes nothing)
            raise Undercollateralized(f"order of {p.quantums} at {p.subticks} needs more collateral")
        status = OrderStatus.UNDERCOLLATERALIZED  # the fills stand; the rest does not rest
    else:
        book.append(p.side, limit or 0, RestingOrder(sub_id, p.client_id, remaining, p.good_til_block))
        lg.ctx.put(order_key, encode(OrderRef(p.side, limit or 0, p.good_til_block)))
        status = OrderStatus.RESTING
    book.flush()
    emit_order(lg, market.id, sub_id, p, filled, status)
    return status


def _rest_fits(
    lg: Ledger, fees: Fees, market: Market, sub_id: bytes, side: int, quantums: int, subticks: int, index: int
) -> bool:
    """Whether ``quantums`` may rest at ``subticks``: the account must stay collateralised if
    they all filled there (taker fee included), so no order rests beyond its margin. Checked on
    what would rest, after matching: an IOC or FOK order (and the part of an order that fills at
    once) is checked fill by fill at the fill's price instead (``match``), as dYdX does; a
    check of the whole order at its limit would count a buyer's slippage limit as a loss and
    refuse orders every fill of which is collateralised."""
    acc = lg.account(sub_id)
    whole = acc.copy()
    quote = market.fill_quote(quantums, subticks)
    whole.trade(market.id, signed(side, quantums), -signed(side, quote) - ppm_ceil(quote, fees.taker_ppm), index)
    return lg.allows(acc, whole, market.id)


def _must_be_free(lg: Ledger, market: Market, book: Book, sub_id: bytes, client_id: int) -> None:
    """Refuse a client id that a live order holds. An expired good-til-block order that no
    taker has walked over yet holds it no longer: it is removed (``order_removed``, expired)
    and the id reused, as dYdX frees a short-term order's id once its block has passed."""
    order_key = keys.order(market.id, sub_id, client_id)
    raw = lg.ctx.get(order_key)
    if raw is None:
        return
    ref = ORDER_REF_DECODER.decode(raw)
    if ref.conditional or not expired(ref.good_til_block, lg.height):
        raise DuplicateOrder(f"client id {client_id} is live")
    lg.ctx.delete(order_key)
    stale = book.remove(ref.side, ref.subticks, sub_id, client_id)
    if stale is not None:
        book.flush()
        _drop(lg, market, ref.side, ref.subticks, stale, "expired")


def match(
    lg: Ledger,
    book: Book,
    fees: Fees,
    market: Market,
    taker_sub: bytes,
    taker_client_id: int,
    side: int,
    quantums: int,
    limit: int | None,
    taker_after: TakerAfter,
    taker_cap: Callable[[int], int],
    liquidation: bool,
) -> tuple[int, bool]:
    """Match a taker against the book; returns (filled quantums, stopped by the taker's margin)."""
    maker_side = opposite(side)
    remaining = quantums
    for price in book.prices_best_first(maker_side):
        if remaining == 0 or not crosses(side, limit, price):
            break
        orders = list(book.level(maker_side, price))
        kept: list[RestingOrder] = []
        halt = ""  # "margin": the taker cannot take more; "cap": its reduce-only size is used up
        for maker in orders:
            if remaining == 0 or halt:
                kept.append(maker)
                continue
            if expired(maker.good_til_block, lg.height):
                _drop(lg, market, maker_side, price, maker, "expired")
                continue
            if maker.sub_id == taker_sub:
                _drop(lg, market, maker_side, price, maker, "self_trade")
                continue
            q = taker_cap(min(remaining, maker.remaining))
            if q == 0:
                kept.append(maker)
                halt = "cap"
                continue
            maker_acc = lg.account(maker.sub_id)
            if lg.stale_holding(maker_acc) is not None:  # as a taker would be refused (STALE_ORACLE)
                _drop(lg, market, maker_side, price, maker, "stale_oracle")
                continue
            quote = market.fill_quote(q, price)
            # a liquidation pays no taker fee, so it pays no maker rebate either (dYdX clamps
            # the maker rate at 0): the fee pool never pays out what it did not take in
            maker_fee = ppm_ceil(quote, max(fees.maker_ppm, 0) if liquidation else fees.maker_ppm)
            maker_after = maker_acc.copy()
            maker_after.trade(
                market.id, signed(maker_side, q), -signed(maker_side, quote) - maker_fee, lg.funding(market.id).index
            )
            if not lg.allows(maker_acc, maker_after, market.id):
                _drop(lg, market, maker_side, price, maker, "undercollateralized")
                continue
            taker_acc = lg.account(taker_sub)
            taker_balance = taker_acc.balance
            after = taker_after(q, price)
            if after is None:
                kept.append(maker)
                halt = "margin"
                continue
            taker_fee = taker_balance - after.balance - signed(side, quote)
            lg.replace(maker_after)
            lg.replace(after)
            lg.fees += maker_fee + (0 if liquidation else taker_fee)
            remaining -= q
            left = maker.remaining - q
            if left:
                kept.append(RestingOrder(maker.sub_id, maker.client_id, left, maker.good_til_block))
            else:
                lg.ctx.delete(keys.order(market.id, maker.sub_id, maker.client_id))
            lg.ctx.emit(
                "fill",
                market=market.id,
                taker=taker_sub.hex(),
                taker_client_id=taker_client_id,
                maker=maker.sub_id.hex(),
                maker_client_id=maker.client_id,
                taker_side=side,
                quantums=q,
                subticks=price,
                quote=quote,
                taker_fee=0 if liquidation else taker_fee,
                maker_fee=maker_fee,
                liquidation=liquidation,
            )
        if kept != orders:
            book.set_level(maker_side, price, kept)
        if halt:
            return quantums - remaining, halt == "margin"
    return quantums - remaining, False


def _drop(lg: Ledger, market: Market, side: int, price: int, order: RestingOrder, reason: str) -> None:
    lg.ctx.delete(keys.order(market.id, order.sub_id, order.client_id))
    lg.ctx.emit(
        "order_removed",
        market=market.id,
        subaccount=order.sub_id.hex(),
        client_id=order.client_id,
        side=side,
        subticks=price,
        remaining=order.remaining,
        reason=reason,
    )


def cancel_order(lg: Ledger, owner: bytes, market_id: int, subaccount: int, client_id: int) -> None:
    market = lg.market(market_id)
    must_be_subaccount(subaccount)
    if not 0 <= client_id < 2**32:
        raise OrderNotFound(f"client id {client_id}")
    sub_id = keys.subaccount_id(owner, subaccount)
    order_key = keys.order(market.id, sub_id, client_id)
    raw = lg.ctx.get(order_key)
    if raw is None:
        raise OrderNotFound(f"client id {client_id}")
    ref = ORDER_REF_DECODER.decode(raw)
    lg.ctx.delete(order_key)
    if ref.conditional:
        key = keys.conditionals(market.id, keys.conditional_shard(sub_id))
        pending = CONDITIONALS_DECODER.decode(lg.ctx.get(key) or b"\x90")
        rest = [c for c in pending if not (c.sub_id == sub_id and c.client_id == client_id)]
        if rest:
            lg.ctx.put(key, encode(rest))
        else:
            lg.ctx.delete(key)
        lg.ctx.emit("order_canceled", market=market.id, subaccount=sub_id.hex(), client_id=client_id, conditional=True)
        return
    book = Book(lg.ctx, market.id)
    removed = book.remove(ref.side, ref.subticks, sub_id, client_id)
    if removed is None:  # expired order already dropped by a taker: the ref was stale
        raise OrderNotFound(f"client id {client_id}")
    book.flush()
    lg.ctx.emit(
        "order_canceled",
        market=market.id,
        subaccount=sub_id.hex(),
        client_id=client_id,
        conditional=False,
        remaining=removed.remaining,
    )


#: Untriggered conditional orders a subaccount may hold in one market, and a market in all:
#: every market tick decodes the market's whole lists (dYdX caps them too, per subaccount and
#: globally), so unbounded lists would make every block slower. The market's cap is kept per
#: shard (``keys.conditional_shard``), as a market-wide count would be one key that every
#: placement writes: at most ``MAX_CONDITIONAL_PER_SHARD`` in each of the market's lists.
MAX_CONDITIONAL_PER_SUBACCOUNT = 20
MAX_CONDITIONAL_PER_MARKET = 2_000
MAX_CONDITIONAL_PER_SHARD = MAX_CONDITIONAL_PER_MARKET // keys.CONDITIONAL_SHARDS


def _store_conditional(lg: Ledger, market: Market, sub_id: bytes, p: PlaceOrder) -> OrderStatus:
    if p.trigger_subticks <= 0 or p.trigger_subticks % market.subticks_per_tick:
        raise InvalidPrice(f"trigger {p.trigger_subticks} subticks")
    key = keys.conditionals(market.id, keys.conditional_shard(sub_id))
    pending = CONDITIONALS_DECODER.decode(lg.ctx.get(key) or b"\x90")
    if len(pending) >= MAX_CONDITIONAL_PER_SHARD:
        raise ConditionalOrderLimit(
            f"{market.ticker} holds {len(pending)} untriggered conditional orders in this subaccount's shard"
        )
    if sum(c.sub_id == sub_id for c in pending) >= MAX_CONDITIONAL_PER_SUBACCOUNT:
        raise ConditionalOrderLimit(f"at most {MAX_CONDITIONAL_PER_SUBACCOUNT} untriggered per subaccount and market")
    pending.append(
        ConditionalOrder(
            sub_id,
            p.client_id,
            p.side,
            p.quantums,
            p.subticks,
            p.order_type,
            p.time_in_force,
            p.reduce_only,
            p.good_til_block,
            p.condition,
            p.trigger_subticks,
        )
    )
    lg.ctx.put(key, encode(pending))
    lg.ctx.put(keys.order(market.id, sub_id, p.client_id), encode(OrderRef(p.side, p.subticks, p.good_til_block, True)))
    emit_order(lg, market.id, sub_id, p, 0, OrderStatus.UNTRIGGERED)
    return OrderStatus.UNTRIGGERED


def is_triggered(order: ConditionalOrder, oracle_subticks: int) -> bool:
    """Stop-loss: a sell triggers at or below its trigger, a buy at or above. Take-profit: reverse."""
    falling = (order.side == SELL) == (order.condition == STOP_LOSS)
    return oracle_subticks <= order.trigger_subticks if falling else oracle_subticks >= order.trigger_subticks


def emit_order(lg: Ledger, market_id: int, sub_id: bytes, p: PlaceOrder, filled: int, status: OrderStatus) -> None:
    """The ``order`` event: what was asked (side, quantums, subticks), what filled, where it ended."""
    lg.ctx.emit(
        "order",
        market=market_id,
        subaccount=sub_id.hex(),
        client_id=p.client_id,
        side=p.side,
        quantums=p.quantums,
        subticks=p.subticks,
        filled=filled,
        status=status.name,
    )

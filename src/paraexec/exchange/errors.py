"""Business rejections of the exchange (stable codes 200-299) and order outcomes.

Every rejection is a ``BusinessError``: the transaction is included, its nonce is consumed, and
every application write is rolled back by the runtime. Codes are stable: clients and test
vectors match on them. ``OrderStatus`` is the *outcome* of an accepted order (it is carried in
events, not raised): an IOC order that fills nothing is a success with status ``CANCELED``.
"""

from __future__ import annotations

from enum import IntEnum

from ..errors import BusinessError


class ExchangeError(BusinessError):
    code = 200
    name = "EXCHANGE_REJECTED"


class UnknownMarket(ExchangeError):
    code = 201
    name = "UNKNOWN_MARKET"


class InvalidSize(ExchangeError):
    """Zero, negative, or not a multiple of the market's step size."""

    code = 202
    name = "INVALID_SIZE"


class InvalidPrice(ExchangeError):
    """Zero, negative, or not a multiple of the market's tick size."""

    code = 203
    name = "INVALID_PRICE"


class Undercollateralized(ExchangeError):
    """The subaccount would not be initially collateralised after the action."""

    code = 204
    name = "UNDERCOLLATERALIZED"


class PostOnlyWouldCross(ExchangeError):
    code = 205
    name = "POST_ONLY_WOULD_CROSS"


class ReduceOnlyWouldIncrease(ExchangeError):
    code = 206
    name = "REDUCE_ONLY_WOULD_INCREASE"


class FokNotFilled(ExchangeError):
    code = 207
    name = "FOK_NOT_FULLY_FILLED"


class OrderNotFound(ExchangeError):
    code = 208
    name = "ORDER_NOT_FOUND"


class DuplicateOrder(ExchangeError):
    code = 209
    name = "DUPLICATE_ORDER"


class NotOracle(ExchangeError):
    """An oracle update signed by a key outside the genesis oracle set."""

    code = 210
    name = "NOT_ORACLE"


class PriceBandExceeded(ExchangeError):
    code = 211
    name = "PRICE_BAND_EXCEEDED"


class StaleOracle(ExchangeError):
    """The market's oracle price is older than its staleness limit: trading is paused."""

    code = 212
    name = "STALE_ORACLE"


class MarketNotActive(ExchangeError):
    """Wrong market status for the action (post-only market, final settlement)."""

    code = 213
    name = "MARKET_NOT_ACTIVE"


class NotLiquidatable(ExchangeError):
    code = 214
    name = "NOT_LIQUIDATABLE"


class WithdrawalsGated(ExchangeError):
    """Withdrawals pause while a subaccount with negative net collateral was seen recently."""

    code = 215
    name = "WITHDRAWALS_GATED"


class InvalidSubaccount(ExchangeError):
    code = 216
    name = "INVALID_SUBACCOUNT"


class OrderExpired(ExchangeError):
    code = 217
    name = "ORDER_EXPIRED"


class InvalidOrder(ExchangeError):
    """Inconsistent order fields (unknown side, time in force, condition)."""

    code = 219
    name = "INVALID_ORDER"


class LiquidationLimit(ExchangeError):
    """The per-block liquidation caps of this subaccount or position are used up."""

    code = 220
    name = "LIQUIDATION_LIMIT"


class ConditionalOrderLimit(ExchangeError):
    """Too many untriggered conditional orders: per subaccount in a market, or in the market."""

    code = 221
    name = "CONDITIONAL_ORDER_LIMIT"


class LiquidationNotFilled(ExchangeError):
    """A ``Liquidate`` request that could close nothing: no resting order at or inside the
    account's fillable price and no counterparty to deleverage against (the end-of-block sweep
    tries again every block)."""

    code = 222
    name = "LIQUIDATION_NOT_FILLED"


EXCHANGE_ERRORS: tuple[type[ExchangeError], ...] = (
    ExchangeError,
    UnknownMarket,
    InvalidSize,
    InvalidPrice,
    Undercollateralized,
    PostOnlyWouldCross,
    ReduceOnlyWouldIncrease,
    FokNotFilled,
    OrderNotFound,
    DuplicateOrder,
    NotOracle,
    PriceBandExceeded,
    StaleOracle,
    MarketNotActive,
    NotLiquidatable,
    WithdrawalsGated,
    InvalidSubaccount,
    OrderExpired,
    InvalidOrder,
    LiquidationLimit,
    ConditionalOrderLimit,
    LiquidationNotFilled,
)

#: Stable code -> name of every exchange error.
EXCHANGE_ERROR_CODES: dict[int, str] = {cls.code: cls.name for cls in EXCHANGE_ERRORS}


class OrderStatus(IntEnum):
    """The outcome of an accepted order (carried in its ``order`` event)."""

    RESTING = 0  # (partially) filled and the rest rests on the book
    FILLED = 1  # fully filled
    CANCELED = 2  # IOC / market remainder canceled (nothing or part filled)
    UNDERCOLLATERALIZED = 3  # matching stopped: the taker would fall below initial margin
    UNTRIGGERED = 4  # a conditional order stored until the oracle crosses its trigger
    POST_ONLY_WOULD_CROSS = 5  # (raised as PostOnlyWouldCross; listed for clients)

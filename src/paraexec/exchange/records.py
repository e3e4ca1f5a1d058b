"""Stored structs of the exchange (msgspec, array-like, canonical encoding).

Subaccounts are decoded into mutable ``Account`` objects inside a transaction (see ``ledger``)
and encoded back once at the end; everything else is read and written whole.
"""

from __future__ import annotations

import msgspec

from .. import codec


class PositionRecord(msgspec.Struct, array_like=True, frozen=True):
    """A perpetual position: ``size`` base quantums (> 0 long, < 0 short).

    ``funding_index`` is the market's index when funding was last settled; ``entry_quote`` the
    signed quote quantums paid to open the current size (cost basis, for ADL ranking).
    """

    market_id: int
    size: int
    funding_index: int
    entry_quote: int


class SubaccountRecord(msgspec.Struct, array_like=True, frozen=True):
    balance: int
    positions: list[PositionRecord]


def expired(good_til_block: int, height: int) -> bool:
    """Whether an order good until block ``good_til_block`` (0: no expiry) can no longer trade in
    block ``height``: the one rule behind every expiry check (validation, matching, the book's
    live prices, client ids, conditional orders, book queries)."""
    return good_til_block != 0 and good_til_block < height


class RestingOrder(msgspec.Struct, array_like=True, frozen=True):
    """An order resting in a price level; ``remaining`` base quantums still open."""

    sub_id: bytes
    client_id: int
    remaining: int
    good_til_block: int


class OrderRef(msgspec.Struct, array_like=True, frozen=True):
    """Where a live order is: its side and level price, or ``conditional`` when untriggered."""

    side: int
    subticks: int
    good_til_block: int
    conditional: bool = False


class ConditionalOrder(msgspec.Struct, array_like=True, frozen=True):
    sub_id: bytes
    client_id: int
    side: int
    quantums: int
    subticks: int
    order_type: int
    time_in_force: int
    reduce_only: bool
    good_til_block: int
    condition: int
    trigger_subticks: int


class OraclePrice(msgspec.Struct, array_like=True, frozen=True):
    price: int
    time: int


class OracleReport(msgspec.Struct, array_like=True, frozen=True):
    price: int
    time: int


class FundingIndex(msgspec.Struct, array_like=True, frozen=True):
    index: int
    last_time: int
    last_rate_ppm: int = 0


class MarketState(msgspec.Struct, array_like=True, frozen=True):
    """A market's margin inputs (``keys.market_state``): the oracle price (written by oracle
    updates), the cumulative funding index and the end-of-block open-interest snapshot that
    scales the IMF (both written by the market tick). ``band_price`` is the oracle price at the
    start of block ``band_height``, the last block with an accepted update, and ``band_time`` the
    time it was set: every update of a block is held to the price band around it, a band that
    widens with the price's age (``oracle``)."""

    oracle: OraclePrice
    funding: FundingIndex
    oi_snapshot: int = 0
    band_price: int = 0
    band_height: int = 0
    band_time: int = 0


class FundingSamples(msgspec.Struct, array_like=True, frozen=True):
    """The premium of the funding interval so far, weighted by time (``funding`` docstring): its
    integral since the interval began up to ``last_time`` (ppm x seconds), the premium sampled
    at ``last_time``, which holds until the next sample but not past ``last_until`` (when the
    oracle price it was taken at goes stale), and the samples taken in the interval."""

    premium_ppm_seconds: int
    last_premium_ppm: int
    last_time: int
    last_until: int
    count: int


class LiquidationUsage(msgspec.Struct, array_like=True, frozen=True):
    """Per-block liquidation usage of a subaccount (reset when ``height`` changes): the notional
    of its liquidation fills, the insurance fund's payouts, and the markets whose position was
    liquidated (each at most once a block, as dYdX ``SubaccountLiquidationInfo``)."""

    height: int
    notional: int
    insurance_lost: int
    markets: tuple[int, ...] = ()


SUBACCOUNT_DECODER = msgspec.msgpack.Decoder(SubaccountRecord)
LEVEL_DECODER = msgspec.msgpack.Decoder(list[RestingOrder])
INDEX_DECODER = msgspec.msgpack.Decoder(list[int])
HOLDERS_DECODER = msgspec.msgpack.Decoder(list[bytes])
CONDITIONALS_DECODER = msgspec.msgpack.Decoder(list[ConditionalOrder])
ORDER_REF_DECODER = msgspec.msgpack.Decoder(OrderRef)
REPORT_DECODER = msgspec.msgpack.Decoder(OracleReport)
MARKET_STATE_DECODER = msgspec.msgpack.Decoder(MarketState)
SAMPLES_DECODER = msgspec.msgpack.Decoder(FundingSamples)
USAGE_DECODER = msgspec.msgpack.Decoder(LiquidationUsage)

encode = codec.encode

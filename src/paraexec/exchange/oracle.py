"""Oracle prices: authorised reporters, quorum median, price band, staleness.

    OracleUpdate(market_id, price) signed by key k:
        k not in the genesis oracle set                     -> NOT_ORACLE
        price <= 0                                          -> INVALID_PRICE
        quorum == 1: candidate = price
        quorum  > 1: store k's report (price, time); candidate = median of the reports no
                     older than the market's staleness limit; fewer than quorum -> only stored
        band = max_price_move_ppm * (1 + (block time - anchor time) // staleness_s)
        |candidate - anchor| * 1e6 > band * anchor                  -> PRICE_BAND_EXCEEDED
              (anchor: the price at the start of this block, so several updates in one block
              cannot compound past the band: three moves of 9% would pass a 10% band)
        write OraclePrice(candidate, block time)   (the market's ``MarketState``)

The band is measured against the last accepted price even when that price is stale, so a
long outage cannot be ended by an arbitrary jump; but it widens by ``max_price_move_ppm`` for
each whole ``staleness_s`` the anchor has aged, so a feed that returns after an outage during
which the market really moved more than the band brings the market back (after a 30-minute
outage, with a 10-minute staleness limit and a 10% band, up to 40% from the old price) instead
of pausing it for good: there is no governance transaction to reset a price. While a fresh
price arrives every block, the band is ``max_price_move_ppm`` as before. While a price is older
than ``staleness_s``, trading and liquidation in the market pause (``Ledger.must_be_fresh``).
"""

from __future__ import annotations

from . import keys
from .errors import InvalidPrice, NotOracle, PriceBandExceeded
from .ledger import Ledger
from .records import REPORT_DECODER, OraclePrice, OracleReport, encode
from .units import PPM, median


def oracle_update(lg: Ledger, oracles: list[bytes], quorum: int, sender: bytes, market_id: int, price: int) -> None:
    if sender not in oracles:
        raise NotOracle(sender.hex()[:16])
    market = lg.market(market_id)
    if price <= 0:
        raise InvalidPrice(f"oracle price {price}")
    ctx = lg.ctx
    if quorum > 1:
        ctx.put(keys.oracle_report(market_id, oracles.index(sender)), encode(OracleReport(price, lg.time)))
        fresh = []
        for idx in range(len(oracles)):
            raw = ctx.get(keys.oracle_report(market_id, idx))
            if raw is not None:
                report = REPORT_DECODER.decode(raw)
                if lg.time - report.time <= market.staleness_s:
                    fresh.append(report.price)
        if len(fresh) < quorum:
            ctx.emit("oracle_report", market=market_id, price=price, reports=len(fresh))
            return
        price = median(fresh)
    state = lg.market_state(market_id)
    if state.band_height == lg.height:
        anchor, anchor_time = state.band_price, state.band_time
    else:
        anchor, anchor_time = state.oracle.price, state.oracle.time
    band_ppm = market.max_price_move_ppm * (1 + max(0, lg.time - anchor_time) // market.staleness_s)
    if abs(price - anchor) * PPM > band_ppm * anchor:
        raise PriceBandExceeded(f"{anchor} (this block's start) -> {price} moves more than {band_ppm} ppm")
    lg.set_market_state(market_id, oracle=OraclePrice(price, lg.time), band=(anchor, lg.height, anchor_time))
    ctx.emit("oracle_price", market=market_id, price=price, time=lg.time)

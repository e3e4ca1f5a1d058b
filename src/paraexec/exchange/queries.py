"""Read-only views of exchange state for the node's RPC, the CLI and tests.

Everything takes ``get(key) -> bytes | None`` (and ``items(prefix)`` for scans) over committed
state, plus the chain's app config (market parameters). Nothing here writes; the margin
numbers are computed exactly as the application computes them (``ledger``), including funding
that has accrued but is not yet settled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import codec
from ..execution.contract import BlockEnv, TxContext
from . import keys
from .funding import FundingConfig, predicted_rate_8h_ppm
from .ledger import Ledger
from .market import Market
from .payloads import BUY, SELL
from .records import (
    INDEX_DECODER,
    LEVEL_DECODER,
    MARKET_STATE_DECODER,
    SAMPLES_DECODER,
    SUBACCOUNT_DECODER,
    SubaccountRecord,
    expired,
)
from .units import PPM

Getter = Callable[[bytes], bytes | None]
Items = Callable[[bytes], Iterable[tuple[bytes, bytes]]]


class _ReadContext(TxContext):
    """A TxContext over committed state whose writes are discarded (queries reuse the Ledger)."""

    def __init__(self, get: Getter, height: int, time: int) -> None:
        super().__init__(BlockEnv(height, time))
        self._get = get

    def _read(self, key: bytes) -> bytes | None:
        return self._get(key)


class QueryConfig:
    """The app config's markets and funding parameters, parsed once: a node answering many
    queries keeps one (parsing 1,024 markets took ~20 ms, longer than the query it served)."""

    def __init__(self, app_config: Mapping[str, Any]) -> None:
        self.markets = {m.id: m for m in (Market.from_config(d) for d in app_config.get("markets", []))}
        self.funding = FundingConfig(**app_config.get("funding", {}))


class StateReader:
    def __init__(
        self,
        get: Getter,
        items: Items | None,
        app_config: Mapping[str, Any] | QueryConfig,
        height: int | None = None,
    ) -> None:
        """``app_config``: the chain's, or a ``QueryConfig`` parsed from it. ``height``: the
        chain's committed height, when known (the book then leaves out orders expired for the
        next block)."""
        self.get = get
        self.items = items
        self.height = height
        config = app_config if isinstance(app_config, QueryConfig) else QueryConfig(app_config)
        self.markets = config.markets
        self.funding = config.funding

    def _ledger(self, time: int = 0) -> Ledger:
        return Ledger(_ReadContext(self.get, 0, time), self.markets)

    def subaccount_record(self, sub_id: bytes) -> SubaccountRecord:
        raw = self.get(keys.subaccount(sub_id))
        return SUBACCOUNT_DECODER.decode(raw) if raw else SubaccountRecord(0, [])

    def subaccount(self, owner: bytes, number: int = 0) -> dict[str, Any]:
        """Balance (funding settled), positions, TNC, IMR, MMR, liquidation price per position."""
        lg = self._ledger()
        acc = lg.account(keys.subaccount_id(owner, number))
        risk = lg.risk(acc)
        positions = []
        for mid, pos in sorted(acc.positions.items()):
            market = lg.market(mid)
            price = lg.price(mid)
            positions.append(
                {
                    "market_id": mid,
                    "ticker": market.ticker,
                    "size": pos.size,
                    "entry_quote": pos.entry_quote,
                    "value": market.value_floor(pos.size, price),
                    "oracle_price": price,
                    "liquidation_price": liquidation_price(lg, acc, market, risk.tnc, risk.mmr),
                }
            )
        return {
            "owner": owner.hex(),
            "number": number,
            "balance": acc.balance,
            "funding_pending": acc.funding_received,
            "tnc": risk.tnc,
            "imr": risk.imr,
            "mmr": risk.mmr,
            "liquidatable": risk.liquidatable,
            "positions": positions,
        }

    def market(self, market_id: int) -> dict[str, Any]:
        market = self.markets[market_id]
        state = MARKET_STATE_DECODER.decode(self.get(keys.market_state(market_id)) or b"")
        oracle, funding = state.oracle, state.funding
        raw_samples = self.get(keys.funding_samples(market_id))
        samples = SAMPLES_DECODER.decode(raw_samples) if raw_samples else None
        return {
            "params": market.to_config(),
            "oracle_price": oracle.price,
            "oracle_time": oracle.time,
            "funding_index": funding.index,
            "funding_rate_8h_ppm": funding.last_rate_ppm,
            "next_funding_time": funding.last_time + self.funding.interval_s,
            "predicted_funding_rate_8h_ppm": predicted_rate_8h_ppm(self.funding, market, funding, samples),
            "open_interest_snapshot": state.oi_snapshot,
            "open_interest": codec.decode_int(self.get(keys.open_interest(market_id))),
        }

    def book(self, market_id: int, depth: int = 20) -> dict[str, list[list[int]]]:
        """Price levels best first: [[subticks, total quantums, orders], ...] per side."""
        out: dict[str, list[list[int]]] = {}
        for side, name in ((BUY, "bids"), (SELL, "asks")):
            raw = self.get(keys.level_index(market_id, side))
            prices = INDEX_DECODER.decode(raw) if raw else []
            prices = prices[::-1] if side == BUY else prices
            levels: list[list[int]] = []
            height = self.height
            for price in prices:
                if len(levels) == depth:
                    break
                orders = LEVEL_DECODER.decode(self.get(keys.level(market_id, side, price)) or b"\x90")
                # an expired good-til-block order waits on the book for a taker to remove it; it
                # can no longer fill, so it is not shown
                live = [o for o in orders if height is None or not expired(o.good_til_block, height + 1)]
                if live:
                    levels.append([price, sum(o.remaining for o in live), len(live)])
            out[name] = levels
        return out

    def insurance_fund(self) -> int:
        return codec.decode_int(self.get(keys.INSURANCE))

    def fee_pool(self) -> int:
        return codec.decode_int(self.get(keys.FEES))


def liquidation_price(lg: Ledger, acc: Any, market: Market, tnc: int, mmr: int) -> int | None:
    """Oracle price (market units) at which TNC = MMR, other prices fixed; None if none exists.

    TNC and MMR are linear in this market's price p: TNC(p) = TNC - v(p0) + s*p*k,
    MMR(p) = MMR - m(p0) + |s|*p*k*f, with k the value factor and f = IMF*MMF (the base IMF:
    open interest scales only the initial margin). Solving gives
    p = (TNC_rest - MMR_rest) / (k * (|s| f - s)); rounded toward the safe side is not needed
    for a display value, so it is rounded down.
    """
    size = acc.size(market.id)
    if size == 0:
        return None
    price = lg.price(market.id)
    value = market.value_floor(size, price)
    notional = market.notional_ceil(size, price)
    imf = market.imf_ppm
    pos_mmr = -((-notional * imf * market.mmf_ppm) // (PPM * PPM))
    rest = (tnc - value) - (mmr - pos_mmr)
    # per unit of price: value slope = size * unit, mmr slope = |size| * unit * f
    unit_num, unit_den = market.value_floor(10**18, 1), 10**18  # value of one base quantum per price unit
    slope_num = (abs(size) * imf * market.mmf_ppm - size * PPM * PPM) * unit_num
    slope_den = PPM * PPM * unit_den
    if slope_num == 0:
        return None
    p = rest * slope_den // slope_num
    return p if p > 0 else None

"""Market parameters (immutable after genesis) and their unit conversions.

Parameters come from the genesis config and are also written to state (``keys.market_params``)
for queries. They do not change after genesis (no governance transactions), which lets the
application read them from its config instead of state: one fewer read per market per
transaction, with the same result on every node because the config is part of the chain.

Margin follows dYdX's liquidity tiers: ``imf_ppm`` is the initial margin fraction,
``mmf_ppm`` the maintenance fraction *of the base initial margin* (MMR = notional * imf * mmf).
The open-interest scaled IMF (OIMF): between ``oi_lower_cap`` and ``oi_upper_cap`` (quote
quantums of open interest notional) the IMF for the initial margin rises linearly from
``imf_ppm`` to 100%; the maintenance margin keeps the base ``imf_ppm`` (dYdX).

The open interest it scales with is the snapshot of the last block's end (``MarketState``), not
the live aggregate: dYdX updates open interest on every fill and checks each fill's end state,
so within a block the caps bind at once; here open interest opened during a block trades at the
IMF of the block's start, and the caps bind from the next block. Deliberate: every margin check
of a cross-margined account reads the IMF of each market it holds, so reading the live
aggregate would make every fill depend on every earlier fill in those markets, the conflict the
snapshot keeps out of the blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .units import PPM, QUOTE_ATOMIC_RESOLUTION, scale_ceil, scale_floor

STATUS_ACTIVE = "active"
STATUS_POST_ONLY = "post_only"
STATUS_FINAL_SETTLEMENT = "final_settlement"
STATUSES = (STATUS_ACTIVE, STATUS_POST_ONLY, STATUS_FINAL_SETTLEMENT)


@dataclass(frozen=True)
class Market:
    id: int
    ticker: str
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int
    price_exponent: int
    initial_price: int
    imf_ppm: int
    mmf_ppm: int
    oi_lower_cap: int = 0
    oi_upper_cap: int = 0
    status: str = STATUS_ACTIVE
    max_price_move_ppm: int = 100_000
    staleness_s: int = 60
    default_funding_ppm: int = 0
    #: Quote quantums of the impact order whose average fill price is the funding premium's
    #: impact bid/ask (dYdX: the liquidity tier's impact notional); 0: the best price.
    impact_notional: int = 0
    # The conversions' powers of ten as (multiplier, divisor), set once by ``__post_init__``: a
    # margin check converts several times per order. Not parameters: not in the config.
    _quote_scale: tuple[int, int] = field(init=False, repr=False, compare=False, default=(1, 1))
    _value_scale: tuple[int, int] = field(init=False, repr=False, compare=False, default=(1, 1))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_quote_scale", _scale(self.quantum_conversion_exponent))
        object.__setattr__(self, "_value_scale", _scale(self._value_exponent))

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Market:
        market = cls(**{f.name: data[f.name] for f in fields(cls) if f.init and f.name in data})
        market.must_be_consistent()
        return market

    def to_config(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def must_be_consistent(self) -> None:
        """Genesis rejects parameters that would make a fill's quote amount or an oracle price in
        subticks fractional, and ids its keys cannot hold (two bytes: ``keys.market_prefix``)."""
        if not 0 <= self.id < 1 << 16:
            raise ValueError(f"{self.ticker}: market id {self.id} outside 0..65535")
        if self.step_base_quantums <= 0 or self.subticks_per_tick <= 0 or self.initial_price <= 0:
            raise ValueError(f"{self.ticker}: step, tick and price must be positive")
        if not (0 < self.imf_ppm <= PPM and 0 < self.mmf_ppm <= PPM):
            raise ValueError(f"{self.ticker}: margin fractions out of range")
        if self.impact_notional < 0:
            raise ValueError(f"{self.ticker}: impact_notional must not be negative")
        if self.staleness_s <= 0 or self.max_price_move_ppm <= 0:  # the band divides by staleness_s
            raise ValueError(f"{self.ticker}: staleness_s and max_price_move_ppm must be positive")
        if self.status not in STATUSES:
            raise ValueError(f"{self.ticker}: unknown status {self.status!r}")
        if self._value_exponent < self.quantum_conversion_exponent:  # see price_to_subticks
            raise ValueError(
                f"{self.ticker}: an oracle price must convert to whole subticks"
                " (atomic_resolution + price_exponent - quote resolution >= quantum_conversion_exponent)"
            )
        lot = self.step_base_quantums * self.subticks_per_tick
        if scale_floor(lot, self.quantum_conversion_exponent) != scale_ceil(lot, self.quantum_conversion_exponent):
            raise ValueError(f"{self.ticker}: step * subticks_per_tick * 10**qce must be an integer")

    # -- conversions -------------------------------------------------------------------------

    @property
    def _value_exponent(self) -> int:
        return self.atomic_resolution + self.price_exponent - QUOTE_ATOMIC_RESOLUTION

    def fill_quote(self, quantums: int, subticks: int) -> int:
        """Quote quantums of ``quantums`` at ``subticks``; exact (see units), sign of quantums."""
        mul, div = self._quote_scale
        return quantums * subticks * mul // div

    def value_floor(self, quantums: int, price: int) -> int:
        """Signed value at the oracle ``price``, rounded toward -infinity (conservative)."""
        mul, div = self._value_scale
        return quantums * price * mul // div

    def notional_ceil(self, quantums: int, price: int) -> int:
        """Absolute value at the oracle ``price``, rounded up (margin requirements)."""
        mul, div = self._value_scale
        return -((-abs(quantums) * price * mul) // div)

    def value_nano_per_quantum(self, price: int) -> int:
        """Nano quote quantums per base quantum at ``price`` (funding), rounded down; ``price``
        may be pre-multiplied (rate x seconds) so that the whole index step rounds once."""
        return scale_floor(price, self._value_exponent + 9)

    def price_to_subticks(self, price: int) -> int:
        """The oracle price in subticks: exact, because genesis refuses a market whose prices
        would convert to fractions of a subtick (a floor that could reach 0 would make the
        funding premium divide by zero and stop/take-profit triggers inexact)."""
        return scale_floor(price, self._value_exponent - self.quantum_conversion_exponent)

    def subticks_round(self, subticks: int, up: bool) -> int:
        """Round a price to a tick multiple, up or down; never below one tick."""
        tick = self.subticks_per_tick
        rounded = -((-subticks) // tick) * tick if up else subticks // tick * tick
        return max(rounded, tick)

    def imf_effective(self, oi_notional: int) -> int:
        """dYdX OIMF: IMF scaled linearly to 100% between the OI caps (ppm, rounded up)."""
        lower, upper = self.oi_lower_cap, self.oi_upper_cap
        if upper <= lower or oi_notional <= lower:
            return self.imf_ppm
        if oi_notional >= upper:
            return PPM
        extra = PPM - self.imf_ppm
        return self.imf_ppm + -((-extra * (oi_notional - lower)) // (upper - lower))


def _scale(exponent: int) -> tuple[int, int]:
    """``10**exponent`` as (multiplier, divisor): ``value * m // d`` is ``scale_floor``."""
    return (10**exponent, 1) if exponent >= 0 else (1, 10**-exponent)

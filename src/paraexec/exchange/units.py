"""Integer money and price arithmetic, with every rounding direction explicit.

Units (as dYdX v4):

- *quote quantums*: 1e-6 USDC (``QUOTE_ATOMIC_RESOLUTION = -6``); every balance, fee, margin.
- *base quantums*: ``10**atomic_resolution`` of a market's asset; every size. Sizes are
  multiples of the market's ``step_base_quantums``.
- *subticks*: order prices. One subtick is ``10**quantum_conversion_exponent`` quote quantums
  per base quantum, so a fill of ``q`` base quantums at ``p`` subticks is worth
  ``q * p * 10**qce`` quote quantums. Prices are multiples of ``subticks_per_tick``; genesis
  checks ``step * subticks_per_tick * 10**qce`` is an integer, so every fill's quote amount is
  exact (no rounding at all in trades).
- *oracle price*: an integer ``price`` with the market's ``price_exponent``: one whole asset
  costs ``price * 10**price_exponent`` USDC, so ``q`` base quantums are worth
  ``q * price * 10**(atomic_resolution + price_exponent + 6)`` quote quantums.
- *ppm*: parts per million (fractions: margin, fees, funding rates).
- *funding index*: nano quote quantums (1e-9) per base quantum, cumulative.

Python's ``//`` floors (rounds toward -infinity); ``ceil_div`` rounds toward +infinity.
"""

from __future__ import annotations

QUOTE_ATOMIC_RESOLUTION = -6
PPM = 1_000_000
FUNDING_SCALE = 1_000_000_000  # funding index unit: nano quote quantums per base quantum


def ceil_div(a: int, b: int) -> int:
    """``a / b`` rounded toward +infinity (``b`` > 0)."""
    return -((-a) // b)


def scale_floor(value: int, exponent: int) -> int:
    """``value * 10**exponent`` rounded toward -infinity."""
    if exponent >= 0:
        return value * 10**exponent
    return value // 10**-exponent


def scale_ceil(value: int, exponent: int) -> int:
    """``value * 10**exponent`` rounded toward +infinity."""
    if exponent >= 0:
        return value * 10**exponent
    return ceil_div(value, 10**-exponent)


def ppm_ceil(value: int, ppm: int) -> int:
    """``value * ppm / 1e6`` rounded toward +infinity (fees, margin: in the protocol's favour)."""
    return ceil_div(value * ppm, PPM)


def ppm_floor(value: int, ppm: int) -> int:
    """``value * ppm / 1e6`` rounded toward -infinity."""
    return value * ppm // PPM


def median(values: list[int]) -> int:
    """The median; for an even count the mean of the two middle values rounded up, as dYdX's
    ``MedianUint64`` (with the lower middle, one of two reporters could set the price by
    reporting low; with the mean, each moves it by half its own deviation, within the band)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return ceil_div(ordered[mid - 1] + ordered[mid], 2)

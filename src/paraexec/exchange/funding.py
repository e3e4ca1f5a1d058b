"""Funding: a premium sample every block, weighted by time, an hourly (block time) rate, a lazy
cumulative index.

At the end of every block (``MarketTick``) one premium sample is taken:

    premium_ppm = impact_bid * 1e6 / oracle - 1e6   if best_bid > oracle and impact_bid > oracle
                  impact_ask * 1e6 / oracle - 1e6   if best_ask < oracle and impact_ask < oracle
                  0                                 otherwise          (rounded toward zero)
    (dYdX GetPricePremium. best bid/ask: the best price with a live order; an expired
    good-til-block order left on the book cannot fill, so it does not move the rate. Impact
    bid/ask: the average price at which selling/buying the market's ``impact_notional`` quote
    quantums would fill against the live orders of that side, exact (a fraction of a subtick);
    a side too thin to absorb it samples 0, and an ``impact_notional`` of 0 means the best
    price. So a dust order far from the oracle cannot move the rate.)
    clamped to +-premium_clamp_factor * (IMF - MMF)   (dYdX's premium vote clamp)
    0 while the oracle is stale (dYdX: a market without a valid price votes 0), so a few
    fresh blocks in an otherwise stale interval do not set the whole interval's rate

A sample holds from its block until the next one (the book it describes is the market's until
then), but not past the moment the oracle price it was taken at goes stale: a market whose
blocks stop (a node that produces blocks only when transactions arrive, a halt) has no fresh
price either, and that time counts as a zero premium, as dYdX pads the samples it missed with
zeros. The interval's premium is the time-weighted average (``FundingSamples`` keeps the integral
in ppm x seconds and the last sample with its time and end; before a market's first block the
premium is 0). Once block time reaches ``last_time + interval_s`` (``periods`` whole intervals):

    premium     = integral of the held samples over the interval / interval_s
                  (rounded toward zero, as dYdX's average of its samples)
    rate_8h_ppm = clamp(premium + default_funding_ppm, +-rate_clamp_factor * (IMF - MMF))
    default     = clamp(default_funding_ppm, same bound)
    index += (rate_8h_ppm + default * (periods - 1)) * interval_s * value_nano(oracle) / (8 h * 1e6)
             (one rounding, toward -inf; value_nano: nano quote quantums per base quantum)

The block that closes the interval samples the next one: its sample holds from its own time, the
one before it up to then. Time weighting is the continuous form of dYdX's samples, which are
taken on a clock (its funding-sample epochs) rather than per block: with regular block times it
is the average of the blocks' samples, one block late; with irregular ones (a node that produces
blocks only when transactions arrive, blocks within the same second) a burst of blocks no longer
outweighs the quiet hours around it, and a block weighs the time its book stood. Until state
layout 8 every block's sample counted once, however long its book stood. After a gap of several
intervals (a halted chain), the premium is charged once (for the first interval, the held
sample counting while its price was fresh) and the other intervals carry the default rate only,
as dYdX's catch-up ticks do (their samples are cleared by the first). A positive rate makes
longs pay shorts (``ledger`` settles ``-size * d_index``). The index moves at the stored oracle
price even while it is stale, as dYdX's (which has no staleness). The book is walked only when
its best price is beyond the oracle (a premium is possible), so a quiet market's tick reads one
level per side. No account is written here: positions settle when they are next touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from . import keys
from .book import Book
from .ledger import Ledger
from .market import Market
from .payloads import BUY, SELL
from .records import SAMPLES_DECODER, FundingIndex, FundingSamples, encode, expired
from .units import PPM


@dataclass(frozen=True)
class FundingConfig:
    interval_s: int = 3600
    rate_clamp_factor_ppm: int = 6_000_000
    premium_clamp_factor_ppm: int = 60_000_000

    def __post_init__(self) -> None:
        """Refuse a genesis whose funding could not run: an interval of no time, negative
        clamps, or a premium integral (at most the clamp, 1e6 ppm of IMF - MMF at most, times
        the interval) beyond the 64 bits ``FundingSamples`` is stored in."""
        for name in ("interval_s", "rate_clamp_factor_ppm", "premium_clamp_factor_ppm"):
            if type(getattr(self, name)) is not int:
                raise ValueError(f"funding {name} must be an integer")
        if self.interval_s <= 0 or self.rate_clamp_factor_ppm < 0 or self.premium_clamp_factor_ppm < 0:
            raise ValueError(f"funding interval must be > 0 and clamps >= 0: {self}")
        if self.premium_clamp_factor_ppm * self.interval_s >= 2**63:
            raise ValueError(
                f"funding premium clamp x interval {self.premium_clamp_factor_ppm * self.interval_s} >= 2**63"
            )


def _clamp(value: int, bound: int) -> int:
    return max(-bound, min(bound, value))


def margin_gap_ppm(market: Market) -> int:
    """IMF - MMF in ppm (MMF absolute = IMF * mmf / 1e6, rounded down)."""
    return market.imf_ppm - market.imf_ppm * market.mmf_ppm // PPM


def premium_ppm(book: Book, market: Market, oracle_subticks: int, height: int) -> int:
    if oracle_subticks <= 0:  # genesis refuses such markets (``Market.must_be_consistent``)
        return 0
    bid, ask = book.best_live(BUY, height), book.best_live(SELL, height)
    if bid is not None and bid > oracle_subticks:
        side, best = BUY, bid
    elif ask is not None and ask < oracle_subticks:
        side, best = SELL, ask
    else:
        return 0
    # dYdX: a zero impact notional samples the best price
    impact = Fraction(best) if market.impact_notional == 0 else impact_price(book, market, side, height)
    if impact is None or (impact <= oracle_subticks if side == BUY else impact >= oracle_subticks):
        return 0
    premium = impact * PPM / oracle_subticks - PPM
    return math.floor(premium) if premium > 0 else math.ceil(premium)  # toward zero, as dYdX


def impact_price(book: Book, market: Market, side: int, height: int) -> Fraction | None:
    """The average price (subticks, exact) at which ``market.impact_notional`` (> 0) quote
    quantums would fill against ``side``'s live orders, best first; None when they cannot absorb
    it (dYdX getImpactPriceSubticks: the last order is filled by the fraction needed)."""
    remaining = market.impact_notional
    base = Fraction(0)
    for price in book.prices_best_first(side):
        for order in book.level(side, price):
            if expired(order.good_til_block, height):
                continue
            quote = market.fill_quote(order.remaining, price)
            base += order.remaining if remaining >= quote else Fraction(remaining, quote) * order.remaining
            remaining -= quote
            if remaining <= 0:
                # quote = base * subticks * 10**qce, so the average subticks are quote / (base * 10**qce)
                return market.impact_notional / (base * Fraction(10) ** market.quantum_conversion_exponent)
    return None


def _held(samples: FundingSamples, since: int, until: int) -> int:
    """The last sample's premium integrated over the part of [since, until) it holds."""
    seconds = min(until, samples.last_until) - max(since, samples.last_time)
    return samples.last_premium_ppm * seconds if seconds > 0 else 0


def rate_8h_ppm(cfg: FundingConfig, market: Market, premium_ppm_seconds: int, seconds: int) -> int:
    """The 8-hour rate for a premium integral over ``seconds``: its average, rounded toward zero
    (as dYdX's average of its samples), plus the default rate, clamped."""
    average = abs(premium_ppm_seconds) // seconds * (1 if premium_ppm_seconds >= 0 else -1)
    return _clamp(average + market.default_funding_ppm, cfg.rate_clamp_factor_ppm * margin_gap_ppm(market) // PPM)


def predicted_rate_8h_ppm(
    cfg: FundingConfig, market: Market, index: FundingIndex, samples: FundingSamples | None
) -> int:
    """The rate the interval's end would charge if the rest of the interval averaged what its
    part up to the last block did (the last block's own sample alone, when no time has passed
    yet): what a venue shows as the predicted or next funding rate. Not consensus state: the
    node's market query computes it from the stored samples."""
    if samples is None:
        return rate_8h_ppm(cfg, market, 0, 1)
    elapsed = samples.last_time - index.last_time
    if elapsed <= 0:
        return rate_8h_ppm(cfg, market, samples.last_premium_ppm, 1)
    return rate_8h_ppm(cfg, market, samples.premium_ppm_seconds, elapsed)


def funding_tick(lg: Ledger, cfg: FundingConfig, market: Market) -> None:
    ctx = lg.ctx
    oracle = lg.oracle(market.id)
    fresh_until = oracle.time + market.staleness_s
    sample = 0
    if lg.time <= fresh_until:
        sample = premium_ppm(Book(ctx, market.id), market, market.price_to_subticks(oracle.price), lg.height)
        sample = _clamp(sample, cfg.premium_clamp_factor_ppm * margin_gap_ppm(market) // PPM)
    index = lg.funding(market.id)
    start, interval = index.last_time, cfg.interval_s
    end = start + interval
    raw = ctx.get(keys.funding_samples(market.id))
    held = SAMPLES_DECODER.decode(raw) if raw else FundingSamples(0, 0, start, start, 0)
    integral = held.premium_ppm_seconds + _held(held, start, min(lg.time, end))
    if lg.time < end:
        sampled = FundingSamples(integral, sample, lg.time, fresh_until, held.count + 1)
        ctx.put(keys.funding_samples(market.id), encode(sampled))
        return
    periods = (lg.time - start) // interval
    rate = rate_8h_ppm(cfg, market, integral, interval)
    default = rate_8h_ppm(cfg, market, 0, 1)
    # rates are per 8 hours; each period is interval_s long; the premium counts for one period
    rate_seconds = (rate + default * (periods - 1)) * interval
    delta = market.value_nano_per_quantum(oracle.price * rate_seconds) // (8 * 3600 * PPM)
    updated = FundingIndex(index.index + delta, start + periods * interval, rate)
    lg.set_market_state(market.id, funding=updated)
    # this block's sample opens the next interval, after the held premium's share of it
    carried = _held(held, updated.last_time, lg.time)
    ctx.put(keys.funding_samples(market.id), encode(FundingSamples(carried, sample, lg.time, fresh_until, 1)))
    ctx.emit(
        "funding_rate", market=market.id, rate_8h_ppm=rate, periods=periods, index=updated.index, samples=held.count
    )

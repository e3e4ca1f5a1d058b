"""Genesis configs: the app-config format and the dev chain's deterministic config.

App config (JSON: ints, strings, hex keys):

    genesis_time       block time of genesis (oracle and funding clocks start here; must equal
                       the chain's genesis_time, default 0)
    markets            [{id, ticker, atomic_resolution, quantum_conversion_exponent,
                         step_base_quantums, subticks_per_tick, price_exponent, initial_price,
                         imf_ppm, mmf_ppm, oi_lower_cap, oi_upper_cap, status,
                         max_price_move_ppm, staleness_s, default_funding_ppm, impact_notional}]
    oracles            [hex public key]; oracle_quorum (int, default 1)
    fees               {taker_ppm, maker_ppm}
    liquidation        LiquidationConfig fields (optional)
    funding            FundingConfig fields (optional)
    accounts           {hex owner: bank balance in quote quantums}   (the faucet / bridge)
    subaccounts        [[hex owner, number, quote balance]]           (pre-funded subaccounts)
    insurance_fund     initial insurance fund, quote quantums

Dev markets follow dYdX v4's parameters: quantum conversion exponent -9 everywhere and
``price_exponent = -15 - atomic_resolution``, so one oracle price unit is exactly one subtick.
Liquidity tiers: large-cap IMF 5% / MMF 60% of IMF, mid-cap 10% / 50%, long-tail 20% / 50%, each
with dYdX's impact notional of 500 USDC / IMF (10,000, 5,000 and 2,500 USDC) for the funding premium.
"""

from __future__ import annotations

from typing import Any

from ..crypto import SigningKey

DEV_BANK_BALANCE = 1_000_000 * 10**6  # 1M USDC in each dev account's bank
DEV_SUBACCOUNT_BALANCE = 100_000 * 10**6  # 100k USDC pre-deposited in subaccount 0
DEV_INSURANCE_FUND = 1_000_000 * 10**6

LARGE_CAP = {
    "imf_ppm": 50_000,
    "mmf_ppm": 600_000,
    "oi_lower_cap": 20_000_000 * 10**6,
    "oi_upper_cap": 50_000_000 * 10**6,
    "impact_notional": 10_000 * 10**6,
}
MID_CAP = {
    "imf_ppm": 100_000,
    "mmf_ppm": 500_000,
    "oi_lower_cap": 5_000_000 * 10**6,
    "oi_upper_cap": 10_000_000 * 10**6,
    "impact_notional": 5_000 * 10**6,
}
LONG_TAIL = {
    "imf_ppm": 200_000,
    "mmf_ppm": 500_000,
    "oi_lower_cap": 500_000 * 10**6,
    "oi_upper_cap": 1_000_000 * 10**6,
    "impact_notional": 2_500 * 10**6,
}

#: (ticker, price in USD, atomic resolution, step base quantums, subticks per tick, tier)
_TEMPLATES: list[tuple[str, str, int, int, int, dict[str, int]]] = [
    ("BTC-USD", "60000", -10, 1_000_000, 100_000, LARGE_CAP),
    ("ETH-USD", "3000", -9, 1_000_000, 100_000, LARGE_CAP),
    ("SOL-USD", "150", -7, 1_000_000, 1_000_000, MID_CAP),
    ("LINK-USD", "15", -6, 1_000_000, 1_000_000, MID_CAP),
    ("AVAX-USD", "30", -7, 1_000_000, 1_000_000, MID_CAP),
    ("DOGE-USD", "0.15", -5, 10_000_000, 100_000, LONG_TAIL),
    ("ARB-USD", "0.8", -6, 1_000_000, 100_000, LONG_TAIL),
    ("SUI-USD", "1.2", -6, 1_000_000, 100_000, LONG_TAIL),
]


def _price_int(usd: str, price_exponent: int) -> int:
    whole, _, frac = usd.partition(".")
    digits = -price_exponent
    return int(whole + frac.ljust(digits, "0")[:digits]) if digits >= 0 else int(whole) // 10**-digits


def dev_market(market_id: int) -> dict[str, Any]:
    """Market ``market_id``: the templates first, then long-tail ``MKTn-USD`` copies of them."""
    ticker, usd, atomic, step, spt, tier = _TEMPLATES[market_id % len(_TEMPLATES)]
    if market_id >= len(_TEMPLATES):
        ticker = f"MKT{market_id}-USD"
    price_exponent = -15 - atomic
    return {
        "id": market_id,
        "ticker": ticker,
        "atomic_resolution": atomic,
        "quantum_conversion_exponent": -9,
        "step_base_quantums": step,
        "subticks_per_tick": spt,
        "price_exponent": price_exponent,
        "initial_price": _price_int(usd, price_exponent),
        **tier,
        "status": "active",
        "max_price_move_ppm": 100_000,
        "staleness_s": 600,
        "default_funding_ppm": 0,
    }


def dev_keys(seed: str = "paraexec-dev", accounts: int = 100) -> list[SigningKey]:
    """The dev traders' keys, derived from ``"{seed}/trader/{i}"``."""
    return [SigningKey.from_seed_text(f"{seed}/trader/{i}") for i in range(accounts)]


def oracle_keys(seed: str = "paraexec-dev", count: int = 1) -> list[SigningKey]:
    """The oracle reporters' keys, derived from ``"{seed}/oracle/{i}"``."""
    return [SigningKey.from_seed_text(f"{seed}/oracle/{i}") for i in range(count)]


def dev_genesis(seed: str = "paraexec-dev", accounts: int = 100, markets: int = 4) -> dict[str, Any]:
    """A complete, JSON-serialisable app config for a dev exchange chain."""
    traders = dev_keys(seed, accounts)
    return {
        "genesis_time": 0,
        "markets": [dev_market(i) for i in range(markets)],
        "oracles": [k.public_key.hex() for k in oracle_keys(seed)],
        "oracle_quorum": 1,
        "fees": {"taker_ppm": 500, "maker_ppm": 100},
        "accounts": {k.public_key.hex(): DEV_BANK_BALANCE for k in traders},
        "subaccounts": [[k.public_key.hex(), 0, DEV_SUBACCOUNT_BALANCE] for k in traders],
        "insurance_fund": DEV_INSURANCE_FUND,
    }

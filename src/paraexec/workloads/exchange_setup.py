"""What the exchange workloads need from the exchange's dev genesis, and a signer with nonces.

The perps and replay generators build transactions for the ``exchange`` application. They
take the chain's genesis from ``paraexec.exchange.genesis.dev_genesis(seed, accounts, markets)``
(the same dev chain the node uses) and need from it: the markets (``Market`` parameters, for
unit conversions), the trader keys (``dev_keys``), the oracle keys (``oracle_keys``) and how many
of them a price needs (the quorum). ``ExchangeSetup`` gathers these in one place so the
generators never parse the config themselves in two different ways.

Unit helpers round the way a trader would: sizes down to a multiple of the market's step (at
least one step), prices to the tick on the passive side (bids down, asks up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..crypto import SigningKey
from ..transaction import encode_payload, sign

PPM = 1_000_000
USDC = 1_000_000  # quote quantums per USDC


@dataclass
class ExchangeSetup:
    """Markets, keys and oracle quorum of an exchange dev genesis (see module docstring)."""

    seed_text: str
    accounts: int
    markets: int
    config: dict[str, Any] = field(init=False)
    market_params: list[Any] = field(init=False)
    traders: list[SigningKey] = field(init=False)
    oracles: list[SigningKey] = field(init=False)
    quorum: int = field(init=False)

    def __post_init__(self) -> None:
        from ..exchange import genesis  # type: ignore[attr-defined,unused-ignore]
        from ..exchange.market import Market

        self.config = genesis.dev_genesis(self.seed_text, self.accounts, self.markets)
        self.market_params = [Market.from_config(m) for m in _markets_of(self.config)]
        self.traders = list(genesis.dev_keys(self.seed_text, self.accounts))
        self.oracles = list(genesis.oracle_keys(self.seed_text, len(self.config.get("oracles", [])) or 1))
        self.quorum = int(self.config.get("oracle_quorum", self.config.get("quorum", 1)) or 1)

    def bank_balance(self, key: SigningKey) -> int:
        """The genesis bank (faucet) balance of ``key`` in quote quantums, if the config says it."""
        accounts = self.config.get("accounts") or self.config.get("bank") or {}
        if isinstance(accounts, dict):
            value = accounts.get(key.public_key.hex())
            if isinstance(value, int):
                return value
            if isinstance(value, dict):
                return int(value.get("bank", value.get("balance", 0)) or 0)
        return 0


def _markets_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    markets = config["markets"]
    if isinstance(markets, dict):
        return [markets[k] for k in sorted(markets, key=lambda k: int(markets[k].get("id", k)))]
    return sorted(markets, key=lambda m: int(m["id"]))


def quantums_for_notional(market: Any, quote: int, price: int) -> int:
    """Base quantums worth about ``quote`` quote quantums at oracle ``price``: a step multiple, >= 1 step."""
    step = market.step_base_quantums
    step_value = max(1, market.value_floor(step, price))
    return max(1, quote // step_value) * step


def limit_subticks(market: Any, price: int, offset_ppm: int, side_is_buy: bool) -> int:
    """A limit price ``offset_ppm`` away from the oracle price, rounded to the passive side's tick."""
    subticks = market.price_to_subticks(price) * (PPM + offset_ppm) // PPM
    return market.subticks_round(subticks, up=not side_is_buy)


class Signer:
    """Signs payloads for ``chain_id`` with per-sender nonces continuing from ``nonce_of``."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self.nonces: dict[bytes, int] = {}

    def sign(self, key: SigningKey, payload: msgspec.Struct, nonce_of: Callable[[bytes], int] | None) -> bytes:
        nonce = self.nonces.get(key.public_key)
        if nonce is None:
            nonce = nonce_of(key.public_key) if nonce_of else 0
        self.nonces[key.public_key] = nonce + 1
        return sign(key, self.chain_id, nonce, encode_payload(payload))

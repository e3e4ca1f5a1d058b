"""A small exchange chain in memory: signed transactions through ChainRuntime + SequentialExecutor."""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from paraexec import codec
from paraexec.chain import Chain, ChainConfig
from paraexec.crypto import SigningKey
from paraexec.exchange import keys
from paraexec.exchange.genesis import dev_market
from paraexec.exchange.queries import StateReader
from paraexec.execution import Receipt, SequentialExecutor
from paraexec.state import MemoryStore
from paraexec.transaction import encode_payload, sign

CHAIN_ID = "exchange-test"
ALICE = SigningKey.from_seed_text("x/alice")
BOB = SigningKey.from_seed_text("x/bob")
CAROL = SigningKey.from_seed_text("x/carol")
DAVE = SigningKey.from_seed_text("x/dave")
ORACLE = SigningKey.from_seed_text("x/oracle")
USDC = 10**6  # quote quantums per USDC
BTC = 10**10  # base quantums per BTC (atomic resolution -10)


def btc_market(**overrides: Any) -> dict[str, Any]:
    """BTC-USD as in dYdX: price exponent -5, so 50,000 USD = 5e9 = 5e9 subticks."""
    market = dev_market(0)
    market.update({"initial_price": 5_000_000_000, "oi_lower_cap": 0, "oi_upper_cap": 0, "staleness_s": 3600})
    market.update(overrides)
    return market


def config(subaccounts: dict[SigningKey, int], markets: list[dict[str, Any]] | None = None, **extra: Any) -> dict:
    cfg: dict[str, Any] = {
        "genesis_time": 0,
        "markets": markets or [btc_market()],
        "oracles": [ORACLE.public_key.hex()],
        "oracle_quorum": 1,
        "fees": {"taker_ppm": 500, "maker_ppm": 100},
        "accounts": {k.public_key.hex(): 1_000_000 * USDC for k in (ALICE, BOB, CAROL, DAVE)},
        "subaccounts": [[k.public_key.hex(), 0, v] for k, v in subaccounts.items()],
        "insurance_fund": 0,
    }
    cfg.update(copy.deepcopy(extra))
    return cfg


class Harness:
    def __init__(self, app_config: dict[str, Any]) -> None:
        self.config = app_config
        self.chain = Chain.create(MemoryStore(), ChainConfig(CHAIN_ID, "exchange", app_config))
        self.nonces: dict[bytes, int] = {}
        self.executor = SequentialExecutor()
        self.time = 0

    def tx(self, key: SigningKey, payload: msgspec.Struct) -> bytes:
        nonce = self.nonces.get(key.public_key, 0)
        self.nonces[key.public_key] = nonce + 1
        return sign(key, CHAIN_ID, nonce, encode_payload(payload))

    def block(self, *txs: bytes, time: int | None = None) -> list[Receipt]:
        """Run one block; returns the receipts of ``txs`` followed by the system ticks'."""
        self.time = self.time + 1 if time is None else time
        _, output = self.chain.produce_block(list(txs), self.time, self.executor)
        self.last_output = output
        return output.receipts

    def run(self, key: SigningKey, payload: msgspec.Struct, time: int | None = None) -> Receipt:
        return self.block(self.tx(key, payload), time=time)[0]

    @property
    def reader(self) -> StateReader:
        return StateReader(self.chain.store.get, self.chain.store.items, self.config, self.chain.height)

    def balance(self, key: SigningKey, number: int = 0) -> int:
        return self.reader.subaccount_record(keys.subaccount_id(key.public_key, number)).balance

    def size(self, key: SigningKey, market_id: int = 0, number: int = 0) -> int:
        record = self.reader.subaccount_record(keys.subaccount_id(key.public_key, number))
        return next((p.size for p in record.positions if p.market_id == market_id), 0)

    def get_int(self, key: bytes) -> int:
        return codec.decode_int(self.chain.store.get(key))


def events(receipt: Receipt, name: str) -> list[dict[str, Any]]:
    return [e.attrs for e in receipt.events if e.name == name]

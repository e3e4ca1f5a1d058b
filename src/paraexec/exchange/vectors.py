"""Machine-readable test vectors: run a scenario on a fresh chain and compare with expectations.

A vector is a JSON object:

    name, description
    keys        {"alice": "seed text", ...}: named signers (SigningKey.from_seed_text)
    config      the app config; any string equal to a key name becomes that key's hex public
                key (also as a dict key), so vectors stay readable
    blocks      [{"time": t, "txs": [{"signer": name, "type": PayloadType, "args": {...}}],
                  "expect": [{"code": c, "events": [{"name": n, "attrs": {subset}}]}, ...],
                  "expect_ticks": [... same, for the end-of-block MarketTick receipts ...]}]
                args naming a key (owner, to_owner) get its public key; in expected attrs a
                string "name/number" becomes that subaccount's hex id
    post        {"subaccounts": [{"owner", "number", "balance", "positions": {market: size}}],
                 "insurance_fund", "fee_pool", "open_interest": {market: base quantums},
                 "book": {market: {"bids": [[subticks, quantums, orders]], "asks": [...]}},
                 "banks": {name: balance}}

Expected events are matched as an ordered subsequence by name and attribute subset; a receipt
expectation may omit ``events``. ``run_vector`` returns the list of mismatches (empty: pass).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from .. import codec
from ..chain import Chain, ChainConfig
from ..crypto import SigningKey
from ..execution import Receipt, SequentialExecutor
from ..state import MemoryStore
from ..transaction import encode_payload, sign
from . import keys
from .payloads import PAYLOAD_TYPES
from .queries import StateReader

CHAIN_ID = "vectors"


class _Names:
    def __init__(self, named: dict[str, str]) -> None:
        self.keys = {name: SigningKey.from_seed_text(seed) for name, seed in named.items()}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.keys:
            return self.keys[value].public_key.hex()
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def expected_attr(self, value: Any) -> Any:
        if isinstance(value, str) and "/" in value:
            name, _, number = value.partition("/")
            if name in self.keys and number.isdigit():
                return keys.subaccount_id(self.keys[name].public_key, int(number)).hex()
        return value


def _matches(names: _Names, receipt: Receipt, expect: dict[str, Any], where: str) -> list[str]:
    problems = []
    if "code" in expect and receipt.code != expect["code"]:
        problems.append(f"{where}: code {receipt.code} ({receipt.error}), expected {expect['code']}")
    pos = 0
    for want in expect.get("events", []):
        attrs = {k: names.expected_attr(v) for k, v in want.get("attrs", {}).items()}
        while pos < len(receipt.events):
            event = receipt.events[pos]
            pos += 1
            if event.name == want["name"] and all(event.attrs.get(k) == v for k, v in attrs.items()):
                break
        else:
            seen = [(e.name, e.attrs) for e in receipt.events]
            problems.append(f"{where}: no event {want['name']} {attrs} in order; got {seen}")
            break
    return problems


def run_vector(vector: dict[str, Any]) -> list[str]:
    names = _Names(vector.get("keys", {}))
    config = names.resolve(vector["config"])
    chain = Chain.create(MemoryStore(), ChainConfig(CHAIN_ID, "exchange", config))
    executor = SequentialExecutor()
    nonces: dict[bytes, int] = {}
    problems: list[str] = []
    for b, block in enumerate(vector.get("blocks", [])):
        txs = []
        for spec in block.get("txs", []):
            key = names.keys[spec["signer"]]
            args = {
                k: bytes.fromhex(names.resolve(v)) if k in ("owner", "to_owner") else v
                for k, v in spec.get("args", {}).items()
            }
            payload = PAYLOAD_TYPES[spec["type"]](**args)
            nonce = nonces.get(key.public_key, 0)
            nonces[key.public_key] = nonce + 1
            txs.append(sign(key, CHAIN_ID, nonce, encode_payload(payload)))
        _, output = chain.produce_block(txs, int(block["time"]), executor)
        receipts = output.receipts
        for i, expect in enumerate(block.get("expect", [])):
            problems += _matches(names, receipts[i], expect, f"block {b} tx {i}")
        for i, expect in enumerate(block.get("expect_ticks", [])):
            problems += _matches(names, receipts[len(txs) + i], expect, f"block {b} tick {i}")
    problems += _check_post(names, chain, config, vector.get("post", {}))
    return problems


def _check_post(names: _Names, chain: Chain, config: dict[str, Any], post: dict[str, Any]) -> list[str]:
    store = chain.store
    reader = StateReader(store.get, store.items, config)
    problems = []
    for want in post.get("subaccounts", []):
        owner = names.keys[want["owner"]].public_key
        number = int(want.get("number", 0))
        record = reader.subaccount_record(keys.subaccount_id(owner, number))
        label = f"subaccount {want['owner']}/{number}"
        if "balance" in want and record.balance != want["balance"]:
            problems.append(f"{label}: balance {record.balance}, expected {want['balance']}")
        if "positions" in want:
            got = {str(p.market_id): p.size for p in record.positions}
            if got != {str(k): v for k, v in want["positions"].items()}:
                problems.append(f"{label}: positions {got}, expected {want['positions']}")
    for field, actual in (("insurance_fund", reader.insurance_fund), ("fee_pool", reader.fee_pool)):
        if field in post and actual() != post[field]:
            problems.append(f"{field}: {actual()}, expected {post[field]}")
    for market, want_oi in post.get("open_interest", {}).items():
        oi = codec.decode_int(store.get(keys.open_interest(int(market))))
        if oi != want_oi:
            problems.append(f"open interest {market}: {oi}, expected {want_oi}")
    for market, want_book in post.get("book", {}).items():
        got_book = reader.book(int(market))
        if got_book != want_book:
            problems.append(f"book {market}: {got_book}, expected {want_book}")
    for name, want_bank in post.get("banks", {}).items():
        bank = codec.decode_int(store.get(keys.bank(names.keys[name].public_key)))
        if bank != want_bank:
            problems.append(f"bank {name}: {bank}, expected {want_bank}")
    return problems


def vector_files(paths: Iterable[Path]) -> list[Path]:
    """The ``.json`` files named, or found (sorted) under the directories named."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.rglob("*.json")) if path.is_dir() else [path]
    return found


class _Tx(msgspec.Struct):
    signer: str
    type: str
    args: dict[str, Any] = {}


class _Block(msgspec.Struct):
    time: int
    txs: list[_Tx] = []
    expect: list[dict[str, Any]] = []
    expect_ticks: list[dict[str, Any]] = []


class _Vector(msgspec.Struct):
    """The shape of a vector (module docstring), checked on load so a malformed file is
    reported with the place that is wrong, not as whatever the runner tripped over."""

    config: dict[str, Any]
    name: str = ""
    description: str = ""
    keys: dict[str, str] = {}
    blocks: list[_Block] = []
    post: dict[str, Any] = {}


class MalformedVector(ValueError):
    """A vector file that is not JSON or not a vector's shape."""


def load_vector(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        vector = msgspec.convert(data, _Vector)
    except (OSError, ValueError) as exc:  # unreadable, not JSON, or msgspec.ValidationError
        raise MalformedVector(f"not a vector: {exc}") from None
    unknown = sorted({tx.signer for block in vector.blocks for tx in block.txs} - vector.keys.keys())
    unknown_types = sorted({tx.type for block in vector.blocks for tx in block.txs} - PAYLOAD_TYPES.keys())
    if unknown or unknown_types:
        raise MalformedVector(f"not a vector: unknown signers {unknown} or payload types {unknown_types}")
    return data

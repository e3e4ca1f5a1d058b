"""Peer-to-peer transfers: the Block-STM paper's benchmark application.

State: ``b/<account>`` -> balance (integer, smallest unit). Accounts are ed25519 public keys.

- ``Transfer(to, amount)``: move ``amount`` (> 0) from the sender to ``to``; refused with
  ``INVALID_AMOUNT`` or ``INSUFFICIENT_BALANCE``.
- ``Mint(to, amount)``: create ``amount`` out of thin air; only the genesis ``minter`` may.

A transfer reads and writes exactly the two balances (plus the sender's nonce, handled by the
runtime), so transfers between disjoint accounts never conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from .. import codec
from ..errors import InsufficientBalance, InvalidAmount, Unauthorized
from ..execution.contract import BlockEnv, TxContext
from ..types import Key, Value

Address = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
BALANCE_PREFIX = b"b/"
MINTER_KEY = b"transfers/minter"


def balance_key(account: bytes) -> Key:
    return BALANCE_PREFIX + account


class Transfer(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    to: Address
    amount: int


class Mint(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    to: Address
    amount: int


class TransfersApp:
    """See module docstring."""

    name = "transfers"
    payload_types: Mapping[str, type] = {"Transfer": Transfer, "Mint": Mint}

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})

    def genesis(self, config: Mapping[str, Any]) -> dict[Key, Value]:
        """``config``: ``{"accounts": {hex_pubkey: balance}, "minter": hex_pubkey}``."""
        state = {balance_key(bytes.fromhex(a)): codec.encode_int(int(b)) for a, b in config.get("accounts", {}).items()}
        if config.get("minter"):
            state[MINTER_KEY] = bytes.fromhex(config["minter"])
        return state

    def apply(self, ctx: TxContext, sender: bytes | None, payload: Any) -> None:
        if payload.amount <= 0:
            raise InvalidAmount(f"amount {payload.amount} must be positive")
        if isinstance(payload, Mint):
            if sender is None or ctx.get(MINTER_KEY) != sender:
                raise Unauthorized("only the minter may mint")
            ctx.add(balance_key(payload.to), payload.amount)
            return
        assert sender is not None
        src = balance_key(sender)
        balance = ctx.get_int(src)
        if balance < payload.amount:
            raise InsufficientBalance(f"balance {balance} < {payload.amount}")
        ctx.put_int(src, balance - payload.amount)
        dst = balance_key(payload.to)
        ctx.put_int(dst, ctx.get_int(dst) + payload.amount)

    def hint_keys(self, sender: bytes | None, payload: Any) -> tuple[Key, ...]:
        if sender is None:
            return (balance_key(payload.to),)
        return (balance_key(sender), balance_key(payload.to))

    def system_payloads(self, env: BlockEnv) -> list[bytes]:
        return []

"""``Wallet``: an ed25519 key, its chain id and its next nonce; builds and signs transactions.

Key management: ``Wallet.generate`` (fresh random key), ``from_seed_text`` (deterministic dev
keys, as the dev genesis derives them), ``from_seed_hex``, and ``save`` / ``load`` of a JSON key
file (``{"seed": hex, "chain_id": ...}``, written with mode 0600). The wallet counts nonces
locally (``next_nonce``) so many transactions can be in flight; ``sync_nonce`` re-reads the
node's view after a rejection or a restart.

Builders return signed wire bytes and consume a nonce: ``transfer`` for the transfers app, and
one method per exchange payload (``deposit``, ``withdraw``, ``transfer_collateral``,
``place_order``, ``cancel_order``, ``oracle_update``, ``liquidate``). Prices are subticks and
sizes base quantums, integers, as the exchange defines them (``exchange.payloads``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..crypto import SigningKey
from ..transaction import encode_payload, sign

if TYPE_CHECKING:
    from .client import Client


class Wallet:
    def __init__(self, seed: bytes, chain_id: str, next_nonce: int = 0) -> None:
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        self._seed: bytes | None = seed
        self.key = SigningKey(seed)
        self.chain_id = chain_id
        self.next_nonce = next_nonce

    # -- keys ------------------------------------------------------------------------------

    @classmethod
    def from_key(cls, key: SigningKey, chain_id: str) -> Wallet:
        """A wallet for an already derived key (dev genesis keys, workload keys)."""
        wallet = cls.__new__(cls)
        wallet._seed = None  # SigningKey does not export its seed: such a wallet cannot be saved
        wallet.key = key
        wallet.chain_id = chain_id
        wallet.next_nonce = 0
        return wallet

    @classmethod
    def generate(cls, chain_id: str) -> Wallet:
        return cls(os.urandom(32), chain_id)

    @classmethod
    def from_seed_text(cls, text: str, chain_id: str) -> Wallet:
        """The key ``SigningKey.from_seed_text(text)``: how dev and workload accounts are derived."""
        from ..crypto import hash32

        return cls(hash32(text.encode()), chain_id)

    @classmethod
    def dev(cls, index: int, chain_id: str = "paraexec-dev", seed: str = "paraexec-dev") -> Wallet:
        """Dev trader ``index`` (0..99, or below ``init --accounts``) of the chain ``paraexec init`` creates: funded at genesis
        in the bank and in subaccount 0 (``exchange.genesis.dev_keys``, seed text
        ``"{seed}/trader/{index}"``). Its oracle reporter is ``from_seed_text(f"{seed}/oracle/0", ...)``."""
        return cls.from_seed_text(f"{seed}/trader/{index}", chain_id)

    @classmethod
    def from_seed_hex(cls, seed_hex: str, chain_id: str) -> Wallet:
        return cls(bytes.fromhex(seed_hex), chain_id)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Wallet:
        data = json.loads(Path(path).read_text())
        return cls(bytes.fromhex(data["seed"]), data["chain_id"])

    def save(self, path: str | os.PathLike[str]) -> None:
        if self._seed is None:
            raise ValueError("this wallet was made from a SigningKey; its seed is not available to save")
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # the mode of os.open applies only to a file it creates
        with os.fdopen(fd, "w") as fh:
            json.dump({"seed": self._seed.hex(), "chain_id": self.chain_id, "address": self.address.hex()}, fh)

    @property
    def address(self) -> bytes:
        return self.key.public_key

    def sync_nonce(self, client: Client) -> int:
        self.next_nonce = client.nonce(self.address)
        return self.next_nonce

    @staticmethod
    def sync_nonces(client: Client, wallets: Sequence[Wallet]) -> None:
        """``sync_nonce`` for many wallets, asked in batches."""
        for wallet, nonce in zip(wallets, client.nonces([w.address for w in wallets]), strict=True):
            wallet.next_nonce = nonce

    # -- signing ---------------------------------------------------------------------------

    def sign_payload(self, payload: msgspec.Struct, nonce: int | None = None) -> bytes:
        """Sign ``payload`` with ``nonce`` (default: the next local nonce, which is then consumed)."""
        if nonce is None:
            nonce = self.next_nonce
            self.next_nonce += 1
        return sign(self.key, self.chain_id, nonce, encode_payload(payload))

    # -- transfers app ---------------------------------------------------------------------

    def transfer(self, to: bytes, amount: int) -> bytes:
        from ..apps.transfers import Transfer

        return self.sign_payload(Transfer(to, amount))

    # -- exchange app ----------------------------------------------------------------------

    def deposit(self, subaccount: int, amount: int) -> bytes:
        from ..exchange.payloads import Deposit

        return self.sign_payload(Deposit(subaccount, amount))

    def withdraw(self, subaccount: int, amount: int) -> bytes:
        from ..exchange.payloads import Withdraw

        return self.sign_payload(Withdraw(subaccount, amount))

    def transfer_collateral(self, from_subaccount: int, to_owner: bytes, to_subaccount: int, amount: int) -> bytes:
        from ..exchange.payloads import TransferCollateral

        return self.sign_payload(TransferCollateral(from_subaccount, to_owner, to_subaccount, amount))

    def place_order(
        self,
        market_id: int,
        side: int,
        quantums: int,
        subticks: int,
        *,
        subaccount: int = 0,
        client_id: int = 0,
        **options: Any,
    ) -> bytes:
        """A limit order by default; ``options``: order_type, time_in_force, reduce_only (with
        time_in_force IOC or FOK), good_til_block, condition, trigger_subticks (see
        ``exchange.payloads.PlaceOrder``)."""
        from ..exchange.payloads import PlaceOrder

        return self.sign_payload(PlaceOrder(market_id, subaccount, client_id, side, quantums, subticks, **options))

    def cancel_order(self, market_id: int, client_id: int, subaccount: int = 0) -> bytes:
        from ..exchange.payloads import CancelOrder

        return self.sign_payload(CancelOrder(market_id, subaccount, client_id))

    def oracle_update(self, market_id: int, price: int) -> bytes:
        from ..exchange.payloads import OracleUpdate

        return self.sign_payload(OracleUpdate(market_id, price))

    def liquidate(self, owner: bytes, subaccount: int, market_id: int) -> bytes:
        from ..exchange.payloads import Liquidate

        return self.sign_payload(Liquidate(owner, subaccount, market_id))

"""Small builders shared by tests: a transfers chain in memory, signed transactions."""

from __future__ import annotations

from paraexec.apps.transfers import Mint, Transfer, balance_key
from paraexec.chain import Chain, ChainConfig
from paraexec.crypto import SigningKey
from paraexec.state import MemoryStore
from paraexec.transaction import encode_payload, sign

CHAIN_ID = "paraexec-test"
ALICE = SigningKey.from_seed_text("test/alice")
BOB = SigningKey.from_seed_text("test/bob")
MINTER = SigningKey.from_seed_text("test/minter")


def transfers_chain(balances: dict[bytes, int] | None = None) -> Chain:
    balances = balances if balances is not None else {ALICE.public_key: 1000, BOB.public_key: 500}
    config = ChainConfig(
        CHAIN_ID,
        "transfers",
        {"accounts": {k.hex(): v for k, v in balances.items()}, "minter": MINTER.public_key.hex()},
    )
    return Chain.create(MemoryStore(), config)


def transfer(key: SigningKey, nonce: int, to: bytes, amount: int, chain_id: str = CHAIN_ID) -> bytes:
    return sign(key, chain_id, nonce, encode_payload(Transfer(to, amount)))


def mint(key: SigningKey, nonce: int, to: bytes, amount: int) -> bytes:
    return sign(key, CHAIN_ID, nonce, encode_payload(Mint(to, amount)))


def balance(chain: Chain, key: SigningKey) -> int:
    from paraexec import codec

    return codec.decode_int(chain.store.get(balance_key(key.public_key)))

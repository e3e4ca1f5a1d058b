"""Wallet key management and transaction builders (every exchange payload decodes on chain)."""

from __future__ import annotations

import os
import stat

import pytest

from paraexec.apps.transfers import Transfer, TransfersApp
from paraexec.client import Wallet
from paraexec.crypto import SigningKey
from paraexec.exchange.app import ExchangeApp
from paraexec.exchange.genesis import dev_genesis
from paraexec.exchange.payloads import (
    BUY,
    IOC,
    CancelOrder,
    Deposit,
    Liquidate,
    OracleUpdate,
    PlaceOrder,
    TransferCollateral,
    Withdraw,
)
from paraexec.execution.runtime import ChainRuntime


def test_keys_roundtrip_and_dev_derivation(tmp_path):
    w = Wallet.generate("c")
    path = tmp_path / "key.json"
    path.write_text("{}")
    path.chmod(0o644)  # saving over a readable file makes it private too
    w.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = Wallet.load(path)
    assert loaded.address == w.address and loaded.chain_id == "c"
    assert Wallet.from_seed_text("alice", "c").address == SigningKey.from_seed_text("alice").public_key
    assert Wallet.generate("c").address != w.address
    derived = Wallet.from_key(SigningKey.from_seed_text("bob"), "c")
    assert derived.address == Wallet.from_seed_text("bob", "c").address and derived.next_nonce == 0
    with pytest.raises(ValueError):
        derived.save(tmp_path / "no.json")  # no seed to export


def test_dev_wallets_are_the_traders_funded_by_the_dev_genesis():
    from paraexec.exchange.genesis import dev_keys

    keys = dev_keys()
    assert [Wallet.dev(i).address for i in (0, 99)] == [keys[0].public_key, keys[99].public_key]
    assert (
        Wallet.dev(0).chain_id == "paraexec-dev"
        and Wallet.dev(1, "c", seed="s").address == dev_keys("s", 2)[1].public_key
    )
    assert keys[0].public_key.hex() in dev_genesis()["accounts"]


def test_builders_sign_decodable_transactions_with_consecutive_nonces():
    runtime = ChainRuntime(ExchangeApp(dev_genesis(accounts=2)), "c")
    w = Wallet.from_seed_text("trader", "c")
    w.next_nonce = 7
    other = Wallet.from_seed_text("other", "c").address
    raws = [
        w.deposit(0, 5),
        w.withdraw(0, 5),
        w.transfer_collateral(0, other, 1, 5),
        w.place_order(1, BUY, 10, 20, client_id=3, time_in_force=IOC, reduce_only=True),
        w.cancel_order(1, 3),
        w.oracle_update(0, 123),
        w.liquidate(other, 0, 1),
    ]
    prepared = [runtime.prepare(raw) for raw in raws]
    assert [p.error for p in prepared] == [None] * len(raws)
    assert [p.nonce for p in prepared] == list(range(7, 14)) and w.next_nonce == 14
    assert {p.sender for p in prepared} == {w.address}
    assert [type(p.payload) for p in prepared] == [
        Deposit,
        Withdraw,
        TransferCollateral,
        PlaceOrder,
        CancelOrder,
        OracleUpdate,
        Liquidate,
    ]
    order = prepared[3].payload
    assert (order.market_id, order.client_id, order.side, order.quantums, order.subticks) == (1, 3, BUY, 10, 20)
    assert order.time_in_force == IOC and order.reduce_only
    assert prepared[2].payload.to_owner == other

    transfers = ChainRuntime(TransfersApp(), "c")
    explicit = transfers.prepare(w.transfer(other, 9))
    assert explicit.payload == Transfer(other, 9) and explicit.nonce == 14
    assert transfers.prepare(w.sign_payload(Transfer(other, 1), nonce=2)).nonce == 2 and w.next_nonce == 15

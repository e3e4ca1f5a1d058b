"""End to end: a node subprocess on loopback, driven through the Python client."""

from __future__ import annotations

import signal

import pytest

from paraexec.apps.transfers import Transfer
from paraexec.client import Client, RpcClientError, Wallet
from paraexec.crypto import SigningKey

from .nodeproc import BALANCE, CHAIN_ID, NodeProcess, cli, init_chain


def wallet(key: SigningKey) -> Wallet:
    return Wallet.from_key(key, CHAIN_ID)


def test_submit_receipts_state_subscriptions_restart_and_replay(tmp_path):
    data = tmp_path / "chain"
    keys = init_chain(data, accounts=4)
    alice, bob, carol = (wallet(k) for k in keys[:3])
    with NodeProcess(data) as node, Client(node.url) as client:
        status = client.status()
        assert status["chain_id"] == CHAIN_ID and status["app"] == "transfers"
        with client.subscribe("blocks") as sub:
            topic, first = sub.next_message(timeout=10)
            assert topic == "blocks" and first["height"] >= 1

            alice.sync_nonce(client)
            hashes = [client.submit(alice.transfer(bob.address, 100 + i)) for i in range(5)]
            too_much = client.submit(carol.transfer(bob.address, BALANCE + 1))  # included, fails: no funds
            answers = [client.wait_for(h, timeout=30) for h in hashes]
            assert all(a["receipt"]["ok"] for a in answers)
            failed = client.wait_for(too_much, timeout=30)
            assert failed["receipt"]["code"] == 101 and "INSUFFICIENT_BALANCE" in failed["receipt"]["error"]

            sent = sum(100 + i for i in range(5))
            assert client.account(alice.address) == {
                "address": alice.address.hex(),
                "nonce": 5,
                "balance": BALANCE - sent,
            }
            assert client.account(bob.address)["balance"] == BALANCE + sent
            assert client.account(carol.address)["nonce"] == 1  # a business failure still uses the nonce
            # nonces asked in batches (more addresses than one batch holds), one answer each, in order
            many = [k.public_key for k in keys] * 60
            assert client.nonces(many) == [client.nonce(k.public_key) for k in keys] * 60 == [5, 0, 1, 0] * 60
            answers_of_batch = client.call_many([("get_nonce", {"address": "zz"}), ("status", {})])
            assert isinstance(answers_of_batch[0], RpcClientError) and answers_of_batch[0].code == -32602
            assert answers_of_batch[1]["chain_id"] == CHAIN_ID

            # the block holding the first transfer lists it, and the subscription saw that block
            a0 = answers[0]
            block = client.block(a0["height"])
            assert block["tx_hashes"][a0["index"]] == hashes[0]
            seen = set()
            while a0["height"] not in seen and max(seen, default=0) < a0["height"] + 50:
                _, info = sub.next_message(timeout=10)
                seen.add(info["height"])
                if info["height"] == a0["height"]:
                    assert hashes[0] in info["tx_hashes"]
            assert a0["height"] in seen or a0["height"] < first["height"]

        # a replayed transaction is refused with its stable code and changes nothing
        with pytest.raises(RpcClientError) as err:
            client.submit(alice.sign_payload(Transfer(bob.address, 1), nonce=0))
        assert err.value.code == 6 and err.value.name == "REPLAYED_NONCE"

        metrics = client.metrics()
        assert "paraexec_txs_committed_total 6" in metrics
        height = client.height()
        assert node.stop(signal.SIGTERM) == 0  # clean shutdown

    with NodeProcess(data) as node, Client(node.url) as client:  # restart: the chain continues
        assert client.height() >= height
        assert client.wait_for(hashes[4])["receipt"]["ok"]
        assert node.stop(signal.SIGINT) == 0
    cli(["replay", "--data", str(data)])  # exits non-zero on any root or receipt mismatch

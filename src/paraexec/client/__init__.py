"""Python SDK for a paraexec node: keys (``Wallet``), signed transactions, JSON-RPC and subscriptions.

from paraexec.client import Client, Wallet
client = Client("http://127.0.0.1:8545")
wallet = Wallet.from_seed_text("alice", client.status()["chain_id"])
wallet.sync_nonce(client)
receipt = client.submit_and_wait(wallet.transfer(bob, 10))
"""

from .client import Client, RpcClientError, Subscription
from .wallet import Wallet

__all__ = ["Client", "RpcClientError", "Subscription", "Wallet"]

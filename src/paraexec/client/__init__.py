"""Python SDK for a paraexec node: keys (``Wallet``), signed transactions, JSON-RPC and subscriptions.

Against the dev chain of ``paraexec init`` (exchange app, 100 traders funded at genesis):

    from paraexec.client import BUY, SELL, Client, Wallet
    from paraexec.exchange.market import Market

    client = Client("http://127.0.0.1:8545")
    chain_id = client.status()["chain_id"]
    maker, taker = Wallet.dev(0, chain_id), Wallet.dev(1, chain_id)
    for w in (maker, taker):
        w.sync_nonce(client)
    btc = Market.from_config(client.markets()[0]["params"])  # market 0: BTC-USD
    price = btc.price_to_subticks(btc.initial_price)  # the genesis oracle price, in subticks
    size = btc.step_base_quantums  # one step, in base quantums
    client.submit_and_wait(maker.place_order(btc.id, SELL, size, price, client_id=1))  # rests
    receipt = client.submit_and_wait(taker.place_order(btc.id, BUY, size, price, client_id=1))  # fills
    client.subaccount(taker.address)["positions"]
    # where it landed: wait_for answers the height and index beside the receipt
    answer = client.wait_for(client.submit(taker.place_order(btc.id, SELL, size, price, client_id=2)))
    fills = client.events(answer["height"], name="fill")  # the block's fills (this sell rests: none of its own)

On a transfers chain, ``wallet.transfer(to, amount)`` moves a balance. Amounts are integers in
the exchange's units (quote quantums, base quantums, subticks: ``exchange.payloads``); a
transaction the chain refuses raises ``RpcClientError`` (``.code``, ``.name``) at submission, or
commits with a failure receipt (``receipt["ok"]`` false, ``receipt["code"]``, ``receipt["error"]``)
when it fails in execution. Event names are lower case (``"fill"``, ``"liquidation"``, ...).
"""

from ..exchange.payloads import BUY, SELL
from .client import Client, RpcClientError, Subscription
from .wallet import Wallet

__all__ = ["BUY", "SELL", "Client", "RpcClientError", "Subscription", "Wallet"]

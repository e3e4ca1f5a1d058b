"""``Client``: JSON-RPC 2.0 over HTTP (httpx2) and WebSocket subscriptions (websockets).

Every method maps to one RPC method of the node (``paraexec.rpc.methods``); bytes are passed
and returned as hex. A JSON-RPC error becomes ``RpcClientError`` carrying the node's stable
code and name (``MEMPOOL_FULL``, ``REPLAYED_NONCE``, ...) and the HTTP status (429 when full).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx2


class RpcClientError(Exception):
    def __init__(self, code: int, message: str, data: Any = None, http_status: int = 200) -> None:
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status
        name = self.name
        super().__init__(f"{code} {name}: {message}" if name else f"{code} {message}")

    @property
    def name(self) -> str:
        return self.data.get("name", "") if isinstance(self.data, dict) else ""

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable with its fields (``paraexec load --processes`` sends one back from a
        generator process; the default would call ``__init__`` with the message alone)."""
        return (type(self), (self.code, self.message, self.data, self.http_status))


def _result(answer: dict[str, Any], status: int) -> Any:
    """One JSON-RPC answer's result, or its error raised as ``RpcClientError``."""
    if answer.get("error") is not None:
        err = answer["error"] if isinstance(answer["error"], dict) else {}
        raise RpcClientError(err.get("code", -32603), err.get("message", "error"), err.get("data"), status)
    return answer.get("result")


#: Requests per JSON-RPC batch (the node answers up to 100: ``rpc.server.MAX_BATCH``).
BATCH = 100


def _hex(value: bytes | str) -> str:
    return value.hex() if isinstance(value, bytes | bytearray) else value


class Client:
    """A node's API. Thread-safe enough for one thread per client; make one per thread otherwise."""

    def __init__(self, url: str = "http://127.0.0.1:8545", timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx2.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def call(self, method: str, **params: Any) -> Any:
        """Call one method with named params; return its result or raise ``RpcClientError``."""
        req = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        status, body = self._post(req)
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise RpcClientError(-32603, f"HTTP {status}: not a JSON-RPC answer", http_status=status)
        return _result(body, status)

    def call_many(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Call several methods in JSON-RPC batches (``BATCH`` a request): one entry per call, in
        order: its result, or the ``RpcClientError`` it was answered with (returned, not raised).
        A batch the node refuses whole (HTTP 413/429, a batch error) gives each of its calls that
        error, so the answers of the other batches are kept."""
        results: list[Any] = []
        for start in range(0, len(calls), BATCH):
            chunk = calls[start : start + BATCH]
            ids = [next(self._ids) for _ in chunk]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
                for i, (method, params) in zip(ids, chunk, strict=True)
            ]
            status, answers = self._post(body)
            if not isinstance(answers, list):  # the whole batch refused, or not JSON-RPC at all
                refused: Any = answers if isinstance(answers, dict) else {}
                err = refused.get("error") if isinstance(refused.get("error"), dict) else {}
                error = RpcClientError(
                    err.get("code", -32603),
                    err.get("message", f"HTTP {status}: batch refused"),
                    err.get("data"),
                    status,
                )
                results.extend(error for _ in chunk)
                continue
            by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
            for i in ids:
                answer = by_id.get(i)
                if answer is None:
                    results.append(RpcClientError(-32603, "no answer to this call in the batch", http_status=status))
                    continue
                try:
                    results.append(_result(answer, status))
                except RpcClientError as exc:
                    results.append(exc)
        return results

    def _post(self, payload: Any) -> tuple[int, Any]:
        """POST a request or batch; (HTTP status, decoded JSON body)."""
        resp = self._http.post(
            self.url + "/", content=json.dumps(payload), headers={"content-type": "application/json"}
        )
        try:
            return resp.status_code, resp.json()
        except ValueError:
            raise RpcClientError(-32603, f"HTTP {resp.status_code}: not JSON", http_status=resp.status_code) from None

    # -- transactions ----------------------------------------------------------------------

    def submit(self, raw: bytes) -> str:
        """Submit one signed transaction; returns its hash (hex)."""
        return str(self.call("submit_tx", tx=raw.hex())["hash"])

    def submit_many(self, raws: Sequence[bytes]) -> list[dict[str, Any]]:
        """Submit a batch; one ``{"hash"}`` or ``{"hash", "error": {code, name, message}}`` each."""
        return list(self.call("submit_txs", txs=[r.hex() for r in raws])["results"])

    def tx(self, tx_hash: bytes | str) -> dict[str, Any]:
        return dict(self.call("get_tx", hash=_hex(tx_hash)))

    def wait_for(self, tx_hash: bytes | str, timeout: float = 30.0, poll: float = 0.05) -> dict[str, Any]:
        """Poll until the transaction is committed; return ``get_tx``'s answer (with the receipt)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.tx(tx_hash)
            if answer["status"] == "committed":
                return answer
            if time.monotonic() > deadline:
                raise TimeoutError(f"transaction {_hex(tx_hash)} not committed after {timeout}s ({answer['status']})")
            time.sleep(poll)

    def submit_and_wait(self, raw: bytes, timeout: float = 30.0) -> dict[str, Any]:
        """Submit and wait for inclusion; returns the receipt (``ok``, ``code``, ``error``, ``events``)."""
        answer = self.wait_for(self.submit(raw), timeout)
        return dict(answer["receipt"])

    # -- queries ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return dict(self.call("status"))

    def height(self) -> int:
        return int(self.status()["height"])

    def block(self, height: int | None = None, txs: bool = False) -> dict[str, Any]:
        return dict(self.call("get_block", height=height, txs=txs))

    def receipts(self, height: int) -> list[dict[str, Any]]:
        return list(self.call("get_receipts", height=height))

    def events(self, from_height: int, to_height: int | None = None, name: str | None = None) -> list[dict[str, Any]]:
        return list(self.call("get_events", from_height=from_height, to_height=to_height, name=name))

    def nonce(self, address: bytes | str) -> int:
        """The next nonce to use for ``address`` (committed plus ready pending transactions)."""
        return int(self.call("get_nonce", address=_hex(address))["next"])

    def nonces(self, addresses: Sequence[bytes | str]) -> list[int]:
        """``nonce`` of every address, asked in batches (thousands of wallets in a few round
        trips: ``paraexec load`` with 20,000 accounts spent 44 s asking one at a time)."""
        answers = self.call_many([("get_nonce", {"address": _hex(a)}) for a in addresses])
        for answer in answers:
            if isinstance(answer, RpcClientError):
                raise answer
        return [int(a["next"]) for a in answers]

    def account(self, address: bytes | str) -> dict[str, Any]:
        return dict(self.call("get_account", address=_hex(address)))

    def markets(self) -> Any:
        return self.call("get_markets")

    def book(self, market_id: int, depth: int = 20) -> Any:
        return self.call("get_book", market_id=market_id, depth=depth)

    def subaccount(self, owner: bytes | str, number: int = 0) -> Any:
        return self.call("get_subaccount", owner=_hex(owner), number=number)

    def trades(self, market_id: int | None = None, count: int = 50) -> list[dict[str, Any]]:
        return list(self.call("get_trades", market_id=market_id, count=count))

    def recent_blocks(self, count: int = 50) -> list[dict[str, Any]]:
        return list(self.call("get_recent_blocks", count=count))

    def hot_keys(self, height: int | None = None, top: int = 10) -> dict[str, Any]:
        return dict(self.call("get_hot_keys", height=height, top=top))

    def metrics(self) -> str:
        return self._http.get(self.url + "/metrics").text

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(self, *topics: str, timeout: float = 10.0) -> Subscription:
        """Open a WebSocket and subscribe to ``topics`` (``blocks``, ``fills``, ``book``)."""
        return Subscription(
            self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws", list(topics), timeout
        )


class Subscription:
    """Iterate notifications: ``for topic, result in sub: ...``; ``next_message(timeout)`` for one.

    ``dropped`` counts the messages the node has dropped for this connection because it read too
    slowly (the node's ``lagged`` notices, kept up to date by ``next_message``). It only grows; a
    caller that needs every notification compares it before and after a message and, when it
    changed, re-reads what it tracks (``Client.block``, ``Client.book``, ...) instead of trusting
    the stream to be complete.
    """

    def __init__(self, url: str, topics: list[str], timeout: float = 10.0) -> None:
        from websockets.sync.client import connect

        self._ws = connect(url, open_timeout=timeout, max_size=1 << 22)
        self._ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"topics": topics}}))
        answer = json.loads(self._ws.recv(timeout=timeout))
        if "error" in answer:
            self._ws.close()
            err = answer["error"]
            raise RpcClientError(err["code"], err["message"], err.get("data"))
        self.topics = answer["result"]["topics"]
        self.dropped = 0
        #: held while a thread reads the socket: ``close`` drains the backlog only when no other
        #: thread is reading (that one then meets the closed connection, not a concurrent reader)
        self._reading = threading.Lock()

    def next_message(self, timeout: float | None = None) -> tuple[str, Any]:
        """The next notification as (topic, result); raises ``TimeoutError`` after ``timeout``.

        A ``lagged`` notice is not returned: it sets ``dropped`` to the node's running total of
        lost messages (the notice carries the total, not the increment), and the notification
        after it is returned as usual.
        """
        while True:
            if not self._reading.acquire(timeout=-1 if timeout is None else timeout):
                raise TimeoutError("another thread is reading this subscription")
            try:
                raw = self._ws.recv(timeout=timeout)
            finally:
                self._reading.release()
            message = json.loads(raw)
            method = message.get("method")
            if method == "subscription":
                params = message["params"]
                return params["topic"], params["result"]
            if method == "lagged":
                self.dropped = int(message["params"]["dropped"])

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        while True:
            yield self.next_message()

    def close(self) -> None:
        """Close the connection, discarding the notifications not read yet.

        The ``websockets`` connection stops reading its socket while more than ``max_queue``
        received messages are unread (its flow control), so the node's reply to our close frame
        would wait, unread, behind them and ``close`` would only return after its
        ``close_timeout`` (10 s), having given up on the handshake. So a helper thread reads
        and discards the backlog while the handshake runs, which then ends as soon as the node
        replies. A thread reading the subscription meanwhile waits for it and then meets the
        closed connection (``ConnectionClosed``); one already blocked reading drains it instead.
        """
        discarder = threading.Thread(target=self._discard_until_closed, name="subscription-close", daemon=True)
        discarder.start()
        self._ws.close()
        discarder.join()

    def _discard_until_closed(self) -> None:
        from websockets.exceptions import ConnectionClosed

        if not self._reading.acquire(blocking=False):  # another thread is reading: it drains
            return
        try:
            while True:
                self._ws.recv()
        except ConnectionClosed:
            return
        finally:
            self._reading.release()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

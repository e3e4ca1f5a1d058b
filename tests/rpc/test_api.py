"""The API in-process (no producer thread: blocks are produced by the test): bad input of every
kind is answered with a JSON-RPC error or HTTP 413/429, the node keeps serving, and state does not
change. Plus a Hypothesis fuzz of the JSON-RPC endpoint, the OpenAPI description, metrics and
WebSocket subscriptions.
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paraexec.apps.transfers import Transfer
from paraexec.chain import Chain, ChainConfig
from paraexec.chain.mempool import MempoolConfig
from paraexec.chain.node import Node, NodeConfig
from paraexec.crypto import SigningKey
from paraexec.rpc.server import MAX_BODY_BYTES, create_app
from paraexec.state import LmdbStore
from paraexec.transaction import encode_payload, sign, tx_hash

CHAIN = "api-test"
KEYS = [SigningKey.from_seed_text(f"api/{i}") for i in range(8)]


def transfer(key: SigningKey, nonce: int, amount: int = 1, to: int = 0) -> bytes:
    return sign(key, CHAIN, nonce, encode_payload(Transfer(KEYS[to].public_key, amount)))


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    data = tmp_path_factory.mktemp("api") / "chain"
    store = LmdbStore(data)
    Chain.create(store, ChainConfig(CHAIN, "transfers", {"accounts": {k.public_key.hex(): 1000 for k in KEYS}}))
    store.close()
    mempool = MempoolConfig(max_txs=12, max_per_sender=5, max_nonce_ahead=8)
    # signatures checked in a helper process, as ``paraexec node`` does by default (started by
    # the first admission: ``manage_node=False`` never calls ``Node.start``)
    node = Node(NodeConfig(data, block_time=3600, max_block_txs=100, mempool=mempool, verify_processes=1))
    with TestClient(create_app(node, manage_node=False)) as client:
        client.node = node  # type: ignore[attr-defined]
        yield client
    node.stop()


def rpc(client: TestClient, method: str, params=None, req_id=1):
    body = {"jsonrpc": "2.0", "id": req_id, "method": method}
    if params is not None:
        body["params"] = params
    return client.post("/", json=body)


def error_of(resp) -> int:
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and "result" not in body, body
    return body["error"]["code"]


def fingerprint(client: TestClient):
    node = client.node
    return node.reader.height, node.reader.block(node.reader.height).header.state_root, len(node.mempool)


def test_protocol_errors(api):
    before = fingerprint(api)
    assert error_of(api.post("/", content=b"{not json")) == -32700
    assert error_of(api.post("/", content=b"\xff\xfe")) == -32700
    assert error_of(api.post("/", json=[])) == -32600
    assert error_of(api.post("/", json=7)) == -32600
    assert error_of(api.post("/", json={"method": "status", "id": 1})) == -32600  # no "jsonrpc"
    assert error_of(api.post("/", json={"jsonrpc": "2.0", "id": 1, "method": 5})) == -32600
    assert error_of(api.post("/", json={"jsonrpc": "2.0", "id": [1], "method": "status"})) == -32600
    assert error_of(rpc(api, "status", params="x")) == -32600
    assert error_of(rpc(api, "no_such_method")) == -32601
    assert error_of(rpc(api, "get_block", {"height": "ten"})) == -32602
    assert error_of(rpc(api, "get_block", {"height": True})) == -32602
    assert error_of(rpc(api, "get_block", {"hieght": 1})) == -32602  # unknown field
    assert error_of(rpc(api, "get_block", [1, False, "extra"])) == -32602
    assert error_of(rpc(api, "get_block", {"height": 10**6})) == -32602
    assert error_of(rpc(api, "get_block", {"height": 2**64})) == -32602  # no block, not an OverflowError
    assert error_of(rpc(api, "get_receipts", {"height": 2**70})) == -32602
    assert error_of(api.post("/", content=b"[" * 50_000 + b"]" * 50_000)) == -32700  # deeper than the decoder goes
    assert error_of(api.post("/", content=b'{"jsonrpc":"2.0","id":"\xff","method":"status"}')) == -32700  # bad UTF-8
    assert error_of(rpc(api, "get_tx", {"hash": "zz"})) == -32602
    assert error_of(rpc(api, "get_tx", {"hash": "ab"})) == -32602  # wrong length
    assert error_of(rpc(api, "get_tx", {"hash": " " + "ab" * 32})) == -32602  # hex is digits only
    assert error_of(rpc(api, "get_account", {"address": "ab " * 32})) == -32602
    assert error_of(rpc(api, "get_events", {"from_height": 0, "to_height": 10**9})) == -32602
    assert error_of(rpc(api, "get_markets")) == -32601  # transfers chain: no exchange
    huge = api.post("/", content=b"[" + b"1," * MAX_BODY_BYTES + b"1]")
    assert huge.status_code == 413 and error_of(huge) == -32600
    assert api.post("/", json={"jsonrpc": "2.0", "method": "status"}).status_code == 204  # notification
    batch = api.post(
        "/", json=[{"jsonrpc": "2.0", "id": 1, "method": "status"}, {"jsonrpc": "2.0", "id": 2, "method": "x"}]
    )
    answers = {a["id"]: a for a in batch.json()}
    assert "result" in answers[1] and answers[2]["error"]["code"] == -32601
    assert error_of(api.post("/", json=[{"jsonrpc": "2.0", "id": i, "method": "status"} for i in range(101)])) == -32600
    assert fingerprint(api) == before
    assert rpc(api, "status").json()["result"]["chain_id"] == CHAIN


def test_numbers_out_of_range_are_answered_with_the_request_id(api):
    """Well-formed JSON holding a number the decoder does not take (thousands of digits, 1e400)
    is a bad value in that request, answered with its id, not a parse error of the whole body."""
    before = fingerprint(api)
    huge = b"9" * 5000
    body = b'{"jsonrpc":"2.0","id":7,"method":"get_block","params":{"height":' + huge + b"}}"
    answer = api.post("/", content=body).json()
    assert answer["id"] == 7 and answer["error"]["code"] == -32602, answer
    assert "got `NumberOutOfRange`" in answer["error"]["message"]
    body = b'{"jsonrpc":"2.0","id":8,"method":"get_block","params":{"height":1e400}}'
    assert api.post("/", content=body).json()["error"]["code"] == -32602
    body = b'{"jsonrpc":"2.0","id":' + huge + b',"method":"status"}'  # the id itself: not a request
    answer = api.post("/", content=body).json()
    assert answer["id"] is None and answer["error"]["code"] == -32600
    body = (
        b'[{"jsonrpc":"2.0","id":1,"method":"status"},{"jsonrpc":"2.0","id":2,"method":"get_block","params":[-1e999]}]'
    )
    answers = {a["id"]: a for a in api.post("/", content=body).json()}
    assert "result" in answers[1] and answers[2]["error"]["code"] == -32602
    body = b'{"jsonrpc":"2.0","id":9,"method":"status","params":{},"x":1e400}'  # an ignored member
    assert "result" in api.post("/", content=body).json()
    body = b'{"jsonrpc":"2.0","id":9,"method":"status","x":1e400,"y":NaN}'  # not JSON after all
    assert error_of(api.post("/", content=body)) == -32700
    assert error_of(api.post("/", content=b'{"x":1e400, oops}')) == -32700
    # msgspec stops at the first such number: what it would have refused after it still is
    lone = b'{"x":1e400,"jsonrpc":"2.0","id":"\\ud800","method":"status"}'  # a lone surrogate
    assert error_of(api.post("/", content=lone)) == -32700
    cesu = b'{"x":1e400,"jsonrpc":"2.0","id":"\xed\xa0\x80","method":"status"}'  # not UTF-8
    assert error_of(api.post("/", content=cesu)) == -32700
    big = b'{"jsonrpc":"2.0","id":3,"method":"status","x":[' + b"1," * 40_000 + b"1e400]}"  # over 64 KiB
    assert error_of(api.post("/", content=big)) == -32700
    assert fingerprint(api) == before


def test_transaction_errors_leave_state_unchanged(api):
    key = KEYS[1]
    before = fingerprint(api)
    good = transfer(key, 0)
    forged = bytearray(good)
    forged[-1] ^= 1
    assert error_of(rpc(api, "submit_tx", {"tx": bytes(forged).hex()})) == 4  # BAD_SIGNATURE
    assert error_of(rpc(api, "submit_tx", {"tx": "00" * 5000})) == 3  # OVERSIZE
    assert error_of(rpc(api, "submit_tx", {"tx": "c4"})) == 2  # MALFORMED
    assert error_of(rpc(api, "submit_tx", {"tx": sign(key, "other", 0, b"").hex()})) == 5  # WRONG_CHAIN_ID
    assert error_of(rpc(api, "submit_tx", {"tx": 12})) == -32602
    assert fingerprint(api) == before

    ok = rpc(api, "submit_tx", {"tx": good.hex()}).json()["result"]
    assert rpc(api, "get_tx", {"hash": ok["hash"]}).json()["result"]["status"] == "pending"
    info = api.node.produce_once()
    assert info is not None and info.ok == 1
    committed = rpc(api, "get_tx", {"hash": ok["hash"]}).json()["result"]
    assert (committed["status"], committed["height"], committed["index"]) == ("committed", info.height, 0)
    after = fingerprint(api)
    replay = rpc(api, "submit_tx", {"tx": good.hex()})
    assert error_of(replay) == 6 and replay.json()["error"]["data"]["name"] == "REPLAYED_NONCE"
    assert error_of(rpc(api, "submit_tx", {"tx": transfer(key, 0, amount=2).hex()})) == 6
    assert fingerprint(api) == after
    assert rpc(api, "get_account", {"address": key.public_key.hex()}).json()["result"]["nonce"] == 1


def test_flood_beyond_capacity_gets_429(api):
    node = api.node
    before = node.reader.height
    statuses = []
    for i, key in enumerate(KEYS[2:6]):  # 4 senders x 4 txs = 16 > capacity 12
        for nonce in range(4):
            resp = rpc(api, "submit_tx", {"tx": transfer(key, nonce, to=i).hex()})
            statuses.append((resp.status_code, resp.json().get("error", {}).get("code")))
    assert statuses[:12] == [(200, None)] * 12
    assert statuses[12:] == [(429, 20)] * 4
    quota = [rpc(api, "submit_tx", {"tx": transfer(KEYS[6], n).hex()}) for n in range(6)]
    assert [r.status_code for r in quota] == [429] * 6  # pool still full
    batch = rpc(api, "submit_txs", {"txs": [transfer(KEYS[7], 0).hex()]}).json()["result"]["results"]
    assert batch[0]["error"]["name"] == "MEMPOOL_FULL"
    assert node.reader.height == before  # nothing committed by flooding
    node.produce_once()
    assert len(node.mempool) == 0
    quota = [rpc(api, "submit_tx", {"tx": transfer(KEYS[6], n).hex()}) for n in range(6)]
    assert [r.status_code for r in quota] == [200] * 5 + [429]
    assert quota[5].json()["error"]["code"] == 21  # SENDER_QUOTA
    node.produce_once()
    assert rpc(api, "get_nonce", {"address": KEYS[6].public_key.hex()}).json()["result"] == {"committed": 5, "next": 5}


def test_a_malformed_item_of_a_batch_gets_its_own_error(tmp_path):
    """Bad hex, an oversize item or a payload nested too deep to decode (msgspec's
    ``RecursionError``) in ``submit_txs`` is answered per item; the others are admitted."""
    import msgspec

    from paraexec import codec
    from paraexec.transaction import MAX_TX_BYTES, Payload

    store = LmdbStore(tmp_path)
    Chain.create(store, ChainConfig(CHAIN, "transfers", {"accounts": {k.public_key.hex(): 1000 for k in KEYS}}))
    store.close()
    node = Node(NodeConfig(tmp_path))
    with TestClient(create_app(node, manage_node=False)) as client:
        good = transfer(KEYS[1], 0)
        deep = sign(KEYS[2], CHAIN, 0, codec.encode(Payload("Transfer", msgspec.Raw(b"\x91" * 1500 + b"\x00"))))
        txs = ["zz", good.hex(), "00" * (MAX_TX_BYTES + 2), deep.hex()]  # too long to be read at all
        answer = rpc(client, "submit_txs", {"txs": txs})
        assert answer.status_code == 200
        results = answer.json()["result"]["results"]
        assert [(r["hash"], r.get("error", {}).get("name")) for r in results] == [
            (None, "MALFORMED"),
            (tx_hash(good).hex(), None),
            (None, "OVERSIZE"),
            (tx_hash(deep).hex(), "MALFORMED"),
        ]
        assert [r["error"]["code"] for r in (results[0], results[2])] == [2, 3] and len(node.mempool) == 1
        assert "known" not in results[1]
        again = rpc(client, "submit_txs", {"txs": [good.hex(), good.hex()]}).json()["result"]["results"]
        assert again == [{"hash": tx_hash(good).hex(), "known": True}] * 2 and len(node.mempool) == 1
    node.stop()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(
        [
            "status",
            "submit_tx",
            "submit_txs",
            "get_tx",
            "get_nonce",
            "get_account",
            "get_block",
            "get_receipts",
            "get_events",
            "get_recent_blocks",
            "get_hot_keys",
            "get_trades",
            "get_book",
            "nope",
        ]
    ),
    params=json_values,
    req_id=st.none() | st.integers(-5, 5) | st.text(max_size=5) | st.booleans(),
    raw=st.none() | st.binary(max_size=64),
)
def test_fuzz_json_rpc(api, method, params, req_id, raw):
    before = fingerprint(api)
    if raw is not None:
        resp = api.post("/", content=raw)
    else:
        resp = api.post("/", json={"jsonrpc": "2.0", "id": req_id, "method": method, "params": params})
    assert resp.status_code in (200, 429), resp.text
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and (("result" in body) != ("error" in body))
    if "error" in body:
        assert isinstance(body["error"]["code"], int) and isinstance(body["error"]["message"], str)
    assert fingerprint(api) == before  # no garbage admitted to the mempool (no producer runs here)


def test_openapi_metrics_health_dashboard(api):
    spec = api.get("/openapi.json").json()
    assert "post" in spec["paths"]["/"] and "/metrics" in spec["paths"]
    assert "submit_tx" in spec["x-jsonrpc-methods"] and "SubmitTx" in spec["components"]["schemas"]
    text = api.get("/metrics").text
    for name in (
        "paraexec_height",
        "paraexec_tx_per_second",
        "paraexec_executor_speedup",
        "paraexec_re_executions_total",
        "paraexec_mempool_txs",
        "paraexec_signature_fallbacks_total",
    ):
        assert f"\n{name} " in "\n" + text
    assert api.get("/health").json()["ok"]
    node = api.node  # type: ignore[attr-defined]
    node.producing_since = time.monotonic() - 5  # a block 5 s in production: under --stuck-after (15 s)
    assert api.get("/health").status_code == 200
    node.producing_since = time.monotonic() - 16  # a stalled worker (simulated)
    try:
        stuck = api.get("/health")
        assert stuck.status_code == 503 and not stuck.json()["ok"] and stuck.json()["producing_for_s"] >= 16
        assert "in production" in stuck.json()["error"]
    finally:
        node.producing_since = None
    assert api.get("/health").status_code == 200
    codes = rpc(api, "error_codes").json()["result"]
    assert (codes["4"], codes["6"], codes["20"], codes["21"]) == (
        "BAD_SIGNATURE",
        "REPLAYED_NONCE",
        "MEMPOOL_FULL",
        "SENDER_QUOTA",
    )
    assert "paraexec node" in api.get("/").text


def test_websocket_subscriptions(api):
    with api.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"topics": ["nope"]}}))
        assert json.loads(ws.receive_text())["error"]["code"] == -32602
        ws.send_text("{bad")
        assert json.loads(ws.receive_text())["error"]["code"] == -32700
        ws.send_text("[" * 50_000 + "]" * 50_000)
        assert json.loads(ws.receive_text())["error"]["code"] == -32700
        ws.send_bytes(b"\xff\x00")  # a binary frame is read as JSON too, not a dropped connection
        assert json.loads(ws.receive_text())["error"]["code"] == -32700
        ws.send_bytes(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "status"}).encode())
        assert json.loads(ws.receive_text())["result"]["chain_id"] == CHAIN
        ws.send_text(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "subscribe", "params": {"topics": ["blocks"]}}))
        assert json.loads(ws.receive_text())["result"] == {"topics": ["blocks"]}
        ws.send_text(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "status"}))
        assert json.loads(ws.receive_text())["result"]["chain_id"] == CHAIN
        raw = transfer(KEYS[3], api.node.reader.nonce_of(KEYS[3].public_key))
        rpc(api, "submit_tx", {"tx": raw.hex()})
        info = api.node.produce_once()
        note = json.loads(ws.receive_text())
        assert note["method"] == "subscription" and note["params"]["topic"] == "blocks"
        assert note["params"]["result"]["height"] == info.height and note["params"]["result"]["txs"] == 1
        hot = rpc(api, "get_hot_keys", {"height": info.height}).json()["result"]
        assert hot["height"] == info.height


def test_websocket_subscribe_is_checked_as_every_request_is(api):
    """``subscribe``/``unsubscribe`` are the connection's own methods, but their requests are
    checked like the registry's: an id that is not a string, integer or null, or a missing
    ``"jsonrpc": "2.0"``, is -32600; a notification (no id) subscribes without an answer."""
    with api.websocket_connect("/ws") as ws:
        for bad in (
            {"jsonrpc": "2.0", "id": {"x": [1]}, "method": "subscribe", "params": ["blocks"]},
            {"id": 1, "method": "subscribe", "params": ["blocks"]},
        ):
            ws.send_text(json.dumps(bad))
            answer = json.loads(ws.receive_text())
            assert answer["error"]["code"] == -32600 and answer["id"] in (None, 1), answer
        ws.send_text(json.dumps({"jsonrpc": "2.0", "method": "subscribe", "params": ["blocks"]}))  # no answer
        ws.send_text(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "unsubscribe", "params": ["fills"]}))
        assert json.loads(ws.receive_text()) == {"jsonrpc": "2.0", "id": 7, "result": {"topics": ["blocks"]}}
        batch = [  # subscriptions inside a batch, answered in order beside the registry's methods
            {"jsonrpc": "2.0", "id": 8, "method": "subscribe", "params": ["fills"]},
            {"jsonrpc": "2.0", "id": 9, "method": "status"},
            {"jsonrpc": "2.0", "method": "unsubscribe", "params": ["blocks"]},
            [1],
            {"jsonrpc": "2.0", "id": 10, "method": "unsubscribe", "params": ["nope"]},
        ]
        ws.send_text(json.dumps(batch))
        answers = json.loads(ws.receive_text())
        assert answers[0] == {"jsonrpc": "2.0", "id": 8, "result": {"topics": ["blocks", "fills"]}}
        assert answers[1]["id"] == 9 and answers[1]["result"]["chain_id"] == CHAIN
        assert [a["error"]["code"] for a in answers[2:]] == [-32600, -32602] and len(answers) == 4
        assert "unknown topic 'nope': the topics are" in answers[3]["error"]["message"]
        ws.send_text(json.dumps({"jsonrpc": "2.0", "id": 12, "method": "subscribe", "params": [["blocks"]]}))
        assert "unknown topic ['blocks']" in json.loads(ws.receive_text())["error"]["message"]
        ws.send_text(json.dumps({"jsonrpc": "2.0", "id": 11, "method": "subscribe", "params": ["book"]}))
        assert json.loads(ws.receive_text())["result"] == {"topics": ["book", "fills"]}  # blocks left in the batch


def test_get_tx_answers_the_canonical_hash_however_it_was_asked(api):
    """``0x``-prefixed or upper-case hex finds the same transaction and is answered in the one
    form the node uses everywhere (lower-case, no prefix)."""
    raw = transfer(KEYS[4], api.node.reader.nonce_of(KEYS[4].public_key))
    rpc(api, "submit_tx", {"tx": raw.hex()})
    txh = tx_hash(raw).hex()
    for asked in ("0x" + txh, txh.upper(), "0X" + txh.upper()):
        assert rpc(api, "get_tx", {"hash": asked}).json()["result"] == {"hash": txh, "status": "pending"}


def test_a_client_gone_before_its_body_arrived_is_no_error(api, caplog):
    """A client that disconnects mid-body has nobody to answer: the endpoint returns quietly,
    without the ASGI error traceback that anyone could otherwise flood the log with."""
    import asyncio

    messages = [
        {"type": "http.request", "body": b'{"jsonrpc"', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-length", b"100"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    with caplog.at_level("ERROR"):
        asyncio.run(api.app(scope, receive, send))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert sent[0]["status"] == 400


def test_tx_rate_counts_user_transactions_only():
    """An idle exchange node commits only its market ticks: its tx/s gauge reads 0, as its
    ``txs_committed_total`` counter does."""
    import time
    from types import SimpleNamespace

    from paraexec.chain.node import BlockInfo
    from paraexec.rpc.metrics import RATE_WINDOW_S, tx_rate

    def info(txs: int, user_txs: int, header_time: int = 0, produced_at: float | None = None) -> BlockInfo:
        # header times are chain time (here far in the past): the rate goes by commit time
        return BlockInfo(
            1, b"", header_time, txs, txs, user_txs, [], [], [], 0.0, 0.0, 1.0, 0, "sequential", 1, 0, produced_at
        )

    now = time.time()
    assert tx_rate(SimpleNamespace(recent=[info(8, 0, produced_at=now), info(8, 0, produced_at=now)])) == 0.0  # type: ignore[arg-type]
    recent = [info(12, 4, produced_at=now - 1), info(13, 5, produced_at=now)]
    assert tx_rate(SimpleNamespace(recent=recent)) == 9 / RATE_WINDOW_S  # type: ignore[arg-type]
    # blocks read back at start-up (no commit time here) and old ones do not count, whatever their header says
    stale = [info(50, 50, header_time=int(now) + 3600), info(50, 50, produced_at=now - 2 * RATE_WINDOW_S)]
    assert tx_rate(SimpleNamespace(recent=stale + recent)) == 9 / RATE_WINDOW_S  # type: ignore[arg-type]


def test_restarted_node_serves_its_recent_blocks_without_old_stats(tmp_path):
    """After a restart ``get_recent_blocks``/``get_trades`` read the chain's recent history back
    from the store; the old process's execution stats are ``null``, and the gauges that describe
    "the last block" wait for a block this process measured instead of reporting a stored one."""
    store = LmdbStore(tmp_path)
    Chain.create(store, ChainConfig(CHAIN, "transfers", {"accounts": {k.public_key.hex(): 1000 for k in KEYS}}))
    store.close()
    first = Node(NodeConfig(tmp_path))
    first.mempool.admit(transfer(KEYS[1], 0))
    produced = [first.produce_once(), first.produce_once()]
    first.stop()

    node = Node(NodeConfig(tmp_path))
    with TestClient(create_app(node, manage_node=False)) as client:
        blocks = rpc(client, "get_recent_blocks", {"count": 10}).json()["result"]
        assert [(b["height"], b["hash"], b["txs"]) for b in blocks] == [
            (p.height, p.hash.hex(), p.txs) for p in produced if p is not None
        ]
        assert all(b["exec_ms"] is None and b["speedup"] is None and b["executor"] is None for b in blocks)
        text = client.get("/metrics").text
        assert "\nparaexec_executor_speedup 0\n" in text and "\nparaexec_block_exec_seconds 0\n" in text
        info = node.produce_once()
        blocks = rpc(client, "get_recent_blocks", {"count": 10}).json()["result"]
        assert len(blocks) == 3 and blocks[-1]["exec_ms"] == round(info.seconds * 1000, 3)
        assert "\nparaexec_executor_speedup 1.0\n" in client.get("/metrics").text
    node.stop()


def test_a_damaged_stored_block_is_answered_as_store_corrupt(tmp_path):
    """A block damaged on disk outside paraexec: ``get_block`` answers -32001 ``STORE_CORRUPT``
    naming the block (HTTP 500, as the damage is the server's), and the node goes on serving the
    rest of its chain; the damaged bytes are only read, never rewritten."""
    from paraexec.state.lmdb_store import _height_key

    store = LmdbStore(tmp_path)
    Chain.create(store, ChainConfig(CHAIN, "transfers", {"accounts": {k.public_key.hex(): 1000 for k in KEYS}}))
    store.close()
    node = Node(NodeConfig(tmp_path))
    node.mempool.admit(transfer(KEYS[1], 0))
    node.produce_once()
    node.produce_once()
    node.stop()
    store = LmdbStore(tmp_path)
    with store.env.begin(write=True) as txn:
        txn.put(_height_key(1), b"\xc1", db=store._blocks)
    store.close()

    node = Node(NodeConfig(tmp_path))
    with TestClient(create_app(node, manage_node=False)) as client:
        resp = rpc(client, "get_block", {"height": 1})
        assert resp.status_code == 500
        assert error_of(resp) == -32001 and resp.json()["error"]["data"] == {"name": "STORE_CORRUPT"}
        assert resp.json()["error"]["message"].startswith("block 1 cannot be read (MessagePack data is malformed")
        assert [r["ok"] for r in rpc(client, "get_receipts", {"height": 1}).json()["result"]] == [True]
        assert rpc(client, "get_block", {"height": 2}).json()["result"]["height"] == 2
        assert rpc(client, "status").json()["result"]["height"] == 2
    node.stop()


def test_exchange_queries_parse_the_markets_once(tmp_path, monkeypatch):
    """Every exchange query used to parse every market of the config again (~20 ms at 1,024
    markets, the dashboard asking each market's book every 2 s): one parse per node now."""
    from paraexec.exchange import queries
    from paraexec.exchange.genesis import dev_genesis

    store = LmdbStore(tmp_path)
    Chain.create(store, ChainConfig("q", "exchange", dev_genesis(accounts=2, markets=3)))
    store.close()
    parses: list[int] = []
    parse = queries.QueryConfig.__init__

    def counted(self, app_config):
        parses.append(1)
        parse(self, app_config)

    monkeypatch.setattr(queries.QueryConfig, "__init__", counted)
    node = Node(NodeConfig(tmp_path))
    with TestClient(create_app(node, manage_node=False)) as client:
        markets = rpc(client, "get_markets").json()["result"]
        assert [m["market_id"] for m in markets] == [0, 1, 2]
        for market in (0, 1, 2, 1):
            book = rpc(client, "get_book", {"market_id": market}).json()["result"]
            assert book["bids"] == [] and book["asks"] == []
    node.stop()
    assert len(parses) == 1

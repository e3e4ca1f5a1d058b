"""WebSocket subscriptions (``rpc/hub.py`` and the ``/ws`` endpoint of ``rpc/server.py``): the
bounded per-connection queue, the ``lagged`` notice a slow reader gets, answers to calls made over
the socket (never dropped, sent first, bounded), cleanup when a client goes away or a send fails,
unsubscribe and topic filtering, and the SDK's view of ``lagged`` (``Subscription.dropped``) and
its ``close``.

No assertion here depends on timing:

- A reader falls behind only if notifications are queued while its connection's sender cannot
  run (the TestClient's transport never blocks a send). So every burst is fanned out inside one
  synchronous call on the hub's event loop (``burst``): nothing can be sent in between, and
  exactly what the queue has no room for is dropped.
- Where a test needs a connection's sender stuck mid-send (messages queueing behind it), a
  ``SendGate`` holds that connection's sends until the test opens the gate (or makes them fail).
- "Y was not delivered" is shown by order, not by waiting: the hub fans out in the order of
  ``publish`` calls (``call_soon_threadsafe`` runs callbacks in the order they were scheduled) and
  each connection's queue is FIFO, so when the next message is a later-published X, the earlier Y
  was never queued.
- What must happen eventually (a subscriber leaving the hub) is polled with a generous deadline.

One test asserts a duration: closing an SDK ``Subscription`` over a backlog must not hang (it used
to wait out the ``websockets`` close timeout, 10 s); its bound, 3 s, is generous.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.websockets import WebSocket

from paraexec.chain import Chain, ChainConfig
from paraexec.chain.node import Node, NodeConfig
from paraexec.client import Client
from paraexec.client.client import Subscription
from paraexec.crypto import SigningKey
from paraexec.rpc.hub import ANSWERS_SIZE, QUEUE_SIZE, Hub, Subscriber
from paraexec.rpc.server import create_app
from paraexec.state import LmdbStore

CHAIN = "ws-test"
KEY = SigningKey.from_seed_text("ws/0")
DEADLINE = 10.0  # seconds: generous; only ever a limit on waiting, never part of an assertion


def make_node(tmp_path) -> Node:
    """A node whose blocks only the test produces (``manage_node=False``): no notification
    arrives that the test did not publish."""
    data = tmp_path / "chain"
    store = LmdbStore(data)
    Chain.create(store, ChainConfig(CHAIN, "transfers", {"accounts": {KEY.public_key.hex(): 1000}}))
    store.close()
    return Node(NodeConfig(data, block_time=3600))


@pytest.fixture
def api(tmp_path) -> Iterator[TestClient]:
    """One app per test, so the hub's subscriber set holds only this test's connections."""
    node = make_node(tmp_path)
    with TestClient(create_app(node, manage_node=False)) as client:
        yield client
    node.stop()


@pytest.fixture
def loop_errors(api) -> list[dict[str, Any]]:
    """Whatever raises in a callback on the hub's loop (a fan-out, say) is recorded here rather
    than only logged, so a test can assert that nothing did."""
    errors: list[dict[str, Any]] = []
    hub_of(api).loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


def hub_of(client: TestClient) -> Hub:
    return client.app.state.hub


def on_loop(client: TestClient, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on the app's event loop (the hub's, where its state lives); its result or
    its exception."""
    return client.portal.call(fn, *args)


def settle(hub: Hub) -> None:
    """Return once every callback the hub has scheduled so far (``publish``) has run."""
    done = threading.Event()
    hub.loop.call_soon_threadsafe(done.set)
    assert done.wait(DEADLINE)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE}s: {what}"
        time.sleep(0.01)


def next_frame(ws) -> dict[str, Any]:
    """The next ASGI message the server sent (``websocket.send`` or ``websocket.close``), failing
    after ``DEADLINE`` instead of hanging (the TestClient's own ``receive`` waits forever, so a
    server that sends nothing would stall the suite rather than fail the test)."""

    async def next_one() -> dict[str, Any]:
        with anyio.fail_after(DEADLINE):
            return await ws._send_rx.receive()

    return ws.portal.call(next_one)


def receive(ws) -> dict[str, Any]:
    """The next message the server sent, decoded."""
    frame = next_frame(ws)
    assert frame["type"] == "websocket.send", frame
    return json.loads(frame["text"])


def call(ws, method: str, req_id: int, **params: Any) -> None:
    """Send a call without reading its answer."""
    ws.send_text(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params}))


def request(ws, method: str, req_id: int = 1, **params: Any) -> Any:
    call(ws, method, req_id, **params)
    answer = receive(ws)
    assert answer["id"] == req_id, answer
    return answer["result"]


def subscribe(ws, *topics: str) -> list[str]:
    return request(ws, "subscribe", topics=list(topics))["topics"]


def note(topic: str, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"topic": topic, "result": result}}


def lagged(dropped: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "lagged", "params": {"dropped": dropped}}


def burst(hub: Hub, topic: str, seqs: range) -> None:
    """Fan out ``{"seq": n}`` for each n, all in one synchronous call (run it on the hub's loop):
    no connection's sender runs until it returns, so a subscriber's queue holds the first
    ``QUEUE_SIZE`` and drops the rest. (``publish`` schedules this same ``_fanout`` per message.)"""
    for seq in seqs:
        hub._fanout(topic, {"seq": seq})


def test_a_full_queue_keeps_the_oldest_and_counts_what_it_drops():
    """266 offers: the first 256 are queued in order, the 10 newest are lost and counted, and the
    offer never raises or blocks (the producer must never wait for a client). The first message
    queued after the loss comes behind the ``lagged`` notice, which so marks the gap; a notice
    with nothing after it is handed out once the queue has drained (``gap_notice``)."""
    assert QUEUE_SIZE == 256
    sub = Subscriber()
    for seq in range(QUEUE_SIZE + 10):
        sub.offer({"seq": seq})
    assert sub.queue.qsize() == QUEUE_SIZE
    assert sub.dropped == 10
    assert sub.gap_notice() is None  # not while the kept messages are still queued
    assert [sub.queue.get_nowait()["seq"] for _ in range(QUEUE_SIZE)] == list(range(QUEUE_SIZE))
    sub.offer({"seq": "after"})  # room again: the notice, then the message; nothing more counted
    assert [sub.queue.get_nowait() for _ in range(2)] == [lagged(10), {"seq": "after"}] and sub.dropped == 10
    assert sub.gap_notice() is None  # paid
    for seq in range(QUEUE_SIZE + 1):
        sub.offer({"seq": seq})
    while not sub.queue.empty():
        sub.queue.get_nowait()
    assert sub.gap_notice() == lagged(11) and sub.gap_notice() is None


def test_the_sender_takes_answers_first_then_subscribed_notifications_then_the_owed_notice():
    """What the connection's sender sends next (``next_nowait``): any answer before any queued
    notification (a client behind on notifications still gets the answers to its calls at once),
    then the notifications in order (unsubscribing drops the topic's queued ones, and they do not
    come back with a new subscription), then the ``lagged`` notice still owed; None when nothing
    is left."""
    sub = Subscriber()
    sub.topics.update({"blocks", "fills"})
    for seq in range(QUEUE_SIZE + 1):  # one too many: lost, a notice is owed
        sub.offer(note("blocks", {"seq": seq}))
    sub.offer(note("fills", {"seq": "lost"}))  # no room for the notice and it: lost too

    async def answer_two() -> None:
        await sub.answer({"id": 1})
        await sub.answer({"id": 2})

    asyncio.run(answer_two())
    assert [sub.next_nowait(), sub.next_nowait()] == [{"id": 1}, {"id": 2}]
    assert [sub.next_nowait() for _ in range(3)] == [note("blocks", {"seq": n}) for n in range(3)]
    sub.unsubscribe(["blocks"])  # the rest of the blocks backlog is not sent
    assert sub.queue.empty()
    sub.topics.add("blocks")  # subscribed again: only what is published from now on
    assert sub.next_nowait() == lagged(2)
    assert sub.next_nowait() is None and sub.dropped == 2


def test_unsubscribing_drops_only_that_topics_queued_notifications():
    """Another topic's notifications keep their place and order, and the room the dropped ones
    took is free for them again."""
    sub = Subscriber()
    sub.topics.update({"blocks", "fills"})
    for seq in range(3):
        sub.offer(note("blocks", {"seq": seq}))
        sub.offer(note("fills", {"seq": seq}))
    sub.unsubscribe(["blocks"])
    assert sub.topics == {"fills"} and sub.queue.qsize() == 3
    assert [sub.next_nowait() for _ in range(4)] == [*(note("fills", {"seq": n}) for n in range(3)), None]


def test_a_lagging_subscriber_is_told_the_running_total_where_the_gap_is(api):
    """A subscriber 266 messages behind gets the 256 that were kept, in order, then ``lagged``
    with dropped=10 (the 10 after them were lost), then nothing more until a fresh message; a
    later loss of 44 more is reported as the running total, 54, not as 44 (the hub's and README's
    contract)."""
    hub = hub_of(api)
    with api.websocket_connect("/ws") as ws:
        assert subscribe(ws, "blocks") == ["blocks"]
        on_loop(api, burst, hub, "blocks", range(QUEUE_SIZE + 10))
        assert [receive(ws) for _ in range(QUEUE_SIZE)] == [note("blocks", {"seq": n}) for n in range(QUEUE_SIZE)]
        assert receive(ws) == lagged(10)

        on_loop(api, burst, hub, "blocks", range(1000, 1000 + QUEUE_SIZE + 44))
        kept = [receive(ws) for _ in range(QUEUE_SIZE)]
        assert kept == [note("blocks", {"seq": n}) for n in range(1000, 1000 + QUEUE_SIZE)]
        assert receive(ws) == lagged(54)
        # nothing lost since: a fresh message comes with no notice
        hub.publish("blocks", {"seq": "fresh"})
        assert receive(ws) == note("blocks", {"seq": "fresh"})


def test_closing_the_socket_removes_the_subscriber_and_later_publishing_is_harmless(api, loop_errors):
    """A client that disconnects leaves the hub (a dead client must not keep its subscription or
    a queue that fills forever); publishing afterwards raises nothing on the loop and does not
    even build the message, as no one listens."""
    hub = hub_of(api)
    with api.websocket_connect("/ws") as ws:
        assert subscribe(ws, "blocks", "book") == ["blocks", "book"]
        assert on_loop(api, lambda: len(hub.subscribers)) == 1
        ws.close()  # the client's disconnect, with the session (and the server's task) still up
        wait_until(lambda: on_loop(api, lambda: len(hub.subscribers)) == 0, "the closed subscriber leaves the hub")
        assert not on_loop(api, hub.has_subscribers, "blocks")

    built: list[str] = []
    published = hub.published
    hub.publish("blocks", lambda: built.append("blocks") or {"seq": 1})
    hub.publish_lazy("book", lambda: built.append("book") or {"seq": 2})
    hub.publish("fills", {"seq": 3})
    settle(hub)
    assert built == [] and hub.published == published
    assert loop_errors == []


def test_after_unsubscribe_a_topic_is_no_longer_delivered(api):
    """Once the unsubscribe is answered, nothing more arrives on that topic. A second connection
    keeps ``blocks`` subscribed, so the hub does fan those messages out and it is the first
    connection's own topic set that must keep them away."""
    hub = hub_of(api)
    with api.websocket_connect("/ws") as leaver, api.websocket_connect("/ws") as stayer:
        assert subscribe(leaver, "blocks", "fills") == ["blocks", "fills"]
        assert subscribe(stayer, "blocks") == ["blocks"]
        hub.publish("blocks", {"seq": 1})
        assert receive(leaver) == note("blocks", {"seq": 1})  # subscribed: delivered
        assert receive(stayer) == note("blocks", {"seq": 1})

        assert request(leaver, "unsubscribe", req_id=2, topics=["blocks"]) == {"topics": ["fills"]}
        hub.publish("blocks", {"seq": 2})
        hub.publish("fills", {"seq": 3})  # published after: arrives after blocks 2, had it been sent
        assert receive(leaver) == note("fills", {"seq": 3})
        assert receive(stayer) == note("blocks", {"seq": 2})


def test_a_subscriber_gets_nothing_from_another_topic(api):
    """Each connection gets only its topics, even while the hub fans the others out to someone."""
    hub = hub_of(api)
    with api.websocket_connect("/ws") as fills, api.websocket_connect("/ws") as blocks:
        assert subscribe(fills, "fills") == ["fills"]
        assert subscribe(blocks, "blocks") == ["blocks"]
        hub.publish("blocks", {"seq": 1})
        hub.publish("fills", {"seq": 2})
        assert receive(fills) == note("fills", {"seq": 2})
        hub.publish("book", {"seq": 3})  # nobody listens to book: skipped for both
        hub.publish("blocks", {"seq": 4})
        assert receive(blocks) == note("blocks", {"seq": 1})
        assert receive(blocks) == note("blocks", {"seq": 4})


class SendGate:
    """Patched in as the server's ``WebSocket.send_text`` (fixture ``gate``). While closed, it
    holds the sends of one connection, the first to send after ``close`` (its sender is then stuck
    mid-send, everything else queueing behind), and lets other connections' sends through.
    ``fail`` makes that connection's sends raise, as for a client that is gone (all connections'
    if none is held yet). Its state is the loop's: change it through ``on_loop``."""

    def __init__(self, api: TestClient) -> None:
        self.api = api
        self.opened = asyncio.Event()
        self.opened.set()
        self.holding: WebSocket | None = None
        self.waiting = 0  # sends held now
        self.failing = False

    async def send_text(self, real: Callable[..., Any], socket: WebSocket, data: str) -> None:
        if self.holding in (None, socket):
            if not self.opened.is_set():
                self.holding = socket
                self.waiting += 1
                try:
                    await self.opened.wait()
                finally:
                    self.waiting -= 1
            if self.failing:
                raise OSError("the client is gone")
        await real(socket, data)

    def close(self) -> None:
        on_loop(self.api, self.opened.clear)

    def open(self) -> None:
        on_loop(self.api, self.opened.set)

    def fail(self) -> None:
        def fail_and_open() -> None:
            self.failing = True
            self.opened.set()

        on_loop(self.api, fail_and_open)

    def wait_held(self) -> None:
        """Return once a send is held: the sender sends nothing more until the gate opens."""
        wait_until(lambda: on_loop(self.api, lambda: self.waiting) == 1, "a send is held at the gate")

    def hold(self, hub: Hub, topic: str) -> None:
        """Close the gate and publish to ``topic``: the one connection listening to it has its
        sender held mid-send (returns once it is)."""
        self.close()
        hub.publish(topic, {"seq": "held"})
        self.wait_held()


@pytest.fixture
def gate(api, monkeypatch) -> SendGate:
    gate = SendGate(api)
    real = WebSocket.send_text

    async def send_text(socket: WebSocket, data: str) -> None:
        await gate.send_text(real, socket, data)

    monkeypatch.setattr(WebSocket, "send_text", send_text)
    return gate


def only_subscriber(client: TestClient) -> Subscriber:
    subscribers = on_loop(client, lambda: list(hub_of(client).subscribers))
    assert len(subscribers) == 1
    return subscribers[0]


def buffered_calls(ws) -> int:
    """How many of the client's frames the server has not read yet (the TestClient's buffer)."""
    return on_loop(ws, lambda: ws._receive_tx.statistics().current_buffer_used)


def test_an_answer_is_never_dropped_and_goes_ahead_of_the_backlog(api, gate):
    """A call made while the connection's notification queue is full (266 behind: 10 lost) is
    still answered, and its answer is the next thing sent, ahead of the 256 queued notifications;
    the notifications keep their order and the ``lagged`` notice its place and count (answers are
    not counted as lost). It used to share the notification queue and be dropped with them."""
    hub = hub_of(api)
    with api.websocket_connect("/ws") as ws:
        assert subscribe(ws, "blocks") == ["blocks"]
        sub = only_subscriber(api)
        gate.hold(hub, "blocks")
        on_loop(api, burst, hub, "blocks", range(QUEUE_SIZE + 10))
        call(ws, "subscribe", 2, topics=["fills"])
        # the topic is added and the answer queued in one step on the loop (no await between)
        wait_until(lambda: on_loop(api, lambda: "fills" in sub.topics), "the call is answered")
        gate.open()
        assert receive(ws) == note("blocks", {"seq": "held"})  # in flight before the call
        assert receive(ws) == {"jsonrpc": "2.0", "id": 2, "result": {"topics": ["blocks", "fills"]}}
        assert [receive(ws) for _ in range(QUEUE_SIZE)] == [note("blocks", {"seq": n}) for n in range(QUEUE_SIZE)]
        assert receive(ws) == lagged(10)


def test_a_client_that_calls_without_reading_stalls_only_itself(api, gate):
    """A connection whose sender is stuck gets ``ANSWERS_SIZE + 5`` calls: the server queues
    ``ANSWERS_SIZE`` answers, waits to queue the next and reads no further call (memory stays
    bounded), while another connection is served as usual and publishing does not wait. Once the
    sender moves again every call is answered, in order, none lost."""
    hub = hub_of(api)
    calls = ANSWERS_SIZE + 5
    with api.websocket_connect("/ws") as stalled:
        assert subscribe(stalled, "fills") == ["fills"]
        sub = only_subscriber(api)
        with api.websocket_connect("/ws") as other:
            assert subscribe(other, "blocks") == ["blocks"]
            gate.hold(hub, "fills")  # only ``stalled`` listens: its sender is held
            for n in range(calls):
                call(stalled, "subscribe", 10 + n, topics=["fills"])
            # read: ANSWERS_SIZE answered and queued, one more answered and waiting for room
            unread = calls - ANSWERS_SIZE - 1
            wait_until(lambda: buffered_calls(stalled) == unread, "the server stops reading calls")
            hub.publish("blocks", {"seq": 1})
            hub.publish("fills", {"seq": 2})
            assert receive(other) == note("blocks", {"seq": 1})  # served meanwhile
            assert buffered_calls(stalled) == unread and on_loop(api, sub.answers.qsize) == ANSWERS_SIZE

            gate.open()
            assert receive(stalled) == note("fills", {"seq": "held"})
            answers = [receive(stalled) for _ in range(calls)]
            assert [a["id"] for a in answers] == [10 + n for n in range(calls)]
            assert all(a["result"] == {"topics": ["fills"]} for a in answers)
            assert receive(stalled) == note("fills", {"seq": 2})
            assert sub.dropped == 0


def test_once_unsubscribe_is_answered_no_queued_notification_of_the_topic_follows(api, gate):
    """Answers go ahead of queued notifications, so notifications of a topic queued before its
    ``unsubscribe`` was answered would otherwise follow the answer: they are not sent. Other
    topics' queued notifications still are."""
    hub = hub_of(api)
    with api.websocket_connect("/ws") as ws:
        assert subscribe(ws, "blocks", "fills") == ["blocks", "fills"]
        sub = only_subscriber(api)
        gate.hold(hub, "blocks")
        hub.publish("blocks", {"seq": 1})
        hub.publish("fills", {"seq": 2})
        call(ws, "unsubscribe", 2, topics=["blocks"])
        wait_until(lambda: on_loop(api, lambda: sub.topics == {"fills"}), "the unsubscribe is answered")
        gate.open()
        assert receive(ws) == note("blocks", {"seq": "held"})  # in flight before the call
        assert receive(ws) == {"jsonrpc": "2.0", "id": 2, "result": {"topics": ["fills"]}}
        assert receive(ws) == note("fills", {"seq": 2})


def test_a_send_that_fails_closes_the_connection_and_removes_the_subscriber(api, gate):
    """A failed send (the client is gone) closes the socket and takes the subscriber out of the
    hub at once, without waiting for the client to answer the close (this client never does)."""
    hub = hub_of(api)
    with api.websocket_connect("/ws") as ws:
        assert subscribe(ws, "blocks") == ["blocks"]
        gate.fail()
        hub.publish("blocks", {"seq": 1})
        assert next_frame(ws)["type"] == "websocket.close"
        wait_until(lambda: on_loop(api, lambda: len(hub.subscribers)) == 0, "the subscriber leaves the hub")


def test_a_send_that_fails_ends_a_connection_whose_reader_waits_for_room(api, gate):
    """The sender fails while the reader waits for room among the answers (which only the sender
    makes): the connection still ends, the reader does not wait forever, the subscriber leaves."""
    hub = hub_of(api)
    with api.websocket_connect("/ws") as ws:
        assert subscribe(ws, "blocks") == ["blocks"]
        sub = only_subscriber(api)
        gate.hold(hub, "blocks")
        for n in range(ANSWERS_SIZE + 3):
            call(ws, "subscribe", 10 + n, topics=["blocks"])
        wait_until(lambda: buffered_calls(ws) == 2 and on_loop(api, sub.answers.full), "the reader waits for room")
        gate.fail()
        assert next_frame(ws)["type"] == "websocket.close"
        wait_until(lambda: on_loop(api, lambda: len(hub.subscribers)) == 0, "the subscriber leaves the hub")


class ScriptedSocket:
    """Stands in for the ``websockets`` connection: ``recv`` returns the given frames in order."""

    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self.frames = [json.dumps(f) for f in frames]
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)

    def recv(self, timeout: float | None = None) -> str:
        if not self.frames:
            raise TimeoutError
        return self.frames.pop(0)

    def close(self) -> None:
        pass


def test_sdk_subscription_records_the_running_total_of_lagged_notices(monkeypatch):
    """``next_message`` skips a ``lagged`` notice but records its count in ``dropped``, set (not
    summed: the node sends the running total) and only changed by a notice; the notification
    after a notice is returned as usual."""
    import websockets.sync.client

    frames = [
        {"jsonrpc": "2.0", "id": 1, "result": {"topics": ["blocks"]}},
        note("blocks", {"seq": 0}),
        lagged(10),
        note("blocks", {"seq": 1}),
        note("blocks", {"seq": 2}),
        lagged(54),
        note("blocks", {"seq": 3}),
    ]
    monkeypatch.setattr(websockets.sync.client, "connect", lambda *a, **k: ScriptedSocket(frames))
    sub = Subscription("ws://node/ws", ["blocks"])
    assert sub.topics == ["blocks"] and sub.dropped == 0
    seen = []
    for _ in range(4):
        topic, result = sub.next_message(timeout=1)
        seen.append((topic, result["seq"], sub.dropped))
    assert seen == [("blocks", 0, 0), ("blocks", 1, 10), ("blocks", 2, 10), ("blocks", 3, 54)]


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, Hub]]:
    """The app on a real loopback socket (uvicorn in a thread), for the SDK's WebSocket client:
    its URL and hub."""
    node = make_node(tmp_path)
    app = create_app(node, manage_node=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "uvicorn starts")
        assert server.started
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.hub
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
        node.stop()
        sock.close()


def on_served_loop(hub: Hub, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on the served app's event loop; its result."""

    async def run() -> Any:
        return fn(*args)

    return asyncio.run_coroutine_threadsafe(run(), hub.loop).result(DEADLINE)


def test_sdk_subscription_counts_what_a_real_node_dropped(served):
    """End to end through the SDK: after a burst 10 past the node's queue, the next notification
    comes with ``dropped == 10``; after a second burst, 54 (the running total)."""
    url, hub = served

    def burst_on_loop(seqs: range) -> None:
        on_served_loop(hub, burst, hub, "blocks", seqs)

    with Client(url) as client, client.subscribe("blocks") as sub:
        assert sub.dropped == 0
        burst_on_loop(range(QUEUE_SIZE + 10))
        got = [sub.next_message(timeout=DEADLINE) for _ in range(QUEUE_SIZE)]
        assert got == [("blocks", {"seq": n}) for n in range(QUEUE_SIZE)] and sub.dropped == 0  # the kept ones
        burst_on_loop(range(100, 101))
        assert sub.next_message(timeout=DEADLINE) == ("blocks", {"seq": 100}) and sub.dropped == 10  # past the gap

        burst_on_loop(range(1000, 1000 + QUEUE_SIZE + 44))
        rest = [sub.next_message(timeout=DEADLINE) for _ in range(QUEUE_SIZE)]
        assert rest == [("blocks", {"seq": n}) for n in range(1000, 1000 + QUEUE_SIZE)] and sub.dropped == 10
        burst_on_loop(range(2000, 2001))
        assert sub.next_message(timeout=DEADLINE) == ("blocks", {"seq": 2000}) and sub.dropped == 54


def test_closing_an_sdk_subscription_over_an_unread_backlog_is_prompt(served):
    """``Subscription.close`` with 255 notifications unread returns at once (well within 3 s),
    and the node drops the connection. The ``websockets`` client stops reading its socket while
    more than ``max_queue`` (16) messages are unread, so the node's reply to the close used to
    sit unread behind the backlog, and ``close`` waited out its 10 s close timeout."""
    url, hub = served
    with Client(url) as client:
        sub = client.subscribe("blocks")
        on_served_loop(hub, burst, hub, "blocks", range(QUEUE_SIZE - 1))
        node_side = on_served_loop(hub, lambda: next(iter(hub.subscribers)))
        wait_until(lambda: on_served_loop(hub, node_side.queue.empty), "the node has sent the backlog")
        started = time.monotonic()
        sub.close()
        assert time.monotonic() - started < 3.0
        wait_until(lambda: on_served_loop(hub, lambda: len(hub.subscribers)) == 0, "the node drops the connection")


def test_a_lazy_message_that_fails_to_build_is_logged_and_delivers_nothing(api, caplog):
    """``publish_lazy`` builds off the loop; a build that raises is logged (not lost as "Task
    exception was never retrieved"), its task is not kept, and the subscriber gets the next
    message as usual."""
    hub = hub_of(api)

    def broken() -> Any:
        raise ValueError("no book")

    with api.websocket_connect("/ws") as ws, caplog.at_level("ERROR", logger="paraexec.rpc.hub"):
        assert subscribe(ws, "book") == ["book"]
        hub.publish_lazy("book", broken)
        hub.publish_lazy("book", lambda: {"seq": "built"})
        assert receive(ws) == note("book", {"seq": "built"})
        wait_until(lambda: not hub._building, "the tasks are released")
    assert any("building a published message failed" in r.getMessage() for r in caplog.records)

"""The ASGI app (FastAPI on uvicorn) that fronts a ``Node``.

Routes:

- ``POST /`` (also ``/rpc``): JSON-RPC 2.0, single or batch (see ``jsonrpc``). Bodies over
  ``MAX_BODY_BYTES`` get HTTP 413 with a -32600 error; a full mempool gets HTTP 429.
  Handlers run on the thread pool (reads are LMDB snapshots, admission verifies signatures
  with the GIL released), so the event loop only parses and routes.
- ``GET /ws``: WebSocket. Send ``{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params":
  {"topics": [...]}}`` (topics: ``blocks``, ``fills``, ``book``; a JSON-RPC request like any other,
  so without an ``id`` it subscribes unanswered; also as an item of a batch) and receive
  ``{"method": "subscription", "params": {"topic", "result"}}`` notifications; any other JSON-RPC
  method may be called over the socket as well (its answer is never dropped, and goes ahead of
  the notifications queued for the client).
- ``GET /metrics``: Prometheus text. ``GET /``: the dashboard. ``GET /health``: liveness.
- ``GET /openapi.json``: OpenAPI 3 description, with every method's params schema.

Lifecycle: the node's producer starts in the app's lifespan and stops in its shutdown, which
uvicorn runs on SIGINT/SIGTERM before exiting: the block in progress finishes and commits,
then the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import msgspec
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..chain.node import BlockInfo, Node
from . import dashboard, metrics
from .hub import TOPICS, Hub, Subscriber
from .jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    Registry,
    RpcError,
    decode_out_of_range,
    envelope_error,
    handle_one,
    invalid_params,
    jsonable,
    response,
)
from .methods import FILL_EVENTS, GetBook, Methods, block_info_json, market_of

MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 100
log = logging.getLogger("paraexec.rpc")
_json = msgspec.json.Encoder()
Answerer = Callable[[str | bytes], Awaitable[Any]]  # a WebSocket call's text -> its reply (None: none owed)


def _parse(data: str | bytes) -> Any:
    """A request body as JSON, or the ``PARSE_ERROR`` to answer: malformed JSON, invalid UTF-8
    inside a string (``UnicodeDecodeError``, a ``ValueError`` like msgspec's ``DecodeError``) or
    nesting deeper than the decoder's recursion limit (``RecursionError``). Well-formed JSON with
    a number out of msgspec's range is decoded again with the number as a ``NumberOutOfRange`` marker,
    so its request is answered with its id (``jsonrpc.NumberOutOfRange``)."""
    try:
        try:
            return msgspec.json.decode(data)
        except msgspec.ValidationError:
            return decode_out_of_range(data)
    except (ValueError, RecursionError) as exc:
        return RpcError(PARSE_ERROR, f"parse error: {type(exc).__name__}: {exc}"[:300])


def _json_response(payload: Any, status: int = 200) -> Response:
    return Response(_json.encode(payload), status_code=status, media_type="application/json")


def handle_payload(registry: Registry, payload: Any) -> tuple[Any, int]:
    """Answer a decoded JSON-RPC payload (request or batch): (response body or None, HTTP status)."""
    on_internal = lambda exc: log.exception("internal error in RPC handler", exc_info=exc)  # noqa: E731
    if isinstance(payload, list):
        if not payload or len(payload) > MAX_BATCH:
            err = RpcError(INVALID_REQUEST, f"a batch holds 1..{MAX_BATCH} requests")
            return response(None, error=err), 200
        answers = [handle_one(registry, req, on_internal)[0] for req in payload]
        kept = [a for a in answers if a is not None]
        return (kept or None), 200
    return handle_one(registry, payload, on_internal)


def create_app(node: Node, manage_node: bool = True) -> FastAPI:
    """The API for ``node``; with ``manage_node`` the app starts and stops the node's producer."""
    methods = Methods(node)
    registry = methods.registry
    hub = Hub()
    exchange = node.chain_config.app == "exchange"

    def on_block(info: BlockInfo) -> None:  # producer thread: schedule, never wait
        hub.publish("blocks", lambda: block_info_json(info))
        fills = [{"index": i, "name": n, **attrs} for i, n, attrs in info.events if n in FILL_EVENTS]
        if fills:
            hub.publish("fills", lambda: {"height": info.height, "time": info.time, "fills": jsonable(fills)})
        if exchange:
            touched = sorted({m for _, _, a in info.events if (m := market_of(a)) is not None})
            if touched:
                hub.publish_lazy("book", lambda: book_update(info.height, touched))

    def book_update(height: int, markets: list[int]) -> dict[str, Any]:
        return {"height": height, "books": {str(m): methods.get_book(GetBook(m, 20)) for m in markets}}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        node.listeners.append(on_block)
        if manage_node:
            node.start()
        try:
            yield
        finally:
            node.listeners.remove(on_block)
            if manage_node:
                await run_in_threadpool(node.stop)

    app = FastAPI(title="paraexec node", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.node = node
    app.state.hub = hub
    app.state.registry = registry

    request_schema = {
        "type": "object",
        "required": ["jsonrpc", "method"],
        "properties": {
            "jsonrpc": {"type": "string", "enum": ["2.0"]},
            "method": {"type": "string", "enum": sorted(registry.methods)},
            "params": {"oneOf": [{"type": "object"}, {"type": "array"}]},
            "id": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        },
    }
    rpc_openapi = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [request_schema, {"type": "array", "items": request_schema, "maxItems": MAX_BATCH}]
                    }
                }
            },
        },
        "responses": {
            "200": {"description": "JSON-RPC response (result or error)"},
            "413": {"description": "body larger than 1 MiB (JSON-RPC error -32600)"},
            "429": {"description": "mempool full (JSON-RPC error 20/21)"},
        },
    }

    async def rpc_endpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return _json_response(response(None, error=RpcError(INVALID_REQUEST, "request body too large")), 413)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return _json_response(
                        response(None, error=RpcError(INVALID_REQUEST, "request body too large")), 413
                    )
                chunks.append(chunk)
        except ClientDisconnect:  # gone before its body arrived: nobody to answer, nothing to log
            return Response(status_code=400)
        payload = _parse(b"".join(chunks))
        if isinstance(payload, RpcError):
            return _json_response(response(None, error=payload))
        answer, status = await run_in_threadpool(handle_payload, registry, payload)
        if answer is None:
            return Response(status_code=204)
        return _json_response(answer, status)

    app.add_api_route("/", rpc_endpoint, methods=["POST"], openapi_extra=rpc_openapi, summary="JSON-RPC 2.0")
    app.add_api_route("/rpc", rpc_endpoint, methods=["POST"], openapi_extra=rpc_openapi, summary="JSON-RPC 2.0")

    @app.get("/", response_class=HTMLResponse, summary="live dashboard")
    async def dashboard_page() -> HTMLResponse:
        return HTMLResponse(dashboard.PAGE)

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics_page() -> PlainTextResponse:
        text = await run_in_threadpool(metrics.render, node, hub.published)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.get("/health", summary="liveness: producing, and no block stuck in production")
    async def health() -> JSONResponse:
        running = node.running or not manage_node
        ok = running and not node.stuck
        body: dict[str, Any] = {
            "ok": ok,
            "height": node.reader.height,
            "producing_for_s": round(node.producing_for(), 3),
        }
        if running and not ok:
            body["error"] = "a block has been in production for longer than it should (a stalled executor?)"
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.websocket("/ws")
    async def websocket(socket: WebSocket) -> None:
        await socket.accept()
        sub = Subscriber()
        hub.subscribers.add(sub)
        try:
            await serve_connection(socket, sub, lambda data: ws_request(data, sub))
        finally:
            hub.subscribers.discard(sub)

    async def ws_request(data: str | bytes, sub: Subscriber) -> Any:
        """One WebSocket call's answer (None: none owed). ``subscribe`` and ``unsubscribe`` are
        the connection's own methods, answered here, alone or as items of a batch; everything
        else goes to the registry as over HTTP."""
        req = _parse(data)
        if isinstance(req, RpcError):
            return response(None, error=req)
        if is_subscription(req):
            return subscription_answer(req, sub)
        if isinstance(req, list) and 0 < len(req) <= MAX_BATCH and any(is_subscription(r) for r in req):
            answers = []
            for item in req:  # in order: a subscription takes effect before the items after it
                if is_subscription(item):
                    answers.append(subscription_answer(item, sub))
                elif not isinstance(item, dict):  # no batch inside a batch
                    answers.append(envelope_error(item))
                else:
                    answers.append((await run_in_threadpool(handle_payload, registry, item))[0])
            return [a for a in answers if a is not None] or None
        answer, _status = await run_in_threadpool(handle_payload, registry, req)
        return answer

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=__doc__)
            params = {name: m.params for name, m in registry.methods.items()}
            _, components = msgspec.json.schema_components(
                list(params.values()), ref_template="#/components/schemas/{name}"
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            schema["x-jsonrpc-methods"] = {
                name: {"params": {"$ref": f"#/components/schemas/{p.__name__}"}, "doc": registry.methods[name].doc}
                for name, p in params.items()
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


async def serve_connection(socket: WebSocket, sub: Subscriber, answer: Answerer) -> None:
    """Run one WebSocket connection: read its calls (``answer`` gives each one's reply, None for
    a notification) and send ``sub``'s answers and notifications, until the client disconnects
    or a send fails. Either way the other half is cancelled, so the connection ends at once: the
    reader may be waiting for room among ``sub``'s answers, which a dead sender would never
    make, and a dead client must not keep its subscription."""
    tasks = [asyncio.create_task(read_calls(socket, sub, answer)), asyncio.create_task(send_messages(socket, sub))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # wait for both to finish; not ``gather``: were this task cancelled meanwhile (the server
        # shutting down), gather would raise its children's CancelledError in place of this
        # task's own, which the canceller (an anyio cancel scope) then fails to recognise
        await asyncio.wait(tasks)
    for task in done:
        task.result()  # an unexpected failure surfaces to the server's log, not lost in the task


async def read_calls(socket: WebSocket, sub: Subscriber, answer: Answerer) -> None:
    """Answer the client's calls until it disconnects. Each answer waits for room in ``sub``'s
    answers queue: a client that calls without reading stops being read, stalling only itself."""
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            # a text frame, or a binary one holding the same JSON (never a crash on either)
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            reply = await answer(data)
            if reply is not None:
                await sub.answer(reply)
    except (WebSocketDisconnect, RuntimeError):  # RuntimeError: receive on a socket already closed
        return


async def send_messages(socket: WebSocket, sub: Subscriber) -> None:
    """Send ``sub``'s messages (answers first, then notifications, the ``lagged`` notice where
    some were lost) as they come. A send that fails (the client is gone) closes the socket and
    returns, which ends the connection (``serve_connection``)."""
    try:
        while True:
            message = await sub.next()
            await socket.send_text(_json.encode(message).decode())
    except Exception:  # noqa: BLE001 - any failure to send: the connection is over
        with suppress(Exception):
            await socket.close()


def is_subscription(req: Any) -> bool:
    return isinstance(req, dict) and req.get("method") in ("subscribe", "unsubscribe")


def subscription_answer(req: dict[str, Any], sub: Subscriber) -> dict[str, Any] | None:
    """Subscribe or unsubscribe ``sub``, the request checked as the registry's are
    (``envelope_error``); the answer, or None for a notification."""
    invalid = envelope_error(req)
    if invalid is not None:
        return invalid
    try:
        topics = subscription_topics(req.get("params"))
    except RpcError as exc:
        answer = response(req.get("id"), error=exc)
    else:
        if req["method"] == "subscribe":
            sub.topics.update(topics)
        else:
            sub.unsubscribe(topics)
        answer = response(req.get("id"), {"topics": sorted(sub.topics)})
    return answer if "id" in req else None


def subscription_topics(params: Any) -> list[str]:
    if isinstance(params, dict):
        topics = params.get("topics", params.get("topic"))
    elif isinstance(params, list):
        topics = params
    else:
        topics = None
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, list) or not topics:
        raise invalid_params(f"topics must be a non-empty list of {list(TOPICS)}")
    unknown = [t for t in topics if not isinstance(t, str) or t not in TOPICS]
    if unknown:
        raise invalid_params(f"unknown topic {unknown[0]!r}: the topics are {list(TOPICS)}")
    return topics


def serve(node: Node, sockets: list[socket.socket], log_level: str = "warning") -> None:
    """Run node and API on the bound ``sockets`` until SIGINT/SIGTERM; the node stops cleanly in
    the app's shutdown."""
    import signal
    from contextlib import contextmanager

    import uvicorn

    class QuietServer(uvicorn.Server):
        """Handles SIGINT/SIGTERM as a graceful shutdown and exits normally afterwards (status 0).

        uvicorn re-raises the captured signal once it has shut down; we have already stopped the
        node cleanly by then, so a plain return is the honest outcome.
        """

        @contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        create_app(node),
        log_level=log_level.lower(),
        ws_max_size=MAX_BODY_BYTES,
        timeout_graceful_shutdown=3,
        access_log=False,
    )
    server = QuietServer(config)

    def halt(_: BaseException) -> None:  # producer thread: uvicorn polls the flag
        server.should_exit = True

    node.on_halt = halt
    server.run(sockets=sockets)

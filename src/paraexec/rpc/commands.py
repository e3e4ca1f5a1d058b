"""``paraexec node``: run a single-producer node with its API (registered into the CLI)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from ..execution.registry import MAX_WORKERS


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def listen(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address ``host`` resolves to (``localhost``: ::1 and 127.0.0.1), for
    uvicorn to serve on. Bound before the node starts: uvicorn runs the app's lifespan (which
    starts block production) before binding its own, so an address in use would otherwise fail
    only after the node had produced blocks. An address family the machine lacks is skipped; any
    other failure (an address in use) closes them all and raises."""
    # resolved as asyncio resolves (proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on such
    # sockets; without it every response waited ~40 ms for a delayed ACK)
    resolved = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    skipped: OSError | None = None
    # "::" alone stays dual-stack (the system default); with an IPv4 address too, each family binds its own
    both_families = {info[0] for info in resolved} >= {socket.AF_INET, socket.AF_INET6}
    try:
        for family, kind, proto, _, address in dict.fromkeys(resolved):
            if port == 0 and sockets:  # one port for every address
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:  # the machine lacks this family
                if exc.errno != errno.EAFNOSUPPORT:
                    raise
                skipped = exc
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and both_families:  # IPv4 gets its own socket here
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
            except OSError as exc:
                sock.close()
                if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    raise
                skipped = exc
                continue
            sockets.append(sock)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise skipped or OSError(errno.EADDRNOTAVAIL, f"{host} resolves to no address")
    return sockets


def register(app: typer.Typer) -> None:
    @app.command()
    def node(
        data: Annotated[Path, typer.Option("--data", help="chain store directory (run `paraexec init` first)")],
        rpc: Annotated[str, typer.Option("--rpc", help="HOST:PORT for the JSON-RPC/WebSocket API")] = "127.0.0.1:8545",
        executor: Annotated[str, typer.Option(help="block executor (see `paraexec executors`)")] = "sequential",
        workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="executor workers")] = 1,
        block_time: Annotated[float, typer.Option(min=0.01, max=86_400, help="seconds between blocks")] = 1.0,
        max_block_txs: Annotated[int, typer.Option(min=1, help="user transactions per block")] = 1000,
        mempool_size: Annotated[int, typer.Option(min=1, help="mempool capacity (transactions)")] = 20_000,
        sender_quota: Annotated[int, typer.Option(min=1, help="pending transactions per sender")] = 256,
        mempool_ttl: Annotated[int, typer.Option(min=1, help="blocks before a pending entry expires")] = 120,
        empty_blocks: Annotated[bool, typer.Option(help="produce blocks when the mempool is empty")] = True,
        verify_processes: Annotated[
            int,
            typer.Option(
                min=0,
                max=16,
                help="helper processes that check submitted signatures (0: threads of the node, slowed by block execution)",
            ),
        ] = 1,
        stuck_after: Annotated[
            float,
            typer.Option(
                min=0,
                max=86_400,
                help="/health answers 503 once a block has been in production this long, seconds (0: never)",
            ),
        ] = 15.0,
        log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
    ) -> None:
        """Run a node: mempool, block production every --block-time, API on --rpc (SIGINT/SIGTERM stop it)."""
        from rich.console import Console
        from uvicorn.config import LOG_LEVELS

        from ..chain.mempool import MempoolConfig
        from ..chain.node import Node, NodeAlreadyRunning, NodeConfig
        from ..cli import must_know_executor
        from ..cli_errors import fail, must_hold_chain
        from ..errors import IncompatibleStore
        from .server import serve

        console = Console(stderr=True)
        host, port = parse_listen(rpc)
        must_know_executor(executor)
        if log_level.lower() not in LOG_LEVELS:
            fail(f"unknown log level {log_level!r} (available: {', '.join(LOG_LEVELS)})", 2)
        must_hold_chain(data)
        try:  # before the node exists: an address it cannot serve on must not produce a block
            sockets = listen(host, port)
        except OSError as exc:
            fail(f"cannot listen on {rpc}: {exc}")
        mempool = MempoolConfig(
            max_txs=mempool_size,
            max_per_sender=sender_quota,
            max_nonce_ahead=max(sender_quota, 1),
            ttl_blocks=mempool_ttl,
            verify_threads=2,
        )
        config = NodeConfig(
            data,
            executor,
            workers,
            block_time,
            max_block_txs,
            empty_blocks,
            mempool,
            verify_processes=verify_processes,
            stuck_after=stuck_after,
        )
        try:
            node_ = Node(config)
        except (NodeAlreadyRunning, IncompatibleStore) as exc:
            for sock in sockets:
                sock.close()
            fail(str(exc), 2 if isinstance(exc, IncompatibleStore) else 1)
        cfg = node_.chain_config
        console.print(
            f"node [bold]{cfg.chain_id}[/] ({cfg.app}) at height {node_.chain.height}, "
            f"{executor} x{workers}, block time {block_time}s; API http://{url_host(host)}:{port}/ (dashboard), ws /ws",
            highlight=False,
        )
        serve(node_, sockets, log_level)
        if node_.error is not None:  # block production stopped: exit non-zero, for a supervisor
            error = node_.error
            fail(f"block production stopped at height {node_.final_height}: {type(error).__name__}: {error}")
        console.print(f"node stopped cleanly at height {node_.final_height}")

"""``paraexec node`` argument handling (the serving path is covered by the end-to-end tests)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from paraexec.cli import app
from paraexec.rpc.commands import parse_listen, url_host


def test_parse_listen():
    assert parse_listen("127.0.0.1:8545") == ("127.0.0.1", 8545)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8545", "host:", "host:0", "host:70000", "host:x"):
        with pytest.raises(typer.BadParameter):
            parse_listen(bad)
    # the address the node prints back: IPv6 in brackets, as a URL needs it
    assert [url_host(parse_listen(t)[0]) for t in ("[::1]:1", "127.0.0.1:1", "localhost:1")] == [
        "[::1]",
        "127.0.0.1",
        "localhost",
    ]


def test_node_refuses_a_directory_without_a_chain(tmp_path):
    result = CliRunner().invoke(app, ["node", "--data", str(tmp_path / "none"), "--rpc", "127.0.0.1:1"])
    assert result.exit_code == 1 and "paraexec init" in result.output


def test_node_refuses_bad_options_before_producing_a_block(tmp_path):
    """An address in use, an unknown executor or log level: a clear error, and no block."""
    import socket

    from paraexec.state import LmdbStore

    data = tmp_path / "chain"
    assert CliRunner().invoke(app, ["init", "--data", str(data)]).exit_code == 0
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        cases = [
            (["--rpc", f"127.0.0.1:{port}"], 1, "cannot listen"),
            (["--rpc", "999.1.1.1:18602"], 1, "cannot listen"),
            (["--executor", "bogus"], 2, "unknown executor"),
            (["--log-level", "bogus"], 2, "unknown log level"),
        ]
        for extra, code, message in cases:
            result = CliRunner().invoke(app, ["node", "--data", str(data), "--block-time", "0.01", *extra])
            assert result.exit_code == code and message in result.output, (extra, result.output)
    finally:
        taken.close()
    store = LmdbStore(data, readonly=True)
    assert store.height == 0  # the genesis block only
    store.close()


def test_listen_binds_a_tcp_socket_asyncio_sets_nodelay_on():
    """``listen`` resolves like asyncio (proto IPPROTO_TCP): asyncio sets TCP_NODELAY only on such
    sockets, and a socket of proto 0 made every API response wait ~40 ms for a delayed ACK."""
    import socket

    from paraexec.rpc.commands import listen

    [sock] = listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP and sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_listen_binds_every_address_of_a_name_on_one_port(monkeypatch):
    """A name that resolves to ::1 and 127.0.0.1 (``localhost`` on most machines) is served on
    both, on one port; where the machine has no IPv6, that address is skipped."""
    import socket

    from paraexec.rpc import commands

    tcp = (socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
    both = [(socket.AF_INET6, *tcp, ("::1", 0, 0, 0)), (socket.AF_INET, *tcp, ("127.0.0.1", 0))]
    monkeypatch.setattr(commands.socket, "getaddrinfo", lambda *args, **kwargs: both)
    sockets = commands.listen("localhost", 0)
    try:
        assert len({s.getsockname()[1] for s in sockets}) == 1
        assert {s.family for s in sockets} == (
            {socket.AF_INET6, socket.AF_INET} if ipv6_loopback() else {socket.AF_INET}
        )
        for sock in sockets:  # each one accepts a connection
            sock.listen()
            with socket.socket(sock.family) as client:
                client.settimeout(2)
                client.connect(sock.getsockname())
    finally:
        for sock in sockets:
            sock.close()


def test_listen_on_the_ipv6_wildcard_alone_stays_dual_stack():
    """``--rpc [::]:PORT`` resolves to one IPv6 address; its socket keeps the system's dual-stack
    default, so IPv4 clients still reach it (only a host with both families splits them)."""
    import socket

    from paraexec.rpc.commands import listen

    if not ipv6_loopback():
        pytest.skip("no IPv6 on this machine")
    with socket.socket(socket.AF_INET6) as fresh:
        default = fresh.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    [sock] = listen("::", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == default
    finally:
        sock.close()


def test_listen_refuses_a_port_in_use_on_any_address():
    import socket

    from paraexec.rpc.commands import listen

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError):
            listen("localhost", taken.getsockname()[1])
    finally:
        taken.close()


HALTING_NODE = """
import sys
from paraexec.chain.chain import Chain
from paraexec.cli import app

produce = Chain.produce_block


def produce_until_2(self, *args, **kwargs):
    if self.height >= 2:
        raise RuntimeError("the disk is full")
    return produce(self, *args, **kwargs)


Chain.produce_block = produce_until_2
app(["node", "--data", sys.argv[1], "--rpc", sys.argv[2], "--block-time", "0.05"])
"""


def test_a_node_whose_block_production_stops_exits_non_zero(tmp_path):
    """Production stopped by an error: the node shuts its API and exits 1 with the reason,
    rather than staying up and accepting transactions it will never include."""
    import subprocess
    import sys

    from .nodeproc import free_port

    data = tmp_path / "chain"
    assert CliRunner().invoke(app, ["init", "--data", str(data)]).exit_code == 0
    script = tmp_path / "halting_node.py"
    script.write_text(HALTING_NODE)
    args = [sys.executable, str(script), str(data), f"127.0.0.1:{free_port()}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "block production stopped at height 2: RuntimeError: the disk is full" in out.stderr

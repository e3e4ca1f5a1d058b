"""Run a real node as a subprocess on a free loopback port (shared by the end-to-end tests)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from paraexec.crypto import SigningKey

CHAIN_ID = "paraexec-e2e"
BALANCE = 10**9


def dev_keys(n: int) -> list[SigningKey]:
    return [SigningKey.from_seed_text(f"e2e/{i}") for i in range(n)]


def init_chain(data: Path, accounts: int = 16, keys: list[SigningKey] | None = None) -> list[SigningKey]:
    """A transfers chain whose ``accounts`` test keys (or the given ``keys``) hold ``BALANCE`` each."""
    keys = keys if keys is not None else dev_keys(accounts)
    genesis = {
        "chain_id": CHAIN_ID,
        "app": "transfers",
        "app_config": {"accounts": {k.public_key.hex(): BALANCE for k in keys}},
        "genesis_time": 0,
    }
    path = data.parent / (data.name + "-genesis.json")
    path.write_text(json.dumps(genesis))
    cli(["init", "--data", str(data), "--genesis", str(path)])
    return keys


def cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "paraexec", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"paraexec {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NodeProcess:
    """``paraexec node`` in a subprocess; ``url`` once ``start()`` returns."""

    def __init__(self, data: Path, block_time: float = 0.2, max_block_txs: int = 200, extra: list[str] | None = None):
        self.data = data
        self.block_time = block_time
        self.max_block_txs = max_block_txs
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = data.parent / (data.name + "-node.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> NodeProcess:
        self.port = free_port()
        args = [
            sys.executable,
            "-m",
            "paraexec",
            "node",
            "--data",
            str(self.data),
            "--rpc",
            f"127.0.0.1:{self.port}",
            "--block-time",
            str(self.block_time),
            "--max-block-txs",
            str(self.max_block_txs),
            *self.extra,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx2.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"node did not come up in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def init_exchange_chain(data: Path, accounts: int = 10, markets: int = 2) -> dict:
    """An exchange dev chain (the dev genesis of seed ``paraexec-dev``), its clocks starting now.

    The genesis time must be close to the node's block times, or the genesis oracle prices are
    stale from the first block on.
    """
    from paraexec.exchange.genesis import dev_genesis

    now = int(time.time())
    config = dev_genesis(accounts=accounts, markets=markets)
    config["genesis_time"] = now
    genesis = {"chain_id": "paraexec-dev", "app": "exchange", "app_config": config, "genesis_time": now}
    path = data.parent / (data.name + "-genesis.json")
    path.write_text(json.dumps(genesis))
    cli(["init", "--data", str(data), "--genesis", str(path)])
    return config

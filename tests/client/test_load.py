"""The load generator against real node subprocesses (short, small rates: correctness, not speed)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from paraexec.client import Client
from paraexec.client.client import RpcClientError
from paraexec.client.load import LoadReport, PerpsSource, TransfersSource
from paraexec.workloads.transfers import TransferWorkload

from ..rpc.nodeproc import BALANCE, NodeProcess, cli, init_chain, init_exchange_chain


def test_percentiles_are_nearest_rank():
    report = LoadReport("x", 1, 1, latencies_ms=[float(v) for v in range(1, 101)])
    assert (report.percentile(50), report.percentile(99), report.percentile(100)) == (50.0, 99.0, 100.0)
    assert LoadReport("x", 1, 1).percentile(50) == 0.0


def test_a_generator_that_fell_short_of_its_rate_says_so():
    """Submitted under 90% of rate x duration: the generator's limit, reported beside the node's."""
    assert LoadReport("x", 100, 10, submitted=899).fell_short
    assert not LoadReport("x", 100, 10, submitted=900).fell_short
    assert LoadReport("x", 100, 10, submitted=450).summary()["submitted_tx_per_s"] == 45.0


def test_parts_share_out_the_senders_and_merge_into_one_report():
    parts = [TransfersSource(None, "c", 10, 0, part=(k, 3)) for k in range(3)]  # type: ignore[arg-type]
    senders = [w.address for part in parts for w in part.wallets]
    assert sorted(senders) == sorted(parts[0].addresses) and len(set(senders)) == 10
    a = LoadReport("x", 50, 10, submitted=5, accepted=4, included=4, first_submit=2.0, last_inclusion=9.0)
    b = LoadReport("x", 50, 10, submitted=6, accepted=6, included=5, first_submit=1.5, last_inclusion=8.0)
    a.heights, b.heights = set(range(3, 10)), set(range(1, 9))  # each saw the blocks of its own run
    a.rejected["SENDER_QUOTA"] = 1
    merged = LoadReport.merged([a, b], 100)
    assert (merged.rate, merged.submitted, merged.accepted, merged.included, merged.blocks) == (100, 11, 10, 9, 9)
    assert merged.span_s == 7.5 and merged.rejected == {"SENDER_QUOTA": 1}


class Blocks:
    """A ``blocks`` subscription that delivers ``blocks`` once, then stops ``runner``."""

    def __init__(self, runner, blocks):
        self.runner, self.blocks = runner, list(blocks)

    def next_message(self, timeout=None):
        if not self.blocks:
            self.runner._stop.set()
            raise TimeoutError
        return "blocks", self.blocks.pop(0)


class OneTx:
    """A source of transactions and a client that accepts them as ``h1``, ``h2``...; get_tx answers
    from ``status``."""

    wallets: list = []

    def __init__(self, status=None):
        self.status = status or {}
        self.accepted = 0

    def next_tx(self, elapsed):
        return object(), b"raw"

    def submit_many(self, raws):
        first, self.accepted = self.accepted, self.accepted + len(raws)
        return [{"hash": f"h{first + i + 1}"} for i in range(len(raws))]

    def call_many(self, calls):
        return [self.status.get(params["hash"], {"status": "unknown"}) for _, params in calls]


def test_a_block_seen_before_the_submit_answer_still_counts_the_inclusion():
    """The block comes over the WebSocket, the submit answer over HTTP: on a busy machine the block
    can be first. Its hashes are kept, and the answer then counts the inclusion at once; the
    rest (other senders') are dropped after the answer: nothing later can be in a block yet."""
    from paraexec.client.load import LoadRunner

    runner = LoadRunner("http://unused", OneTx(), rate=20, duration=0.2)  # type: ignore[arg-type]
    runner._watch(Blocks(runner, [{"height": 7, "tx_hashes": ["other", "h1"], "failed": [1]}]))
    assert runner.report.included == 0 and set(runner._early) == {"other", "h1"}
    client = OneTx()
    runner._drive(client)  # type: ignore[arg-type]
    report = runner.report
    assert report.accepted == client.accepted >= 1 and set(runner._sent) == {
        f"h{i}" for i in range(2, client.accepted + 1)
    }
    assert (report.included, report.failed_receipts, report.heights, runner._early) == (1, 1, {7}, {})
    assert len(report.latencies_ms) == 1 and report.latencies_ms[0] >= 0


def test_transactions_no_notification_listed_are_looked_up_after_the_drain():
    """A slow subscriber loses notifications (the node drops them): committed transactions it
    never saw in a block are found with get_tx and counted, without a latency."""
    from paraexec.client.load import LoadRunner

    runner = LoadRunner("http://unused", OneTx(), rate=1, duration=1)  # type: ignore[arg-type]
    runner._sent = {"a": 1.0, "b": 1.0, "c": 1.0}
    client = OneTx(
        {"a": {"status": "committed", "receipt": {"code": 0}}, "b": {"status": "committed", "receipt": {"code": 5}}}
    )
    runner._ask_leftovers(client)  # type: ignore[arg-type]
    report = runner.report
    assert (report.included, report.included_unseen, report.failed_receipts) == (2, 2, 1)
    assert runner._sent == {"c": 1.0} and report.latencies_ms == []
    assert report.summary()["included_unseen"] == 2
    report.span_s = 2.0  # sustained tx/s counts only the inclusions seen in notifications, which have a time
    assert report.tx_per_s == 0.0
    report.included += 4
    assert report.tx_per_s == 2.0
    report.included -= 4

    class Gone:
        def call_many(self, calls):
            import httpx2

            raise httpx2.ConnectError("connection refused")

    runner._ask_leftovers(Gone())  # type: ignore[arg-type]  # a node gone by then: the report stands
    assert (report.included, runner._sent) == (2, {"c": 1.0})


class FakeClient:
    """``markets()`` as a node with the first three dev markets answers it."""

    def markets(self):
        from paraexec.exchange.genesis import dev_market

        return [{"params": dev_market(i), "oracle_price": dev_market(i)["initial_price"]} for i in range(3)]


def test_perps_parts_walk_the_same_prices_and_only_part_0_reports_them():
    """Parts called at different moments hold the same prices at the same second of their run;
    a part called late (a stall of 3.6 s) catches up on the missed steps at once and queues one
    round of oracle updates, not one per missed second."""
    parts = [PerpsSource(FakeClient(), "c", 40, part=(k, 2), prices=[10**9, 10**8, 10**7]) for k in range(2)]
    first = [parts[0].next_tx(t) for t in (0.0, 0.05, 3.7)]
    second = [parts[1].next_tx(t) for t in (0.0, 1.1, 2.2, 3.3, 3.71)]
    assert parts[0].prices == parts[1].prices != [10**9, 10**8, 10**7]
    assert len(parts[0].pending_oracle) <= 3 and not parts[1].pending_oracle
    assert all(wallet is parts[0].oracle for wallet, _ in first)  # oracle updates first, at 0 s and at 3.7 s
    assert all(wallet is not parts[1].oracle for wallet, _ in second)
    senders = {w.address for part in parts for w in part.makers + part.takers}
    assert len(senders) == 40 and not {w.address for w in parts[0].wallets} & {w.address for w in parts[1].wallets}


@pytest.mark.parametrize(
    ("accounts", "processes", "message"),
    [(2, 1, "needs --accounts >= 3"), (20, 3, "--processes 3 needs 3 makers and 3 takers; --accounts 20 has 2")],
)
def test_perps_refuses_too_few_accounts_for_its_parts(accounts, processes, message):
    with pytest.raises(ValueError, match=message):
        PerpsSource(FakeClient(), "c", accounts, part=(processes - 1, processes))


def test_an_rpc_error_survives_the_trip_from_a_generator_process():
    error = pickle.loads(pickle.dumps(RpcClientError(-32000, "gone", {"name": "STORE_CORRUPT"}, 500)))
    assert (error.code, error.message, error.name, error.http_status, str(error)) == (
        -32000,
        "gone",
        "STORE_CORRUPT",
        500,
        "-32000 STORE_CORRUPT: gone",
    )


def load(url: str, workload: str, rate: int, duration: float, *extra: str, expect_rc: int = 0) -> dict:
    args = [
        sys.executable,
        "-m",
        "paraexec",
        "load",
        "--rpc",
        url,
        "--workload",
        workload,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--drain",
        "20",
        "--json",
        *extra,
    ]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == expect_rc, out.stdout + out.stderr
    if expect_rc == 2:  # refused before loading: the reason on stderr, no report
        return {"error": out.stderr}
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_load_transfers_all_included(tmp_path):
    data = tmp_path / "chain"
    init_chain(data, keys=TransferWorkload(20, 0).keys)  # the accounts `paraexec load --workload transfers` uses
    with NodeProcess(data, block_time=0.1) as node:
        summary = load(node.url, "transfers", 100, 2, "--accounts", "20")
        with Client(node.url) as client:
            total = sum(client.account(k.public_key)["balance"] for k in TransferWorkload(20, 0).keys)
    assert summary["submitted"] == summary["accepted"] == summary["included"] >= 150
    assert summary["failed_receipts"] == 0 and total == 20 * BALANCE  # transfers conserve money
    assert 0 < summary["latency_ms"]["50"] <= summary["latency_ms"]["99"] < 20_000
    assert summary["sustained_tx_per_s"] > 0


def test_load_from_two_generator_processes(tmp_path):
    data = tmp_path / "chain"
    init_chain(data, keys=TransferWorkload(20, 0).keys)
    with NodeProcess(data, block_time=0.1) as node:
        summary = load(node.url, "transfers", 100, 2, "--accounts", "20", "--processes", "2")
        refused = load(node.url, "transfers", 100, 1, "--accounts", "20", "--processes", "21", expect_rc=2)
        with Client(node.url) as client:
            total = sum(client.account(k.public_key)["balance"] for k in TransferWorkload(20, 0).keys)
    assert summary["submitted"] == summary["accepted"] == summary["included"] >= 150
    assert summary["failed_receipts"] == 0 and total == 20 * BALANCE
    assert "--processes 21 needs --accounts >= 21, not 20" in refused["error"]


def test_load_perps_trades(tmp_path):
    data = tmp_path / "chain"
    init_exchange_chain(data, accounts=20, markets=2)
    with NodeProcess(data, block_time=0.2, max_block_txs=500) as node:
        summary = load(node.url, "perps", 150, 2, "--accounts", "20")
        with Client(node.url) as client:
            trades = client.trades(count=500)
            markets = client.markets()
    assert summary["submitted"] == summary["accepted"] == summary["included"] >= 250
    assert summary["failed_receipts"] < summary["included"] // 4  # mostly cancels of filled orders
    assert trades, "takers cross the makers' quotes: there must be fills"
    assert {t["market"] for t in trades} <= {m["market_id"] for m in markets}


def test_load_works_against_a_default_dev_chain(tmp_path):
    """`paraexec init` with no genesis, `paraexec node`, `paraexec load`: no other set-up."""
    data = tmp_path / "chain"
    cli(["init", "--data", str(data)])
    with NodeProcess(data, block_time=0.2, max_block_txs=500) as node:
        with Client(node.url) as client:
            app = client.status()["app"]
        workload = "perps" if app == "exchange" else "transfers"
        summary = load(node.url, workload, 100, 1.5)
    assert summary["submitted"] == summary["accepted"] == summary["included"] >= 100
    assert summary["failed_receipts"] < summary["included"] // 4


def test_load_refuses_accounts_the_chain_did_not_fund_and_takes_host_port(tmp_path):
    """More --accounts than the chain's genesis funded (or another seed): the last one holds
    nothing, so `load` says so before it submits anything, instead of measuring transactions
    that fail (it used to run the whole load and exit 0 unless every receipt failed)."""
    data = tmp_path / "chain"
    init_chain(data, keys=TransferWorkload(20, 0).keys[:10])  # the first 10 of `load --accounts 20`
    with NodeProcess(data, block_time=0.1) as node:
        host_port = node.url.removeprefix("http://")
        base = [sys.executable, "-m", "paraexec", "load", "--rpc", host_port, "--workload", "transfers", "--json"]
        for extra in (["--accounts", "20"], ["--accounts", "10", "--seed", "7"]):
            out = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
            assert out.returncode == 2 and "holds nothing on this chain" in " ".join(out.stderr.split()), out.stderr
            assert out.stdout == ""
        with Client(node.url) as client:  # nothing was sent: no funded account's nonce moved
            assert all(client.nonce(k.public_key) == 0 for k in TransferWorkload(20, 0).keys[:10])
    unreachable = subprocess.run(
        [sys.executable, "-m", "paraexec", "load", "--rpc", "127.0.0.1:1", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # the reason on stderr, stdout left for results
    assert unreachable.returncode == 1 and "no node answers" in unreachable.stderr, unreachable.stdout
    assert unreachable.stdout == ""


def test_a_load_whose_every_receipt_failed_exits_1(tmp_path, monkeypatch):
    """The second line of defence behind the funding check: a load that was measured but whose
    every included transaction failed is not reported as sustained throughput (the runner is
    replaced by one that reports that outcome; the node and the funding check are real)."""
    from typer.testing import CliRunner

    import paraexec.client.load as loadmod
    from paraexec.cli import app

    class AllFailed:
        def __init__(self, url, source, rate, duration, drain_s, workload):
            self.report = LoadReport(workload, rate, duration, submitted=5, accepted=5, included=5, failed_receipts=5)

        def run(self):
            return self.report

    monkeypatch.setattr(loadmod, "LoadRunner", AllFailed)
    data = tmp_path / "chain"
    init_chain(data, keys=TransferWorkload(20, 0).keys)
    with NodeProcess(data, block_time=0.1) as node:
        for extra in ([], ["--json"]):
            args = ["load", "--rpc", node.url, "--workload", "transfers", "--accounts", "20", *extra]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 1, result.output
            if extra:
                assert json.loads(result.output.strip().splitlines()[-1])["failed_receipts"] == 5
            else:
                assert "every included transaction failed" in " ".join(result.output.split())


def test_the_sdk_docstring_example_runs_against_the_dev_chain(tmp_path):
    """The worked example in ``paraexec.client``'s docstring, as written, against `paraexec init`."""
    import textwrap

    import paraexec.client

    doc = paraexec.client.__doc__ or ""
    code = textwrap.dedent(doc.split("(exchange app, 100 traders funded at genesis):")[1].split("\n\nOn a ")[0])
    data = tmp_path / "chain"
    cli(["init", "--data", str(data)])
    with NodeProcess(data, block_time=0.1) as node:
        scope: dict = {}
        exec(compile(code.replace("http://127.0.0.1:8545", node.url), "sdk-example", "exec"), scope)
        [position] = scope["client"].subaccount(scope["taker"].address)["positions"]
    assert scope["receipt"]["ok"] and [e["name"] for e in scope["receipt"]["events"]][0] == "fill"
    assert position["size"] == scope["size"]
    assert scope["answer"]["receipt"]["ok"] and scope["answer"]["height"] >= 1
    assert isinstance(scope["fills"], list)


def test_load_refuses_bad_input_and_unreachable_nodes_in_one_line(tmp_path):
    """A malformed URL, a server that is not a node, a non-integer transfers seed: one line on
    stderr and a non-zero exit, never a traceback."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # 501 to all
    threading.Thread(target=server.serve_forever, daemon=True).start()
    not_a_node = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for url, extra, message in (
            ("http://[::1", [], "no node answers"),
            (not_a_node, [], "no node answers"),
            (not_a_node, ["--workload", "transfers", "--seed", "abc"], "integer seed"),
        ):
            args = [sys.executable, "-m", "paraexec", "load", "--rpc", url, "--duration", "0.5", *extra]
            out = subprocess.run(args, capture_output=True, text=True, timeout=60)
            assert out.returncode != 0 and message in out.stderr, out.stderr
            assert "Traceback" not in out.stderr + out.stdout
    finally:
        server.shutdown()

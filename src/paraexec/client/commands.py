"""``paraexec load``: drive a node over its API and report sustained tx/s and inclusion latency."""

from __future__ import annotations

import json
from typing import Annotated

import typer

#: Why a healthy load still has failure receipts: the perps traders cancel orders that may have
#: filled meanwhile and try to liquidate accounts that may be healthy again by their block.
FAILURES_EXPECTED = {"perps": ": cancels of filled orders and the like, expected"}


def register(app: typer.Typer) -> None:
    @app.command()
    def load(
        rpc: Annotated[
            str, typer.Option("--rpc", help="node URL (or HOST:PORT, as `node --rpc`)")
        ] = "http://127.0.0.1:8545",
        workload: Annotated[str, typer.Option(help="perps or transfers")] = "perps",
        rate: Annotated[float, typer.Option(min=1, max=1_000_000, help="target transactions per second")] = 200,
        duration: Annotated[float, typer.Option(min=0.1, max=86_400, help="seconds of load")] = 10,
        accounts: Annotated[
            int | None, typer.Option(min=1, help="accounts to use (default: perps 100, transfers 1000)")
        ] = None,
        seed: Annotated[str, typer.Option(help="genesis seed (perps: dev seed text; transfers: workload seed)")] = "",
        drain: Annotated[float, typer.Option(min=0, max=3_600, help="seconds to wait for the last inclusions")] = 15,
        processes: Annotated[
            int, typer.Option(min=1, max=64, help="generator processes, each signing for its share of the accounts")
        ] = 1,
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    ) -> None:
        """Submit --rate tx/s of --workload for --duration s; report tx/s and p50/p99 inclusion latency.

        The accounts must be funded on the node's chain: perps uses the dev traders of `paraexec
        init` (seed text --seed, default paraexec-dev; `init --accounts N` funds N of them, and
        above ~3,000 tx/s the default 100 meet the node's per-sender quota); transfers uses the accounts of a store made
        by `paraexec run --workload transfers --accounts N --seed S` (pass the same N and S)."""
        import httpx2
        from rich.console import Console

        from ..cli_errors import fail
        from .client import Client, RpcClientError
        from .load import LoadRunner, TxSource, make_source, run_load

        console = Console()
        if "://" not in rpc:
            rpc = f"http://{rpc}"
        if workload == "transfers" and not seed.lstrip("-").isdigit() and seed != "":
            fail(f"--seed for transfers is the workload's integer seed, not {seed!r}", 2)
        # what talking to something that is not (or no longer) a node raises: said in one line
        unreachable = (httpx2.HTTPError, httpx2.InvalidURL, RpcClientError)
        try:
            client = Client(rpc)
        except unreachable as exc:
            fail(f"cannot use {rpc}: {exc}", 2)
        with client:
            try:
                status = client.status()
            except unreachable as exc:
                fail(f"no node answers at {rpc}: {exc}")
            chain_id = status["chain_id"]
            if workload == "perps":
                if status["app"] != "exchange":
                    fail(f"perps needs an exchange chain; this node runs {status['app']!r}", 2)
                accounts, seed = accounts or 100, seed or "paraexec-dev"
            elif workload == "transfers":
                if status["app"] != "transfers":
                    fail(f"transfers needs a transfers chain; this node runs {status['app']!r}", 2)
                accounts, seed = accounts or 1000, seed or "0"
            else:
                fail(f"unknown workload {workload!r} (perps, transfers)", 2)
            try:
                source: TxSource = make_source(client, workload, chain_id, accounts, seed, (0, 1))
                if processes > 1:  # enough accounts for every part: the last part's share
                    make_source(client, workload, chain_id, accounts, seed, (processes - 1, processes))
            except ValueError as exc:  # more generator processes than accounts to share
                fail(str(exc), 2)
            # the last account of the workload: with too many --accounts or another seed than the
            # chain's genesis, it holds nothing and every one of its transactions would fail
            last = source.wallets[-1]
            try:
                funded = source.holds_funds(client.account(last.address))
            except unreachable as exc:
                fail(f"no node answers at {rpc}: {exc}")
            if not funded:
                how = (
                    "the --accounts its genesis funded (`paraexec init --accounts N`; --seed only for a genesis "
                    "file made from another dev seed text)"
                    if workload == "perps"
                    else "the --accounts and --seed of the `paraexec run --workload transfers` that made the chain"
                )
                fail(
                    f"account {accounts} of {accounts} (seed {seed!r}, address {last.address.hex()[:16]}..) holds "
                    f"nothing on this chain: pass {how}",
                    2,
                )
        try:
            if processes == 1:
                report = LoadRunner(rpc, source, rate, duration, drain_s=drain, workload=workload).run()
            else:
                report = run_load(rpc, workload, chain_id, accounts, seed, rate, duration, drain, processes)
        except unreachable as exc:
            fail(f"the node at {rpc} stopped answering during the load: {exc}")
        except (RuntimeError, OSError) as exc:  # a generator process that could not start or died
            fail(f"a generator process failed: {exc!r}")
        summary = report.summary()
        all_failed = report.included > 0 and report.failed_receipts == report.included
        if as_json:
            print(json.dumps(summary))
            if all_failed:
                raise typer.Exit(1)
            return
        lat = summary["latency_ms"]
        console.print(
            f"[bold]{workload}[/] target {rate:g} tx/s for {duration:g}s: submitted {report.submitted}, "
            f"accepted {report.accepted}, included {report.included} in {report.blocks} blocks "
            f"({report.failed_receipts} with failure receipts{FAILURES_EXPECTED.get(workload, '')}); "
            f"rejected {dict(report.rejected) or 0}"
            + (
                f"; {report.included_unseen} of the included were in no block notification this client got"
                + (
                    f" (the node dropped {report.dropped_notifications} for reading too slowly)"
                    if report.dropped_notifications
                    else ""
                )
                + ": found with get_tx, no latency, not in the sustained tx/s"
                if report.included_unseen
                else ""
            ),
            highlight=False,
        )
        console.print(
            f"[bold]sustained {summary['sustained_tx_per_s']:,} tx/s[/]; inclusion latency p50 {lat[50]} ms, "
            f"p90 {lat[90]} ms, p99 {lat[99]} ms, max {lat['max']} ms",
            highlight=False,
        )
        if report.fell_short:
            console.print(
                f"the generator{'s' if processes > 1 else ''} submitted {report.submitted_per_s:,.0f} tx/s, under the "
                f"{rate:g} asked for: each waits for its batch's admission and signs on this machine, so the sustained "
                "rate shows their limit as much as the node's",
                highlight=False,
            )
        if all_failed:  # measured, but not a load of working transactions: say so and fail
            fail(
                "every included transaction failed in execution: are the workload's accounts funded on this "
                "chain? (see `paraexec load --help`: --accounts and --seed must match the chain's genesis)"
            )

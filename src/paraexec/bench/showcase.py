"""The showcase behind ``make demo``: a perps market with a price shock, produced in parallel, verified.

    1. generate a perps simulation (``markets`` markets, a price shock at ``shock_at``) as signed
       blocks, once;
    2. produce the chain on the default store (LMDB in ``data``) with the parallel executor
       (``adaptive`` or ``sequential`` when it is not available), timing every block;
    3. verify the chain: replay every block from genesis with ``sequential`` (``Chain.replay``
       checks every root and every receipt against the stored ones);
    4. benchmark ``sequential`` against the parallel executor on the same blocks with the
       harness and write its HTML report;
    5. print a summary table: blocks, transactions, tx/s, speedup (from the harness, same run),
       liquidations, deleveragings and triggered stop-losses, root match, and the report's path.

Run it with ``python -m paraexec.bench.showcase`` (``--help`` for the knobs).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..chain import Chain, ChainConfig, ReplayMismatch
from ..execution.registry import executor_names, make_executor, start_executor
from ..state import LmdbStore
from ..workloads import make_workload
from .harness import BenchConfig, run_bench
from .report import write_report

_stdout = Console()
console = _stdout if _stdout.is_terminal else Console(width=160)  # unclipped tables in logs


def pick_executor() -> str:
    names = executor_names()
    return next(n for n in ("parallel", "adaptive", "sequential") if n in names)


def showcase(
    data: Annotated[Path, typer.Option(help="chain store directory (LMDB), recreated")] = Path(".demo-data"),
    report: Annotated[Path, typer.Option(help="HTML report path")] = Path(".demo-data/report.html"),
    accounts: int = 200,
    markets: int = 8,
    blocks: int = 12,
    block_size: int = 800,
    shock_at: int = 7,
    workers: int = 2,
    seed: int = 0,
    repeat: Annotated[
        int, typer.Option(help="benchmark passes per executor (median): one pass swung 0.94-1.59x on the 2-core box")
    ] = 3,
) -> None:
    """Perps with a price shock on LMDB with the parallel executor, replay-verified, with a report."""
    shutil.rmtree(data, ignore_errors=True)
    repeat = max(1, repeat)
    executor_name = pick_executor()
    params = {"accounts": accounts, "markets": markets, "shock_at": shock_at}
    workload = make_workload("perps", seed=seed, **params)
    seconds_per_block = int(getattr(workload, "block_seconds", 1))
    console.print(f"generating {blocks} perps blocks ({markets} markets, {accounts} accounts, shock at {shock_at})")
    generated = [workload.block(h, block_size) for h in range(1, blocks + 1)]
    config = ChainConfig(workload.chain_id, workload.app_name, workload.genesis_config())

    store = LmdbStore(data)
    engine = make_executor(executor_name, workers)
    events: Counter[str] = Counter()
    txs = produce_s = 0.0
    try:
        Chain.create(store, config)
        chain = Chain(store, config)
        start_executor(engine, store)  # its workers up before the clock, as a node starts them
        started = time.perf_counter()
        for height, block_txs in enumerate(generated, start=1):
            upcoming = generated[height] if height < len(generated) else None  # the next block's
            at = config.genesis_time + height * seconds_per_block
            block, output = chain.produce_block(block_txs, at, engine, upcoming)
            txs += len(block.txs)
            events.update(e.name for r in output.receipts for e in r.events)
        produce_s = time.perf_counter() - started
        console.print(f"produced {blocks} blocks with {executor_name} x{workers} on LMDB at {data}")
        replay_engine = make_executor("sequential")
        root_match = True
        try:
            for _ in chain.replay(replay_engine):
                pass
        except ReplayMismatch as exc:
            root_match = False
            console.print(f"[red]replay mismatch: {exc}")
        finally:
            replay_engine.close()
        final_root = store.root.hex()
    finally:
        engine.close()
        store.close()

    bench = BenchConfig(
        workload="perps",
        points=[params],
        block_size=block_size,
        blocks=blocks,
        executors=["sequential", executor_name],
        workers=[workers],
        repeat=repeat,
        seed=seed,
    )
    result = run_bench(bench, argv=["paraexec-demo", *sys.argv[1:]])
    write_report(result, report)
    rows = {r["executor"]: r for r in result["points"][0]["results"]}
    measured = rows.get(executor_name, {})
    speedup = measured.get("speedup")
    bound = measured.get("bound")

    table = Table(
        "blocks",
        "txs",
        "tx/s",
        "speedup",
        "bound",
        "liquidations",
        "deleveraged",
        "stops fired",
        "fills",
        "root match",
        title=f"perps showcase: {executor_name} x{workers}",
    )
    table.add_row(
        str(blocks),
        f"{txs:,.0f}",
        f"{txs / produce_s:,.0f}" if produce_s else "-",
        f"{speedup:.2f}x" if speedup else "-",
        f"{bound:.2f}x" if bound else "-",
        str(events["liquidation"]),
        str(events["deleveraged"]),
        str(events["conditional_triggered"]),
        str(events["fill"]),
        "[green]yes" if root_match and result["ok"] else "[red]NO",
    )
    console.print(table)
    console.print(
        f"final root {final_root[:16]}; speedup from `paraexec bench` on the same blocks (same run,"
        f" median of {repeat} passes each)"
    )
    console.print(f"HTML report: {report.resolve()}")
    if not (root_match and result["ok"]):
        raise typer.Exit(1)


def main() -> None:
    typer.run(showcase)


if __name__ == "__main__":
    main()

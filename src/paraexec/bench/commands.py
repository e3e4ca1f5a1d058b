"""``paraexec bench``: the CLI front end of the harness (parsing, progress bar, table, files).

List-valued options (``--executors``, ``--workers``, ``--accounts``, ``--hot-ratio``,
``--markets``) take comma-separated values; several values of a workload parameter make a
contention sweep (one point per combination), which the HTML report plots speedup against.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..cli_errors import fail
from ..execution.registry import MAX_WORKERS, executor_names
from ..workloads import MAX_ACCOUNTS, make_workload, workload_names, workload_params
from ..workloads.binance import MarketDataError
from .harness import (
    AA,
    RESULT_COLUMNS,
    SCALING_CORES,
    BenchConfig,
    parallel_share,
    quartile_range,
    run_bench,
    steady_cell,
)

console = Console(stderr=True)  # progress and messages
_stdout = Console()
out = _stdout if _stdout.is_terminal else Console(width=200)  # the results table, unclipped in logs


def split_list(text: str, cast: Any = str, option: str = "") -> list[Any]:
    """``"1, 2,4"`` -> ``[1, 2, 4]`` (with ``cast=int``); empty items are dropped. An item
    ``cast`` refuses is a ``ValueError`` that names ``option`` and the item."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            try:
                out.append(cast(item))
            except ValueError:
                kind = "an integer" if cast is int else "a number" if cast is float else "valid"
                raise ValueError(f"{option or 'a list option'}: {item!r} is not {kind}") from None
    return out


def sweep_points(workload: str, options: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """One parameter dict per combination of the options the workload accepts."""
    accepted = workload_params(workload)
    names = [name for name, values in options.items() if name in accepted and values]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(options[n] for n in names))]


def must_be_writable(path: Path) -> None:
    """Create ``path``'s directory and open ``path`` for writing (removing it again if it did
    not exist), so a directory, a read-only place or a bad name fails before the run, not after
    minutes of benchmarking; raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    with path.open("ab"):
        pass
    if not existed:
        path.unlink()


def point_label(point: dict[str, Any], keys: Iterable[str] | None = None) -> str:
    """A point's parameters as the terminal shows them: ``accounts=1000,markets=8`` (only
    ``keys``, when given)."""
    params = point["params"]
    return ",".join(f"{k}={v}" for k, v in params.items() if keys is None or k in keys) or "-"


def varying_keys(points: list[dict[str, Any]]) -> set[str]:
    """The parameters whose value differs between points (what a sweep varies)."""
    keys = {k for p in points for k in p["params"]}
    return {k for k in keys if len({repr(p["params"].get(k)) for p in points}) > 1}


def bound_text(value: float) -> str:
    """A bound with the digits it has: the critical path of a low-contention block is a few
    transactions' timings, so 6,527x and 6,973x are the same reading."""
    if round(value, 1) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if round(value, 2) >= 10 else f"{value:.2f}"


def results_table(result: dict[str, Any]) -> Table:
    points = result["points"]
    varying = varying_keys(points)
    fixed = point_label(points[0], set(points[0]["params"]) - varying) if points else "-"
    title = f"paraexec bench: {result['config']['workload']}" + (f" ({fixed})" if fixed != "-" else "")
    labelled = len(points) > 1  # one point: its parameters are all in the title
    table = Table(*(["point"] if labelled else []), *RESULT_COLUMNS, title=title)

    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for point in points:
        label = [point_label(point, varying)] if labelled else []
        for r in point["results"]:
            if r.get("error"):
                table.add_row(
                    *label, r["executor"], str(r["workers"]), str(r["cores"]), "[red]error", *[""] * 11, "[red]x"
                )
                continue
            table.add_row(
                *label,
                r["executor"],
                str(r["workers"]),
                str(r["cores"]),
                fmt(r["seconds_median"], ".3f"),
                fmt(r["tx_per_s"], ",.0f"),
                fmt(r["speedup"], ".2f"),
                quartile_range(r.get("speedup_quartiles"), r.get("speedup_paired_median")),
                fmt(r["bound"], ".2f"),
                fmt(r["bound_efficiency"], ".0%"),
                steady_cell(r),
                fmt(r.get("cpu_seconds_median"), ".3f"),
                fmt(r.get("cpu_ceiling"), ".2f"),
                fmt(r["re_executions_per_tx"], ".3f"),
                str(r["rounds"]),
                parallel_share(r),
                "[green]ok" if r["roots_match"] else "[red]DIFFER",
            )
    return table


def bound_limits_line(point: dict[str, Any], n: int = 3) -> str:
    """One line per point: the bound on ``SCALING_CORES`` cores (what a larger machine could do
    with these blocks) and on unlimited workers, and the key classes that limit it most (the
    bound without each), from the dependency analysis; empty when there was none."""
    a = point.get("analysis") or {}
    if not a.get("available") or a.get("unlimited") is None:
        return ""
    label = point_label(point)
    bound = a.get("bound") or {}
    scaling = [c for c in SCALING_CORES if bound.get(str(c)) is not None]  # none in files made before them
    on_cores = ""
    if scaling:
        values = " / ".join(bound_text(bound[str(c)]) for c in scaling)
        on_cores = f"on {' / '.join(map(str, scaling))} cores {values}x, "
    line = f"{label}: bound {on_cores}on unlimited workers {bound_text(a['unlimited'])}x"
    gains = [r for r in a.get("limits") or [] if (r["bound_without"].get("unlimited") or 0) > a["unlimited"] * 1.01]
    if gains:
        parts = ", ".join(f"{r['keys']} ({bound_text(r['bound_without']['unlimited'])}x)" for r in gains[:n])
        line += f"; without the edges of {parts}"
    return line


#: CPU the machine spends, in cores, before the run (sampled over ``BUSY_SAMPLE_S``) from which
#: other work visibly shares the cores with the benchmark.
BUSY_CORES = 0.5
BUSY_SAMPLE_S = 0.5


def busy_cores(sample_s: float = BUSY_SAMPLE_S) -> float | None:
    """Cores' worth of CPU the whole machine used over ``sample_s`` seconds (``/proc/stat``; None
    where it cannot be read). A sample, not the load average, which stays high for minutes after
    a previous benchmark ended."""

    def times() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait

    try:
        total0, idle0 = times()
        time.sleep(sample_s)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def bench_warnings(workload: str, names: list[str], declare_access: bool, aa: bool, busy: float | None) -> list[str]:
    """What would make the run measure something else than the user likely means (``busy``:
    ``busy_cores()`` before the run)."""
    warnings = []
    if "access-list" in names and not (declare_access and workload in ("transfers", "hotspot")):
        warnings.append(
            "access-list runs blocks whose transactions declare no keys (--declare-access: transfers and hotspot) "
            "as barriers, one after another: its row then measures that fallback, not declared scheduling"
        )
    if busy is not None and busy >= BUSY_CORES:
        hint = "the sequential-aa row shows how much" if aa else "--aa adds a second sequential row that shows how much"
        warnings.append(
            f"other work used {busy:.1f} cores of this machine just before the run: it shares the cores, and every "
            f"ratio carries that noise ({hint})"
        )
    return warnings


#: Under the table: what its columns are, for a reader who has not read ``bench/RESULTS.md``.
TABLE_LEGEND = (
    "columns: median s of a pass over all blocks; speedup = sequential's median / this one's (p25-p50-p75: the "
    "per-repeat ratios); bound = the blocks' inherent speedup on the row's cores (dependency analysis), of bound = "
    "speedup / bound; blocks 2+ = the same after block 1's cold start; CPU ceiling = the speedup the pass's total CPU "
    "would allow on every core; rounds = per block summed: parallel's messages per worker, blockstm's 1 + highest "
    "incarnation, access-list's conflict levels, 1 in one pass; par. blocks = blocks two workers executed at once."
)


def in_process_line(point: dict[str, Any]) -> str:
    """Say so when ``parallel``/``adaptive`` with two or more workers had no timed block that two
    workers executed at once ("par. blocks" 0/n): the coordinator executed the transactions (the
    time guard kept the blocks in-process, or the blocks were small or contended: the notes say
    which), and whatever they gained came from the workers' other work, not from transactions
    run side by side (``parallel-workers`` shows the worker plan)."""
    names = [
        f"{r['executor']} x{r['workers']}"
        for r in point["results"]
        if r.get("executor") in ("parallel", "adaptive")
        and not r.get("error")
        and r.get("workers", 1) >= 2
        and r.get("parallel_blocks") == 0
    ]
    if not names:
        return ""
    return (
        f"{point_label(point)}: {', '.join(names)} had no timed block that two workers executed at once: the "
        "coordinator executed the transactions (why: the executor notes in the JSON and report), and any gain came "
        "from the workers' other work meanwhile (signature checks, the root's hashing); `parallel-workers` shows "
        "the worker plan."
    )


def bench(
    workload: Annotated[str, typer.Option(help=f"one of {', '.join(workload_names())}")] = "transfers",
    accounts: Annotated[
        str,
        typer.Option(
            help="accounts, comma list sweeps contention (default: 1000 for transfers/hotspot, else the workload's)"
        ),
    ] = "",
    hot_ratio: Annotated[str, typer.Option(help="hotspot: probability an access hits a hot account (comma list)")] = "",
    hot_accounts: Annotated[int, typer.Option(min=0, help="hotspot: number of hot accounts (0: 1% of accounts)")] = 0,
    markets: Annotated[str, typer.Option(help="perps: number of markets (comma list)")] = "",
    data_file: Annotated[Path | None, typer.Option(help="replay: Binance data file (default: ../shared/data)")] = None,
    shock_at: Annotated[int, typer.Option(min=0, help="perps: first block of the price shock (0: none)")] = 0,
    shock_ppm: Annotated[int, typer.Option(help="perps: oracle move per shock block, ppm")] = -60_000,
    declare_access: Annotated[bool, typer.Option(help="transfers/hotspot: declare access lists (access-list)")] = False,
    block_size: Annotated[int, typer.Option(min=1)] = 1000,
    blocks: Annotated[int, typer.Option(min=1)] = 3,
    executors: Annotated[str, typer.Option(help="comma list of executors")] = "sequential,parallel",
    workers: Annotated[str, typer.Option(help="comma list of worker counts")] = "1,2",
    repeat: Annotated[int, typer.Option(min=1, help="repeats; medians are reported")] = 1,
    seed: int = 0,
    verify_signatures: Annotated[bool, typer.Option(help="check signatures inside execution (end to end)")] = True,
    store: Annotated[str, typer.Option(help="lmdb (default store) or memory")] = "lmdb",
    data: Annotated[Path | None, typer.Option("--data", help="keep the stores under this directory")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON result here")] = None,
    report: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    warmup: Annotated[bool, typer.Option(help="run blocks 1-2 once untimed per executor first")] = True,
    analyze: Annotated[bool, typer.Option(help="dependency analysis (inherent bound, hot keys)")] = True,
    aa: Annotated[
        bool, typer.Option("--aa", help=f"also time a second sequential executor ({AA}): the run's noise floor")
    ] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Run executors on identical signed blocks; report medians, speedups, bounds; fail on any root or receipt mismatch."""
    if workload not in workload_names():
        fail(f"unknown workload {workload!r}; known: {', '.join(workload_names())}", 2)
    names = list(dict.fromkeys(split_list(executors)))  # a repeated name would be timed twice per repeat
    if not names:
        fail("--executors names none (e.g. --executors sequential,parallel)", 2)
    unknown = [n for n in names if n not in executor_names()]
    if unknown:
        fail(f"unknown executor(s) {', '.join(unknown)}; available: {', '.join(executor_names())}", 2)
    if store not in ("lmdb", "memory"):
        fail(f"--store must be lmdb or memory, not {store!r}", 2)
    if store == "memory" and data is not None:
        fail("--data keeps LMDB stores; --store memory has none to keep", 2)
    try:
        options: dict[str, list[Any]] = {
            "accounts": split_list(
                accounts or ("1000" if workload in ("transfers", "hotspot") else ""), int, "--accounts"
            ),
            "hot_ratio": split_list(hot_ratio, float, "--hot-ratio"),
            "hot_accounts": [hot_accounts] if hot_accounts else [],
            "markets": split_list(markets, int, "--markets"),
            "data_file": [str(data_file)] if data_file else [],
            "declare_access": [True] if declare_access else [],
            "shock_at": [shock_at] if shock_at else [],
            "shock_ppm": [shock_ppm] if shock_at else [],
        }
        if any(n > MAX_ACCOUNTS for n in options["accounts"]):
            raise ValueError(f"--accounts must list counts up to {MAX_ACCOUNTS:,}, got {accounts!r}")
        worker_counts = list(dict.fromkeys(split_list(workers, int, "--workers")))
        if not worker_counts or min(worker_counts) < 1 or max(worker_counts) > MAX_WORKERS:
            raise ValueError(f"--workers must list counts 1..{MAX_WORKERS}, got {workers!r}")
        points = sweep_points(workload, options)
        ignored = [name for name, values in options.items() if values and name not in workload_params(workload)]
        if ignored:
            console.print(f"[yellow]{workload} ignores: {', '.join(ignored)}")
        for params in points:  # fail fast on bad parameters or a missing data file
            make_workload(workload, seed=seed, **params)
    except (ValueError, ModuleNotFoundError, FileNotFoundError) as exc:
        fail(str(exc), 2)
    if data is not None and data.is_dir() and any(data.iterdir()):
        fail(f"--data {data} is not empty: give a fresh directory (the bench makes its stores in it)", 2)
    for warning in bench_warnings(workload, names, declare_access, aa, busy_cores()):
        console.print(f"[yellow]note: {warning}", highlight=False)
    try:  # before the run, not after it: a path that cannot be written fails in a second
        if data is not None:
            data.mkdir(parents=True, exist_ok=True)
        for path in (json_out, report):
            if path is not None:
                must_be_writable(path)
    except OSError as exc:
        fail(f"cannot write {exc.filename}: {exc.strerror}", 2)
    config = BenchConfig(
        workload=workload,
        points=points or [{}],
        block_size=block_size,
        blocks=blocks,
        executors=names,
        workers=worker_counts,
        repeat=repeat,
        seed=seed,
        verify_signatures=verify_signatures,
        store=store,
        data_dir=str(data) if data else None,
        warmup=warmup,
        analyze=analyze,
        aa=aa,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("bench", total=config.total_steps())

        def advance(label: str) -> None:
            bar.update(task, advance=1, description=label)

        try:
            result = run_bench(config, advance, argv=["paraexec", *sys.argv[1:]])
        except MarketDataError as exc:  # the replay workload reads its recording as it goes
            bar.stop()
            fail(f"{workload}: {exc}", 2)
    out.print(results_table(result))
    out.print(f"[dim]{TABLE_LEGEND}", highlight=False, soft_wrap=True)
    for point in result["points"]:
        limits_line = bound_limits_line(point)
        if limits_line:
            out.print(limits_line, highlight=False, soft_wrap=True)
        in_process = in_process_line(point)
        if in_process:
            out.print(in_process, highlight=False, soft_wrap=True)
        if point.get("data_gaps"):
            console.print(
                f"[yellow]note: the {workload} recording's depth stream has {point['data_gaps']} gap(s) "
                "(a diff that does not follow on from the previous one): the replayed book may differ from "
                "the real one until the next snapshot",
                highlight=False,
            )
        if point.get("data_exhausted"):
            console.print(
                f"[yellow]note: the {workload} recording ran out ({point['params'] or 'default parameters'}): "
                f"blocks of {point['txs_per_block']} transactions, not {block_size}",
                highlight=False,
            )
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=1))
        console.print(f"JSON: {json_out}")
    if report is not None:
        from .report import write_report

        write_report(result, report)
        console.print(f"HTML report: {report}")
    if not result["ok"]:
        fail("\n".join(result["failures"]))


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``paraexec`` command (called by ``cli.py``)."""
    app.command("bench")(bench)

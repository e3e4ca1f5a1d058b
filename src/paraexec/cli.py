"""The ``paraexec`` command. Thin: parsing and printing only; the work lives in the packages.

Other packages add their own sub-commands through a ``register(app)`` function in the modules
listed in ``COMMAND_MODULES`` (benchmarks, exchange vectors, node, load), so this file stays small.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import lmdb
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import codec
from .chain import Chain, ChainConfig, ReplayMismatch
from .chain.node import NodeAlreadyRunning, lock_data_dir, producer_running
from .cli_errors import err_console, fail, must_hold_chain
from .errors import CorruptStore, IncompatibleStore
from .execution.registry import MAX_WORKERS, executor_names, make_executor, start_executor
from .execution.runtime import SYSTEM_TAG, nonce_key
from .state import LmdbStore, MemoryStore
from .state.lmdb_store import open_chain_store
from .workloads import MAX_ACCOUNTS, make_workload, workload_names
from .workloads.binance import MarketDataError
from .workloads.transfers import nonce_reader

app = typer.Typer(
    help="paraexec: parallel transaction execution with a perpetual-futures exchange.", no_args_is_help=True
)
console = Console()

COMMAND_MODULES = (
    "paraexec.bench.commands",
    "paraexec.exchange.commands",
    "paraexec.rpc.commands",
    "paraexec.client.commands",
)

DataOpt = Annotated[Path, typer.Option("--data", help="chain store directory (LMDB)")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help=", ".join(executor_names()))]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, max=MAX_WORKERS, help="worker threads/processes")]


#: The dev chain's traders and markets unless ``init`` is told otherwise (``paraexec load``'s
#: perps default is the same 100 traders).
DEV_ACCOUNTS = 100
DEV_MARKETS = 4


def default_genesis(accounts: int = DEV_ACCOUNTS, markets: int = DEV_MARKETS) -> ChainConfig:
    """The dev chain (like anvil's): the exchange with its default markets, oracle key and
    ``accounts`` funded dev traders (100 unless asked), all derived from the published seed text
    ``paraexec-dev``. Its clocks (genesis time, hence oracle staleness and funding) start now, so
    a fresh node's first block does not jump decades ahead and find every genesis price stale."""
    from .exchange.genesis import dev_genesis

    app_config = dev_genesis(accounts=accounts, markets=markets)
    app_config["genesis_time"] = int(time.time())
    return ChainConfig("paraexec-dev", "exchange", app_config, app_config["genesis_time"])


def must_know_executor(name: str) -> None:
    """Refuse an unknown executor name with a clear message (exit 2) before touching any store."""
    if name not in executor_names():
        fail(f"unknown executor {name!r} (available: {', '.join(executor_names())})", 2)


#: ``run --accounts`` from which the key derivation before the first block is announced.
SLOW_ACCOUNTS = 50_000


def open_store(data: Path, readonly: bool = False) -> LmdbStore:
    """The LMDB store at ``data`` (created unless ``readonly``); a directory without a chain, or
    one LMDB cannot open (a file, a corrupt or foreign database), is refused with its reason."""
    if readonly:
        must_hold_chain(data)
    try:
        return open_chain_store(data, readonly=readonly)
    except IncompatibleStore as exc:
        fail(str(exc))


def load_genesis(path: Path) -> ChainConfig:
    """A genesis file, checked by building its state in memory first: a bad one is refused
    (exit 2) before any store is created."""
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read genesis {path}: {exc}", 2)
    if not isinstance(raw, dict):
        fail(f"genesis {path}: expected a JSON object with chain_id, app, app_config, genesis_time", 2)
    try:
        config = ChainConfig(**raw)
        Chain.create(MemoryStore(), config)
    except Exception as exc:  # noqa: BLE001 - any failure of a user's genesis is reported, not raised
        fail(f"invalid genesis {path}: {type(exc).__name__}: {exc}", 2)
    return config


def open_chain(store: LmdbStore) -> Chain:
    """``Chain.open``, a store it cannot continue refused with its reason (exit 2, store closed)."""
    try:
        return Chain.open(store)
    except IncompatibleStore as exc:
        store.close()
        fail(str(exc), 2)


@contextmanager
def progress_bar(total: int, label: str, enabled: bool = True) -> Iterator[Progress]:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not enabled) as progress:
        progress.add_task(label, total=total)
        yield progress


@app.command()
def init(
    data: DataOpt,
    genesis: Annotated[Path | None, typer.Option(help="genesis JSON: chain_id, app, app_config, genesis_time")] = None,
    accounts: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_ACCOUNTS, help="dev chain: traders funded at genesis (default 100; load --accounts to match)"
        ),
    ] = None,
    markets: Annotated[int | None, typer.Option(min=1, max=1024, help="dev chain: markets (default 4)")] = None,
) -> None:
    """Create a chain store with a genesis block (default: the exchange dev chain).

    A load test above ~3,000 tx/s wants more dev traders than the default 100: each sender may
    hold only so many pending transactions in the node's mempool (--accounts; pass the same
    number to `paraexec load --accounts`)."""
    if genesis and (accounts is not None or markets is not None):
        fail("--accounts and --markets shape the dev chain; a --genesis file says its own", 2)
    if genesis:
        config = load_genesis(genesis)
    else:
        if (accounts or 0) >= SLOW_ACCOUNTS:
            console.print(f"deriving {accounts:,} trader keys first...", highlight=False)
        config = default_genesis(accounts or DEV_ACCOUNTS, markets or DEV_MARKETS)
    store = open_store(data)
    try:
        if store.height >= 0:
            fail(f"{data} already holds a chain at height {store.height}")
        chain = Chain.create(store, config)
        console.print(
            f"created chain [bold]{config.chain_id}[/] ({config.app}) at {data}, root {chain.store.root.hex()[:16]}"
        )
    finally:
        store.close()


@app.command()
def run(
    data: DataOpt,
    workload: Annotated[str, typer.Option(help="transfers, hotspot, perps or replay")] = "transfers",
    accounts: Annotated[
        int, typer.Option(min=2, max=MAX_ACCOUNTS, help="accounts the workload derives and funds at genesis")
    ] = 1000,
    hot_ratio: Annotated[float, typer.Option(help="hotspot: probability an access hits a hot account")] = 0.5,
    markets: Annotated[int, typer.Option(min=1, help="perps: number of markets")] = 8,
    shock_at: Annotated[int, typer.Option(min=0, help="perps: first block of a price shock (0: none)")] = 0,
    data_file: Annotated[Path | None, typer.Option(help="replay: Binance data file")] = None,
    declare_access: Annotated[
        bool, typer.Option(help="transfers/hotspot: declare access lists (for access-list)")
    ] = False,
    block_size: Annotated[int, typer.Option(min=1)] = 1000,
    blocks: Annotated[int, typer.Option(min=1)] = 10,
    executor: ExecutorOpt = "sequential",
    workers: WorkersOpt = 2,
    seed: int = 0,
    verify_signatures: Annotated[bool, typer.Option(help="check signatures during execution")] = True,
) -> None:
    """Generate signed blocks, execute them and commit them; one line per block.

    Each block is produced knowing the next one (generated first, outside the timing), as a
    producer that holds its next batch would: an executor with idle cores checks its signatures
    ahead (Executor.announce). The generator tracks the nonces it hands out, so the next
    block does not depend on this one's commit."""
    must_know_executor(executor)
    if workload not in workload_names():
        fail(f"unknown workload {workload!r} (available: {', '.join(workload_names())})", 2)
    if producer_running(data):  # before the keys' derivation, which can take minutes; the lock is taken below
        fail(f"{NodeAlreadyRunning.at(data)}: stop it first")
    if accounts >= SLOW_ACCOUNTS:  # each key is derived (~60 us) and funded at genesis: say why nothing shows
        console.print(f"deriving {accounts:,} account keys and the genesis state first...", highlight=False)
    try:
        gen = make_workload(
            workload,
            accounts=accounts,
            seed=seed,
            hot_ratio=hot_ratio,
            markets=markets,
            shock_at=shock_at,
            data_file=str(data_file) if data_file else None,
            declare_access=declare_access,
        )
    except (ValueError, OSError) as exc:  # the workloads' own parameter checks
        fail(f"{workload}: {exc}", 2)
    config = ChainConfig(gen.chain_id, gen.app_name, gen.genesis_config())
    block_seconds = getattr(gen, "block_seconds", 1)
    try:
        lock = lock_data_dir(data)  # one producer per directory: a node, or this run
    except NodeAlreadyRunning as exc:
        fail(f"{exc}: stop it first")
    except OSError as exc:
        fail(f"cannot use {data}: {exc}")
    store = None
    try:  # the lock (and store) released on every way out (a refusal below exits; in-process callers go on)
        store = open_store(data)
        if store.height < 0:
            Chain.create(store, config)
        elif (held := open_chain(store).config) != config:
            store.close()
            # `run` makes its own chain from the workload's genesis: only a store an earlier `run` made with
            # the same workload options continues (not `paraexec init`'s dev chain, nor another workload's)
            fail(
                f"{data} holds another chain ({held.chain_id!r}, {held.app}) than this {workload} workload's: `run` "
                "makes its own chain, so use a fresh --data, or the options of the `run` that made it "
                "(--workload, --accounts, --seed, --markets, ...)"
            )
        chain = Chain(store, config, verify_signatures)
    except BaseException:
        if store is not None:
            store.close()  # closing twice (after a refusal closed it) is harmless
        lock.close()
        raise
    engine = make_executor(executor, workers)
    console.print("height  txs  ok  system  seconds  tx/s  re-exec  root")  # txs, ok: user transactions
    total_txs, total_s, produced = 0, 0.0, 0
    try:
        start_executor(engine, store)  # workers up before block 1's clock, as a node starts them
        nonce_of = nonce_reader(store.get)
        upcoming: list[bytes] | None = gen.block(chain.height + 1, block_size, nonce_of)
        for k in range(blocks):
            height = chain.height + 1
            txs, upcoming = upcoming or [], gen.block(height + 1, block_size, nonce_of) if k + 1 < blocks else None
            # the workload's clock, never before the parent's (a node may have extended the chain)
            when = max(chain.block(chain.height).header.time, config.genesis_time + height * block_seconds)
            started = time.perf_counter()
            block, output = chain.produce_block(txs, when, engine, upcoming)
            seconds = time.perf_counter() - started
            produced += 1
            ok = sum(r.ok for r in output.receipts[: len(txs)])  # the application's system txs follow them
            total_txs += len(txs)
            total_s += seconds
            row = (
                str(height),
                str(len(txs)),
                str(ok),
                str(len(block.txs) - len(txs)),
                f"{seconds:.3f}",
                f"{len(txs) / seconds:,.0f}",
                str(output.stats.re_executions(len(block.txs))),
                block.header.state_root.hex()[:16],
            )
            console.print("  ".join(row))
    except MarketDataError as exc:  # the replay workload reads its recording as it goes
        fail(
            f"{workload}: {exc} ({produced} blocks of this run committed before it; the chain is at height {chain.height})"
        )
    finally:
        engine.close()
        store.close()
        lock.close()
    console.print(
        f"[bold]{total_txs} txs in {total_s:.2f}s: {total_txs / max(total_s, 1e-9):,.0f} tx/s[/] ({executor}, workers={getattr(engine, 'workers', workers)})"
    )
    if getattr(gen, "exhausted", False):  # replay: the recording has no more events
        console.print(
            f"[yellow]note: the {workload} recording ran out: the last blocks hold fewer transactions or none"
        )


@app.command()
def replay(data: DataOpt, executor: ExecutorOpt = "sequential", workers: WorkersOpt = 2) -> None:
    """Re-execute every stored block from genesis and check each root and receipt list, then the stored state."""
    must_know_executor(executor)
    store = open_store(data, readonly=True)
    chain = open_chain(store)
    engine = make_executor(executor, workers)
    count = txs = re_executions = 0
    started = time.perf_counter()
    try:
        with progress_bar(chain.height, "replay") as progress:
            for block, output in chain.replay(engine):
                count += 1
                txs += sum(raw[:1] != SYSTEM_TAG for raw in block.txs)
                re_executions += output.stats.re_executions(len(block.txs))
                progress.advance(progress.task_ids[0])
    except ReplayMismatch as exc:  # what replay is for: said plainly, exit 1
        fail(f"the chain at {data} does not verify: {exc} ({count} blocks verified before it)")
    except CorruptStore as exc:
        fail(f"the chain at {data} cannot be read: {exc} ({count} blocks verified before it)")
    finally:
        engine.close()
        store.close()
    seconds = time.perf_counter() - started
    console.print(
        f"[green]replayed {count} blocks ({txs} user txs, {re_executions} re-executions) with {executor} in {seconds:.2f}s: "
        "every root and receipt matches"
        + (
            ", and the stored state is the replayed one[/]"
            if chain.state_checked
            else "[/] (the chain grew meanwhile: its state was not compared)"
        )
    )


@app.command()
def inspect(
    data: DataOpt,
    height: Annotated[int | None, typer.Option(help="show this block's header and receipts")] = None,
    account: Annotated[
        str | None, typer.Option(help="hex public key: its nonce and balance (exchange: bank and subaccount 0)")
    ] = None,
    receipts: Annotated[int, typer.Option(min=0, help="with --height: receipts shown (0: all)")] = 50,
) -> None:
    """Show the chain's last 20 blocks, one block's receipts (--height), or an account (--account)."""
    key = None
    if account is not None:
        try:
            key = codec.from_hex(account)
        except ValueError:
            fail(f"--account {account!r} is not hex", 2)
        if len(key) != 32:
            fail(f"--account must be a 32-byte public key (64 hex digits), got {len(key)} bytes", 2)
    store = open_store(data, readonly=True)
    try:
        chain = open_chain(store)
        console.print(
            f"chain [bold]{chain.config.chain_id}[/] app={chain.config.app} height={chain.height} root={store.root.hex()}"
        )
        if height is not None and not 0 <= height <= chain.height:
            fail(f"no block at height {height} (the chain's height is {chain.height})")
        if key is not None:
            nonce = codec.decode_int(store.get(nonce_key(key)))
            if chain.config.app == "exchange":
                from .exchange import keys as xkeys
                from .exchange.queries import StateReader

                reader = StateReader(store.get, store.items, chain.config.app_config)
                bank = codec.decode_int(store.get(xkeys.bank(key)))
                console.print(f"account {account}: bank={bank} nonce={nonce}; subaccount 0:")
                console.print_json(data=reader.subaccount(key, 0), default=str)
            else:
                from .apps.transfers import balance_key

                balance = codec.decode_int(store.get(balance_key(key)))
                console.print(f"account {account}: balance={balance} nonce={nonce}")
        if height is not None:
            block = chain.block(height)
            stored = chain.receipts(height)
            shown = stored[:receipts] if receipts else stored
            console.print(
                f"block {height}: hash={block.hash.hex()} time={block.header.time} txs={len(block.txs)} root={block.header.state_root.hex()}"
            )
            table = Table("#", "code", "error", "events")
            for i, receipt in enumerate(shown):
                table.add_row(str(i), str(receipt.code), receipt.error, str(len(receipt.events)))
            console.print(table)
            if len(stored) > len(shown):
                console.print(f"... {len(stored) - len(shown)} more receipts (--receipts 0: all)")
        elif key is None:  # an account asked alone: its lines only
            table = Table("height", "time", "txs", "failed", "root")
            for h in range(max(0, chain.height - 19), chain.height + 1):
                block = chain.block(h)
                failed = sum(not r.ok for r in chain.receipts(h))
                table.add_row(
                    str(h), str(block.header.time), str(len(block.txs)), str(failed), block.header.state_root.hex()[:16]
                )
            console.print(table)
    except CorruptStore as exc:
        fail(f"{data}: {exc}")
    finally:
        store.close()


@app.command("bench-commit")
def bench_commit(
    state_keys: Annotated[int, typer.Option(min=1)] = 1_000_000,
    block_txs: Annotated[int, typer.Option(min=1)] = 10_000,
    processes: Annotated[
        int,
        typer.Option(min=2, help="worker processes the root is split over (the 1-process column is always measured)"),
    ] = 2,
    repeat: Annotated[int, typer.Option(min=1)] = 5,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the measurement (and the machine) as JSON here")
    ] = None,
) -> None:
    """Measure commit + state-root cost per written key (medians of --repeat blocks)."""
    import dataclasses

    from .bench.commands import must_be_writable
    from .bench.machine import machine_info
    from .state.measure import measure

    if json_out is not None:
        try:  # before minutes of measuring, not after
            must_be_writable(json_out)
        except OSError as exc:
            fail(f"cannot write {json_out}: {exc}", 2)
    with console.status(f"building a {state_keys:,}-key LMDB state and committing {repeat} blocks..."):
        cost = measure(state_keys, block_txs, processes, repeat)
    table = Table(
        "us per written key",
        "1 process",
        f"{processes} processes",
        title=f"{cost.written_keys:,} written keys per block, state {state_keys:,} keys",
    )
    table.add_row("root (hash old+new)", f"{cost.root_us_per_key_1p:.2f}", f"{cost.root_us_per_key_np:.2f}")
    table.add_row("commit (LMDB)", f"{cost.commit_us_per_key:.2f}", f"{cost.commit_us_per_key:.2f}")
    table.add_row("total, one after the other", f"{cost.total_us_per_key_1p:.2f}", f"{cost.total_us_per_key_np:.2f}")
    table.add_row("total, commit overlapped with hashing", "", f"{cost.overlapped_us_per_key:.2f}")
    console.print(table)
    if json_out is not None:
        record = {
            "command": "bench-commit",
            "block_txs": block_txs,
            "repeat": repeat,
            **dataclasses.asdict(cost),
            "total_us_per_key_1p": cost.total_us_per_key_1p,
            "total_us_per_key_np": cost.total_us_per_key_np,
            "machine": machine_info(),
        }
        json_out.write_text(json.dumps(record, indent=2) + "\n")
        console.print(f"wrote {json_out}")


@app.command()
def executors() -> None:
    """List the available executors."""
    for name in executor_names():
        console.print(name)


def _register_extensions() -> None:
    for module in COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue
            raise
        mod.register(app)


_register_extensions()


def main() -> None:
    """The ``paraexec`` entry point. A store or file the OS or LMDB refuses mid-command (disk
    full, permissions) ends it with the reason rather than a traceback; LMDB's write
    transactions leave the store at its last committed block."""
    try:
        app()
    except (lmdb.Error, OSError) as exc:
        err_console.print(f"[red]paraexec: {type(exc).__name__}: {exc}", highlight=False)
        raise SystemExit(1) from None

"""A single-producer node: mempool in, blocks out, on an LMDB store.

Threads and what they touch:

- the **producer** (one thread, ``Node._loop``) owns the write side: every ``block_time`` seconds
  it reaps the mempool, executes the block with the configured executor, commits block, receipts
  and state in one LMDB write transaction (``Chain.produce_block``), then tells the mempool and
  the listeners (the API's WebSocket hub, metrics). It is the only thread that writes.
- **readers** (API threads) use ``ChainReader``: every call opens its own LMDB read transaction,
  which is lock-free and sees the last finished commit, so reads never wait for block production
  and never see half a block.

Block time is chosen by the producer (integer seconds, never earlier than the parent's) and
stored in the header, so execution sees it as an input, not a clock.

Signatures are verified once, at mempool admission (in helper processes: ``verifier``), so the
producer's chain runs with ``verify_signatures=False``; ``paraexec replay`` opens the store with
verification on.

Recovery is the store's: a commit is one LMDB transaction, so after a crash (kill -9 included)
the store is at the last committed block and ``Node`` simply continues from it. The mempool is
not persisted (clients resubmit, as with most chains). ``stop()`` lets the block in progress
finish and commit, then closes the store: a shutdown never leaves half a block.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import codec
from ..errors import CorruptStore, IncompatibleStore
from ..execution.contract import BlockOutput, Receipt
from ..execution.registry import make_executor, start_executor
from ..execution.runtime import SYSTEM_TAG, nonce_key
from ..state.lmdb_store import LmdbStore, open_chain_store
from .block import Block
from .chain import Chain, ChainConfig, read_block, read_receipts
from .mempool import Mempool, MempoolConfig
from .verifier import SignatureChecker

log = logging.getLogger(__name__)

#: How many blocks' ``BlockInfo`` the node keeps (and reads back from the store at start-up).
RECENT_BLOCKS = 256
#: At start-up, the stored blocks read back stop once they hold this many transactions: reading
#: one back (decoding its receipts, hashing its transactions) costs ~9 us per transaction, so 256
#: blocks of 5,000 perps transactions took ~12 s before the node served anything (measured: 45 ms
#: a block on the 2-core dev box). 20,000 keeps start-up near 0.25 s and still holds hundreds of
#: trades for ``get_trades``; blocks produced after the start fill the rest as before.
STARTUP_TXS = 20_000


class ChainReader:
    """Thread-safe, lock-free reads of a chain that another thread is extending.

    Every call takes its own read snapshot (``LmdbStore.snapshot``: an LMDB read transaction on
    the writer's environment, since LMDB forbids opening an environment twice in one process),
    so a reader sees the last finished commit and never blocks the producer. ``snapshot()``
    gives a multi-key query one consistent view.
    """

    def __init__(self, store: LmdbStore, config: ChainConfig) -> None:
        self.store = store
        self.config = config

    @contextmanager
    def snapshot(self) -> Iterator[LmdbStore]:
        view = self.store.snapshot()
        try:
            yield view
        finally:
            view.close()

    def get(self, key: bytes) -> bytes | None:
        with self.snapshot() as view:
            return view.get(key)

    def nonce_of(self, sender: bytes) -> int:
        return codec.decode_int(self.get(nonce_key(sender)))

    @property
    def height(self) -> int:
        raw = self.store.get_meta("height")
        return -1 if raw is None else int.from_bytes(raw, "big", signed=True)

    def block(self, height: int) -> Block | None:
        return read_block(self.store, height)

    def receipts(self, height: int) -> list[Receipt] | None:
        return read_receipts(self.store, height)

    def find_tx(self, txh: bytes) -> tuple[int, int] | None:
        """(height, index) of a committed transaction, or None."""
        return self.store.get_tx_location(txh)


class NodeAlreadyRunning(RuntimeError):
    """Another producer (a node, or ``paraexec run``) holds this data directory: two producers
    on one chain would fork it."""

    @classmethod
    def at(cls, data: Path) -> NodeAlreadyRunning:
        return cls(f"another producer (a node or a run) is using {data}")


#: Tries, 10 ms apart, before a held lock means another producer.
LOCK_ATTEMPTS = 5


def lock_data_dir(data: Path) -> IO[str]:
    """Take an exclusive ``flock`` on ``DATA/node.lock`` (released by the OS even on kill -9).
    Every command that produces blocks on a directory takes it: ``node`` and ``run``."""
    Path(data).mkdir(parents=True, exist_ok=True)
    handle = open(Path(data) / "node.lock", "w")  # noqa: SIM115 - held for the producer's lifetime
    for attempt in range(LOCK_ATTEMPTS):  # a probe (``producer_running``) holds it for microseconds
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if attempt + 1 < LOCK_ATTEMPTS:
                time.sleep(0.01)
    handle.close()
    raise NodeAlreadyRunning.at(data)


def producer_running(data: Path) -> bool:
    """Whether a producer holds ``DATA/node.lock`` now, found without creating anything: a
    command checks it before minutes of set-up, then takes the lock (``lock_data_dir``)."""
    try:
        handle = open(Path(data) / "node.lock")  # noqa: SIM115 - closed below
    except OSError:  # no lock file (no producer ever ran there) or unreadable: the lock says
        return False
    with handle:
        try:  # shared: two probes never refuse each other, and a producer's exclusive lock refuses it
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:  # a file system without flock on this file: taking the lock will say
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@dataclass(frozen=True)
class NodeConfig:
    data: Path
    executor: str = "sequential"
    workers: int = 1
    block_time: float = 1.0
    max_block_txs: int = 1000
    empty_blocks: bool = True
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    #: helper processes that check admitted signatures (``verifier``; started by ``start``, or by
    #: the first batch to admit); 0: threads of this process, which all but stop while the
    #: producer executes a block
    verify_processes: int = 1
    #: seconds a block may stay in production before ``Node.stuck`` (and ``/health``) says so;
    #: 0: never. A 5,000-transaction perps block takes ~1 s on the 2-core box; a worker that
    #: stops answering holds its block up to the parallel executor's stall timeout (30 s)
    stuck_after: float = 15.0


@dataclass(frozen=True)
class BlockInfo:
    """What the node tells listeners (API, metrics, dashboard) about a committed block."""

    height: int
    hash: bytes
    time: int
    txs: int
    ok: int
    user_txs: int  # of ``txs``, those users submitted (the rest: the application's system transactions)
    tx_hashes: list[bytes]
    failed: list[int]  # indices of transactions with a failure receipt
    events: list[tuple[int, str, dict[str, Any]]]  # (txn_idx, name, attrs)
    # Execution statistics: ``None`` for a block read back from the store at start-up (they are
    # measurements of the process that produced it, not chain data, so they are not stored).
    seconds: float | None = None  # execution
    commit_seconds: float | None = None
    speedup: float | None = None  # parallelism: sum of worker busy time / wall time of execution (1: one core)
    re_executions: int | None = None
    executor: str | None = None
    workers: int | None = None
    mempool_size: int | None = None
    #: wall-clock time of the commit (rates: block times are whole seconds of chain time)
    produced_at: float | None = None

    @property
    def measured(self) -> bool:
        """Whether this process produced the block (and so has its execution statistics)."""
        return self.seconds is not None


class Node:
    """See module docstring. ``start()`` runs the producer thread; ``stop()`` ends it cleanly."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._lock_file = lock_data_dir(config.data)
        try:
            self.store = open_chain_store(config.data)
        except IncompatibleStore:
            self._lock_file.close()
            raise
        try:
            self.chain = Chain.open(self.store, verify_signatures=False)
        except BaseException:  # e.g. IncompatibleStore: nothing was started, release what was taken
            self.store.close()
            self._lock_file.close()
            raise
        self.reader = ChainReader(self.store, self.chain.config)
        #: started by ``start`` (no process runs before), stopped by ``stop``
        self.signatures = SignatureChecker(config.verify_processes) if config.verify_processes > 0 else None
        self.mempool = Mempool(
            self.chain.config.chain_id,
            self.reader.nonce_of,
            config.mempool,
            decode_payload=self.chain.runtime.decode_payload,
            height=self.chain.height,
            checker=None if self.signatures is None else self.signatures.verify_many,
        )
        self.executor = make_executor(config.executor, config.workers)
        self.listeners: list[Callable[[BlockInfo], None]] = []
        self.recent: deque[BlockInfo] = deque(maxlen=RECENT_BLOCKS)
        try:
            self.recent.extend(stored_infos(self.chain, RECENT_BLOCKS, STARTUP_TXS))
        except CorruptStore as exc:  # only the dashboard's history: the chain itself is usable
            log.warning("recent blocks not shown: %s", exc)
        self.started_at = time.time()
        self.blocks_produced = 0
        self.txs_committed = 0
        self.re_executions_total = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        #: called (producer thread) when production stops on an error: ``paraexec node`` shuts
        #: its API down then and exits non-zero, rather than accepting transactions it will
        #: never include
        self.on_halt: Callable[[BaseException], None] | None = None
        self.final_height = -1
        #: monotonic time the block in production started (None between blocks): ``stuck``
        self.producing_since: float | None = None

    @property
    def chain_config(self) -> ChainConfig:
        return self.chain.config

    def producing_for(self) -> float:
        """Seconds the block in production has taken so far (0 between blocks)."""
        since = self.producing_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    @property
    def stuck(self) -> bool:
        """Whether the block in production has taken more than ``config.stuck_after`` seconds.
        A worker that stops answering holds a block for up to the executor's stall timeout (30
        s) before it is replaced: the health check says so meanwhile, instead of calling a node
        that produces nothing healthy."""
        limit = self.config.stuck_after
        return limit > 0 and self.producing_for() > limit

    def start(self) -> None:
        if self.signatures is not None:
            self.signatures.start()
        start_executor(self.executor, self.store)
        self._thread = threading.Thread(target=self._loop, name="block-producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the block in progress (if any), then close executor and store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.final_height = self.chain.height
        try:
            self.executor.close()
        finally:
            try:
                if self.signatures is not None:
                    self.signatures.close()
            finally:
                self.store.close()
                self._lock_file.close()  # releases the flock

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                next_at += self.config.block_time
                self.produce_once()
                delay = next_at - time.monotonic()
                if delay < 0:  # fell behind (big block): do not burst to catch up
                    next_at = time.monotonic()
                elif self._stop.wait(delay):
                    break
        except BaseException as exc:  # an InvariantViolation, a full disk: stop producing, keep it for status
            self.error = exc
            if self.on_halt is not None:
                self.on_halt(exc)
            raise

    def block_time_for_next(self) -> int:
        """Integer seconds: wall clock, but never before the parent's time."""
        parent = self.chain.block(self.chain.height)
        return max(parent.header.time, int(time.time()))

    def produce_once(self) -> BlockInfo | None:
        """Reap, execute, commit one block and notify listeners. Producer thread only."""
        txs = self.mempool.reap(self.config.max_block_txs)
        if not txs and not self.config.empty_blocks:
            return None
        started = time.perf_counter()
        self.producing_since = time.monotonic()
        try:
            block, output = self.chain.produce_block(txs, self.block_time_for_next(), self.executor)
        finally:
            self.producing_since = None
        total = time.perf_counter() - started
        self.mempool.on_block(block.header.height, txs)
        info = self._info(block, output, total)
        self.blocks_produced += 1
        self.txs_committed += info.user_txs
        self.re_executions_total += info.re_executions or 0
        self.recent.append(info)
        for listener in list(self.listeners):
            listener(info)
        return info

    def _info(self, block: Block, output: BlockOutput, total_seconds: float) -> BlockInfo:
        stats = output.stats
        # a block an executor ran in-process reports its workers idle (``worker_busy`` zeros):
        # one core executed it, a parallelism of 1, not 0
        busy = sum(stats.worker_busy) or stats.seconds
        speedup = busy / stats.seconds if stats.seconds > 0 else 1.0
        return BlockInfo(
            **_chain_facts(block, output.receipts, self.chain.tx_hashes(block)),
            seconds=stats.seconds,
            commit_seconds=max(0.0, total_seconds - stats.seconds),
            speedup=speedup,
            re_executions=stats.re_executions(len(block.txs)),
            executor=stats.executor,
            workers=stats.workers,
            mempool_size=len(self.mempool),
            produced_at=time.time(),
        )


def _chain_facts(block: Block, receipts: list[Receipt], tx_hashes: list[bytes]) -> dict[str, Any]:
    """The ``BlockInfo`` fields that follow from the block, its receipts and its transactions'
    hashes (``Chain.tx_hashes``)."""
    return {
        "height": block.header.height,
        "hash": block.hash,
        "time": block.header.time,
        "txs": len(block.txs),
        "ok": sum(r.ok for r in receipts),
        "user_txs": sum(raw[:1] != SYSTEM_TAG for raw in block.txs),
        "tx_hashes": tx_hashes,
        "failed": [i for i, r in enumerate(receipts) if not r.ok],
        "events": [(i, e.name, e.attrs) for i, r in enumerate(receipts) for e in r.events],
    }


def stored_infos(chain: Chain, count: int, max_txs: int | None = None) -> list[BlockInfo]:
    """``BlockInfo`` of the chain's last ``count`` blocks, read back from the store (oldest first);
    with ``max_txs``, only the newest of them up to the first that brings their transactions to
    ``max_txs`` (the newest block is always read).

    A restarted node starts with these, so its dashboard, ``get_recent_blocks`` and ``get_trades``
    show the chain's recent history rather than nothing until the next block. Execution
    statistics are ``None``: they belong to the process that produced the block.
    """
    infos: list[BlockInfo] = []
    txs = 0
    for height in range(chain.height, max(0, chain.height - count), -1):  # newest first, one at a time
        if max_txs is not None and infos and txs >= max_txs:
            break
        block = chain.block(height)
        infos.append(BlockInfo(**_chain_facts(block, chain.receipts(height), chain.tx_hashes(block))))
        txs += len(block.txs)
    return infos[::-1]

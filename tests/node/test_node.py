"""The node in-process: block production from the mempool, listeners, recovery, clean stop, and
reads that run concurrently with production and always see whole blocks."""

from __future__ import annotations

import threading
import time

import pytest

from paraexec import codec
from paraexec.apps.transfers import BALANCE_PREFIX, Transfer
from paraexec.chain import Chain, ChainConfig
from paraexec.chain.mempool import MempoolConfig
from paraexec.chain.node import BlockInfo, Node, NodeAlreadyRunning, NodeConfig
from paraexec.crypto import SigningKey
from paraexec.execution.registry import make_executor
from paraexec.state import LmdbStore
from paraexec.transaction import encode_payload, sign, tx_hash

CHAIN = "node-test"
KEYS = [SigningKey.from_seed_text(f"node/{i}") for i in range(6)]
BALANCE = 1_000_000


def make_chain(path) -> None:
    store = LmdbStore(path)
    Chain.create(store, ChainConfig(CHAIN, "transfers", {"accounts": {k.public_key.hex(): BALANCE for k in KEYS}}))
    store.close()


def transfer(key: SigningKey, nonce: int, to: int, amount: int = 1) -> bytes:
    return sign(key, CHAIN, nonce, encode_payload(Transfer(KEYS[to].public_key, amount)))


def test_a_block_run_in_process_reports_a_parallelism_of_one(tmp_path):
    """``parallel`` runs an empty block in-process (its workers idle: ``worker_busy`` zeros): the
    dashboard's and metrics' parallelism is 1 there, not 0."""
    make_chain(tmp_path)
    node = Node(NodeConfig(tmp_path, executor="parallel", workers=2))
    try:
        info = node.produce_once()
        assert info is not None and info.txs == 0 and info.executor == "parallel"
        assert info.speedup == 1.0
    finally:
        node.stop()


@pytest.mark.parametrize("executor", ["parallel", "adaptive"])
def test_a_started_node_has_its_workers_up_before_the_first_block(tmp_path, executor):
    """Spawning worker processes (~0.1-0.5 s each) is start-up's, not the first block's."""
    make_chain(tmp_path)
    config = NodeConfig(tmp_path, executor=executor, workers=2, block_time=3600, empty_blocks=False, verify_processes=0)
    node = Node(config)
    try:
        node.start()
        parallel = node.executor if executor == "parallel" else node.executor.executor("parallel")
        assert len(parallel.worker_pids()) == 2 and node.chain.height == 0
    finally:
        node.stop()


def test_produce_from_mempool_notify_and_recover(tmp_path):
    make_chain(tmp_path)
    node = Node(NodeConfig(tmp_path, max_block_txs=3))
    seen: list[BlockInfo] = []
    node.listeners.append(seen.append)
    raws = [transfer(KEYS[0], n, 1) for n in range(4)] + [transfer(KEYS[2], 0, 3, amount=BALANCE + 1)]
    assert all(r.error is None for r in node.mempool.admit_many(raws))
    first = node.produce_once()
    assert first is not None and first.height == 1 and first.txs == 3  # max_block_txs
    assert node.reader.find_tx(tx_hash(raws[0])) == (1, 0)
    second = node.produce_once()
    assert second is not None and second.txs == 2 and second.failed == [1]  # KEYS[2] cannot pay
    assert [i.height for i in seen] == [1, 2] and len(node.mempool) == 0
    assert node.reader.nonce_of(KEYS[0].public_key) == 4
    parent = node.chain.block(2)
    assert parent.header.time >= node.chain.block(1).header.time
    with pytest.raises(NodeAlreadyRunning):  # one producer per data directory
        Node(NodeConfig(tmp_path))
    node.stop()
    assert node.final_height == 2

    again = Node(NodeConfig(tmp_path))  # recovery: continue from the last committed block
    assert again.chain.height == 2 and len(again.mempool) == 0
    # the recent history comes back from the store, without the old process's execution stats
    restored = list(again.recent)
    assert [(i.height, i.hash, i.txs, i.user_txs, i.failed) for i in restored] == [
        (s.height, s.hash, s.txs, s.user_txs, s.failed) for s in seen
    ]
    assert [i.tx_hashes for i in restored] == [s.tx_hashes for s in seen]
    assert all(not i.measured and i.speedup is None and i.executor is None for i in restored)
    assert all(s.measured for s in seen)
    info = again.produce_once()
    assert info is not None and info.height == 3
    assert again.chain.block(3).header.parent_hash == parent.hash
    again.stop()


def test_empty_blocks_option(tmp_path):
    make_chain(tmp_path)
    node = Node(NodeConfig(tmp_path, empty_blocks=False))
    assert node.produce_once() is None and node.chain.height == 0
    node.mempool.admit(transfer(KEYS[0], 0, 1))
    assert node.produce_once() is not None and node.chain.height == 1
    node.stop()


def test_reads_during_production_see_whole_blocks_and_stop_is_clean(tmp_path):
    """Transfers conserve the total balance: any snapshot that saw half a block would break it."""
    make_chain(tmp_path)
    node = Node(NodeConfig(tmp_path, block_time=0.01, max_block_txs=50, mempool=MempoolConfig(max_per_sender=500)))
    raws = [transfer(KEYS[i % 6], i // 6, (i + 1) % 6, amount=1 + i % 7) for i in range(600)]
    assert all(r.error is None for r in node.mempool.admit_many(raws))
    totals: list[tuple[int, int]] = []
    heights: set[int] = set()  # of the snapshots taken so far
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():  # until the main thread has seen enough: however slow the start
            with node.reader.snapshot() as view:
                total = sum(codec.decode_int(v) for _, v in view.items(BALANCE_PREFIX))
                totals.append((view.height, total))
                heights.add(view.height)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        node.start()
        deadline = time.monotonic() + 120  # an upper bound: the loop ends once both hold
        while (node.reader.height < 12 or len(heights) < 3) and time.monotonic() < deadline:
            done.wait(0.01)
    finally:
        done.set()
        thread.join()
        node.stop()  # finishes the block in progress, then closes the store
    assert {t for _, t in totals} == {BALANCE * len(KEYS)}
    assert len({h for h, _ in totals}) >= 3, "the reader should run across several blocks"

    store = LmdbStore(tmp_path, readonly=True)
    chain = Chain.open(store)
    assert chain.height == node.final_height >= 12
    assert sum(1 for _ in chain.replay(make_executor("sequential"))) == chain.height  # roots and receipts match
    store.close()


def test_start_up_reads_back_recent_blocks_up_to_a_transaction_budget(tmp_path, monkeypatch):
    """A restarted node reads its recent blocks back newest first and stops once they hold
    ``STARTUP_TXS`` transactions (the newest block always), so a chain of large blocks does not
    hold the start for seconds; the blocks it reads come oldest first, as produced."""
    import paraexec.chain.node as node_module

    make_chain(tmp_path)
    store = LmdbStore(tmp_path)
    chain = Chain.open(store)
    executor = make_executor("sequential", 1)
    sizes = [3, 1, 2, 2, 4]
    nonce = 0
    for height, size in enumerate(sizes, start=1):
        txs = [transfer(KEYS[0], nonce + i, 1) for i in range(size)]
        nonce += size
        chain.produce_block(txs, height, executor)
    store.close()

    reader = LmdbStore(tmp_path, readonly=True)
    assert [i.height for i in node_module.stored_infos(Chain.open(reader), 3)] == [3, 4, 5]  # no budget
    reader.close()
    # 6: blocks 5 (4 txs) and 4 (2) meet the budget; 1: the newest block, even past the budget
    for budget, expected in ((6, [(4, 2), (5, 4)]), (1, [(5, 4)])):
        monkeypatch.setattr(node_module, "STARTUP_TXS", budget)
        node = Node(NodeConfig(tmp_path))
        try:
            assert [(i.height, i.txs) for i in node.recent] == expected
        finally:
            node.stop()


def test_a_directory_lmdb_cannot_open_is_refused_and_released(tmp_path):
    """A ``data.mdb`` that is not an LMDB database: ``IncompatibleStore`` naming the store (the
    CLI prints it), and the directory's lock is released, so a later node can take it."""
    from paraexec.errors import IncompatibleStore

    (tmp_path / "data.mdb").write_bytes(b"not lmdb" * 1000)
    for _ in range(2):  # the second try would raise NodeAlreadyRunning were the lock kept
        with pytest.raises(IncompatibleStore, match="cannot open the chain store"):
            Node(NodeConfig(tmp_path))


def test_stuck_counts_from_stuck_after_and_zero_turns_it_off(tmp_path):
    make_chain(tmp_path)
    node = Node(NodeConfig(tmp_path, stuck_after=2.0))
    try:
        assert not node.stuck and node.producing_for() == 0.0  # between blocks
        node.producing_since = time.monotonic() - 1.0
        assert not node.stuck
        node.producing_since = time.monotonic() - 3.0
        assert node.stuck and node.producing_for() >= 3.0
        node.producing_since = None
    finally:
        node.stop()
    never = Node(NodeConfig(tmp_path, stuck_after=0))
    try:
        never.producing_since = time.monotonic() - 1e6
        assert not never.stuck
        never.producing_since = None
    finally:
        never.stop()


def test_a_failed_worker_start_is_left_to_the_first_block(tmp_path, monkeypatch, caplog):
    """``start`` must not take the node down when spawning fails: it logs, and the first block
    that needs workers starts them (or runs in-process, as it always could)."""
    from paraexec.execution.parallel import executor as parallel_executor
    from paraexec.execution.registry import start_executor

    make_chain(tmp_path)
    node = Node(NodeConfig(tmp_path, executor="parallel", workers=2, verify_processes=0))
    try:

        def broken(self, state):
            raise OSError("no processes left")

        with monkeypatch.context() as patch:
            patch.setattr(parallel_executor.ParallelExecutor, "_boot_workers", broken)
            start_executor(node.executor, node.store)
        assert "parallel workers not started" in caplog.text and node.executor.worker_pids() == []
        assert node.mempool.admit(transfer(KEYS[0], 0, 1)).error is None
        info = node.produce_once()
        assert info is not None and info.failed == [] and info.user_txs == 1
    finally:
        node.stop()

"""A block's root returned pending while the workers hash it (``parallel.pending_root.PendingRoot``).

The parallel executor hands an in-process block's hashing to its helpers and returns before they
finish; the chain writes the block's state to LMDB meanwhile and reads the root inside the same
write transaction. The result must be sequential's whatever happens in between: a root read late
(after the store moved on) is refused, never hashed against the wrong state; a root never read is
finished or dropped before the workers get other messages; a helper that dies while hashing
costs nothing but time. The stores must call the commit's callables against the pre-block state.
"""

from __future__ import annotations

import os
import signal

import pytest

from paraexec.errors import InvariantViolation
from paraexec.execution import BlockEnv, SequentialExecutor
from paraexec.execution.parallel import ParallelExecutor, old_hashes
from paraexec.execution.parallel import executor as executor_module
from paraexec.state import MemoryStore, commitment
from paraexec.state.lmdb_store import LmdbStore

from .strategies import transfer_block, transfer_chain

ACCOUNTS = 400


@pytest.fixture
def small_thresholds(monkeypatch):
    """Blocks of 300 transfers write ~500 keys: hash them with the workers, old values ahead."""
    monkeypatch.setattr(executor_module, "HASH_ON_WORKERS", 100)
    monkeypatch.setattr(old_hashes, "EVERY", 16)


def blocks(count: int) -> list[list[bytes]]:
    reference = transfer_chain(ACCOUNTS)
    return [transfer_block(reference, 300, seed=height) for height in range(1, count + 1)]


def expected_roots(txs_by_block: list[list[bytes]]) -> list[bytes]:
    chain = transfer_chain(ACCOUNTS).chain
    executor = SequentialExecutor()
    return [chain.produce_block(txs, k + 1, executor)[0].header.state_root for k, txs in enumerate(txs_by_block)]


def in_process_executor(defer: bool = True) -> ParallelExecutor:
    executor = ParallelExecutor(2, wave=16, contention_fallback=False)
    executor.defer_root = defer
    executor.execute_block = executor.execute_in_process  # type: ignore[method-assign]
    return executor


@pytest.fixture
def deferred(tmp_path, small_thresholds):
    """(executor, store, chain): an in-process ``parallel`` deferring roots, on a fresh LMDB chain."""
    store = LmdbStore(tmp_path / "db")
    executor = in_process_executor()
    try:
        yield executor, store, transfer_chain(ACCOUNTS, store).chain
    finally:
        executor.close()
        store.close()


@pytest.mark.parametrize("defer", (True, False), ids=("deferred", "at-once"))
def test_chain_of_in_process_blocks_equals_sequential(tmp_path, small_thresholds, defer):
    """The chain commits each block while its root is hashed (or after, without deferral)."""
    txs_by_block = blocks(3)
    store = LmdbStore(tmp_path / "db")
    executor = in_process_executor(defer)
    pending = []
    execute = executor.execute_in_process

    def recording(*args, **kwargs):
        output = execute(*args, **kwargs)
        pending.append(output.root_pending)
        return output

    executor.execute_block = recording  # type: ignore[method-assign]
    try:
        chain = transfer_chain(ACCOUNTS, store).chain
        roots = [chain.produce_block(txs, k + 1, executor)[0].header.state_root for k, txs in enumerate(txs_by_block)]
        assert roots == expected_roots(txs_by_block)
        assert pending == [defer] * 3
        assert executor.hashed_on_workers > 0
        assert store.root == roots[-1] and store.height == 3
        assert chain.block(3).header.state_root == roots[-1]  # block bytes written with the root
    finally:
        executor.close()
        store.close()


def test_root_read_after_the_store_moved_on_is_refused(deferred):
    """A caller commits block 1 without reading its pending root: reading it later raises
    (the store no longer holds the pre-state), and the next block is still exact."""
    executor, store, chain = deferred
    txs_by_block = blocks(2)
    expected = SequentialExecutor()
    reference = transfer_chain(ACCOUNTS).chain
    env = BlockEnv(1, 1)
    late = executor.execute_block(chain.runtime, txs_by_block[0], store, env)
    assert late.root_pending
    want = expected.execute_block(reference.runtime, txs_by_block[0], reference.store, env)
    store.commit_block(1, late.write_set, want.accumulator, b"", b"")
    reference.store.commit_block(1, want.write_set, want.accumulator, b"", b"")
    # the next block drains the stale pending root first (its helpers are replaced)
    env2 = BlockEnv(2, 2)
    got = executor.execute_block(chain.runtime, txs_by_block[1], store, env2)
    assert got.same_result(expected.execute_block(reference.runtime, txs_by_block[1], reference.store, env2))
    with pytest.raises(InvariantViolation, match="moved past"):
        late.state_root  # noqa: B018


def test_root_never_read_is_finished_before_the_next_block(deferred):
    """Block 1 is executed and thrown away (state unchanged): the executor finishes its pending
    root before the next block's messages, and the re-run block is exact."""
    executor, store, chain = deferred
    txs_by_block = blocks(1)
    reference = transfer_chain(ACCOUNTS).chain
    env = BlockEnv(1, 1)
    dropped = executor.execute_block(chain.runtime, txs_by_block[0], store, env)
    assert dropped.root_pending
    got = executor.execute_block(chain.runtime, txs_by_block[0], store, env)
    want = SequentialExecutor().execute_block(reference.runtime, txs_by_block[0], reference.store, env)
    assert got.same_result(want)
    assert executor._pending_root is None  # drained before the second run
    assert dropped.state_root == want.state_root


def test_helper_killed_while_hashing_a_pending_root(tmp_path, small_thresholds):
    """The helper dies after the root's messages went out: the root is hashed here instead."""
    txs_by_block = blocks(2)
    store = LmdbStore(tmp_path / "db")
    executor = in_process_executor()
    killed = []
    start = executor._start_with_old

    def start_then_kill(*args):
        finish = start(*args)
        if not killed:
            pid = executor.pool.pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return finish

    executor._start_with_old = start_then_kill  # type: ignore[method-assign]
    try:
        chain = transfer_chain(ACCOUNTS, store).chain
        roots = [chain.produce_block(txs, k + 1, executor)[0].header.state_root for k, txs in enumerate(txs_by_block)]
        assert roots == expected_roots(txs_by_block)
        assert killed
    finally:
        executor.close()
        store.close()


@pytest.mark.parametrize("store_kind", ("memory", "lmdb"))
def test_commit_callables_see_the_pre_block_state(tmp_path, store_kind):
    """Both stores call the accumulator and block callables while ``get`` still reads the
    pre-block state, and commit nothing when one raises."""
    store = MemoryStore() if store_kind == "memory" else LmdbStore(tmp_path / "db")
    try:
        store.commit_block(0, {b"k": b"old"}, 0, b"genesis", b"")
        seen = []

        def accumulator() -> int:
            seen.append(store.get(b"k"))
            return commitment.combine(store.accumulator, commitment.write_delta([(b"k", b"new")], store.get))

        store.commit_block(1, {b"k": b"new"}, accumulator, lambda: seen.append(store.get(b"k")) or b"block", b"")
        assert seen == [b"old", b"old"]
        assert store.get(b"k") == b"new" and store.get_block(1) == b"block" and store.height == 1

        def failing() -> bytes:
            raise RuntimeError("root failed")

        with pytest.raises(RuntimeError):
            store.commit_block(2, {b"k": b"newer"}, store.accumulator, failing, b"")
        assert store.get(b"k") == b"new" and store.height == 1 and store.get_block(2) is None
    finally:
        store.close()


def test_time_guard_counts_the_roots_residual(deferred):
    """The in-process plan is timed once its pending root is read, with what was left of it."""
    executor, store, chain = deferred
    clock = executor.clocks[False]  # nothing was checked ahead
    output = executor.execute_block(chain.runtime, blocks(1)[0], store, BlockEnv(1, 1))
    assert output.root_pending and "in-process" not in clock.runs
    output.state_root  # noqa: B018
    assert clock.runs["in-process"] == 1


def test_root_read_after_close_is_hashed_here(deferred):
    """``close`` does not wait for a pending root: read later, it is hashed in this process."""
    executor, store, chain = deferred
    txs = blocks(1)[0]
    output = executor.execute_block(chain.runtime, txs, store, BlockEnv(1, 1))
    assert output.root_pending
    executor.close()
    reference = transfer_chain(ACCOUNTS).chain
    want = SequentialExecutor().execute_block(reference.runtime, txs, reference.store, BlockEnv(1, 1))
    assert output.state_root == want.state_root and not executor.pool.started

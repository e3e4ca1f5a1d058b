"""Both StateStore backends honour one contract; LMDB commits atomically and serves other processes."""

from __future__ import annotations

import multiprocessing

import pytest

from paraexec.errors import InvariantViolation
from paraexec.state import LmdbStore, MemoryStore, commitment


@pytest.fixture(params=["memory", "lmdb"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else LmdbStore(tmp_path / "db")
    yield s
    s.close()


def commit(store, height, writes):
    acc = commitment.combine(store.accumulator, commitment.delta((k, store.get(k), v) for k, v in writes.items()))
    store.commit_block(height, writes, acc, b"block%d" % height, b"receipts%d" % height, tx_hashes=[b"h%d" % height])


def test_commit_then_read(store):
    assert store.height == -1 and store.root == commitment.EMPTY_ROOT
    commit(store, 0, {b"a": b"1", b"b": b"2"})
    commit(store, 1, {b"a": None, b"c": b"3"})
    assert store.height == 1
    assert store.get(b"a") is None and store.get(b"b") == b"2" and store.get(b"c") == b"3"
    assert list(store.items()) == [(b"b", b"2"), (b"c", b"3")]
    assert store.get_block(1) == b"block1" and store.get_receipts(0) == b"receipts0"
    assert store.get_tx_location(b"h1") == (1, 0)
    assert store.accumulator == commitment.accumulate([(b"b", b"2"), (b"c", b"3")])


def test_heights_must_follow(store):
    commit(store, 0, {})
    with pytest.raises(InvariantViolation):
        commit(store, 2, {})


def test_lmdb_commit_is_all_or_nothing(tmp_path):
    store = LmdbStore(tmp_path / "db")
    commit(store, 0, {b"a": b"1"})
    with pytest.raises(TypeError):
        # the second value is not bytes: LMDB raises inside the write transaction
        store.commit_block(1, {b"a": b"2", b"b": 3}, 0, b"block", b"r")  # type: ignore[dict-item]
    assert store.height == 0 and store.get(b"a") == b"1" and store.get_block(1) is None
    store.close()
    reopened = LmdbStore(tmp_path / "db")
    assert reopened.height == 0 and reopened.get(b"a") == b"1"
    reopened.close()


def _read_in_child(path, queue):
    reader = LmdbStore(path, readonly=True)
    queue.put((reader.height, reader.get(b"k"), reader.accumulator))
    reader.close()


def test_worker_process_reads_committed_state(tmp_path):
    path = tmp_path / "db"
    store = LmdbStore(path)
    commit(store, 0, {b"k": b"v"})
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(str(path), queue))
    child.start()
    height, value, acc = queue.get(timeout=60)
    child.join(timeout=60)
    assert (height, value, acc) == (0, b"v", store.accumulator)
    store.close()


def test_readonly_reader_sees_new_commits_after_refresh(tmp_path):
    store = LmdbStore(tmp_path / "db")
    commit(store, 0, {b"k": b"1"})
    reader = store.snapshot()
    commit(store, 1, {b"k": b"2"})
    assert reader.get(b"k") == b"1"  # a snapshot: consistent until refreshed
    reader.refresh()
    assert reader.get(b"k") == b"2" and reader.height == 1
    reader.close()
    store.close()


def test_a_truncated_data_file_is_refused_not_mapped(tmp_path):
    """LMDB maps the file: reading past the end of a cut one would kill the process (SIGBUS).
    The store refuses it at open with ``lmdb.CorruptedError``, nothing read."""
    import os

    import lmdb

    store = LmdbStore(tmp_path)
    for height in range(3):
        store.commit_block(height, {f"k{height}/{i}".encode(): b"v" * 100 for i in range(500)}, 0, b"block", b"")
    store.close()
    data_file = tmp_path / "data.mdb"
    LmdbStore(tmp_path, readonly=True).close()  # whole: opens
    os.truncate(data_file, data_file.stat().st_size // 3)
    for readonly in (True, False):
        with pytest.raises(lmdb.CorruptedError, match="truncated"):
            LmdbStore(tmp_path, readonly=readonly)


def _commit_in_child(path, height):
    other = LmdbStore(path)
    commit(other, height, {b"k": b"theirs"})
    other.close()


def test_a_commit_on_a_snapshot_another_writer_moved_is_refused(tmp_path):
    """Two writers on one store (two processes): the one whose snapshot is behind must not
    overwrite the block the other committed. Nothing of its block is written."""
    from paraexec.errors import ConcurrentWriter

    path = tmp_path / "db"
    store = LmdbStore(path)
    commit(store, 0, {b"k": b"genesis"})
    child = multiprocessing.get_context("spawn").Process(target=_commit_in_child, args=(str(path), 1))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    with pytest.raises(ConcurrentWriter, match="block 1 was committed by another writer"):
        commit(store, 1, {b"k": b"mine", b"extra": b"x"})
    store.refresh()
    assert store.height == 1 and store.get(b"k") == b"theirs" and store.get(b"extra") is None
    assert store.get_block(1) == b"block1"
    store.close()


def _hold_a_snapshot(path, ready):
    reader = LmdbStore(path, readonly=True)  # its read transaction stays open until it dies
    assert reader.height >= 0
    ready.set()
    import time

    time.sleep(600)


def _reader_pids(store: LmdbStore) -> set[int]:
    return {int(line.split()[0]) for line in store.env.readers().splitlines()[1:] if line.split()}


def test_a_commit_frees_the_reader_slot_of_a_killed_process(tmp_path):
    """A worker killed while it held a read snapshot leaves its slot in LMDB's reader table; the
    slot pins that snapshot, so no page freed after it could be reused and the file would grow
    with every block. The next commit frees it."""
    import os
    import signal

    path = tmp_path / "db"
    store = LmdbStore(path)
    commit(store, 0, {b"k": b"v"})
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_a_snapshot, args=(str(path), ready))
    child.start()
    assert ready.wait(60)
    assert child.pid in _reader_pids(store)
    os.kill(child.pid, signal.SIGKILL)
    child.join(60)
    commit(store, 1, {b"k": b"w"})
    assert child.pid not in _reader_pids(store)
    store.close()

"""LMDB backend of ``StateStore`` (the default, a directory on disk).

Layout: one LMDB environment with four named databases:

- ``state``    key -> value (committed state only);
- ``blocks``   8-byte big-endian height -> block bytes;
- ``receipts`` height -> receipts bytes;
- ``meta``     name -> bytes (``height``, ``accumulator`` and the chain config);
- ``txindex``  transaction hash -> 8-byte height + 4-byte index in the block.

``commit_block`` performs all writes of a block in **one** LMDB write transaction (``putmulti``
for the state), so a crash leaves the store at the previous block or the new one. LMDB is
copy-on-write with a single writer and lock-free readers, so worker processes can open the same
directory with ``readonly=True`` and read committed state directly (~1.3 us per get) while the
coordinator writes; a reader sees the last commit that finished before its read transaction
began (``refresh``).

Threads: one handle's read snapshot and cursor are not thread-safe; give each reader thread its
own ``snapshot()`` (the node's RPC does), or serialise access (Block-STM's shared state view does).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lmdb

from ..errors import ConcurrentWriter, IncompatibleStore, InvariantViolation
from ..types import Key, Value
from . import commitment
from .store import must_follow

MAP_SIZE = 1 << 36  # 64 GiB of address space; the file grows only as data is written


def _height_key(height: int) -> bytes:
    return height.to_bytes(8, "big")


def _stored_height(height: int) -> bool:
    """A height a block can be stored at: the store keeps its height as a signed 8-byte integer
    (``_height_key`` raises on a negative height or one of 2**64 and more)."""
    return 0 <= height < 1 << 63


class LmdbStore:
    """``StateStore`` on LMDB. Open with ``readonly=True`` from worker processes."""

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False, durable: bool = True) -> None:
        """Open (or create) the store at ``path``.

        ``durable=False`` skips the fsync at each commit: for scratch stores (replays, benchmarks
        of execution) whose content can be rebuilt; a crash may then lose recent blocks, but
        LMDB still never exposes a torn one.
        """
        self.path = os.fspath(path)
        if not readonly:
            os.makedirs(self.path, exist_ok=True)
        self.readonly = readonly
        self.env = lmdb.open(
            self.path,
            map_size=MAP_SIZE,
            max_dbs=5,
            readonly=readonly,
            create=not readonly,
            readahead=False,
            sync=durable,
            metasync=durable,
        )
        try:
            self._must_be_whole()
            self._state = self.env.open_db(b"state", create=not readonly)
            self._blocks = self.env.open_db(b"blocks", create=not readonly)
            self._receipts = self.env.open_db(b"receipts", create=not readonly)
            self._meta = self.env.open_db(b"meta", create=not readonly)
            self._txindex = self.env.open_db(b"txindex", create=not readonly)
            self._read: lmdb.Transaction | None = None
            self._owns_env = True
            self.refresh()
        except Exception:  # a foreign or damaged database: release its files now, not at garbage collection
            self.env.close()
            raise

    def _must_be_whole(self) -> None:
        """Refuse a data file shorter than the pages its last commit uses: it was cut outside
        LMDB, and LMDB maps the file, so reading past its end would kill the process with
        SIGBUS instead of raising. ``lmdb.CorruptedError`` (an ``lmdb.Error``, which the CLI
        reports in one line)."""
        info = self.env.info()
        data_file = os.path.join(self.path, "data.mdb")
        used = (info["last_pgno"] + 1) * self.env.stat()["psize"]
        size = os.path.getsize(data_file) if info["last_txnid"] > 0 and os.path.exists(data_file) else used
        if size < used:
            self.env.close()
            raise lmdb.CorruptedError(f"{data_file} is {size} bytes but its last commit uses {used}: truncated")

    def snapshot(self) -> LmdbStore:
        """A read-only view sharing this environment (LMDB allows one open per process).

        It has its own read snapshot (``refresh`` to move it forward), so readers in other threads
        (the node's RPC) never block, and never see, a commit in progress.
        """
        view = object.__new__(LmdbStore)
        view.__dict__.update({k: v for k, v in self.__dict__.items() if k.startswith("_") or k in ("path", "env")})
        view.readonly = True
        view._owns_env = False
        view._read = None
        view.refresh()
        return view

    # -- reading ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Start a new read snapshot at the latest commit (workers call this per block)."""
        if self._read is not None:
            self._read.abort()
        self._read = self.env.begin(buffers=False)
        self._state_get = self._read.cursor(self._state).get
        meta = self._read.cursor(self._meta)
        height = meta.get(b"height")
        self._height = -1 if height is None else int.from_bytes(height, "big", signed=True)
        acc = meta.get(b"accumulator")
        self._accumulator = 0 if acc is None else int.from_bytes(acc, "little")

    @property
    def height(self) -> int:
        return self._height

    @property
    def accumulator(self) -> int:
        return self._accumulator

    @property
    def root(self) -> bytes:
        return commitment.root_of(self._accumulator)

    def get(self, key: Key) -> Value | None:
        return self._state_get(key)

    def get_many(self, keys: list[Key]) -> list[Value | None]:
        get = self._state_get
        return [get(k) for k in keys]

    def items(self, prefix: bytes = b"") -> Iterator[tuple[Key, Value]]:
        with self.env.begin() as txn:
            cursor = txn.cursor(self._state)
            if not cursor.set_range(prefix):
                return
            for key, value in cursor:
                if not key.startswith(prefix):
                    break
                yield key, value

    def get_meta(self, name: str) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(name.encode(), db=self._meta)

    def get_block(self, height: int) -> bytes | None:
        if not _stored_height(height):
            return None  # a caller's out-of-range height: no such block, not an OverflowError
        with self.env.begin() as txn:
            return txn.get(_height_key(height), db=self._blocks)

    def get_receipts(self, height: int) -> bytes | None:
        if not _stored_height(height):
            return None
        with self.env.begin() as txn:
            return txn.get(_height_key(height), db=self._receipts)

    def get_tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        with self.env.begin() as txn:
            loc = txn.get(tx_hash, db=self._txindex)
        return None if loc is None else (int.from_bytes(loc[:8], "big"), int.from_bytes(loc[8:], "big"))

    # -- writing ---------------------------------------------------------------------------

    def commit_block(
        self,
        height: int,
        write_set: Mapping[Key, Value | None],
        accumulator: int | Callable[[], int],
        block: bytes | Callable[[], bytes],
        receipts: bytes,
        meta: dict[str, bytes] | None = None,
        tx_hashes: list[bytes] | None = None,
    ) -> None:
        """Write everything of one block in a single LMDB transaction.

        ``accumulator`` and ``block`` may be callables: they are called after the state writes,
        inside the write transaction, so the root can be computed by other processes (reading the
        previous committed snapshot) while this one writes; ``get`` still reads that snapshot
        here (the read transaction is renewed only after the commit). If either raises, nothing
        is written. The height is checked again inside the write transaction: if another process
        committed since this store's snapshot, ``ConcurrentWriter`` and nothing is written.
        """
        if self.readonly:
            raise InvariantViolation("commit on a read-only store")
        must_follow(self._height, height)
        # Key order: fewer page splits. Sorting the items themselves stays in C (keys are unique,
        # so values are never compared); only a write set with deletes is filtered in Python.
        puts: list[Any] = sorted(write_set.items())
        deletes: list[Key] = []
        if None in write_set.values():
            deletes = [k for k, v in puts if v is None]
            puts = [(k, v) for k, v in puts if v is not None]
        # Free the reader slots of dead processes (a worker replaced after a crash or stall was
        # killed holding a read snapshot): a dead slot pins its snapshot, so LMDB could never
        # reuse a page freed after it and the file would grow with every block (~0.1 us).
        self.env.reader_check()
        with self.env.begin(write=True) as txn:
            stored = txn.get(b"height", db=self._meta)
            if stored is not None and int.from_bytes(stored, "big", signed=True) != self._height:
                raise ConcurrentWriter(
                    f"{self.path}: block {int.from_bytes(stored, 'big', signed=True)} was committed by another "
                    f"writer while block {height} was computed on block {self._height}'s state; not written"
                )
            cursor = txn.cursor(self._state)
            cursor.putmulti(puts)
            for key in deletes:
                txn.delete(key, db=self._state)
            txn.put(_height_key(height), receipts, db=self._receipts)
            if tx_hashes:
                prefix = _height_key(height)
                txn.cursor(self._txindex).putmulti(
                    [(h, prefix + i.to_bytes(4, "big")) for i, h in enumerate(tx_hashes)], overwrite=False
                )
            for name, value in (meta or {}).items():
                txn.put(name.encode(), value, db=self._meta)
            if callable(accumulator):
                accumulator = accumulator()
            txn.put(_height_key(height), block() if callable(block) else block, db=self._blocks)
            txn.put(b"accumulator", accumulator.to_bytes(commitment.LATTICE_BYTES, "little"), db=self._meta)
            txn.put(b"height", height.to_bytes(8, "big", signed=True), db=self._meta)
        self.refresh()

    def close(self) -> None:
        if self._read is not None:
            self._read.abort()
            self._read = None
        if self._owns_env:
            self.env.close()


def open_chain_store(path: str | os.PathLike[str], readonly: bool = False) -> LmdbStore:
    """The ``LmdbStore`` at ``path``; ``IncompatibleStore`` naming it for a directory LMDB
    cannot open (a file, a corrupt or foreign database), where LMDB's own error would say
    little ("Invalid argument", ``MDB_INVALID``). A read-only open that is refused leaves the
    directory as it found it: LMDB creates ``lock.mdb`` on open, and a directory that had none
    (a copied database) gets none from a command that only meant to read it."""
    lock_file = os.path.join(os.fspath(path), "lock.mdb")
    had_lock = os.path.exists(lock_file)
    try:
        return LmdbStore(path, readonly=readonly)
    except (lmdb.Error, OSError) as exc:
        if readonly and not had_lock:
            with contextlib.suppress(OSError):
                os.remove(lock_file)
        raise IncompatibleStore(f"cannot open the chain store at {path}: {exc}") from None

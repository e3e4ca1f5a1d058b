"""The ``StateStore`` contract and its in-memory backend.

A store holds committed state (key -> value), the chain's blocks and receipts by height, and
meta data (height, lattice accumulator, root, chain config). ``commit_block`` writes a block's
write set, its block and receipt bytes and the new height/accumulator in one atomic step: after
a crash the store is at the previous block or the new one, never between.

The in-memory backend exists for tests and benchmarks that must not touch disk; the LMDB
backend (``lmdb_store.LmdbStore``) is the default and the one worker processes can open
read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from ..errors import InvariantViolation
from ..types import Key, Value
from . import commitment


class StateStore(Protocol):
    """What every backend offers. ``height`` is -1 before genesis is committed."""

    @property
    def height(self) -> int: ...

    @property
    def accumulator(self) -> int: ...

    @property
    def root(self) -> bytes: ...

    def get(self, key: Key) -> Value | None: ...

    def items(self, prefix: bytes = b"") -> Iterator[tuple[Key, Value]]: ...

    def get_meta(self, name: str) -> bytes | None: ...

    def get_block(self, height: int) -> bytes | None: ...

    def get_receipts(self, height: int) -> bytes | None: ...

    def get_tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index in block) of a committed transaction, by hash (first inclusion wins)."""
        ...

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
        """Write the block's state, block bytes, receipts and new height/accumulator atomically.
        ``accumulator`` and ``block`` may be callables, called once during the commit: the root
        can still be pending when the commit starts (``BlockOutput``); a store may write the
        state before calling them, but they see the pre-block state through ``get``."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """In-memory ``StateStore``: same contract, nothing on disk."""

    def __init__(self) -> None:
        self._state: dict[Key, Value] = {}
        self._blocks: dict[int, bytes] = {}
        self._receipts: dict[int, bytes] = {}
        self._meta: dict[str, bytes] = {}
        self._txindex: dict[bytes, tuple[int, int]] = {}
        self._height = -1
        self._accumulator = 0

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
        return self._state.get(key)

    def items(self, prefix: bytes = b"") -> Iterator[tuple[Key, Value]]:
        for key in sorted(k for k in self._state if k.startswith(prefix)):
            yield key, self._state[key]

    def get_meta(self, name: str) -> bytes | None:
        return self._meta.get(name)

    def get_block(self, height: int) -> bytes | None:
        return self._blocks.get(height)

    def get_receipts(self, height: int) -> bytes | None:
        return self._receipts.get(height)

    def get_tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self._txindex.get(tx_hash)

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
        must_follow(self._height, height)
        # the callables first: they may read the pre-block state, which this store overwrites
        if callable(accumulator):
            accumulator = accumulator()
        if callable(block):
            block = block()
        for key, value in write_set.items():
            if value is None:
                self._state.pop(key, None)
            else:
                self._state[key] = value
        self._blocks[height] = block
        for i, tx_hash in enumerate(tx_hashes or []):
            self._txindex.setdefault(tx_hash, (height, i))
        self._receipts[height] = receipts
        self._meta.update(meta or {})
        self._height = height
        self._accumulator = accumulator

    def close(self) -> None:
        pass


def must_follow(current: int, height: int) -> None:
    """Blocks commit one after another, starting at 0 (genesis)."""
    if height != current + 1:
        raise InvariantViolation(f"commit of height {height} on top of {current}")

"""Committed state: the ``StateStore`` contract, its LMDB and in-memory backends, the root."""

from .lmdb_store import LmdbStore
from .store import MemoryStore, StateStore

__all__ = ["LmdbStore", "MemoryStore", "StateStore"]

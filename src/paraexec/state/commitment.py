"""The state commitment: a lattice (additive multiset) hash over all key/value pairs.

Scheme (AdHash / LtHash family, as Solana's accounts lattice hash):

    h(k, v)  = SHAKE-256(len(k) || k || v) expanded to 512 bytes, read as an integer
    acc      = sum of h(k, v) over every (k, v) in state, modulo 2**4096
    root     = BLAKE2b-256(acc as 512 little-endian bytes)

Updating a block's write set costs two hashes per written key, whatever the state size:
``acc += h(k, new) - h(k, old)`` (a missing value contributes nothing). Addition commutes, so
the root does not depend on write order or on which executor produced the writes, and the
work splits across processes: each worker returns the partial sum of its keys and the
coordinator adds the partials (``combine``).

Trade-off, stated: unlike a sparse Merkle tree (Aptos' Jellyfish), a lattice hash gives no
inclusion or exclusion proofs for single keys, so light clients cannot verify one account
against the root. We chose it because a Merkle update costs O(log n) hashes per key in
Python (~20 us per key at a million keys) and must be serialised along the tree, while
the lattice costs ~2 x 1.7 us per key and parallelises perfectly. Security rests on the
hardness of the modular subset-sum problem; a 4096-bit modulus keeps Wagner-style
generalised-birthday attacks above 2**128 work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from ..types import Key, Value

LATTICE_BYTES = 512
MODULUS_BITS = LATTICE_BYTES * 8
MASK = (1 << MODULUS_BITS) - 1
_shake = hashlib.shake_256
_from_bytes = int.from_bytes


def contribution(key: Key, value: Value) -> int:
    """h(k, v): the pair's element of the lattice."""
    return _from_bytes(_shake(len(key).to_bytes(2, "little") + key + value).digest(LATTICE_BYTES), "little")


def delta(changes: Iterable[tuple[Key, Value | None, Value | None]]) -> int:
    """Sum of h(k, new) - h(k, old) over (key, old, new) triples, reduced mod 2**4096."""
    total = 0
    for key, old, new in changes:
        if old == new:
            continue
        if new is not None:
            total += contribution(key, new)
        if old is not None:
            total -= contribution(key, old)
    return total & MASK


def sum_of(keys: Iterable[Key], get: Callable[[Key], Value | None]) -> int:
    """Sum of h(k, v) over ``keys`` whose value ``get`` finds (absent ones contribute nothing),
    reduced mod 2**4096: one side of a delta, for computing the two sides apart (the old
    values' while a block still runs, the new ones' at its end)."""
    return delta((key, None, get(key)) for key in keys)


def write_delta(writes: Iterable[tuple[Key, Value | None]], get: Callable[[Key], Value | None]) -> int:
    """``delta`` of writing (key, new value) pairs (``None``: delete) over the values ``get``
    reads: the committed state, in whichever process computes it."""
    return delta((key, get(key), new) for key, new in writes)


def combine(accumulator: int, *deltas: int) -> int:
    """Add partial deltas (from any number of workers, in any order) to an accumulator."""
    return (accumulator + sum(deltas)) & MASK


def root_of(accumulator: int) -> bytes:
    """The 32-byte state root for an accumulator."""
    return hashlib.blake2b(accumulator.to_bytes(LATTICE_BYTES, "little"), digest_size=32).digest()


def accumulate(items: Iterable[tuple[Key, Value]]) -> int:
    """The accumulator of a whole state, from scratch (genesis, audits)."""
    return delta((k, None, v) for k, v in items)


EMPTY_ROOT = root_of(0)

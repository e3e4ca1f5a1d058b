"""MVMemory against a model: a dict of sorted maps, read the obvious way.

The model keeps ``key -> {txn_idx: entry}`` and answers a read by sorting the writers below the
reader and walking down: an ESTIMATE is a dependency, deltas accumulate until a write (resolved)
or the bottom (unresolved). Hypothesis drives both with the same sequence of records (with read
sets taken from real reads), estimate conversions, reads, validations and snapshots.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from paraexec.execution.blockstm.mvmemory import (
    NOT_FOUND,
    Dependency,
    MVMemory,
    ReadDescriptor,
    ReadResult,
    Resolved,
    Unresolved,
    Versioned,
)

BLOCK_SIZE = 8
KEYS = [b"k%d" % i for i in range(5)]

keys = st.sampled_from(KEYS)
txn_indices = st.integers(0, BLOCK_SIZE - 1)
readers = st.integers(0, BLOCK_SIZE)  # BLOCK_SIZE reads after the whole block
values = st.one_of(st.none(), st.binary(max_size=3))


class Model:
    """The specification of MVMemory, without locks, bisection or RCU."""

    def __init__(self) -> None:
        self.data: dict[bytes, dict[int, tuple[str, int, object]]] = {}
        self.last_written: dict[int, set[bytes]] = {}
        self.last_read_set: dict[int, dict[bytes, ReadDescriptor]] = {}

    def read(self, key: bytes, txn_idx: int) -> ReadResult:
        versions = self.data.get(key, {})
        delta = 0
        seen_delta = False
        for writer in sorted((w for w in versions if w < txn_idx), reverse=True):
            kind, incarnation, payload = versions[writer]
            if kind == "estimate":
                return Dependency(writer)
            if kind == "write":
                if seen_delta:
                    return Resolved((writer, incarnation), payload, delta)  # type: ignore[arg-type]
                return Versioned((writer, incarnation), payload)  # type: ignore[arg-type]
            delta += payload  # type: ignore[operator]
            seen_delta = True
        return Unresolved(delta) if seen_delta else NOT_FOUND

    def record(self, txn_idx: int, incarnation: int, read_set, writes, deltas) -> bool:  # type: ignore[no-untyped-def]
        previous = self.last_written.get(txn_idx, set())
        for key in previous:
            del self.data[key][txn_idx]
        for key, value in writes.items():
            self.data.setdefault(key, {})[txn_idx] = ("write", incarnation, value)
        for key, delta in deltas.items():
            self.data.setdefault(key, {})[txn_idx] = ("delta", incarnation, delta)
        new = set(writes) | set(deltas)
        self.last_written[txn_idx] = new
        self.last_read_set[txn_idx] = dict(read_set)
        return bool(new - previous)

    def convert_writes_to_estimates(self, txn_idx: int) -> None:
        for key in self.last_written.get(txn_idx, set()):
            self.data[key][txn_idx] = ("estimate", -1, None)

    def validate(self, txn_idx: int) -> bool:
        return all(self.read(k, txn_idx) == d for k, d in self.last_read_set.get(txn_idx, {}).items())


class MVMemoryMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.mv = MVMemory(BLOCK_SIZE)
        self.model = Model()
        self.incarnations = [0] * BLOCK_SIZE

    @rule(
        txn_idx=txn_indices,
        read_keys=st.lists(keys, max_size=3, unique=True),
        writes=st.dictionaries(keys, values, max_size=3),
        deltas=st.dictionaries(keys, st.integers(-50, 50), max_size=3),
    )
    def record(self, txn_idx: int, read_keys: list[bytes], writes: dict, deltas: dict) -> None:  # type: ignore[type-arg]
        deltas = {k: d for k, d in deltas.items() if k not in writes}  # TxContext keeps them disjoint
        read_set = {}
        for key in read_keys:
            result = self.mv.read(key, txn_idx)
            if not isinstance(result, Dependency):
                read_set[key] = result
        incarnation = self.incarnations[txn_idx]
        self.incarnations[txn_idx] += 1
        got = self.mv.record((txn_idx, incarnation), read_set, writes, deltas)
        assert got == self.model.record(txn_idx, incarnation, read_set, writes, deltas)

    @rule(txn_idx=txn_indices)
    def estimate(self, txn_idx: int) -> None:
        self.mv.convert_writes_to_estimates(txn_idx)
        self.model.convert_writes_to_estimates(txn_idx)

    @rule(key=keys, txn_idx=readers)
    def read(self, key: bytes, txn_idx: int) -> None:
        assert self.mv.read(key, txn_idx) == self.model.read(key, txn_idx)

    @rule(txn_idx=txn_indices)
    def validate(self, txn_idx: int) -> None:
        assert self.mv.validate_read_set(txn_idx) == self.model.validate(txn_idx)

    @invariant()
    def snapshot_matches(self) -> None:
        if not hasattr(self, "mv"):
            return
        expected = {k: self.model.read(k, BLOCK_SIZE) for k, versions in self.model.data.items() if versions}
        assert self.mv.snapshot() == expected
        for txn_idx in range(BLOCK_SIZE):
            assert self.mv.written_locations(txn_idx) == self.model.last_written.get(txn_idx, set())


TestMVMemory = MVMemoryMachine.TestCase


def test_read_results_are_distinct_types() -> None:
    """A dependency on txn 5 never equals an unresolved delta of 5 (validation relies on it)."""
    assert Dependency(5) != Unresolved(5)
    assert Versioned((1, 0), None) != Resolved((1, 0), None, 0)
    assert NOT_FOUND != Unresolved(0)


def test_estimate_blocks_readers_above_only() -> None:
    mv = MVMemory(4)
    mv.record((1, 0), {}, {b"a": b"x"}, {})
    mv.convert_writes_to_estimates(1)
    assert mv.read(b"a", 2) == Dependency(1)
    assert mv.read(b"a", 1) is NOT_FOUND
    assert mv.record((1, 1), {}, {b"a": b"y"}, {}) is False  # same location: nothing new
    assert mv.read(b"a", 3) == Versioned((1, 1), b"y")


def test_deltas_resolve_on_the_highest_write_below() -> None:
    mv = MVMemory(5)
    mv.record((0, 0), {}, {b"c": b"base"}, {})
    mv.record((1, 0), {}, {}, {b"c": 3})
    mv.record((3, 0), {}, {}, {b"c": 4})
    assert mv.read(b"c", 4) == Resolved((0, 0), b"base", 7)
    assert mv.read(b"c", 2) == Resolved((0, 0), b"base", 3)
    assert mv.read(b"c", 1) == Versioned((0, 0), b"base")
    mv.record((0, 1), {}, {}, {})  # txn 0 no longer writes c: deltas reach committed state
    assert mv.read(b"c", 4) == Unresolved(7)


def test_validation_fails_when_a_lower_write_appears() -> None:
    mv = MVMemory(3)
    mv.record((2, 0), {b"a": NOT_FOUND}, {}, {})
    assert mv.validate_read_set(2)
    assert mv.record((1, 0), {}, {b"a": b"v"}, {}) is True
    assert not mv.validate_read_set(2)

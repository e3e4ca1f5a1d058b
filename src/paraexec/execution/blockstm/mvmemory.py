"""Multi-version memory (MVMemory) for Block-STM, with delta writes.

Layout. For every key a *cell* holds the versions written to it, keyed by the writer's
``txn_idx``: a sorted list of writer indices plus a map ``txn_idx -> entry``. An entry is

- ``(WRITE, incarnation, value)``: the incarnation's value (``None`` = deletion);
- ``(DELTA, incarnation, delta)``: a commutative integer delta (Aptos aggregators, AIP-47);
- ``ESTIMATE``: the writer was aborted; its next incarnation will probably write here again.

Reading ``key`` for transaction ``txn_idx`` walks the cell's entries *below* ``txn_idx`` from the
highest down (a transaction sees exactly the writes of lower transactions, as in block order):

- the first entry is ``ESTIMATE``          -> ``Dependency(writer)``: the reader must wait for it;
- the first entry is a write               -> ``Versioned((writer, incarnation), value)``;
- deltas, then a write                     -> ``Resolved(base_version, base_value, sum_of_deltas)``;
- deltas down to the bottom of the cell    -> ``Unresolved(sum_of_deltas)`` (base = committed state);
- no entry at all                          -> ``NOT_FOUND`` (read committed state).

An ``ESTIMATE`` met while walking through deltas is still a dependency. Reads return values, never
exceptions: decoding a delta's base (which may fail on a non-integer value) is the reader's job,
after the read was recorded, so a failed decode is still covered by validation.

Recording an incarnation (``record``) stores its write set and deltas, then removes the entries
of locations the previous incarnation wrote but this one did not (RCU of ``last_written``), and
reports whether it wrote a location the previous incarnation had not: if so, every higher
transaction must be revalidated (the scheduler lowers ``validation_idx``). The read set of the
last incarnation is kept for validation: a read set is valid when every key still reads the
same descriptor (same version; for delta reads the same base version and delta sum, hence the
same value). ``convert_writes_to_estimates`` turns an aborted transaction's entries into
``ESTIMATE`` markers so readers wait instead of reading a value about to change.

Concurrency: each cell has its own lock (the paper uses a concurrent map; a lock per key keeps
every read or update of a cell atomic, on GIL and free-threaded builds alike). Cells are created
with ``dict.setdefault``, which is atomic. ``last_written`` and ``last_read_set`` are per-transaction
slots written only by the thread that holds that transaction's current incarnation.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Mapping
from typing import Final

from ...types import Key, Value, Version

WRITE: Final = 0
DELTA: Final = 1


class _Estimate:
    """The ESTIMATE marker: the entry's writer was aborted and will re-execute."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ESTIMATE"


ESTIMATE: Final = _Estimate()

Entry = tuple[int, int, "Value | None | int"] | _Estimate


class Versioned:
    """The highest lower write is a plain value, written by ``version``."""

    __slots__ = ("version", "value")

    def __init__(self, version: Version, value: Value | None) -> None:
        self.version = version
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Versioned and self.version == other.version and self.value == other.value

    def __hash__(self) -> int:
        return hash((Versioned, self.version))

    def __repr__(self) -> str:
        return f"Versioned({self.version!r}, {self.value!r})"


class Resolved:
    """Deltas sitting on a plain write: value = decode_int(base_value) + delta."""

    __slots__ = ("base_version", "base_value", "delta")

    def __init__(self, base_version: Version, base_value: Value | None, delta: int) -> None:
        self.base_version = base_version
        self.base_value = base_value
        self.delta = delta

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Resolved
            and self.base_version == other.base_version
            and self.delta == other.delta
            and self.base_value == other.base_value
        )

    def __hash__(self) -> int:
        return hash((Resolved, self.base_version, self.delta))

    def __repr__(self) -> str:
        return f"Resolved({self.base_version!r}, {self.base_value!r}, {self.delta!r})"


class Unresolved:
    """Only deltas below the reader: value = decode_int(committed value) + delta."""

    __slots__ = ("delta",)

    def __init__(self, delta: int) -> None:
        self.delta = delta

    def __eq__(self, other: object) -> bool:
        return type(other) is Unresolved and self.delta == other.delta

    def __hash__(self) -> int:
        return hash((Unresolved, self.delta))

    def __repr__(self) -> str:
        return f"Unresolved({self.delta!r})"


class Dependency:
    """The highest lower entry is an ESTIMATE of ``txn_idx``: wait for it to re-execute."""

    __slots__ = ("txn_idx",)

    def __init__(self, txn_idx: int) -> None:
        self.txn_idx = txn_idx

    def __eq__(self, other: object) -> bool:
        return type(other) is Dependency and self.txn_idx == other.txn_idx

    def __hash__(self) -> int:
        return hash((Dependency, self.txn_idx))

    def __repr__(self) -> str:
        return f"Dependency({self.txn_idx!r})"


class _NotFound:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_FOUND"


#: No lower transaction wrote the key: read committed state.
NOT_FOUND: Final = _NotFound()

ReadResult = Versioned | Resolved | Unresolved | Dependency | _NotFound
#: What a successful read recorded (everything but ``Dependency``).
ReadDescriptor = Versioned | Resolved | Unresolved | _NotFound


class _Cell:
    """All versions of one key."""

    __slots__ = ("lock", "writers", "entries")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writers: list[int] = []  # sorted txn indices with an entry
        self.entries: dict[int, Entry] = {}

    def put(self, txn_idx: int, entry: Entry) -> None:
        with self.lock:
            if txn_idx not in self.entries:
                writers = self.writers
                if not writers or writers[-1] < txn_idx:
                    writers.append(txn_idx)
                else:
                    insort(writers, txn_idx)
            self.entries[txn_idx] = entry

    def remove(self, txn_idx: int) -> None:
        with self.lock:
            if self.entries.pop(txn_idx, None) is not None:
                writers = self.writers
                del writers[bisect_left(writers, txn_idx)]

    def mark_estimate(self, txn_idx: int) -> None:
        with self.lock:
            if txn_idx in self.entries:
                self.entries[txn_idx] = ESTIMATE

    def read(self, txn_idx: int) -> ReadResult:
        with self.lock:
            writers = self.writers
            pos = bisect_left(writers, txn_idx)
            if pos == 0:
                return NOT_FOUND
            entries = self.entries
            pos -= 1
            writer = writers[pos]
            entry = entries[writer]
            if entry is ESTIMATE:
                return Dependency(writer)
            if entry[0] == WRITE:  # type: ignore[index]
                return Versioned((writer, entry[1]), entry[2])  # type: ignore[index,arg-type]
            delta: int = entry[2]  # type: ignore[index,assignment]
            while pos > 0:  # walk down the deltas to the first plain write
                pos -= 1
                writer = writers[pos]
                entry = entries[writer]
                if entry is ESTIMATE:
                    return Dependency(writer)
                kind, incarnation, payload = entry  # type: ignore[misc]
                if kind == WRITE:
                    return Resolved((writer, incarnation), payload, delta)  # type: ignore[arg-type]
                delta += payload  # type: ignore[operator]
        return Unresolved(delta)  # type: ignore[arg-type]


class MVMemory:
    """Multi-version memory of one block of ``block_size`` transactions (see module docstring)."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._cells: dict[Key, _Cell] = {}
        self._last_written: list[frozenset[Key]] = [frozenset()] * block_size
        self._last_read_set: list[Mapping[Key, ReadDescriptor]] = [{}] * block_size

    def _cell(self, key: Key) -> _Cell:
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells.setdefault(key, _Cell())
        return cell

    def read(self, key: Key, txn_idx: int) -> ReadResult:
        """What ``txn_idx`` reads at ``key`` from lower transactions (never raises)."""
        cell = self._cells.get(key)
        if cell is None:
            return NOT_FOUND
        return cell.read(txn_idx)

    def record(
        self,
        version: Version,
        read_set: Mapping[Key, ReadDescriptor],
        writes: Mapping[Key, Value | None],
        deltas: Mapping[Key, int],
    ) -> bool:
        """Store an incarnation's output; True when it wrote a location its predecessor had not."""
        txn_idx, incarnation = version
        for key, value in writes.items():
            self._cell(key).put(txn_idx, (WRITE, incarnation, value))
        for key, delta in deltas.items():
            self._cell(key).put(txn_idx, (DELTA, incarnation, delta))
        new_locations = frozenset(writes.keys() | deltas.keys()) if deltas else frozenset(writes)
        previous = self._last_written[txn_idx]
        if previous:
            for key in previous - new_locations:
                self._cells[key].remove(txn_idx)
        self._last_written[txn_idx] = new_locations
        self._last_read_set[txn_idx] = read_set
        return not new_locations <= previous

    def convert_writes_to_estimates(self, txn_idx: int) -> None:
        """Mark every location of the aborted ``txn_idx`` as ESTIMATE."""
        for key in self._last_written[txn_idx]:
            self._cells[key].mark_estimate(txn_idx)

    def validate_read_set(self, txn_idx: int) -> bool:
        """True when every read of ``txn_idx``'s last incarnation would read the same again."""
        read = self.read
        for key, recorded in self._last_read_set[txn_idx].items():
            if read(key, txn_idx) != recorded:
                return False
        return True

    def written_locations(self, txn_idx: int) -> frozenset[Key]:
        return self._last_written[txn_idx]

    def snapshot(self) -> dict[Key, ReadResult]:
        """Every written key as a transaction after the block reads it (the paper's snapshot).

        Returns read results, not bytes: the caller resolves deltas against committed state.
        """
        end = self.block_size
        return {key: cell.read(end) for key, cell in self._cells.items() if cell.writers}

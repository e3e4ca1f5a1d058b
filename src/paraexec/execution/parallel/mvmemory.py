"""A worker's multi-version memory: every known write of the block, by key and ``txn_idx``.

    data[key] = [(txn_idx, is_delta, payload), ...]    sorted by txn_idx, one entry per writer
        payload = new value (bytes, or None for a delete)   when not is_delta
                = integer delta (``TxContext.add``)         when is_delta
    written[txn_idx] = keys written by the current incarnation of txn_idx

``resolve(key, txn_idx)`` is the value transaction ``txn_idx`` must see: the latest write below
it, with any deltas above that write folded in (Aptos aggregators: deltas commute, so a key
that is only added to never makes writers conflict; only a *read* resolves the chain), and the
committed base value when no put lies below. ``record`` replaces a transaction's previous
incarnation, so a write set that shrinks between incarnations leaves no stale entry behind.

There is no ESTIMATE marker: the parallel executor validates by value (a read is valid when
``resolve`` still returns the bytes the transaction saw), so a stale entry of an aborted
incarnation can only make a reader fail validation, never make a wrong result final.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from ... import codec
from ...types import Key, Value

Entry = tuple[int, bool, object]
_idx = itemgetter(0)


class MVMemory:
    """See module docstring. ``base_get`` reads committed (pre-block) state."""

    __slots__ = ("data", "written", "base_get", "delta_keys", "changed", "fresh")

    def __init__(self, base_get: Callable[[Key], Value | None]) -> None:
        self.data: dict[Key, list[Entry]] = {}
        self.written: dict[int, tuple[Key, ...]] = {}
        self.base_get = base_get
        #: Keys that some incarnation ever added to (a superset of those with delta entries now).
        self.delta_keys: set[Key] = set()
        #: Keys whose entries changed since the owner last cleared it -> the lowest ``txn_idx``
        #: whose entry changed (validation filter: only readers above it can have gone stale).
        self.changed: dict[Key, int] = {}
        #: Keys that got their first entry since the owner last drained it (may repeat).
        self.fresh: list[Key] = []

    def resolve(self, key: Key, txn_idx: int) -> Value | None:
        """The value of ``key`` just before ``txn_idx`` executes (committed state if unwritten)."""
        entries = self.data.get(key)
        if not entries:
            return self.base_get(key)
        pos = bisect_left(entries, txn_idx, key=_idx)
        if pos == 0:
            return self.base_get(key)
        entry = entries[pos - 1]
        if not entry[1]:
            return entry[2]  # type: ignore[return-value]
        total = 0
        while pos > 0:
            pos -= 1
            _, is_delta, payload = entries[pos]
            if not is_delta:
                return codec.encode_int(codec.decode_int(payload) + total)  # type: ignore[arg-type]
            total += payload  # type: ignore[operator]
        return codec.encode_int(codec.decode_int(self.base_get(key)) + total)

    def record(
        self,
        txn_idx: int,
        writes: dict[Key, Value | None],
        deltas: dict[Key, int],
        publish: dict[Key, list[Any]] | None = None,
    ) -> tuple[Key, ...] | None:
        """Make (``writes``, ``deltas``) the current incarnation's effects of ``txn_idx``.

        Returns the previous incarnation's keys (``None`` on a first execution). Every key
        whose entries change (old and new write set) is noted in ``changed`` at ``txn_idx``.
        ``publish``: the outgoing ``Effects.writes`` (grouped by key, ascending); each new entry
        is also appended there, in the same loop (this runs once per execution).
        """
        data = self.data
        changed = self.changed
        old = self.written.get(txn_idx)
        if old:
            self.purge(txn_idx, old)
        fresh = self.fresh
        for is_delta, items in ((False, writes), (True, deltas)):
            for key, payload in items.items():
                if changed.get(key, txn_idx) >= txn_idx:
                    changed[key] = txn_idx
                entry = (txn_idx, is_delta, payload)
                entries = data.get(key)
                if entries is None:
                    data[key] = [entry]
                    fresh.append(key)
                elif entries[-1][0] < txn_idx:
                    entries.append(entry)
                else:
                    insort(entries, entry, key=_idx)
                if publish is not None:
                    out = publish.get(key)
                    if out is None:
                        publish[key] = [entry]
                    else:
                        out.append(entry)
        if deltas:
            self.delta_keys.update(deltas)
            self.written[txn_idx] = (*writes, *deltas)
        else:
            self.written[txn_idx] = tuple(writes)
        return old

    def merge(self, by_key: dict[Key, list[Entry]], delta_keys: list[Key]) -> None:
        """Add another worker's entries, grouped by key and ascending (see ``messages.Effects``).

        Keys this memory has never seen (most of them) are adopted with one C-level
        ``dict.update``; only keys both sides wrote are merged entry by entry. (One loop over
        ``by_key``: a ``keys() & keys()`` set operation would iterate the whole memory.)
        """
        data, changed, fresh = self.data, self.changed, self.fresh
        for key, entries in by_key.items():
            low = entries[0][0]
            if changed.get(key, low) >= low:  # type: ignore[operator]
                changed[key] = low  # type: ignore[assignment]
            current = data.get(key)
            if current is None:
                fresh.append(key)
                continue
            if current[-1][0] < low:  # type: ignore[operator]
                current.extend(entries)
            else:
                for entry in entries:
                    insort(current, entry, key=_idx)
            by_key[key] = current
        self.delta_keys.update(delta_keys)
        data.update(by_key)

    def purge(self, txn_idx: int, keys: tuple[Key, ...] | list[Key]) -> None:
        """Drop the entries of ``txn_idx`` at ``keys`` (its previous incarnation's write set)."""
        data = self.data
        changed = self.changed
        for key in keys:
            if changed.get(key, txn_idx) >= txn_idx:
                changed[key] = txn_idx
            entries = data.get(key)
            if entries is None:
                continue
            pos = bisect_left(entries, txn_idx, key=_idx)
            if pos < len(entries) and entries[pos][0] == txn_idx:
                del entries[pos]
            if not entries:
                del data[key]

    def fold(self, key: Key, upto: int) -> Value | None:
        """The value of ``key`` after every write below ``upto``, folded one write at a time.

        Equal to ``resolve(key, upto)``, but it decodes and re-encodes at every delta exactly as
        ``sequential.apply_effects`` does, so it raises where sequential raises (a delta on a
        non-integer value, an intermediate sum out of range) even when nobody reads the key.
        """
        value = self.base_get(key)
        for txn_idx, is_delta, payload in self.data[key]:
            if txn_idx >= upto:
                break
            if is_delta:
                value = codec.encode_int(codec.decode_int(value) + payload)  # type: ignore[operator]
            else:
                value = payload  # type: ignore[assignment]
        return value

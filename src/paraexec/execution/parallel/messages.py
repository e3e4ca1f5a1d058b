"""The coordinator <-> worker protocol: tagged msgspec structs, one frame each (``transport.send_frame``).

Coordinator to worker: ``Setup`` (a block starts), then one ``Round`` per wave, then ``Finish``;
``Values`` answers a worker's ``Fetch`` (committed reads served by the coordinator when the
worker cannot open the store itself); ``Shutdown`` ends the process. Between blocks:
``Precheck`` (check the signatures of these transactions of the next block while idle), then
``Collect`` (stop and report) before the next block starts; ``Hash`` (the commitment delta of
part of a block computed in-process).

Worker to coordinator: ``RoundDone`` per ``Round``, ``Finished`` per ``Finish``, ``Fetch`` while
working, ``Prechecked`` per ``Collect``, ``Hashed`` per ``Hash``, ``Failed`` with a traceback when the worker itself hit a
bug.

A worker's writes travel as ``msgspec.Raw``: the coordinator forwards them to the other
workers without decoding them (its per-transaction work stays near zero).
"""

from __future__ import annotations

import msgspec

from ... import codec
from ...types import Key, Value
from ..contract import BlockEnv

#: A multi-version entry: (txn_idx, is_delta, new value or delta).
Entry = tuple[int, bool, Value | None | int]


class Effects(msgspec.Struct, array_like=True):
    """One worker's executions of one round, grouped by key so receivers merge per key.

    ``purges``: (txn_idx, keys of its previous incarnation) for every re-executed transaction;
    ``writes``: key -> entries ascending by txn_idx; ``delta_keys``: keys with a delta entry.
    ``wide``: the deltas travel as ``codec.encode_int`` bytes, because one of them is wider than
    MessagePack's integers (``encode_effects``; state integers are unbounded, see ``codec``).
    """

    purges: list[tuple[int, list[Key]]]
    writes: dict[Key, list[Entry]]
    delta_keys: list[Key]
    wide: bool = False


class Setup(msgspec.Struct, tag=True, array_like=True):
    """A block starts. ``spec`` is the pickled runtime spec, sent only when it changed.

    ``own`` lists this worker's transactions (txn_idx, ascending); ``txs`` their raw bytes, in
    that order; ``checked`` has one byte per own transaction, 1 where a worker already checked
    its signature ahead of the block (``Precheck``), empty when none was.
    """

    worker_id: int
    n_workers: int
    n_txs: int
    env: BlockEnv
    spec: bytes | None
    lmdb_path: str | None
    height: int | None
    accumulator: bytes
    own: list[int]
    txs: list[bytes]
    checked: bytes = b""


class Round(msgspec.Struct, tag=True, array_like=True):
    """Ingest ``foreign`` effects, validate own executed txs from ``lo`` up, re-run the invalid
    ones, then run the chunk ``own[a:b]`` (positions in ``Setup.own``; none when ``a == b``)."""

    lo: int
    a: int
    b: int
    foreign: list[msgspec.Raw]


class Finish(msgspec.Struct, tag=True, array_like=True):
    """Every transaction below ``upto`` is final: report its receipts and writes.

    ``hash_writes``: also compute the state-commitment delta of this worker's share of keys.
    """

    upto: int
    hash_writes: bool
    foreign: list[msgspec.Raw]


class Precheck(msgspec.Struct, tag=True, array_like=True):
    """Between blocks: prepare ``txs`` (decode, check signatures) while idle, until ``Collect``.
    ``spec`` as in ``Setup``."""

    spec: bytes | None
    txs: list[bytes]


class Verify(msgspec.Struct, tag=True, array_like=True):
    """During a block run in-process: prepare ``txs`` (decode, check signatures) now and answer
    ``Prechecked`` with a verdict for each (``verify_stream``). ``spec`` as in ``Setup``."""

    spec: bytes | None
    txs: list[bytes]


class Collect(msgspec.Struct, tag=True, array_like=True):
    """Stop prechecking and report (``Prechecked``)."""


class Hash(msgspec.Struct, tag=True, array_like=True):
    """The commitment delta of ``writes`` (key -> new value, ``None``: deleted) against the
    committed state at ``lmdb_path`` (which must be at ``height`` and ``accumulator``, as in
    ``Setup``): for blocks the coordinator executed itself."""

    lmdb_path: str
    height: int | None
    accumulator: bytes
    writes: dict[Key, Value | None]
    #: the answer is h(k, new) summed over ``writes`` minus the committed values' h(k, old)
    #: summed over every key of this block's ``HashOld`` messages (``None`` if any of them
    #: could not be read at that state)
    minus_old: bool = False


class HashOld(msgspec.Struct, tag=True, array_like=True):
    """Keys a block run in-process has written so far: add h(k, old) of their committed values
    to this worker's old-value sum (no answer; ``first`` starts a block's sum). Sent while the
    block runs, so that at its end only the new values remain to hash (``Hash.minus_old``)."""

    lmdb_path: str
    height: int | None
    accumulator: bytes
    keys: list[Key]
    first: bool


class Values(msgspec.Struct, tag=True, array_like=True):
    values: list[Value | None]


class Shutdown(msgspec.Struct, tag=True, array_like=True):
    pass


class RoundDone(msgspec.Struct, tag=True, array_like=True):
    """``first_invalid``: lowest own txn_idx that failed validation (``n_txs`` when none);
    ``executed`` / ``aborted``: executions and failed validations in this round."""

    first_invalid: int
    effects: msgspec.Raw
    executed: int
    aborted: int


class Finished(msgspec.Struct, tag=True, array_like=True):
    """A worker's share of the block result.

    ``writes``: final values of the keys in this worker's share (msgpack map); ``receipts``:
    receipts of own txs below ``upto`` in index order (msgpack, or pickle when msgpack would
    not round-trip them exactly); ``raised``: own txs whose final incarnation raised;
    ``spans``: what the worker did when, as (start, end, label) on ``time.perf_counter``'s
    clock (CLOCK_MONOTONIC on Linux: one clock for every process of the machine), for the
    per-worker timeline of the benchmark report.
    """

    writes: msgspec.Raw
    accumulator_delta: bytes
    receipts: bytes
    receipts_pickled: bool
    raised: list[int]
    executions: int
    validations: int
    aborts: int
    busy: float
    spans: list[tuple[float, float, str]] = []


class Prechecked(msgspec.Struct, tag=True, array_like=True):
    """The verdicts so far: ``ok[i]`` is 1 when ``Precheck.txs[i]`` passed every stateless check
    (signature included), 0 when it failed one; ``len(ok)`` transactions were checked (a prefix).
    ``failed``: the ``Precheck`` raised before checking anything (its spec could not be built):
    the worker holds no runtime, so the coordinator must send the spec again."""

    ok: bytes
    failed: bool = False


class Hashed(msgspec.Struct, tag=True, array_like=True):
    """``Hash``'s answer: the delta (``LATTICE_BYTES``, little-endian), or ``None`` when this
    worker could not open that store at that state (the coordinator then hashes the share)."""

    delta: bytes | None


class Fetch(msgspec.Struct, tag=True, array_like=True):
    keys: list[Key]


class Failed(msgspec.Struct, tag=True, array_like=True):
    traceback: str


ToWorker = Setup | Round | Finish | Values | Precheck | Verify | Collect | Hash | HashOld | Shutdown
FromWorker = RoundDone | Finished | Fetch | Prechecked | Hashed | Failed

encode = msgspec.msgpack.Encoder().encode
to_worker = msgspec.msgpack.Decoder(ToWorker)
from_worker = msgspec.msgpack.Decoder(FromWorker)
effects_decoder = msgspec.msgpack.Decoder(Effects)


def encode_effects(out: Effects) -> bytes:
    """``out``'s bytes. A delta MessagePack cannot hold (a transaction adding more than 2**64 to
    one key: rare, but sequential allows it) sends every delta of the message as bytes."""
    try:
        return encode(out)
    except OverflowError:
        writes = out.writes
        for key in set(out.delta_keys):  # a key is listed once per transaction that added to it
            writes[key] = [(i, d, codec.encode_int(p) if d else p) for i, d, p in writes[key]]  # type: ignore[arg-type]
        out.wide = True
        return encode(out)


def decode_effects(blob: bytes | msgspec.Raw) -> Effects:
    """Inverse of ``encode_effects``: deltas are integers again."""
    effects = effects_decoder.decode(blob)
    if effects.wide:
        writes = effects.writes
        for key in set(effects.delta_keys):
            writes[key] = [(i, d, codec.decode_int(p) if d else p) for i, d, p in writes[key]]  # type: ignore[arg-type]
    return effects


writes_decoder = msgspec.msgpack.Decoder(dict[Key, Value | None])

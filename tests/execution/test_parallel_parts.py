"""Parts of the parallel executor on their own: the multi-version memory against a model, and
the coordinator's pipeline (who gets what, what is final) on hand-played schedules."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paraexec import codec
from paraexec.errors import InvariantViolation
from paraexec.execution.parallel.mvmemory import MVMemory
from paraexec.execution.parallel.pipeline import Pipeline
from paraexec.execution.parallel.worker import BlockRun
from paraexec.state import commitment

KEYS = [b"a", b"b", b"c"]
BASE = {b"a": codec.encode_int(7), b"b": None, b"c": codec.encode_int(-3)}

effect = st.tuples(
    st.integers(0, 9),  # txn_idx
    st.dictionaries(st.sampled_from(KEYS), st.one_of(st.none(), st.integers(-50, 50).map(codec.encode_int))),
    st.dictionaries(st.sampled_from(KEYS), st.integers(-5, 5)),
)


def model_resolve(current: dict[int, tuple[dict, dict]], key: bytes, txn_idx: int) -> bytes | None:
    """The spec: fold every lower transaction's current effects on ``key`` in index order."""
    value = BASE[key]
    for idx in sorted(current):
        if idx >= txn_idx:
            break
        writes, deltas = current[idx]
        if key in writes:
            value = writes[key]
        elif key in deltas:
            value = codec.encode_int(codec.decode_int(value) + deltas[key])
    return value


@given(st.lists(effect, max_size=30))
def test_mvmemory_resolves_like_a_fold_of_current_incarnations(effects):
    mv = MVMemory(BASE.get)
    current: dict[int, tuple[dict, dict]] = {}
    for txn_idx, writes, deltas in effects:
        deltas = {k: d for k, d in deltas.items() if k not in writes}  # TxContext never holds both
        mv.record(txn_idx, writes, deltas)
        current[txn_idx] = (writes, deltas)
        for key in KEYS:
            for at in range(11):
                assert mv.resolve(key, at) == model_resolve(current, key, at), (key, at)
    for key in KEYS:
        if key in mv.data:
            assert mv.fold(key, 10) == mv.resolve(key, 10)
    written = {k for w, d in current.values() for k in (*w, *d)}
    assert set(mv.data) == written


op = st.one_of(
    st.tuples(st.just("record"), effect),
    st.tuples(st.just("merge"), effect),  # a foreign transaction's effects, as another worker sends them
)


@given(st.lists(op, max_size=12), st.lists(op, min_size=1, max_size=12))
def test_changed_names_every_key_whose_resolution_can_differ(before, after):
    """The validation filter is sound: after ``changed`` is cleared, any reader ``j`` whose view of
    a key changes has ``changed[key] < j`` (validation skips only reads that cannot differ)."""
    mv = MVMemory(BASE.get)
    foreign: set[int] = set()

    def apply(kind: str, txn_idx: int, writes: dict, deltas: dict) -> None:
        deltas = {k: d for k, d in deltas.items() if k not in writes}
        if kind == "record" and txn_idx not in foreign:
            mv.record(txn_idx, writes, deltas)
        elif kind == "merge" and txn_idx not in mv.written:
            foreign.add(txn_idx)
            old = [k for k, entries in mv.data.items() if any(e[0] == txn_idx for e in entries)]
            mv.purge(txn_idx, old)  # its previous incarnation, as ``Effects.purges`` carries it
            by_key = {k: [(txn_idx, False, v)] for k, v in writes.items()}
            by_key.update({k: [(txn_idx, True, d)] for k, d in deltas.items()})
            mv.merge(by_key, list(deltas))

    def view() -> dict[tuple[bytes, int], object]:
        out = {}
        for key in KEYS:
            for at in range(11):
                try:
                    out[key, at] = mv.resolve(key, at)
                except Exception:
                    out[key, at] = "raised"
        return out

    for kind, (txn_idx, writes, deltas) in before:
        apply(kind, txn_idx, writes, deltas)
    seen = view()
    mv.changed.clear()
    for kind, (txn_idx, writes, deltas) in after:
        apply(kind, txn_idx, writes, deltas)
    for (key, at), value in view().items():
        if value != seen[key, at]:
            assert key in mv.changed and mv.changed[key] < at, (key, at)


def test_fresh_lists_keys_on_their_first_entry():
    mv = MVMemory(BASE.get)
    mv.record(1, {b"a": b"x"}, {b"b": 2})
    mv.merge({b"a": [(3, False, b"y")], b"c": [(4, True, 1)]}, [b"c"])
    assert sorted(mv.fresh) == [b"a", b"b", b"c"]


def test_accumulator_delta_equals_commitment_delta_with_precomputed_old_hashes():
    writes = {b"a": codec.encode_int(8), b"b": codec.encode_int(1), b"c": codec.encode_int(-3), b"d": None}
    base = {**BASE, b"d": b"gone"}
    run = BlockRun.__new__(BlockRun)
    run.base_get = base.get
    run.old_hashes = {b"a": (base[b"a"], commitment.contribution(b"a", base[b"a"])), b"b": (None, 0)}
    expected = commitment.delta((k, base.get(k), v) for k, v in writes.items())
    assert run.accumulator_delta(writes) == expected


def test_merge_and_purge_keep_entries_sorted_and_current():
    mv = MVMemory(BASE.get)
    mv.record(4, {b"a": codec.encode_int(1)}, {})
    mv.merge({b"a": [(2, False, codec.encode_int(5)), (6, True, 3)]}, [b"a"])
    assert [e[0] for e in mv.data[b"a"]] == [2, 4, 6]
    assert codec.decode_int(mv.resolve(b"a", 7)) == 4
    mv.purge(2, [b"a"])  # tx 2 re-executed elsewhere and no longer writes a
    assert codec.decode_int(mv.resolve(b"a", 3)) == 7
    assert mv.changed[b"a"] == 2  # lowest txn_idx whose entry changed: readers above it re-check


def raw(n: int = 0) -> msgspec.Raw:
    return msgspec.Raw(msgspec.msgpack.encode(n))


def planned(pipe: Pipeline, w: int):
    """``pipe.plan(w)`` with its chunk as a txn_idx range (start, end, foreign): every chunk of
    a by-position pipeline is contiguous."""
    plan = pipe.plan(w)
    if plan is None:
        return None
    a, b, foreign = plan
    if a == b:
        return pipe.n, pipe.n, foreign
    idxs = pipe.own[w][a:b]
    assert idxs == list(range(idxs[0], idxs[-1] + 1))
    return idxs[0], idxs[-1] + 1, foreign


def test_pipeline_finality_waits_for_unseen_lower_executions():
    pipe = Pipeline(n=8, workers=2, wave=4)  # chunks of 2: [0,2) w0, [2,4) w1, [4,6) w0, [6,8) w1
    assert pipe.own == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert planned(pipe, 0)[:2] == (0, 2)
    assert planned(pipe, 1)[:2] == (2, 4)
    assert pipe.advance() == 0
    pipe.on_reply(1, 8, raw())  # w1 ran [2,4) without seeing w0's chunk
    assert pipe.advance() == 0  # w0 still busy with [0,2)
    pipe.on_reply(0, 8, raw())
    assert pipe.advance() == 2  # [0,2) ran on top of everything below it; w1 never saw it
    start, end, foreign = planned(pipe, 0)
    assert (start, end, len(foreign)) == (4, 6, 1)  # gets w1's effects with its next chunk
    start, end, foreign = planned(pipe, 1)
    assert (start, end, len(foreign)) == (6, 8, 1)
    pipe.on_reply(0, 8, raw())  # w0 ran [4,6) having seen [2,4): final up to w1 (busy)
    assert pipe.advance() == 2
    pipe.on_reply(1, 3, raw())  # w1 found tx 3 invalid and re-ran it (after [2,3) validated)
    assert pipe.advance() == 3  # tx 3's new write is unseen by w0's [4,6); w1 must re-check above 3
    assert not pipe.done
    while not pipe.done:  # let both validate what is left
        for w in (0, 1):
            if not pipe.busy[w] and planned(pipe, w) is not None:
                pipe.on_reply(w, 8, raw())
        pipe.advance()
    assert pipe.lo == 8 and pipe.messages >= 5


def test_pipeline_fresh_range_needs_no_second_message():
    pipe = Pipeline(n=4, workers=1, wave=2)  # one worker: chunks of 2
    assert planned(pipe, 0)[:2] == (0, 2)
    pipe.on_reply(0, 4, raw())
    assert pipe.advance() == 2
    assert planned(pipe, 0)[:2] == (2, 4)
    pipe.on_reply(0, 4, raw())
    assert pipe.advance() == 4 and pipe.done
    assert planned(pipe, 0) is None and pipe.messages == 2


def test_pipeline_window_bounds_speculation():
    pipe = Pipeline(n=100, workers=2, wave=4)  # window of 8 transactions beyond lo
    assert planned(pipe, 0)[:2] == (0, 2) and planned(pipe, 1)[:2] == (2, 4)
    pipe.on_reply(0, 100, raw())
    assert planned(pipe, 0)[:2] == (4, 6)
    pipe.on_reply(0, 100, raw())
    pipe.advance()
    assert pipe.lo == 2  # w1 still busy with [2,4)
    start, end, _ = planned(pipe, 0)
    assert (start, end) == (8, 10)  # 8 < lo + 8
    pipe.on_reply(0, 5, raw())  # w0 found its tx 5 invalid and re-ran it: must re-check above 5
    pipe.advance()
    assert pipe.lo == 2
    assert planned(pipe, 0) is not None  # must validate again, but gets no new chunk:
    assert pipe.in_flight[0].start == 100  # [12, 14) starts beyond lo + 8
    pipe.on_reply(0, 100, raw())
    pipe.advance()
    assert planned(pipe, 0) is None  # nothing to validate, nothing unseen, next chunk outside the window


def test_pipeline_refuses_to_shrink_the_final_prefix():
    pipe = Pipeline(n=6, workers=1, wave=2)
    pipe.plan(0)
    pipe.on_reply(0, 6, raw())
    assert pipe.advance() == 2
    pipe.plan(0)
    pipe.on_reply(0, 1, raw())  # a "final" transaction reported invalid: a bug, caught
    with pytest.raises(InvariantViolation):
        pipe.advance()


def test_pipeline_with_affinity_owners_cuts_chunks_per_window():
    owner = [0, 0, 1, 0, 1, 1, 0, 0, 0, 1]  # windows of 4: [0,4) [4,8) [8,10)
    pipe = Pipeline(n=10, workers=2, wave=4, owner=owner)
    assert pipe.own == [[0, 1, 3, 6, 7, 8], [2, 4, 5, 9]]
    assert pipe.chunks == [(0, 0, 0, 3), (2, 1, 0, 1), (4, 1, 1, 3), (6, 0, 3, 5), (8, 0, 5, 6), (9, 1, 3, 4)]
    assert pipe.plan(0)[:2] == (0, 3)  # txs 0, 1, 3
    assert pipe.plan(1)[:2] == (0, 1)  # tx 2
    pipe.on_reply(1, 10, raw())  # w1 ran tx 2 without seeing 0 and 1
    assert pipe.advance() == 0  # w0 busy from 0
    pipe.on_reply(0, 10, raw())  # w0 ran 0, 1, 3 without seeing tx 2: 3 may be stale
    assert pipe.advance() == 2  # 0, 1 final; 2 ran before 0 and 1 existed, 3 before 2 did
    a, b, foreign = pipe.plan(1)  # w1: validate 2 against w0's blob, then run its chunk 4, 5
    assert (a, b, len(foreign)) == (1, 3, 1)
    pipe.on_reply(1, 10, raw())  # 2 still valid; 4 and 5 ran having seen 0, 1, 3
    assert pipe.advance() == 3  # w0 has not seen tx 2's blob: its 3 waits for a validation
    with pytest.raises(ValueError):
        Pipeline(n=3, workers=2, wave=2, owner=[0, 2, 1])


def test_pipeline_with_random_owners_always_finishes_in_order():
    """Drive a pipeline with random owners and random reply orders (every reply valid): the
    final prefix only grows, and every transaction becomes final."""
    import random

    for seed in range(50):
        rng = random.Random(seed)
        n, workers = rng.randint(1, 40), rng.randint(1, 4)
        owner = [rng.randrange(workers) for _ in range(n)]
        pipe = Pipeline(n=n, workers=workers, wave=rng.randint(1, 8), owner=owner)
        last = 0
        for _ in range(10_000):
            if pipe.done:
                break
            idle = [w for w in range(workers) if not pipe.busy[w]]
            for w in idle:
                pipe.plan(w)
            busy = [w for w in range(workers) if pipe.busy[w]]
            assert busy, "stalled"
            pipe.on_reply(rng.choice(busy), n, raw())
            lo = pipe.advance()
            assert lo >= last
            last = lo
        assert pipe.done and pipe.lo == n, seed


def test_pipeline_chunks_follow_their_needs_and_never_stall():
    """Random owners, random needs (lower transactions to follow) and random reply orders: a
    chunk is cut where a transaction needs one inside its span, it is sent only after every
    worker it follows replied to the message that ran the needed transaction, and the block
    always finishes (every need of the lowest unsent chunk lies below it, in sent chunks)."""
    import random

    for seed in range(80):
        rng = random.Random(seed)
        n, workers = rng.randint(1, 40), rng.randint(1, 4)
        owner = [rng.randrange(workers) for _ in range(n)]
        needs = [tuple(rng.sample(range(j), min(j, rng.randint(0, 2)))) for j in range(n)]
        pipe = Pipeline(n=n, workers=workers, wave=rng.randint(1, 8), owner=owner, needs=needs)
        for start, w, a, b in pipe.chunks:
            assert all(i < start for j in pipe.own[w][a:b] for i in needs[j] if owner[i] != w)
        executed = [-1] * workers  # highest own transaction each worker replied about
        in_flight: dict[int, int] = {}
        for _ in range(10_000):
            if pipe.done:
                break
            for w in range(workers):
                if pipe.busy[w]:
                    continue
                plan = pipe.plan(w)
                if plan is None:
                    continue
                a, b, _ = plan
                in_flight[w] = pipe.own[w][b - 1] if b > a else -1
                for j in pipe.own[w][a:b]:
                    assert all(executed[owner[i]] >= i for i in needs[j] if owner[i] != w), (seed, j)
            busy = [w for w in range(workers) if pipe.busy[w]]
            assert busy, f"stalled (seed {seed})"
            w = rng.choice(busy)
            pipe.on_reply(w, n, raw())
            executed[w] = max(executed[w], in_flight.pop(w))
            pipe.advance()
        assert pipe.done and pipe.lo == n, seed
    with pytest.raises(ValueError):
        Pipeline(n=3, workers=2, wave=2, owner=[0, 1, 0], needs=[(), (1,), ()])  # needs itself


def test_pipeline_makespan_models_waits_and_messages():
    owner = [0, 1, 0, 1]
    chain = Pipeline(n=4, workers=2, wave=4, owner=owner, needs=[(), (0,), (1,), (2,)])  # each waits for the last
    free = Pipeline(n=4, workers=2, wave=4, owner=owner, needs=[(), (), (), ()])
    assert len(chain.chunks) == 4 and len(free.chunks) == 2
    assert chain.makespan(0.0) == 4 and chain.makespan(1.0) == 8  # one after another, a message each
    assert free.makespan(0.0) == 2 and free.makespan(1.0) == 3  # side by side, one message each
    one_waits = Pipeline(n=4, workers=2, wave=2, owner=[0, 0, 1, 1], needs=[(), (), (1,), ()])
    assert one_waits.makespan(0.0) == 4  # w1's chunk waits for w0's whole chunk [0, 2)

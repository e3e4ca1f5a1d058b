"""The lattice root: order-independent, incremental == from scratch, sensitive to every pair."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paraexec.state import commitment

keys = st.binary(min_size=1, max_size=8)
values = st.binary(max_size=8)
states = st.dictionaries(keys, values, max_size=30)


@given(states, st.randoms())
def test_root_does_not_depend_on_order(state, rnd):
    items = list(state.items())
    shuffled = items[:]
    rnd.shuffle(shuffled)
    assert commitment.accumulate(items) == commitment.accumulate(shuffled)


@given(states, st.dictionaries(keys, st.none() | values, max_size=30), st.integers(1, 4))
def test_incremental_update_equals_recomputation(before, writes, parts):
    acc = commitment.accumulate(before.items())
    after = dict(before)
    for k, v in writes.items():
        if v is None:
            after.pop(k, None)
        else:
            after[k] = v
    changes = [(k, before.get(k), v) for k, v in writes.items()]
    # split the work as worker processes would, combine in any order
    partials = [commitment.delta(changes[i::parts]) for i in range(parts)]
    assert commitment.combine(acc, *reversed(partials)) == commitment.accumulate(after.items())


@given(states, keys, values)
def test_root_changes_when_any_value_changes(state, key, value):
    changed = dict(state)
    changed[key] = value
    if changed != state:
        assert commitment.root_of(commitment.accumulate(changed.items())) != commitment.root_of(
            commitment.accumulate(state.items())
        )


def test_key_value_boundary_is_unambiguous():
    # (b"ab", b"c") and (b"a", b"bc") must not collide: the key length is hashed in
    assert commitment.contribution(b"ab", b"c") != commitment.contribution(b"a", b"bc")


def test_empty_root_is_the_root_of_nothing():
    assert commitment.root_of(commitment.accumulate([])) == commitment.EMPTY_ROOT

"""Arbitrary payload field values never crash execution: every outcome is a receipt."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from paraexec.exchange.payloads import (
    CancelOrder,
    Deposit,
    Liquidate,
    OracleUpdate,
    PlaceOrder,
    TransferCollateral,
    Withdraw,
)

from .harness import ALICE, BOB, ORACLE, USDC, Harness, config

wide = st.one_of(st.integers(-(2**63), 2**64 - 1), st.integers(-3, 300))
small = st.integers(-2, 4)
ids = st.one_of(st.just(0), st.integers(-1, 1), wide)  # market ids and subaccount numbers: mostly valid
owner = st.sampled_from([ALICE.public_key, BOB.public_key, b"\x07" * 32])
payload = st.one_of(
    st.builds(Deposit, ids, wide),
    st.builds(Withdraw, ids, wide),
    st.builds(TransferCollateral, ids, owner, ids, wide),
    st.builds(PlaceOrder, ids, ids, wide, small, wide, wide, small, small, st.booleans(), wide, small, wide),
    st.builds(CancelOrder, ids, ids, wide),
    st.builds(OracleUpdate, ids, wide),
    st.builds(Liquidate, owner, ids, ids),
)


@example([(ALICE, CancelOrder(0, 0, -1)), (BOB, CancelOrder(0, 0, 2**40))])
@example([(BOB, PlaceOrder(0, 0, 2**40, 1, 10**6, 10**5)), (BOB, Liquidate(ALICE.public_key, 128, 0))])
@given(st.lists(st.tuples(st.sampled_from([ALICE, BOB, ORACLE]), payload), min_size=1, max_size=8))
def test_arbitrary_payloads_give_receipts(items):
    h = Harness(config({ALICE: 10_000 * USDC, BOB: 10_000 * USDC}))
    txs = [h.tx(key, p) for key, p in items]
    for raw in txs:  # schedulers ask for hints before anything is validated
        h.chain.runtime.hint_keys(h.chain.runtime.prepare(raw))
    receipts = h.block(*txs)
    assert len(receipts) == len(items) + 1
    assert receipts[-1].ok  # the end-of-block tick

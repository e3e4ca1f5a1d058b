"""``Ledger.flush`` twice in one transaction counts each change once.

A liquidation flushes its ledger and the transaction flushes again at its end; an account the
ledger still caches must not bring its first change (OI, holders, funding dust) to the second
flush."""

from __future__ import annotations

import pytest

from paraexec.exchange import keys
from paraexec.exchange.app import ExchangeApp
from paraexec.exchange.ledger import Ledger
from paraexec.exchange.records import HOLDERS_DECODER

from .harness import ALICE, BTC, USDC, config
from .test_liquidation_pins import _GenesisContext


def alice_long_one_btc():
    """A genesis context, a ledger on it and Alice's account, long one BTC in memory (not flushed)."""
    cfg = config({})
    app = ExchangeApp(cfg)
    ctx = _GenesisContext(app.genesis(cfg))
    lg = Ledger(ctx, app.markets)
    sub_id = keys.subaccount_id(ALICE.public_key, 0)
    acc = lg.account(sub_id)
    acc.trade(0, BTC, -50_000 * USDC, 0)
    return ctx, lg, sub_id, acc


def test_a_second_flush_counts_only_what_changed_since_the_first():
    ctx, lg, sub_id, acc = alice_long_one_btc()
    acc.funding_dust = 7
    lg.touch(acc)
    lg.flush()
    assert ctx.deltas[keys.open_interest(0)] == BTC
    acc = lg.account(sub_id)  # the cached account, as a later step of the transaction sees it
    acc.trade(0, BTC // 2, -25_000 * USDC, 0)
    lg.touch(acc)
    lg.flush()
    assert ctx.deltas[keys.open_interest(0)] == BTC + BTC // 2  # not BTC + (BTC + BTC // 2)
    assert ctx.deltas[keys.FUNDING_DUST] == 7
    assert HOLDERS_DECODER.decode(ctx.get(keys.holders(0))) == [sub_id]
    lg.flush()  # nothing dirty: nothing more
    assert ctx.deltas[keys.open_interest(0)] == BTC + BTC // 2
    acc = lg.account(sub_id)  # closing the position after two flushes: OI back to 0, no holder
    acc.trade(0, -(BTC + BTC // 2), 75_000 * USDC, 0)
    lg.touch(acc)
    lg.flush()
    assert ctx.deltas[keys.open_interest(0)] == 0
    assert HOLDERS_DECODER.decode(ctx.get(keys.holders(0))) == []


def test_a_copy_taken_before_a_flush_is_refused_not_counted_twice():
    """A copy carries the stored sizes of when it was taken; adopted after a flush it would add
    its open interest again, so ``replace`` refuses it and the aggregates stay as flushed."""
    ctx, lg, sub_id, acc = alice_long_one_btc()
    lg.touch(acc)
    early = acc.copy()  # taken before the flush
    lg.flush()
    fresh = lg.account(sub_id).copy()  # taken after: adopting it is the normal path
    fresh.trade(0, BTC, -50_000 * USDC, 0)
    lg.replace(fresh)
    early.trade(0, BTC, -50_000 * USDC, 0)
    with pytest.raises(RuntimeError, match="predates the last flush"):
        lg.replace(early)
    lg.flush()
    assert ctx.deltas[keys.open_interest(0)] == 2 * BTC  # the fresh copy's change, once


def test_a_stale_copy_of_an_account_without_positions_is_refused_too():
    """No positions, so no open interest to count twice; but adopting a copy taken before the
    flush would drop the balance the flush wrote (a lost update)."""
    ctx, lg, _, _ = alice_long_one_btc()
    idle = lg.account(keys.subaccount_id(ALICE.public_key, 1))
    early = idle.copy()
    idle.balance += 100
    lg.touch(idle)
    lg.flush()
    early.balance -= 1
    with pytest.raises(RuntimeError, match="predates the last flush"):
        lg.replace(early)

"""Order behaviour through signed transactions: time in force, priority, STP, expiry, margin."""

from __future__ import annotations

from paraexec.exchange import keys
from paraexec.exchange.payloads import BUY, FOK, IOC, POST_ONLY, SELL, CancelOrder, PlaceOrder, Withdraw

from .harness import ALICE, BOB, BTC, CAROL, DAVE, USDC, Harness, config, events

P50 = 5_000_000_000  # 50,000 USD in subticks
TICK = 100_000


def make(balances=None):
    return Harness(config({ALICE: 100_000 * USDC, BOB: 100_000 * USDC, CAROL: 100_000 * USDC, **(balances or {})}))


def order(client_id, side, quantums, subticks, **kw):
    return PlaceOrder(0, 0, client_id, side, quantums, subticks, **kw)


def test_price_time_priority_and_partial_fill_rests():
    h = make({DAVE: 100_000 * USDC})
    h.block(
        h.tx(ALICE, order(1, SELL, BTC // 10, P50 + TICK)),
        h.tx(BOB, order(1, SELL, BTC // 10, P50)),
        h.tx(CAROL, order(1, SELL, BTC // 10, P50)),
    )
    # buy 0.35 BTC up to 50,001: bob (first at 50,000), carol, alice at 50,001; 0.05 rests
    r = h.run(DAVE, order(1, BUY, BTC // 20 * 7, P50 + TICK))
    fills = [(f["maker"], f["quantums"], f["subticks"]) for f in events(r, "fill")]
    assert fills == [
        (keys.subaccount_id(BOB.public_key, 0).hex(), BTC // 10, P50),
        (keys.subaccount_id(CAROL.public_key, 0).hex(), BTC // 10, P50),
        (keys.subaccount_id(ALICE.public_key, 0).hex(), BTC // 10, P50 + TICK),
    ]
    assert events(r, "order")[0]["status"] == "RESTING"
    assert h.reader.book(0) == {"bids": [[P50 + TICK, BTC // 20, 1]], "asks": []}


def test_self_trade_prevention_removes_resting_maker():
    h = make()
    h.block(h.tx(ALICE, order(1, SELL, BTC // 10, P50)), h.tx(BOB, order(1, SELL, BTC // 10, P50)))
    r = h.run(ALICE, order(2, BUY, BTC // 10, P50, time_in_force=IOC))
    assert events(r, "order_removed")[0]["reason"] == "self_trade"
    assert events(r, "fill")[0]["maker"] == keys.subaccount_id(BOB.public_key, 0).hex()
    assert h.chain.store.get(keys.order(0, keys.subaccount_id(ALICE.public_key, 0), 1)) is None
    assert h.reader.book(0)["asks"] == []


def test_fok_all_or_nothing_and_ioc_cancels_rest():
    h = make()
    h.run(ALICE, order(1, SELL, BTC // 10, P50))
    fok = h.run(BOB, order(1, BUY, BTC // 5, P50, time_in_force=FOK))
    assert fok.code == 207
    assert h.reader.book(0)["asks"] == [[P50, BTC // 10, 1]] and h.size(BOB) == 0
    ioc = h.run(BOB, order(2, BUY, BTC // 5, P50, time_in_force=IOC))
    assert ioc.ok and events(ioc, "order")[0]["status"] == "CANCELED"
    assert h.size(BOB) == BTC // 10 and h.reader.book(0) == {"bids": [], "asks": []}


def test_post_only_rests_when_not_crossing():
    h = make()
    h.run(ALICE, order(1, SELL, BTC // 10, P50))
    assert h.run(BOB, order(1, BUY, BTC // 10, P50, time_in_force=POST_ONLY)).code == 205
    assert h.run(BOB, order(2, BUY, BTC // 10, P50 - TICK, time_in_force=POST_ONLY)).ok
    assert h.reader.book(0)["bids"] == [[P50 - TICK, BTC // 10, 1]]


def test_cancel_and_duplicate_client_id():
    h = make()
    assert h.run(ALICE, order(1, SELL, BTC // 10, P50)).ok
    assert h.run(ALICE, order(1, SELL, BTC // 10, P50 + TICK)).code == 209
    r = h.run(ALICE, CancelOrder(0, 0, 1))
    assert r.ok and events(r, "order_canceled")[0]["remaining"] == BTC // 10
    assert h.reader.book(0)["asks"] == []
    assert h.run(ALICE, CancelOrder(0, 0, 1)).code == 208
    assert h.run(ALICE, order(1, SELL, BTC // 10, P50)).ok  # the id is free again


def test_good_til_block_expiry_is_dropped_by_takers():
    h = make()
    h.run(ALICE, order(1, SELL, BTC // 10, P50, good_til_block=2))  # height 1
    h.run(CAROL, order(1, SELL, BTC // 10, P50 + TICK))  # height 2
    r = h.run(BOB, order(1, BUY, BTC // 10, P50 + TICK, time_in_force=IOC))  # height 3 > 2: expired
    assert events(r, "order_removed")[0]["reason"] == "expired"
    assert events(r, "fill")[0]["subticks"] == P50 + TICK
    assert h.run(BOB, order(2, BUY, BTC // 10, P50, good_til_block=3)).code == 217


def test_reduce_only_must_be_immediate():
    """dYdX allows reduce-only on IOC and FOK orders only: a resting one could outlive the
    position it reduces. GTC, post-only and conditional GTC ones are refused, changing nothing."""
    from paraexec.exchange.payloads import STOP_LOSS
    from paraexec.execution.runtime import nonce_key

    h = make()
    h.run(ALICE, order(1, SELL, BTC, P50))
    h.run(BOB, order(1, BUY, BTC // 10, P50, time_in_force=IOC))  # bob is long 0.1 BTC
    before = h.reader.book(0)
    for cid, extra in enumerate(
        ({}, {"time_in_force": POST_ONLY}, {"condition": STOP_LOSS, "trigger_subticks": P50 - 10 * TICK}), start=2
    ):
        r = h.run(BOB, order(cid, SELL, BTC // 10, P50 + TICK, reduce_only=True, **extra))
        assert r.code == 219 and "IOC or FOK" in r.error, extra
        assert set(h.last_output.write_set) <= {nonce_key(BOB.public_key), keys.funding_samples(0)}
    assert h.reader.book(0) == before
    # FOK is allowed; with no bid to sell into it cannot fill (FOK_NOT_FULLY_FILLED), not refused as 219
    assert h.run(BOB, order(5, SELL, BTC // 10, P50 - TICK, reduce_only=True, time_in_force=FOK)).code == 207


def test_reduce_only_clips_to_position():
    h = make()
    h.run(ALICE, order(1, SELL, BTC, P50))
    h.run(BOB, order(1, BUY, BTC // 10, P50, time_in_force=IOC))
    assert h.run(BOB, order(2, BUY, BTC // 10, P50, reduce_only=True, time_in_force=IOC)).code == 206
    h.block(h.tx(CAROL, order(1, BUY, BTC // 20, P50 - TICK)), h.tx(CAROL, order(2, BUY, BTC, P50 - TICK)))
    r = h.run(BOB, order(3, SELL, BTC // 2, P50 - TICK, reduce_only=True, time_in_force=IOC))
    assert [f["quantums"] for f in events(r, "fill")] == [BTC // 20, BTC // 20]
    assert events(r, "order")[0]["status"] == "CANCELED" and h.size(BOB) == 0
    assert h.reader.book(0)["bids"] == [[P50 - TICK, BTC - BTC // 20, 1]]


def test_undercollateralised_order_is_refused_and_maker_is_removed():
    h = make({BOB: 1_000 * USDC, CAROL: 100 * USDC})
    # 1,000 USDC supports IMR of 5%: at most 20,000 USDC notional (0.4 BTC incl. fees: less)
    assert h.run(BOB, order(1, BUY, BTC // 2, P50)).code == 204
    assert h.run(BOB, order(2, BUY, BTC // 10 * 3, P50)).ok
    # carol rests an ask that fits now; after she withdraws most collateral it no longer fits
    assert h.run(CAROL, order(1, SELL, BTC // 100 * 3, P50 + TICK)).ok
    assert h.run(CAROL, Withdraw(0, 90 * USDC)).ok
    r = h.run(ALICE, order(1, BUY, BTC // 100 * 3, P50 + TICK, time_in_force=IOC))
    assert events(r, "order_removed")[0]["reason"] == "undercollateralized"
    assert not events(r, "fill")


def test_oracle_update_needs_oracle_key_and_quorum_median():
    from paraexec.exchange.payloads import OracleUpdate

    from .harness import ORACLE

    cfg = config(
        {ALICE: 10_000 * USDC},
        oracles=[ORACLE.public_key.hex(), DAVE.public_key.hex(), CAROL.public_key.hex()],
        oracle_quorum=2,
    )
    h = Harness(cfg)
    assert h.run(ALICE, OracleUpdate(0, P50)).code == 210
    r = h.run(ORACLE, OracleUpdate(0, 5_100_000_000))
    assert r.ok and events(r, "oracle_report")[0]["reports"] == 1
    assert h.reader.market(0)["oracle_price"] == P50
    r = h.run(DAVE, OracleUpdate(0, 5_200_000_001))
    # two reports: their mean, rounded up (dYdX), not the lower one: one reporter cannot set it
    assert events(r, "oracle_price")[0]["price"] == 5_150_000_001
    h.run(CAROL, OracleUpdate(0, 5_300_000_000))
    assert h.reader.market(0)["oracle_price"] == 5_200_000_001


def test_open_interest_and_fee_pool_use_deltas_without_reads():
    """A fill writes OI and fees as deltas: the transaction never reads those keys."""
    from paraexec.execution import BlockEnv
    from paraexec.execution.sequential import OverlayContext

    h = make()
    h.run(ALICE, order(1, SELL, BTC // 10, P50))
    reads = []

    class Spy(OverlayContext):
        def _read(self, key):
            reads.append(key)
            return super()._read(key)

    runtime = h.chain.runtime
    ctx = Spy(BlockEnv(9, 9), {}, h.chain.store)
    receipt = runtime.execute(runtime.prepare(h.tx(BOB, order(1, BUY, BTC // 10, P50, time_in_force=IOC))), ctx)
    assert receipt.ok
    assert ctx.deltas[keys.FEES] == 3_000_000 and ctx.deltas[keys.open_interest(0)] == BTC // 10
    assert keys.FEES not in reads and keys.open_interest(0) not in reads and keys.INSURANCE not in reads


def test_refused_transactions_change_nothing_but_their_nonce():
    from paraexec.exchange.payloads import MarketTick, OracleUpdate
    from paraexec.execution.runtime import nonce_key

    h = make()
    h.run(ALICE, order(1, SELL, BTC // 100, P50 + TICK))
    bad = [
        (BOB, order(1, BUY, 0, P50)),
        (BOB, order(2, BUY, -BTC, P50)),
        (BOB, order(3, BUY, BTC // 100, P50 + 1)),
        (BOB, PlaceOrder(7, 0, 4, BUY, BTC // 100, P50)),
        (BOB, order(5, BUY, BTC // 100, P50, reduce_only=True, time_in_force=IOC)),
        (BOB, order(6, BUY, BTC // 100, P50 + TICK, time_in_force=POST_ONLY)),
        (BOB, order(7, BUY, BTC // 100 * 60, P50)),  # 30,000 USDC notional on 100,000: fine; see below
        (CAROL, OracleUpdate(0, P50)),
        (BOB, MarketTick(0)),
    ]
    txs = [h.tx(key, payload) for key, payload in bad]
    receipts = h.block(*txs)
    codes = [r.code for r in receipts[: len(txs)]]
    assert codes == [202, 202, 203, 201, 206, 205, 0, 210, 103]
    touched = set(h.last_output.write_set)
    allowed = {nonce_key(BOB.public_key), nonce_key(CAROL.public_key), keys.funding_samples(0)}
    # the one accepted order (index 6) rests and writes its level, index, ref; nothing else is written
    accepted = {
        keys.level(0, BUY, P50),
        keys.level_index(0, BUY),
        keys.order(0, keys.subaccount_id(BOB.public_key, 0), 7),
    }
    assert touched == allowed | accepted

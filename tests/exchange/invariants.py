"""Whole-state invariants of the exchange, checked from committed state (property tests)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from paraexec import codec
from paraexec.exchange import keys
from paraexec.exchange.payloads import BUY, SELL
from paraexec.exchange.records import (
    HOLDERS_DECODER,
    INDEX_DECODER,
    LEVEL_DECODER,
    MARKET_STATE_DECODER,
    ORDER_REF_DECODER,
    SUBACCOUNT_DECODER,
)
from paraexec.exchange.units import FUNDING_SCALE


def total_collateral_nano(store: Any, market_ids: list[int]) -> int:
    """1e9 x (banks + subaccount balances + insurance + fees) + funding dust + unsettled funding.

    Unsettled funding of a position is -size * (index_now - index_at_settlement) nano quote
    quantums; it is what the account will receive (exactly) when it next settles.
    """
    index = {mid: MARKET_STATE_DECODER.decode(store.get(keys.market_state(mid))).funding.index for mid in market_ids}
    total = 0
    for _, value in store.items(keys.BANK):
        total += codec.decode_int(value) * FUNDING_SCALE
    for _, value in store.items(keys.SUBACCOUNT):
        record = SUBACCOUNT_DECODER.decode(value)
        total += record.balance * FUNDING_SCALE
        for pos in record.positions:
            total += -pos.size * (index[pos.market_id] - pos.funding_index)
    total += codec.decode_int(store.get(keys.INSURANCE)) * FUNDING_SCALE
    total += codec.decode_int(store.get(keys.FEES)) * FUNDING_SCALE
    total += codec.decode_int(store.get(keys.FUNDING_DUST))
    return total


def check_state(store: Any, market_ids: list[int], height: int) -> None:
    longs: dict[int, int] = defaultdict(int)
    shorts: dict[int, int] = defaultdict(int)
    holders: dict[int, set[bytes]] = defaultdict(set)
    for key, value in store.items(keys.SUBACCOUNT):
        for pos in SUBACCOUNT_DECODER.decode(value).positions:
            assert pos.size != 0, "zero positions are removed"
            (longs if pos.size > 0 else shorts)[pos.market_id] += abs(pos.size)
            holders[pos.market_id].add(key[len(keys.SUBACCOUNT) :])
    refs = {key for key, _ in store.items(keys.ORDER)}
    seen_refs: set[bytes] = set()
    for mid in market_ids:
        assert longs[mid] == shorts[mid], f"market {mid}: long OI {longs[mid]} != short OI {shorts[mid]}"
        assert codec.decode_int(store.get(keys.open_interest(mid))) == longs[mid]
        raw = store.get(keys.holders(mid))
        assert set(HOLDERS_DECODER.decode(raw) if raw else []) == holders[mid]
        best: dict[int, int | None] = {}
        for side in (BUY, SELL):
            raw = store.get(keys.level_index(mid, side))
            prices = INDEX_DECODER.decode(raw) if raw else []
            assert prices == sorted(set(prices))
            on_disk = sorted(int.from_bytes(k[-8:], "big") for k, _ in store.items(keys.level(mid, side, 0)[:-8]))
            assert on_disk == prices, "level index lists exactly the non-empty levels"
            live = []
            for price in prices:
                orders = LEVEL_DECODER.decode(store.get(keys.level(mid, side, price)))
                assert orders and all(o.remaining > 0 for o in orders)
                for o in orders:
                    ref_key = keys.order(mid, o.sub_id, o.client_id)
                    ref = ORDER_REF_DECODER.decode(store.get(ref_key))
                    assert (ref.side, ref.subticks, ref.conditional) == (side, price, False)
                    seen_refs.add(ref_key)
                if any(not (o.good_til_block and o.good_til_block < height) for o in orders):
                    live.append(price)
            best[side] = (max(live) if side == BUY else min(live)) if live else None
        bid, ask = best[BUY], best[SELL]
        assert bid is None or ask is None or bid < ask, f"market {mid} crossed: bid {bid} >= ask {ask}"
        from paraexec.exchange.records import CONDITIONALS_DECODER

        for shard in range(keys.CONDITIONAL_SHARDS):
            for c in CONDITIONALS_DECODER.decode(store.get(keys.conditionals(mid, shard)) or b"\x90"):
                assert keys.conditional_shard(c.sub_id) == shard, "a conditional order in another's shard"
                seen_refs.add(keys.order(mid, c.sub_id, c.client_id))
    assert refs == seen_refs, "every order ref points at a live order and every live order has one"


def check_risk_cache(store: Any, markets: dict, height: int, time: int) -> None:
    """``Ledger.risk(acc, market)`` (cached rest of the account) equals the full computation."""
    from paraexec.exchange.ledger import Ledger
    from paraexec.exchange.queries import _ReadContext

    for key, _ in store.items(keys.SUBACCOUNT):
        lg = Ledger(_ReadContext(store.get, height, time), markets)
        acc = lg.account(key[len(keys.SUBACCOUNT) :])
        full = lg.risk(acc)
        for mid in markets:
            assert lg.risk(acc, mid) == full

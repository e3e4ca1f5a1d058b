"""The order book of one market, stored as small keys.

Each side has a *level index* (``keys.level_index``): the sorted list of prices (subticks) that
have resting orders, ascending for both sides (bids are walked from the end). Each price has a
*level* (``keys.level``): the FIFO list of ``RestingOrder`` at that price, which gives time
priority. A live order also has an ``OrderRef`` under ``keys.order`` so a cancel finds its level.

A fill reads the index and the levels it consumes and writes only those; placing an order at an
existing level writes only that level. ``Book`` caches what it read and ``flush()`` writes what
changed, deleting emptied levels and removing them from the index.
"""

from __future__ import annotations

import bisect

from ..execution.contract import TxContext
from . import keys
from .payloads import BUY, SELL
from .records import INDEX_DECODER, LEVEL_DECODER, RestingOrder, encode, expired


def opposite(side: int) -> int:
    return SELL if side == BUY else BUY


class Book:
    def __init__(self, ctx: TxContext, market_id: int) -> None:
        self.ctx = ctx
        self.market_id = market_id
        self._index: dict[int, list[int]] = {}
        self._levels: dict[tuple[int, int], list[RestingOrder]] = {}
        self._dirty_index: set[int] = set()
        self._dirty_levels: set[tuple[int, int]] = set()

    def index(self, side: int) -> list[int]:
        prices = self._index.get(side)
        if prices is None:
            raw = self.ctx.get(keys.level_index(self.market_id, side))
            prices = self._index[side] = INDEX_DECODER.decode(raw) if raw else []
        return prices

    def prices_best_first(self, side: int) -> list[int]:
        """A snapshot of the side's prices, best first (highest bid, lowest ask)."""
        prices = self.index(side)
        return prices[::-1] if side == BUY else list(prices)

    def best(self, side: int) -> int | None:
        prices = self.index(side)
        if not prices:
            return None
        return prices[-1] if side == BUY else prices[0]

    def best_live(self, side: int, height: int, excluding: bytes | None = None) -> int | None:
        """Best price of ``side`` with an order still live at ``height`` (of a subaccount other
        than ``excluding``). Expired good-til-block orders stay on the book until a taker walks
        over them; they can no longer fill, so they neither block a post-only order nor set the
        funding premium; nor do the post-only owner's own orders, which matching removes as
        self-trades."""
        for price in self.prices_best_first(side):
            if any(not expired(o.good_til_block, height) and o.sub_id != excluding for o in self.level(side, price)):
                return price
        return None

    def level(self, side: int, subticks: int) -> list[RestingOrder]:
        slot = (side, subticks)
        orders = self._levels.get(slot)
        if orders is None:
            raw = self.ctx.get(keys.level(self.market_id, side, subticks))
            orders = self._levels[slot] = LEVEL_DECODER.decode(raw) if raw else []
        return orders

    def set_level(self, side: int, subticks: int, orders: list[RestingOrder]) -> None:
        slot = (side, subticks)
        had = bool(self.level(side, subticks))
        self._levels[slot] = orders
        self._dirty_levels.add(slot)
        if had != bool(orders):
            prices = self.index(side)
            if orders:
                bisect.insort(prices, subticks)
            else:
                prices.remove(subticks)
            self._dirty_index.add(side)

    def append(self, side: int, subticks: int, order: RestingOrder) -> None:
        self.set_level(side, subticks, [*self.level(side, subticks), order])

    def remove(self, side: int, subticks: int, sub_id: bytes, client_id: int) -> RestingOrder | None:
        orders = self.level(side, subticks)
        for i, order in enumerate(orders):
            if order.client_id == client_id and order.sub_id == sub_id:
                self.set_level(side, subticks, orders[:i] + orders[i + 1 :])
                return order
        return None

    def flush(self) -> None:
        ctx, mid = self.ctx, self.market_id
        for side, subticks in sorted(self._dirty_levels):
            orders = self._levels[(side, subticks)]
            key = keys.level(mid, side, subticks)
            if orders:
                ctx.put(key, encode(orders))
            else:
                ctx.delete(key)
        for side in sorted(self._dirty_index):
            prices = self._index[side]
            key = keys.level_index(mid, side)
            if prices:
                ctx.put(key, encode(prices))
            else:
                ctx.delete(key)
        self._dirty_levels.clear()
        self._dirty_index.clear()

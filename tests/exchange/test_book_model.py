"""The order book against a naive sorted-list matcher (model test).

Traders have so much collateral that margin never binds; the model is the textbook price-time
priority matcher with dYdX's self-trade prevention (a crossing resting order of the taker's own
subaccount is canceled). Fills (maker, quantums, price) and the final book must agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from paraexec.crypto import SigningKey
from paraexec.exchange import keys
from paraexec.exchange.payloads import BUY, GTC, IOC, SELL, CancelOrder, PlaceOrder

from .harness import USDC, Harness, btc_market, config, events

TRADERS = [SigningKey.from_seed_text(f"model/{i}") for i in range(3)]
SUB = [keys.subaccount_id(k.public_key, 0).hex() for k in TRADERS]
TICK = 100_000
BASE = 5_000_000_000
LOT = 1_000_000


@dataclass
class Resting:
    trader: int
    client_id: int
    side: int
    price: int
    remaining: int
    seq: int


class NaiveBook:
    def __init__(self) -> None:
        self.orders: list[Resting] = []
        self.seq = 0

    def place(self, trader: int, client_id: int, side: int, qty: int, price: int, tif: int) -> list[tuple]:
        fills = []
        crosses = (lambda p: p <= price) if side == BUY else (lambda p: p >= price)
        while qty:
            makers = sorted(
                (o for o in self.orders if o.side != side and crosses(o.price)),
                key=lambda o: (o.price if side == BUY else -o.price, o.seq),
            )
            if not makers:
                break
            maker = makers[0]
            if maker.trader == trader:
                self.orders.remove(maker)
                continue
            q = min(qty, maker.remaining)
            fills.append((SUB[maker.trader], maker.client_id, q, maker.price))
            maker.remaining -= q
            qty -= q
            if maker.remaining == 0:
                self.orders.remove(maker)
        if qty and tif == GTC:
            self.seq += 1
            self.orders.append(Resting(trader, client_id, side, price, qty, self.seq))
        return fills

    def cancel(self, trader: int, client_id: int) -> bool:
        for o in self.orders:
            if o.trader == trader and o.client_id == client_id:
                self.orders.remove(o)
                return True
        return False

    def levels(self) -> dict[str, list[list[int]]]:
        out = {}
        for side, name in ((BUY, "bids"), (SELL, "asks")):
            prices = sorted({o.price for o in self.orders if o.side == side}, reverse=side == BUY)
            out[name] = [
                [
                    p,
                    sum(o.remaining for o in self.orders if o.side == side and o.price == p),
                    sum(1 for o in self.orders if o.side == side and o.price == p),
                ]
                for p in prices
            ]
        return out


place = st.tuples(
    st.just("place"),
    st.integers(0, 2),
    st.sampled_from([BUY, SELL]),
    st.integers(1, 5),
    st.integers(-3, 3),
    st.sampled_from([GTC, GTC, IOC]),
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 2), st.integers(1, 6))
action = st.integers(0, 4).flatmap(lambda k: cancel if k == 0 else place)


@given(st.lists(action, min_size=8, max_size=40), st.integers(1, 6))
def test_book_matches_naive_matcher(actions, per_block):
    h = Harness(config({k: 10**9 * USDC for k in TRADERS}, markets=[btc_market()]))
    model = NaiveBook()
    next_id = [0, 0, 0]
    expected_fills: list[tuple] = []
    expected_codes: list[int] = []
    txs = []
    for act in actions:
        if act[0] == "place":
            _, t, side, lots, offset, tif = act
            next_id[t] += 1
            price = BASE + offset * TICK
            txs.append(h.tx(TRADERS[t], PlaceOrder(0, 0, next_id[t], side, lots * LOT, price, time_in_force=tif)))
            expected_fills.append(model.place(t, next_id[t], side, lots * LOT, price, tif))
            expected_codes.append(0)
        else:
            _, t, cid = act
            txs.append(h.tx(TRADERS[t], CancelOrder(0, 0, cid)))
            expected_fills.append([])
            expected_codes.append(0 if model.cancel(t, cid) else 208)
    receipts = []
    for i in range(0, len(txs), per_block):
        chunk = txs[i : i + per_block]
        receipts += h.block(*chunk)[: len(chunk)]
    for receipt, want_fills, code in zip(receipts, expected_fills, expected_codes, strict=True):
        assert receipt.code == code, receipt.error
        got = [(f["maker"], f["maker_client_id"], f["quantums"], f["subticks"]) for f in events(receipt, "fill")]
        assert got == want_fills
    assert h.reader.book(0) == model.levels()

"""Rough sequential throughput of the exchange on a realistic order mix (not a test).

    .venv/bin/python -m tests.exchange.measure_orders [--blocks 5] [--size 1000] [--markets 8]

Mix per block (dev genesis, 100 traders): 55% GTC limit orders within +-0.5% of the oracle
(some rest, some cross), 25% cancels of the sender's earlier orders, 15% IOC orders that take
liquidity, 5% oracle updates. Prints orders/s with and without signature verification, both
through ChainRuntime + SequentialExecutor (signatures are checked during execution when on).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from paraexec.chain import Chain, ChainConfig
from paraexec.exchange.genesis import dev_genesis, dev_keys, oracle_keys
from paraexec.exchange.market import Market
from paraexec.exchange.payloads import BUY, GTC, IOC, SELL, CancelOrder, OracleUpdate, PlaceOrder
from paraexec.execution import SequentialExecutor
from paraexec.state import MemoryStore
from paraexec.transaction import encode_payload, sign


def gen_blocks(cfg: dict, blocks: int, size: int, seed: int = 0) -> list[list[bytes]]:
    rng = random.Random(seed)
    traders = dev_keys("bench", len(cfg["accounts"]))
    oracle = oracle_keys("bench")[0]
    markets = [Market.from_config(m) for m in cfg["markets"]]
    nonces: Counter = Counter()
    live: dict[tuple[int, int], list[int]] = {}
    next_id: Counter = Counter()
    out = []
    for _ in range(blocks):
        txs = []
        for _ in range(size):
            k = rng.random()
            m = rng.choice(markets)
            mid = m.price_to_subticks(m.initial_price)
            if k < 0.05:
                key, payload = oracle, OracleUpdate(m.id, m.initial_price + rng.randint(-5, 5) * m.subticks_per_tick)
            else:
                t = rng.randrange(len(traders))
                key = traders[t]
                mine = live.setdefault((t, m.id), [])
                if k < 0.30 and mine:
                    payload = CancelOrder(m.id, 0, mine.pop(rng.randrange(len(mine))))
                else:
                    side = rng.choice([BUY, SELL])
                    ioc = k >= 0.80
                    ticks = rng.randint(0, 50) if ioc else rng.randint(-30, 20)
                    offset = ticks * m.subticks_per_tick * max(1, mid // m.subticks_per_tick // 10_000)
                    price = mid + offset if side == BUY else mid - offset
                    next_id[t] += 1
                    cid = next_id[t]
                    qty = m.step_base_quantums * rng.randint(1, 20)
                    payload = PlaceOrder(
                        m.id, 0, cid, side, qty, max(price, m.subticks_per_tick), time_in_force=IOC if ioc else GTC
                    )
                    if not ioc:
                        mine.append(cid)
            txs.append(sign(key, "bench", nonces[key.public_key], encode_payload(payload)))
            nonces[key.public_key] += 1
        out.append(txs)
    return out


def measure(cfg: dict, blocks: list[list[bytes]], verify: bool) -> tuple[float, Counter]:
    store = MemoryStore()
    Chain.create(store, ChainConfig("bench", "exchange", cfg))
    chain = Chain(store, ChainConfig("bench", "exchange", cfg), verify_signatures=verify)
    executor = SequentialExecutor()
    seconds = 0.0
    seen: Counter = Counter()
    for height, txs in enumerate(blocks, start=1):
        started = time.perf_counter()
        _, output = chain.produce_block(txs, height, executor)
        seconds += time.perf_counter() - started
        for r in output.receipts:
            seen["ok" if r.ok else f"code{r.code}"] += 1
            seen.update(e.name for e in r.events)
    return seconds, seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--markets", type=int, default=8)
    args = parser.parse_args()
    cfg = dev_genesis("bench", accounts=100, markets=args.markets)
    blocks = gen_blocks(cfg, args.blocks, args.size)
    n = args.blocks * args.size
    for verify in (False, True):
        seconds, seen = measure(cfg, blocks, verify)
        print(
            f"verify_signatures={verify}: {n} txs in {seconds:.2f}s = {n / seconds:,.0f} tx/s "
            f"({seconds / n * 1e6:.0f} us/tx)"
        )
    print("receipts/events:", dict(seen.most_common()))


if __name__ == "__main__":
    main()

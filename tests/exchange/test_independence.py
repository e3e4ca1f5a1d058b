"""Independent activity touches independent keys: the property the parallel executors rely on."""

from __future__ import annotations

from paraexec.exchange import keys
from paraexec.exchange.genesis import dev_market
from paraexec.exchange.payloads import BUY, IOC, SELL, OracleUpdate, PlaceOrder
from paraexec.execution import BlockEnv
from paraexec.execution.runtime import nonce_key
from paraexec.execution.sequential import OverlayContext

from .harness import ALICE, BOB, CAROL, DAVE, ORACLE, USDC, Harness, config


class Spy(OverlayContext):
    def __init__(self, *args):
        super().__init__(*args)
        self.read_keys: set[bytes] = set()

    def _read(self, key):
        self.read_keys.add(key)
        return super()._read(key)


def access(h: Harness, raw: bytes) -> tuple[set[bytes], set[bytes], set[bytes]]:
    """(reads, writes, delta keys) of one transaction run alone on the current state."""
    runtime = h.chain.runtime
    ctx = Spy(BlockEnv(h.chain.height + 1, h.time + 1), {}, h.chain.store)
    assert runtime.execute(runtime.prepare(raw), ctx).ok
    return ctx.read_keys, set(ctx.writes), set(ctx.deltas)


def two_markets() -> Harness:
    markets = []
    for mid in (0, 1):
        m = dev_market(mid)
        m.update({"staleness_s": 10**6})
        markets.append(m)
    h = Harness(config({k: 1_000_000 * USDC for k in (ALICE, BOB, CAROL, DAVE)}, markets=markets))
    btc, eth = 6_000_000_000, 3_000_000_000
    # alice ends short ETH and flat BTC with a BTC ask; carol short BTC with an ETH ask
    h.block(
        h.tx(ALICE, PlaceOrder(0, 0, 1, SELL, 10**8, btc)),
        h.tx(BOB, PlaceOrder(0, 0, 1, BUY, 10**8, btc, time_in_force=IOC)),
        h.tx(CAROL, PlaceOrder(1, 0, 1, SELL, 10**8, eth)),
        h.tx(DAVE, PlaceOrder(1, 0, 1, BUY, 10**8, eth, time_in_force=IOC)),
        h.tx(ALICE, PlaceOrder(1, 0, 2, SELL, 10**8, eth)),
        h.tx(CAROL, PlaceOrder(1, 0, 3, BUY, 10**8, eth, time_in_force=IOC)),
        h.tx(CAROL, PlaceOrder(0, 0, 2, SELL, 10**8, btc)),
        h.tx(ALICE, PlaceOrder(0, 0, 3, BUY, 10**8, btc, time_in_force=IOC)),
        h.tx(ALICE, PlaceOrder(0, 0, 4, SELL, 10**8, btc + 100_000)),
        h.tx(CAROL, PlaceOrder(1, 0, 4, SELL, 10**8, eth + 100_000)),
    )
    return h


def test_fills_in_different_markets_share_only_delta_keys():
    h = two_markets()
    a = access(h, h.tx(BOB, PlaceOrder(0, 0, 9, BUY, 10**8, 6_000_100_000, time_in_force=IOC)))
    b = access(h, h.tx(DAVE, PlaceOrder(1, 0, 9, BUY, 10**8, 3_000_100_000, time_in_force=IOC)))
    (reads_a, writes_a, deltas_a), (reads_b, writes_b, deltas_b) = a, b
    assert writes_a & (reads_b | writes_b) == set()
    assert writes_b & (reads_a | writes_a) == set()
    assert keys.FEES in deltas_a & deltas_b  # shared hot counter, as a commutative delta
    assert keys.open_interest(0) in deltas_a and keys.open_interest(1) in deltas_b
    assert keys.market_state(1) in reads_a  # cross margin: the maker alice's ETH short is valued too


def test_oracle_update_writes_only_its_market_state_and_new_levels_write_the_index():
    h = two_markets()
    reads, writes, deltas = access(h, h.tx(ORACLE, OracleUpdate(1, 3_000_000_000)))
    assert writes == {keys.market_state(1), nonce_key(ORACLE.public_key)} and not deltas
    # a resting order at a new price level writes that side's level index (the market's hot key)
    reads, writes, _ = access(h, h.tx(ALICE, PlaceOrder(0, 0, 9, BUY, 10**8, 5_000_000_000)))
    assert keys.level_index(0, BUY) in writes and keys.level(0, BUY, 5_000_000_000) in writes
    assert not any(k.startswith(keys.market_prefix(1)) for k in writes)
    # cross margin: alice's ETH short is valued at the ETH oracle price, so an ETH oracle update
    # and a BTC order by an ETH holder do conflict (as in dYdX); traders without ETH do not read it
    assert keys.market_state(1) in reads


def test_stop_losses_of_traders_in_different_shards_share_no_written_key():
    """A market's conditional orders are kept in ``keys.CONDITIONAL_SHARDS`` lists by owner, so
    two traders placing stop-losses in one market (in different shards) can run side by side;
    the market tick reads every list."""
    from paraexec.exchange.payloads import STOP_LOSS

    assert keys.conditional_shard(BOB.public_key) != keys.conditional_shard(DAVE.public_key)
    h = two_markets()

    def stop(key) -> bytes:
        return h.tx(
            key, PlaceOrder(0, 0, 9, SELL, 10**8, 5_000_000_000, condition=STOP_LOSS, trigger_subticks=5_000_000_000)
        )

    (reads_a, writes_a, _), (reads_b, writes_b, _) = access(h, stop(BOB)), access(h, stop(DAVE))
    assert keys.conditionals(0, keys.conditional_shard(BOB.public_key)) in writes_a
    assert writes_a & (reads_b | writes_b) == set()
    assert writes_b & (reads_a | writes_a) == set()
    tick = Spy(BlockEnv(h.chain.height + 1, h.time + 1), {}, h.chain.store)
    h.chain.runtime.app.market_tick(tick, 0)
    assert {keys.conditionals(0, i) for i in range(keys.CONDITIONAL_SHARDS)} <= tick.read_keys

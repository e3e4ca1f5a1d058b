"""A perpetual-futures market simulation: the exchange workload that looks like a real venue.

Participants (keys from the exchange dev genesis, ``ExchangeSetup``):

- the first ``makers`` traders are market makers with deep collateral (subaccount 0); the others
  are takers trading from subaccount 1 with ``taker_collateral`` only, half of them leaning long
  and half short, so leveraged positions build up and a shock has victims;
- the genesis oracle keys report prices.

Every block ``h`` (randomness from ``random.Random(f"{seed}/perps/{h}")``):

1. oracle updates for **every** market (each of ``quorum`` oracle keys reports), following a
   small random walk per market; from block ``shock_at`` on, for ``shock_blocks`` blocks, every
   price moves by ``shock_ppm`` instead (a crash when negative: leveraged longs become
   liquidatable, and the exchange's end-of-block sweep liquidates them, with deleveraging when
   the insurance fund runs dry);
2. deposits: each trader deposits its starting collateral once, in the first blocks;
3. the rest of the block, each transaction drawn from the mix below in a market drawn from a
   Zipf distribution (market ``i`` has weight ``1 / (i + 1) ** zipf_s``, so BTC and ETH dominate
   as on real venues):
       maker re-quote 45%  (cancel its oldest live order in the market, or place a new GTC
                            order 5-60 bps away from the oracle price on its passive side)
       taker order    32%  (IOC limit 1% through the oracle price, in the taker's leaning
                            direction 70% of the time; in shock blocks everyone sells)
       stop-loss       3%  (a taker guards its leaning side: a conditional IOC order that
                            closes a long when the oracle falls ``stop_ppm`` below today's
                            price, or a short when it rises as much; the market tick places
                            it once triggered, so a crash fires a wave of them)
       cancel         10%  (a maker cancels a random live order)
       deposit/withdraw 5%
       liquidation    5%   (only around shocks: a permissionless Liquidate of a leaning-long
                            taker; otherwise a taker order)

Everything is deterministic from ``seed``. The generator tracks its own view (oracle path, the
orders it placed, who deposited) without reading state, so blocks must be requested in height
order (as the benchmark harness and ``paraexec run`` do); some transactions fail on chain (a
cancel of an order that was filled, a taker order the margin check refuses), as on a real venue.
Funding accrues through the exchange's own end-of-block ``MarketTick`` as block time passes;
``block_seconds`` (300: time is compressed) tells block producers such as the benchmark harness
how far apart to put block times, so hourly funding applies every 12 blocks.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .exchange_setup import PPM, USDC, ExchangeSetup, Signer, limit_subticks, quantums_for_notional

#: Takers trade from subaccount 1, funded only by their deposit (the dev genesis pre-funds
#: subaccount 0 generously), so their leverage is real and a shock can liquidate them.
TAKER_SUBACCOUNT = 1


@dataclass
class PerpsWorkload:
    """See module docstring."""

    accounts: int = 200
    markets: int = 8
    seed: int = 0
    makers: int = 0  # 0: one per 10 accounts, at least 2
    zipf_s: float = 1.2
    shock_at: int = 0  # first shock block; 0: no shock
    shock_ppm: int = -60_000
    shock_blocks: int = 3
    maker_collateral: int = 1_000_000 * USDC
    taker_collateral: int = 5_000 * USDC
    good_til_blocks: int = 20
    stop_ppm: int = 30_000  # a stop-loss triggers 3% away from the price it was placed at
    block_seconds: int = 300  # compressed time: hourly funding applies every 12 blocks
    chain_id: str = "paraexec-dev"
    app_name: str = field(default="exchange", init=False)
    setup: ExchangeSetup = field(init=False)

    def __post_init__(self) -> None:
        if self.accounts < 4:
            raise ValueError("perps needs at least 4 accounts")
        if self.markets < 1:
            raise ValueError("perps needs at least 1 market")
        self.makers = self.makers or max(2, self.accounts // 10)
        if self.makers >= self.accounts:
            raise ValueError("makers must be fewer than accounts")
        self.setup = ExchangeSetup(f"paraexec-perps-{self.seed}", self.accounts, self.markets)
        self.markets = len(self.setup.market_params)
        band = min(m.max_price_move_ppm for m in self.setup.market_params)
        if self.shock_at and not -band < self.shock_ppm < band:
            raise ValueError(
                f"shock_ppm {self.shock_ppm} is outside the markets' oracle price band (+-{band} ppm per update): "
                "the chain would refuse every shocked price"
            )
        self.signer = Signer(self.chain_id)
        self.prices = [m.initial_price for m in self.setup.market_params]
        self.weights = [1 / (i + 1) ** self.zipf_s for i in range(self.markets)]
        # live orders the generator placed: (maker index, market) -> client ids, oldest first
        self.live: dict[tuple[int, int], deque[int]] = {}
        self.next_client_id: dict[tuple[int, int], int] = {}
        self.deposited = 0
        self.next_height: int | None = None

    # -- the dev chain ------------------------------------------------------------------------

    def genesis_config(self) -> dict[str, Any]:
        return self.setup.config

    @property
    def maker_keys(self) -> list[Any]:
        return self.setup.traders[: self.makers]

    @property
    def taker_keys(self) -> list[Any]:
        return self.setup.traders[self.makers :]

    def in_shock(self, height: int) -> bool:
        return self.shock_at > 0 and self.shock_at <= height < self.shock_at + self.shock_blocks

    # -- blocks -------------------------------------------------------------------------------

    def block(self, height: int, size: int, nonce_of: Callable[[bytes], int] | None = None) -> list[bytes]:
        """About ``size`` signed transactions for block ``height`` (see module docstring)."""
        from ..exchange.payloads import OracleUpdate

        if self.next_height is not None and height != self.next_height:
            raise ValueError(f"perps blocks are generated in order: expected {self.next_height}, got {height}")
        self.next_height = height + 1
        rng = random.Random(f"{self.seed}/perps/{height}")
        txs: list[bytes] = []
        sign = self.signer.sign
        for m in range(self.markets):
            move = self.shock_ppm if self.in_shock(height) else rng.randrange(-1500, 1501)
            self.prices[m] = max(1, self.prices[m] * (PPM + move) // PPM)
            for oracle in self.setup.oracles[: max(1, self.setup.quorum)]:
                txs.append(sign(oracle, OracleUpdate(m, self.prices[m]), nonce_of))
        txs.extend(self._deposits(size - len(txs), nonce_of))
        while len(txs) < size:
            txs.append(self._one(rng, height, nonce_of))
        return txs

    def _deposits(self, room: int, nonce_of: Callable[[bytes], int] | None) -> list[bytes]:
        from ..exchange.payloads import Deposit

        out: list[bytes] = []
        traders = self.setup.traders
        while self.deposited < len(traders) and len(out) < max(room, 0):
            key = traders[self.deposited]
            target = self.maker_collateral if self.deposited < self.makers else self.taker_collateral
            bank = self.setup.bank_balance(key)
            amount = min(target, bank) if bank > 0 else target
            sub = 0 if self.deposited < self.makers else TAKER_SUBACCOUNT
            out.append(self.signer.sign(key, Deposit(sub, amount), nonce_of))
            self.deposited += 1
        return out

    def _market(self, rng: random.Random) -> int:
        return rng.choices(range(self.markets), self.weights)[0]

    def _one(self, rng: random.Random, height: int, nonce_of: Callable[[bytes], int] | None) -> bytes:
        roll = rng.random()
        if roll < 0.45:
            return self._requote(rng, height, nonce_of)
        if roll < 0.77:
            return self._taker(rng, height, nonce_of)
        if roll < 0.80:
            return self._stop_loss(rng, height, nonce_of)
        if roll < 0.90:
            return self._cancel(rng, height, nonce_of)
        if roll < 0.95:
            return self._funds(rng, nonce_of)
        if self.shock_at and self.shock_at <= height < self.shock_at + self.shock_blocks + 2:
            return self._liquidate(rng, nonce_of)
        return self._taker(rng, height, nonce_of)

    def _requote(self, rng: random.Random, height: int, nonce_of: Callable[[bytes], int] | None) -> bytes:
        from ..exchange.payloads import BUY, GTC, SELL, CancelOrder, PlaceOrder

        market = self._market(rng)
        maker = rng.randrange(self.makers)
        live = self.live.setdefault((maker, market), deque())
        key = self.maker_keys[maker]
        if len(live) >= 4 or (live and rng.random() < 0.3):
            return self.signer.sign(key, CancelOrder(market, 0, live.popleft()), nonce_of)
        params = self.setup.market_params[market]
        buy = rng.random() < 0.5
        offset = rng.randrange(5, 61) * 100  # 5-60 bps, passive side
        subticks = limit_subticks(params, self.prices[market], -offset if buy else offset, buy)
        quantums = quantums_for_notional(params, rng.randrange(1_000, 20_001) * USDC, self.prices[market])
        client_id = self.next_client_id.get((maker, market), 0)
        self.next_client_id[(maker, market)] = client_id + 1
        live.append(client_id)
        order = PlaceOrder(
            market,
            0,
            client_id,
            BUY if buy else SELL,
            quantums,
            subticks,
            time_in_force=GTC,
            good_til_block=height + self.good_til_blocks,
        )
        return self.signer.sign(key, order, nonce_of)

    def _taker(self, rng: random.Random, height: int, nonce_of: Callable[[bytes], int] | None) -> bytes:
        from ..exchange.payloads import BUY, IOC, SELL, PlaceOrder

        market = self._market(rng)
        index = rng.randrange(len(self.taker_keys))
        leans_long = index % 2 == 0
        if self.in_shock(height):
            buy = False
        else:
            buy = leans_long if rng.random() < 0.7 else not leans_long
        params = self.setup.market_params[market]
        subticks = limit_subticks(params, self.prices[market], 10_000 if buy else -10_000, not buy)
        quantums = quantums_for_notional(params, rng.randrange(2_000, 20_001) * USDC, self.prices[market])
        client_id = rng.randrange(1 << 30)
        order = PlaceOrder(
            market, TAKER_SUBACCOUNT, client_id, BUY if buy else SELL, quantums, subticks, time_in_force=IOC
        )
        return self.signer.sign(self.taker_keys[index], order, nonce_of)

    def _stop_loss(self, rng: random.Random, height: int, nonce_of: Callable[[bytes], int] | None) -> bytes:
        from ..exchange.payloads import BUY, IOC, SELL, STOP_LOSS, PlaceOrder

        market = self._market(rng)
        index = rng.randrange(len(self.taker_keys))
        sell = index % 2 == 0  # a leaning-long taker guards against a fall
        params = self.setup.market_params[market]
        move = -self.stop_ppm if sell else self.stop_ppm
        trigger = limit_subticks(params, self.prices[market], move, not sell)
        # once triggered it sells down to 1% below its trigger (buys up to 1% above)
        trigger_price = self.prices[market] * (PPM + move) // PPM
        subticks = limit_subticks(params, trigger_price, -10_000 if sell else 10_000, not sell)
        quantums = quantums_for_notional(params, rng.randrange(2_000, 10_001) * USDC, self.prices[market])
        order = PlaceOrder(
            market,
            TAKER_SUBACCOUNT,
            rng.randrange(1 << 30),
            SELL if sell else BUY,
            quantums,
            subticks,
            time_in_force=IOC,
            good_til_block=height + self.good_til_blocks,
            condition=STOP_LOSS,
            trigger_subticks=trigger,
        )
        return self.signer.sign(self.taker_keys[index], order, nonce_of)

    def _cancel(self, rng: random.Random, height: int, nonce_of: Callable[[bytes], int] | None) -> bytes:
        from ..exchange.payloads import CancelOrder

        candidates = sorted(k for k, v in self.live.items() if v)
        if not candidates:
            return self._requote(rng, height, nonce_of)
        maker, market = candidates[rng.randrange(len(candidates))]
        live = self.live[(maker, market)]
        client_id = live[rng.randrange(len(live))]
        live.remove(client_id)
        return self.signer.sign(self.maker_keys[maker], CancelOrder(market, 0, client_id), nonce_of)

    def _funds(self, rng: random.Random, nonce_of: Callable[[bytes], int] | None) -> bytes:
        from ..exchange.payloads import Deposit, Withdraw

        key = self.taker_keys[rng.randrange(len(self.taker_keys))]
        if rng.random() < 0.5:
            return self.signer.sign(key, Deposit(TAKER_SUBACCOUNT, 1_000 * USDC), nonce_of)
        return self.signer.sign(key, Withdraw(TAKER_SUBACCOUNT, 500 * USDC), nonce_of)

    def _liquidate(self, rng: random.Random, nonce_of: Callable[[bytes], int] | None) -> bytes:
        from ..exchange.payloads import Liquidate

        liquidator = self.maker_keys[rng.randrange(self.makers)]
        longs = self.taker_keys[::2]
        victim = longs[rng.randrange(len(longs))]
        return self.signer.sign(liquidator, Liquidate(victim.public_key, TAKER_SUBACCOUNT, self._market(rng)), nonce_of)

"""Real-data replay: Binance BTCUSDT perpetual order flow as exchange blocks.

The converter (``binance``) turns the recording into an ordered stream of order-flow actions;
this module signs them as exchange transactions on market 0 (BTC-USD of the dev genesis):

    Mid(px)              -> the next block's OracleUpdate (the latest mid before the block),
                            by each of ``quorum`` oracle keys, clipped to the market's price band
    Quote(side, px, q)   -> PlaceOrder GTC at px by the maker that owns the level
    Pull(side, px, q)    -> CancelOrder of that maker's newest orders at px until q is covered,
                            and a PlaceOrder re-posting what was cancelled beyond q
    Take(side, px, q)    -> PlaceOrder IOC limit px by the next taker (round robin)

Makers own price levels (``level // tick mod makers``), so one level's orders and cancels come
from one account, as a market maker's would. Accounts and collateral are synthesised: the
first ``makers`` dev accounts are makers, the rest takers, each deposits once in the first
blocks. Units: cents -> oracle price at the market's exponent, 0.001 BTC -> base quantums
(rounded down to the step, at least one step). Funding accrues from the exchange's end-of-block
``MarketTick`` as block time passes.

All activity is in one market, so the block's inherent parallelism is low (the bound the
benchmark reports shows it). The data file is read at run time (``data_file``, default the
shared copy), never vendored; blocks must be requested in order (the stream is consumed).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from ..errors import InvariantViolation
from . import binance
from .exchange_setup import PPM, USDC, ExchangeSetup, Signer

MARKET_ID = 0


@dataclass
class ReplayWorkload:
    """See module docstring."""

    data_file: str | None = None
    accounts: int = 80
    makers: int = 0  # 0: a fifth of the accounts, at least 1
    seed: int = 0
    band_bps: int = 10
    max_level_qty: int = 5_000
    maker_collateral: int = 5_000_000 * USDC
    taker_collateral: int = 200_000 * USDC
    block_seconds: int = 60  # block time spacing for producers (funding applies every 60 blocks)
    chain_id: str = "paraexec-dev"
    app_name: str = field(default="exchange", init=False)

    def __post_init__(self) -> None:
        from ..exchange import payloads

        if (payloads.BUY, payloads.SELL) != (binance.BUY, binance.SELL):
            raise InvariantViolation("binance side constants differ from the exchange's")
        self.makers = self.makers or max(1, self.accounts // 5)
        if not 0 < self.makers < self.accounts:
            raise ValueError("need 0 < makers < accounts")
        self.path = Path(self.data_file) if self.data_file else binance.default_data_file()
        if not self.path.is_file():
            raise FileNotFoundError(f"market data file {self.path} not found (pass --data-file PATH)")
        self.setup = ExchangeSetup(f"paraexec-replay-{self.seed}", self.accounts, 1)
        self.market = self.setup.market_params[MARKET_ID]
        self.signer = Signer(self.chain_id)
        self.flow = binance.OrderFlow(self.band_bps, self.max_level_qty)
        # the first event is read now, so a file that is not a recording fails before anything is
        # created from it (a store, a genesis block), whether or not the first blocks need events
        events = binance.read_events(self.path)
        first = next(events, None)
        if first is None:
            raise binance.MarketDataError(f"{self.path}: the recording holds no events")
        self._actions: Iterator[binance.Action] = self.flow.actions(chain([first], events))
        self.oracle_price = self.market.initial_price
        self.pending_mid: int | None = None
        self.orders: dict[tuple[int, int, int], deque[tuple[int, int]]] = {}  # (maker, side, px) -> (client_id, q)
        self.next_client_id = [0] * self.makers
        self.next_taker = 0
        self.takes = 0
        self.deposited = 0
        self.next_height: int | None = None
        self.exhausted = False

    def genesis_config(self) -> dict[str, Any]:
        return self.setup.config

    @property
    def data_gaps(self) -> int:
        """Depth diffs of the recording read so far that did not follow on from the previous one
        (``OrderFlow.diff_gaps``): the replayed book may differ from the real one after each."""
        return self.flow.diff_gaps

    # -- units --------------------------------------------------------------------------------

    def price_of_cents(self, cents: int) -> int:
        """Cents -> oracle price integer at the market's ``price_exponent`` (rounded down)."""
        shift = -2 - self.market.price_exponent
        return cents * 10**shift if shift >= 0 else cents // 10 ** (-shift)

    def subticks_of_cents(self, cents: int, up: bool) -> int:
        return self.market.subticks_round(self.market.price_to_subticks(self.price_of_cents(cents)), up)

    def quantums_of(self, milli_btc: int) -> int:
        """0.001 BTC units -> base quantums, down to a step multiple, at least one step."""
        shift = -binance.QTY_DECIMALS - self.market.atomic_resolution
        raw = milli_btc * 10**shift if shift >= 0 else milli_btc // 10 ** (-shift)
        step = self.market.step_base_quantums
        return max(step, raw // step * step)

    # -- blocks -------------------------------------------------------------------------------

    def block(self, height: int, size: int, nonce_of: Callable[[bytes], int] | None = None) -> list[bytes]:
        """The next ``size``-ish transactions of the replay (fewer once the data runs out)."""
        from ..exchange.payloads import Deposit

        if self.next_height is not None and height != self.next_height:
            raise ValueError(f"replay blocks are generated in order: expected {self.next_height}, got {height}")
        self.next_height = height + 1
        sign = self.signer.sign
        txs: list[bytes] = []
        updated = self.pending_mid is not None
        if self.pending_mid is not None:
            band = self.market.max_price_move_ppm * 9 // 10
            target = self.price_of_cents(self.pending_mid)
            low, high = self.oracle_price * (PPM - band) // PPM, self.oracle_price * (PPM + band) // PPM
            self.oracle_price = min(max(target, low), high)
            self.pending_mid = None
            txs.extend(self._oracle_updates(nonce_of))
        traders = self.setup.traders
        while self.deposited < len(traders) and len(txs) < size:
            key = traders[self.deposited]
            target = self.maker_collateral if self.deposited < self.makers else self.taker_collateral
            bank = self.setup.bank_balance(key)
            txs.append(sign(key, Deposit(0, min(target, bank) if bank > 0 else target), nonce_of))
            self.deposited += 1
        while len(txs) < size and not self.exhausted:
            action = next(self._actions, None)
            if action is None:
                self.exhausted = True
                break
            if not updated:  # orders need a fresh oracle: the block's first action refreshes it
                updated = True  # (the deposits before it may have taken many blocks of 60 s)
                txs.extend(self._oracle_updates(nonce_of))
            txs.extend(self._convert(action, nonce_of))
        return txs

    def _oracle_updates(self, nonce_of: Callable[[bytes], int] | None) -> list[bytes]:
        """``oracle_price`` reported by as many oracles as the quorum needs."""
        from ..exchange.payloads import OracleUpdate

        update = OracleUpdate(MARKET_ID, self.oracle_price)
        return [
            self.signer.sign(oracle, update, nonce_of) for oracle in self.setup.oracles[: max(1, self.setup.quorum)]
        ]

    def _maker_of(self, px: int) -> int:
        tick_cents = 10  # BTCUSDT's tick is 0.10 USDT
        return (px // tick_cents) % self.makers

    def _convert(self, action: binance.Action, nonce_of: Callable[[bytes], int] | None) -> list[bytes]:
        from ..exchange.payloads import BUY, IOC, CancelOrder, PlaceOrder

        sign = self.signer.sign
        if isinstance(action, binance.Mid):
            self.pending_mid = action.px
            return []
        if isinstance(action, binance.Take):
            key = self.setup.traders[self.makers + self.next_taker]
            self.next_taker = (self.next_taker + 1) % (self.accounts - self.makers)
            buy = action.side == BUY
            self.takes += 1
            order = PlaceOrder(
                MARKET_ID,
                0,
                self.takes,
                action.side,
                self.quantums_of(action.qty),
                self.subticks_of_cents(action.px, up=buy),
                time_in_force=IOC,
            )
            return [sign(key, order, nonce_of)]
        maker = self._maker_of(action.px)
        key = self.setup.traders[maker]
        queue = self.orders.setdefault((maker, action.side, action.px), deque())
        out: list[bytes] = []
        if isinstance(action, binance.Quote):
            out.append(self._place(maker, action.side, action.px, action.qty, queue, nonce_of))
            return out
        remaining = action.qty
        while remaining > 0 and queue:
            client_id, qty = queue.pop()  # newest first
            out.append(sign(key, CancelOrder(MARKET_ID, 0, client_id), nonce_of))
            remaining -= qty
        if remaining < 0:  # cancelled more than the pull: re-post the difference
            out.append(self._place(maker, action.side, action.px, -remaining, queue, nonce_of))
        return out

    def _place(
        self,
        maker: int,
        side: int,
        px: int,
        qty: int,
        queue: deque[tuple[int, int]],
        nonce_of: Callable[[bytes], int] | None,
    ) -> bytes:
        from ..exchange.payloads import BUY, PlaceOrder

        client_id = self.next_client_id[maker]
        self.next_client_id[maker] += 1
        queue.append((client_id, qty))
        order = PlaceOrder(
            MARKET_ID, 0, client_id, side, self.quantums_of(qty), self.subticks_of_cents(px, up=side != BUY)
        )
        return self.signer.sign(self.setup.traders[maker], order, nonce_of)

"""``ExchangeApp``: the perpetual-futures exchange as an ``Application``.

    apply(ctx, sender, payload):
        Deposit / Withdraw / TransferCollateral   collateral in quote quantums (``collateral``)
        PlaceOrder / CancelOrder                  orders and matching (``matching``)
        OracleUpdate                              prices from authorised keys (``oracle``)
        Liquidate                                 permissionless liquidation (``liquidation``)
        MarketTick (system, one per market)       conditional triggers, funding, liquidation
                                                  sweep, open-interest snapshot

Every user payload needs a signer; ``MarketTick`` is refused unless it is a system transaction
(``sender is None``). Each handler works on a ``Ledger`` (the transaction's subaccounts) and
flushes it once. The tick runs each step, and each liquidation or triggered order, under its
own checkpoint so that one refused step does not undo the others.

Parameters (markets, oracles, fees, liquidation and funding settings) come from the chain's
app config and are immutable; see ``genesis`` for the config format.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from .. import codec
from ..errors import BusinessError, InsufficientBalance, InvalidAmount, Unauthorized, ValueOutOfRange
from ..execution.contract import BlockEnv, TxContext
from ..transaction import encode_payload
from ..types import Key, Value
from . import keys
from .errors import LiquidationNotFilled, Undercollateralized, WithdrawalsGated
from .funding import FundingConfig, funding_tick
from .ledger import Ledger, LedgerMemo
from .liquidation import LiquidationConfig, adjusted_bankruptcy_ratio, arm_withdraw_gate, liquidate
from .market import Market
from .matching import Fees, cancel_order, is_triggered, must_be_subaccount, place_order
from .oracle import oracle_update
from .payloads import (
    NONE,
    PAYLOAD_TYPES,
    CancelOrder,
    Deposit,
    Liquidate,
    MarketTick,
    OracleUpdate,
    PlaceOrder,
    TransferCollateral,
    Withdraw,
)
from .records import CONDITIONALS_DECODER, FundingIndex, MarketState, OraclePrice, encode, expired


class ExchangeApp:
    """See module docstring."""

    name = "exchange"
    #: 8: funding premium samples weighted by the time each block's book stood
    #: (``FundingSamples`` holds their integral and the last sample; see ``funding``).
    #: 7: a position is liquidated at most once a block (``LiquidationUsage.markets``), a
    #: liquidation deleverages only when its order did not fill whole, and the sweep takes the
    #: most underwater holders first (as dYdX v4 but for the second: dYdX waits until an order
    #: fills nothing, see ``liquidation``).
    #: 6: ``MarketState`` records the time of its band's anchor price (``band_time``): the
    #: oracle band widens with the anchor's age, so a market whose price moved beyond the band
    #: during an oracle outage is not paused for good.
    #: 5: resting orders carry no reduce-only flag (reduce-only orders are IOC or FOK), and an
    #: even count of oracle reports takes the mean of the middle two, rounded up.
    #: 4: a market's conditional orders in ``keys.CONDITIONAL_SHARDS`` lists, not one.
    #: 3: the keys of 2 under changed rules (conditional-order expiry and caps, whole-position
    #: deleveraging, funding samples and catch-up, per-fill order margin): a chain of layout 2
    #: would not replay under them, so it is refused at open rather than failing replay at its
    #: first differing block. 2: one ``MarketState`` key per market (1, unrecorded: oracle
    #: price, funding index and OI snapshot in three keys)
    state_layout = 8
    payload_types: Mapping[str, type] = PAYLOAD_TYPES

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = dict(config or {})
        self.config = config
        self.markets: dict[int, Market] = {m.id: m for m in (Market.from_config(d) for d in config.get("markets", []))}
        self.oracles: list[bytes] = [bytes.fromhex(k) for k in config.get("oracles", [])]
        self.oracle_quorum = int(config.get("oracle_quorum", 1))
        if self.oracles and not 1 <= self.oracle_quorum <= len(self.oracles):
            raise ValueError(f"oracle_quorum {self.oracle_quorum} must be in 1..{len(self.oracles)} (the oracle keys)")
        self.fees = Fees(**config.get("fees", {"taker_ppm": 500, "maker_ppm": 100}))
        self.liquidation = LiquidationConfig(**config.get("liquidation", {}))
        self.funding = FundingConfig(**config.get("funding", {}))
        self.genesis_time = int(config.get("genesis_time", 0))
        self._ticks = {mid: encode_payload(MarketTick(mid)) for mid in sorted(self.markets)}
        #: Margin arithmetic and record decoding memoised across transactions: pure functions
        #: of their keys, so every process (coordinator, worker) may keep its own.
        self.memo = LedgerMemo()

    # -- Application -------------------------------------------------------------------------

    def genesis(self, config: Mapping[str, Any]) -> dict[Key, Value]:
        """Genesis state: see ``genesis.py`` for the config format."""
        app = ExchangeApp(config)
        state: dict[Key, Value] = {keys.ORACLES: codec.encode(app.oracles)}
        for market in app.markets.values():
            state[keys.market_params(market.id)] = codec.encode(market.to_config())
            state[keys.market_state(market.id)] = encode(
                MarketState(OraclePrice(market.initial_price, app.genesis_time), FundingIndex(0, app.genesis_time))
            )
        for owner, amount in config.get("accounts", {}).items():
            state[keys.bank(bytes.fromhex(owner))] = codec.encode_int(int(amount))
        for owner, number, balance in config.get("subaccounts", []):
            sub_id = keys.subaccount_id(bytes.fromhex(owner), int(number))
            state[keys.subaccount(sub_id)] = encode(_fresh_record(int(balance)))
        if config.get("insurance_fund"):
            state[keys.INSURANCE] = codec.encode_int(int(config["insurance_fund"]))
        return state

    def ledger(self, ctx: TxContext) -> Ledger:
        """A transaction's ledger, sharing this application's memo (``LedgerMemo``)."""
        return Ledger(ctx, self.markets, self.memo)

    def apply(self, ctx: TxContext, sender: bytes | None, payload: Any) -> None:
        if isinstance(payload, MarketTick):
            if sender is not None:
                raise Unauthorized("MarketTick is a system transaction")
            self.market_tick(ctx, payload.market_id)
            return
        if sender is None:
            raise Unauthorized("user payloads need a signer")
        lg = self.ledger(ctx)
        if isinstance(payload, PlaceOrder):
            place_order(lg, self.fees, sender, payload)
        elif isinstance(payload, CancelOrder):
            cancel_order(lg, sender, payload.market_id, payload.subaccount, payload.client_id)
        elif isinstance(payload, OracleUpdate):
            oracle_update(lg, self.oracles, self.oracle_quorum, sender, payload.market_id, payload.price)
        elif isinstance(payload, Liquidate):
            must_be_subaccount(payload.subaccount)
            closed = liquidate(
                lg,
                self.fees,
                self.liquidation,
                keys.subaccount_id(payload.owner, payload.subaccount),
                payload.market_id,
            )
            if not closed:  # a request that did nothing is refused, not reported as a liquidation
                raise LiquidationNotFilled("no order at or inside the fillable price, and no account to deleverage")
        elif isinstance(payload, Deposit):
            self.deposit(lg, sender, payload)
        elif isinstance(payload, Withdraw):
            self.withdraw(lg, sender, payload)
        elif isinstance(payload, TransferCollateral):
            self.transfer(lg, sender, payload)
        else:  # pragma: no cover - the runtime only decodes registered types
            raise BusinessError(f"unhandled payload {type(payload).__name__}")
        lg.flush()

    def hint_keys(self, sender: bytes | None, payload: Any) -> tuple[Key, ...]:
        market_id = getattr(payload, "market_id", -1)
        # never pack an out-of-range id: hints are computed before the payload is validated
        hints: tuple[Key, ...] = (keys.market_prefix(market_id),) if market_id in self.markets else ()
        owner = payload.owner if isinstance(payload, Liquidate) else sender
        number = getattr(payload, "subaccount", getattr(payload, "from_subaccount", None))
        if owner is not None and number is not None and 0 <= number < 256:
            hints += (keys.subaccount(keys.subaccount_id(owner, number)),)
        return hints

    def barrier(self, payload: Any) -> bool:
        """An oracle update is read by every order of an account holding the market (cross
        margin values every position at its oracle price): a scheduling barrier."""
        return isinstance(payload, OracleUpdate)

    def system_payloads(self, env: BlockEnv) -> list[bytes]:
        return list(self._ticks.values())

    # -- collateral --------------------------------------------------------------------------

    def deposit(self, lg: Ledger, sender: bytes, p: Deposit) -> None:
        """Bank (faucet) balance -> subaccount."""
        must_be_subaccount(p.subaccount)
        if p.amount <= 0:
            raise InvalidAmount(f"amount {p.amount}")
        bank = lg.ctx.get_int(keys.bank(sender))
        if bank < p.amount:
            raise InsufficientBalance(f"bank balance {bank} < {p.amount}")
        lg.ctx.put_int(keys.bank(sender), bank - p.amount)
        acc = lg.account(keys.subaccount_id(sender, p.subaccount))
        acc.balance += p.amount
        lg.touch(acc)
        lg.ctx.emit("deposit", subaccount=acc.sub_id.hex(), amount=p.amount)

    def withdraw(self, lg: Ledger, sender: bytes, p: Withdraw) -> None:
        """Subaccount -> bank; the subaccount must stay initially collateralised and the
        withdrawal gate (set when a subaccount was seen bankrupt) must be open."""
        must_be_subaccount(p.subaccount)
        if p.amount <= 0:
            raise InvalidAmount(f"amount {p.amount}")
        must_be_ungated(lg)
        acc = lg.account(keys.subaccount_id(sender, p.subaccount))
        self._debit(lg, acc, p.amount)
        lg.ctx.add(keys.bank(sender), p.amount)
        lg.ctx.emit("withdraw", subaccount=acc.sub_id.hex(), amount=p.amount)

    def transfer(self, lg: Ledger, sender: bytes, p: TransferCollateral) -> None:
        """Subaccount -> subaccount (any owner's); gated like a withdrawal (dYdX blocks both while
        a bankrupt subaccount is being resolved: collateral must not leave the accounts that may
        be deleveraged against it)."""
        must_be_subaccount(p.from_subaccount)
        must_be_subaccount(p.to_subaccount)
        if p.amount <= 0:
            raise InvalidAmount(f"amount {p.amount}")
        must_be_ungated(lg)
        src = lg.account(keys.subaccount_id(sender, p.from_subaccount))
        self._debit(lg, src, p.amount)
        dst = lg.account(keys.subaccount_id(p.to_owner, p.to_subaccount))
        dst.balance += p.amount
        lg.touch(dst)
        lg.ctx.emit("transfer", source=src.sub_id.hex(), target=dst.sub_id.hex(), amount=p.amount)

    def _debit(self, lg: Ledger, acc: Any, amount: int) -> None:
        """Take ``amount`` out of ``acc``: it must stay initially collateralised (TNC >= IMR; with
        no positions that is a non-negative balance), valued at fresh prices only: while a market
        it holds a position in has a stale oracle (trading and liquidation paused), collateral
        cannot leave it on the strength of an old price (STALE_ORACLE)."""
        lg.must_hold_fresh(acc)
        after = acc.copy()
        after.balance -= amount
        risk = lg.risk(after)
        if not risk.initially_collateralised:
            cls = Undercollateralized if after.positions else InsufficientBalance
            raise cls(f"TNC {risk.tnc} < IMR {risk.imr} after moving {amount}")
        lg.replace(after)

    # -- end of block ------------------------------------------------------------------------

    def market_tick(self, ctx: TxContext, market_id: int) -> None:
        market = self.markets[market_id]
        self._trigger_conditionals(ctx, market)
        lg = self.ledger(ctx)
        funding_tick(lg, self.funding, market)
        self._sweep(ctx, market)
        oi = ctx.get_int(keys.open_interest(market.id))
        lg = self.ledger(ctx)  # the sweep may have written through other ledgers
        if oi != lg.market_state(market.id).oi_snapshot:
            lg.set_market_state(market.id, oi_snapshot=oi)

    def _trigger_conditionals(self, ctx: TxContext, market: Market) -> None:
        """Remove the untriggered conditional orders past their ``good_til_block`` (first, and
        stale oracle or not: dYdX's EndBlocker prunes expired orders before it triggers), then
        place those whose trigger the oracle price crossed: shard by shard (``keys.conditional_shard``),
        in placement order within a shard."""
        fired: list[Any] = []
        oracle_subticks: int | None = None  # None: stale, nothing triggers
        oracle_read = False
        for shard in range(keys.CONDITIONAL_SHARDS):
            key = keys.conditionals(market.id, shard)
            raw = ctx.get(key)
            if raw is None:
                continue
            if not oracle_read:  # read once, when there is a list to check
                oracle = self.ledger(ctx).oracle(market.id)
                if ctx.env.time - oracle.time <= market.staleness_s:
                    oracle_subticks = market.price_to_subticks(oracle.price)
                oracle_read = True
            fired += self._prune_conditionals(ctx, market, key, raw, oracle_subticks)
        for c in fired:
            ctx.delete(keys.order(market.id, c.sub_id, c.client_id))
            ctx.emit(
                "conditional_triggered",
                market=market.id,
                subaccount=c.sub_id.hex(),
                client_id=c.client_id,
                oracle_subticks=oracle_subticks,
            )
            order = PlaceOrder(
                market.id,
                c.sub_id[32],
                c.client_id,
                c.side,
                c.quantums,
                c.subticks,
                c.order_type,
                c.time_in_force,
                c.reduce_only,
                c.good_til_block,
                NONE,
                0,
            )
            mark = ctx.checkpoint()
            try:
                lg = self.ledger(ctx)
                place_order(lg, self.fees, c.sub_id[:32], order, triggered=True)
                lg.flush()
            except (BusinessError, OverflowError) as exc:  # this order fails; the tick goes on
                ctx.rollback(mark)
                failure = _step_failure(exc)
                ctx.emit(
                    "conditional_failed",
                    market=market.id,
                    subaccount=c.sub_id.hex(),
                    client_id=c.client_id,
                    code=failure.code,
                    error=failure.name,
                )

    def _prune_conditionals(
        self, ctx: TxContext, market: Market, key: bytes, raw: bytes, oracle_subticks: int | None
    ) -> list[Any]:
        """Remove one list's expired orders and take out those the oracle price triggers
        (none while it is stale: ``oracle_subticks`` None); returns the triggered ones."""
        live: list[Any] = []
        gone: list[Any] = []
        for c in CONDITIONALS_DECODER.decode(raw):
            (gone if expired(c.good_til_block, ctx.env.height) else live).append(c)
        for c in gone:
            ctx.delete(keys.order(market.id, c.sub_id, c.client_id))
            ctx.emit(
                "order_removed",
                market=market.id,
                subaccount=c.sub_id.hex(),
                client_id=c.client_id,
                side=c.side,
                subticks=c.subticks,
                remaining=c.quantums,
                reason="expired",
                conditional=True,
            )
        fired: list[Any] = []
        rest = live
        if oracle_subticks is not None:
            rest = []
            for c in live:
                (fired if is_triggered(c, oracle_subticks) else rest).append(c)
        if gone or fired:
            if rest:
                ctx.put(key, encode(rest))
            else:
                ctx.delete(key)
        return fired

    def _sweep(self, ctx: TxContext, market: Market) -> None:
        """Liquidate the market's liquidatable holders, most underwater first, at most
        ``sweep_limit`` per block, and arm the withdrawal gate if any of them is bankrupt
        (``arm_withdraw_gate``). Only a liquidation that closed something counts: accounts that
        cannot be filled (no bid above their fillable price, an exhausted fund) must not use up
        the budget every block and leave a bankrupt account later in the list unswept.

        Order (dYdX ``SortLiquidationOrders``: the fillable price furthest from the oracle
        first, then the larger order): the adjusted bankruptcy ratio descending, which orders
        the fillable prices of one market the same way (``adjusted_bankruptcy_ratio``), then the
        larger position notional (dYdX: the order's, capped by the position portion; the same
        order but for rare ties), then the subaccount id. In a crash with more liquidatable
        holders than the budget, the deepest go first, whatever their place in the holder list
        (which is sorted by id)."""
        raw = ctx.get(keys.holders(market.id))
        if raw is None or ctx.env.time - self.ledger(ctx).oracle(market.id).time > market.staleness_s:
            return
        from .records import HOLDERS_DECODER

        scan = self.ledger(ctx)
        price = scan.price(market.id)
        bankrupt_seen = False
        queue: list[tuple[Fraction, int, bytes]] = []
        for sub_id in HOLDERS_DECODER.decode(raw):
            acc = scan.account(sub_id)
            if market.id not in acc.positions:
                continue
            risk = scan.risk(acc)
            if not risk.liquidatable:
                continue
            bankrupt_seen = bankrupt_seen or risk.tnc < 0
            urgency = adjusted_bankruptcy_ratio(self.liquidation, risk)
            queue.append((-urgency, -market.notional_ceil(abs(acc.size(market.id)), price), sub_id))
        done = 0
        for _, _, sub_id in sorted(queue):
            if done >= self.liquidation.sweep_limit:
                break
            scan = self.ledger(ctx)  # an earlier liquidation may have changed this account
            acc = scan.account(sub_id)
            if market.id not in acc.positions or not scan.risk(acc).liquidatable:
                continue
            mark = ctx.checkpoint()
            try:
                if liquidate(self.ledger(ctx), self.fees, self.liquidation, sub_id, market.id):
                    done += 1
            except (BusinessError, OverflowError) as exc:  # this account is skipped; the tick goes on
                ctx.rollback(mark)
                ctx.emit("liquidation_skipped", market=market.id, subaccount=sub_id.hex(), code=_step_failure(exc).code)
        if bankrupt_seen:
            arm_withdraw_gate(ctx, self.ledger(ctx).height + self.liquidation.withdraw_gate_blocks)


def _step_failure(exc: BusinessError | OverflowError) -> BusinessError | ValueOutOfRange:
    """The typed failure of one step of a market tick (a triggered order, a swept account). A
    value too big for a record fails that step as it would fail a transaction (code 9), where
    letting it escape would fail the whole tick, every block: funding, the OI snapshot and the
    sweep would stop for good behind one order that is never removed."""
    return ValueOutOfRange(str(exc)) if isinstance(exc, OverflowError) else exc


def must_be_ungated(lg: Ledger) -> None:
    """Refuse moving collateral out of a subaccount while the withdrawal gate is up (set for
    ``withdraw_gate_blocks`` when a liquidation leaves a subaccount with negative TNC)."""
    gate = lg.ctx.get_int(keys.WITHDRAW_GATE)
    if gate >= lg.height:
        raise WithdrawalsGated(f"until height {gate}")


def _fresh_record(balance: int) -> Any:
    from .records import SubaccountRecord

    return SubaccountRecord(balance, [])

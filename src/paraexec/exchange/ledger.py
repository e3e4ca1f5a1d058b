"""A transaction's working set: subaccounts, oracle prices, funding and margin.

``Ledger`` wraps the ``TxContext`` for one exchange transaction. Subaccounts are decoded once
into mutable ``Account`` objects; every change is made in memory and ``flush()`` writes each
changed subaccount once, together with the aggregates derived from the changes (open-interest
and fee deltas via ``ctx.add``, the market holder lists). Reads of hot aggregates are avoided.

Funding is lazy (dYdX): a position remembers the market's cumulative funding index at its last
settlement. When an account is loaded, every position settles
``received = -size * (index_now - index_then)`` nano quote quantums; the balance gets that
amount rounded toward -infinity (in the protocol's favour) and the remainder (0..1e9-1 nano) is
added to ``x/fdust``, so collateral is conserved exactly. Settlement is only *written* when the
account is written; an account that is only read settles again later with the same total.

Margin (dYdX ``margining.go``), per position at the oracle price:
    value     = size * price                      (quote quantums, rounded toward -infinity)
    notional  = |size| * price                    (rounded up)
    IMR       = notional * IMF_eff / 1e6          (rounded up; IMF_eff = OI-scaled IMF)
    MMR       = notional * IMF * MMF / 1e12       (rounded up; the base IMF: as in dYdX, open
                                                   interest raises only the initial margin, so
                                                   others' trading never makes an account
                                                   liquidatable at an unchanged price)
    TNC       = balance + sum(value)
An account is initially collateralised when TNC >= sum(IMR), liquidatable when TNC < sum(MMR).
A change that leaves an account below initial margin is still allowed when it strictly lowers
the MMR without lowering TNC / MMR (dYdX's rule for undercollateralised subaccounts).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import NamedTuple, TypeVar

import msgspec

from ..errors import InvariantViolation
from ..execution.contract import TxContext
from . import keys
from .errors import StaleOracle, UnknownMarket
from .market import Market
from .records import (
    HOLDERS_DECODER,
    MARKET_STATE_DECODER,
    SUBACCOUNT_DECODER,
    FundingIndex,
    MarketState,
    OraclePrice,
    PositionRecord,
    SubaccountRecord,
    encode,
)
from .units import FUNDING_SCALE, PPM, ceil_div

#: (value, IMR, MMR) of one position, quote quantums.
Parts = tuple[int, int, int]
#: (market id, size, oracle price, effective IMF ppm): every input of ``Parts``.
MarginKey = tuple[int, int, int, int]
#: (market, oracle price, effective IMF ppm): a market's margin inputs in one transaction.
Inputs = tuple[Market, int, int, int]  # market, oracle price, effective IMF, oracle time
#: Entries of a memo table before it is emptied (a bound on memory: ~15 MB for ``parts``;
#: prices move every block and written accounts get new bytes, so old keys go stale).
MEMO_LIMIT = 1 << 15

K = TypeVar("K")
T = TypeVar("T")


class LedgerMemo:
    """Pure functions memoised across transactions, shared by an application's ledgers.

    ``parts``: (market, size, price, effective IMF) -> (value, IMR, MMR) of a position;
    ``imf``: (market, OI snapshot, price) -> effective IMF; ``accounts``: a subaccount's stored
    bytes -> its ``Loaded`` form; ``markets``: a ``MarketState``'s stored bytes -> the decoded
    (immutable) state; ``inputs``: ``id`` of such a decoded state -> (that state, its market's
    ``Inputs``; the entry holds the state, so its id is not reused while the entry exists).
    Each is a pure function of its key (a market's parameters are fixed at genesis), so a hit
    returns exactly what the computation would: nothing depends on which transactions ran
    before in this process. The ledger still reads every input key itself, so read sets do not
    change either.
    """

    __slots__ = ("parts", "imf", "accounts", "markets", "inputs")

    def __init__(self) -> None:
        self.parts: dict[MarginKey, Parts] = {}
        self.imf: dict[tuple[int, int, int], int] = {}
        self.accounts: dict[bytes, Loaded] = {}
        self.markets: dict[bytes, MarketState] = {}
        self.inputs: dict[int, tuple[MarketState, Inputs]] = {}


def decoded(table: dict[bytes, T], decoder: msgspec.msgpack.Decoder[T], raw: bytes) -> T:
    """``decoder.decode(raw)``, memoised in ``table`` (a ``LedgerMemo`` table): a maker's
    account and every market's price and funding index are read by many transactions between
    their writes."""
    value = table.get(raw)
    return remember(table, raw, decoder.decode(raw)) if value is None else value


def remember(table: dict[K, T], key: K, value: T) -> T:
    """Store ``value`` in a ``LedgerMemo`` table, emptying it first when full (``MEMO_LIMIT``)."""
    if len(table) >= MEMO_LIMIT:
        table.clear()
    table[key] = value
    return value


class Position:
    """One market's position of an ``Account``. Never changed once its account holds it: the
    accounts loaded from the same stored bytes (``LedgerMemo.accounts``) and an account's
    copies share it, so a trade and a funding settlement replace it (``Account.trade``,
    ``Ledger.account``)."""

    __slots__ = ("size", "funding_index", "entry_quote")

    def __init__(self, size: int, funding_index: int, entry_quote: int) -> None:
        self.size = size
        self.funding_index = funding_index
        self.entry_quote = entry_quote


class Account:
    """A subaccount in memory: quote ``balance`` and positions by market id."""

    __slots__ = ("sub_id", "balance", "positions", "original_sizes", "funding_received", "funding_dust")

    def __init__(
        self,
        sub_id: bytes,
        balance: int,
        positions: dict[int, Position],
        original_sizes: dict[int, int] | None = None,
    ) -> None:
        self.sub_id = sub_id
        self.balance = balance
        self.positions = positions
        #: sizes as last written (read by ``Ledger.flush``; replaced, never mutated, so it may be shared)
        self.original_sizes = (
            {mid: p.size for mid, p in positions.items()} if original_sizes is None else original_sizes
        )
        self.funding_received = 0
        self.funding_dust = 0

    def written(self) -> None:
        """What was just flushed is the new baseline: a later flush of this (cached) account
        counts only what changed since, so OI, holders and funding dust are not added twice.
        Always a new dict, even an empty one: ``Ledger.replace`` tells a copy taken before this
        flush by it."""
        self.original_sizes = {mid: p.size for mid, p in self.positions.items()}
        self.funding_received = 0
        self.funding_dust = 0

    def size(self, market_id: int) -> int:
        pos = self.positions.get(market_id)
        return 0 if pos is None else pos.size

    def copy(self) -> Account:
        """A copy for a hypothetical change. It shares the ``Position`` objects: ``trade`` replaces
        the one it changes instead of mutating it (a copy is made several times per order and
        changes one market at most)."""
        clone = Account.__new__(Account)
        clone.sub_id = self.sub_id
        clone.balance = self.balance
        clone.positions = self.positions.copy()
        clone.original_sizes = self.original_sizes
        clone.funding_received = self.funding_received
        clone.funding_dust = self.funding_dust
        return clone

    def trade(self, market_id: int, delta: int, quote_delta: int, funding_index: int) -> None:
        """Change the position by ``delta`` base quantums and the balance by ``quote_delta``.

        The cost basis follows the position: opening adds the trade's cost, reducing keeps the
        remaining fraction (rounded toward zero), flipping restarts from the flipped part.
        """
        self.balance += quote_delta
        pos = self.positions.get(market_id)
        # a fresh Position, never the old one changed in place: copies may share it (``copy``)
        pos = self.positions[market_id] = (
            Position(0, funding_index, 0) if pos is None else Position(pos.size, pos.funding_index, pos.entry_quote)
        )
        old = pos.size
        new = old + delta
        cost = -quote_delta  # signed quote paid for the delta, fees included
        if old == 0 or (old > 0) == (delta > 0):
            pos.entry_quote += cost
        elif (new > 0) == (old > 0) and new != 0:
            pos.entry_quote = _scale_toward_zero(pos.entry_quote, new, old)
        elif new == 0:
            pos.entry_quote = 0
        else:  # flipped: the part beyond zero was bought at this trade's price
            pos.entry_quote = _scale_toward_zero(cost, new, delta)
        pos.size = new
        if new == 0:
            del self.positions[market_id]

    def stored(self, memo: LedgerMemo) -> bytes:
        """The stored bytes of this account, remembered with their ``Loaded`` form (exactly what
        ``load`` would build from them: the next transaction to read them skips decoding)."""
        items = sorted(self.positions.items())
        record = SubaccountRecord(
            self.balance, [PositionRecord(m, p.size, p.funding_index, p.entry_quote) for m, p in items]
        )
        raw = encode(record)
        remember(memo.accounts, raw, Loaded(self.balance, dict(items), {m: p.size for m, p in items}))
        return raw


def _scale_toward_zero(value: int, num: int, den: int) -> int:
    """``value * num / den`` rounded toward zero."""
    product = value * num
    q = abs(product) // abs(den)
    return q if (product >= 0) == (den > 0) else -q


class Loaded(NamedTuple):
    """A stored subaccount decoded for ``Account``: balance, positions by market (shared by every
    account loaded from the same bytes: the dict is copied, the positions never changed) and
    their sizes (``Account.original_sizes``)."""

    balance: int
    positions: dict[int, Position]
    sizes: dict[int, int]


def load(raw: bytes) -> Loaded:
    record: SubaccountRecord = SUBACCOUNT_DECODER.decode(raw)
    positions = {p.market_id: Position(p.size, p.funding_index, p.entry_quote) for p in record.positions}
    return Loaded(record.balance, positions, {mid: p.size for mid, p in positions.items()})


class Risk(NamedTuple):
    """Total net collateral and margin requirements of an account (quote quantums). A named
    tuple: built several times per order, and a frozen dataclass costs three setattr calls."""

    tnc: int
    imr: int
    mmr: int

    @property
    def initially_collateralised(self) -> bool:
        return self.tnc >= self.imr

    @property
    def liquidatable(self) -> bool:
        return self.tnc < self.mmr


def transition_allowed(before: Risk, after: Risk) -> bool:
    """dYdX: collateralised after, or an undercollateralised account strictly reducing risk."""
    if after.initially_collateralised:
        return True
    return after.mmr < before.mmr and after.tnc * before.mmr >= before.tnc * after.mmr


class Ledger:
    """See module docstring. One per transaction; ``flush()`` at the end (a step that flushes
    earlier, as a liquidation does, leaves nothing for a later flush to count again)."""

    def __init__(self, ctx: TxContext, markets: Mapping[int, Market], memo: LedgerMemo | None = None) -> None:
        self.ctx = ctx
        self.markets = markets
        self.memo = LedgerMemo() if memo is None else memo
        self.height = ctx.env.height
        self.time = ctx.env.time
        self.accounts: dict[bytes, Account] = {}
        self.dirty: dict[bytes, Account] = {}
        self._states: dict[int, MarketState] = {}
        self._margin_inputs: dict[int, Inputs] = {}
        self._rest_risk: dict[tuple[bytes, int], Parts] = {}
        self.fees = 0

    # -- markets -----------------------------------------------------------------------------

    def market(self, market_id: int) -> Market:
        market = self.markets.get(market_id)
        if market is None:
            raise UnknownMarket(f"market {market_id}")
        return market

    def market_state(self, market_id: int) -> MarketState:
        """The market's oracle price, funding index and OI snapshot (one key, read once per
        transaction: see ``set_market_state`` for writing it)."""
        cached = self._states.get(market_id)
        if cached is None:
            raw = self.ctx.get(keys.market_state(market_id))
            if raw is None:
                raise InvariantViolation(f"market {market_id} has no state")
            cached = self._states[market_id] = decoded(self.memo.markets, MARKET_STATE_DECODER, raw)
        return cached

    def set_market_state(
        self,
        market_id: int,
        *,
        oracle: OraclePrice | None = None,
        funding: FundingIndex | None = None,
        oi_snapshot: int | None = None,
        band: tuple[int, int, int] | None = None,
    ) -> MarketState:
        """Write the market's state with the given fields changed, over its current value in
        this transaction (read again: this ledger's copy may be older than a write made
        through another ledger over the same context)."""
        self._states.pop(market_id, None)
        self._margin_inputs.pop(market_id, None)
        old = self.market_state(market_id)
        state = MarketState(
            old.oracle if oracle is None else oracle,
            old.funding if funding is None else funding,
            old.oi_snapshot if oi_snapshot is None else oi_snapshot,
            *((old.band_price, old.band_height, old.band_time) if band is None else band),
        )
        self.ctx.put(keys.market_state(market_id), encode(state))
        self._states[market_id] = state
        return state

    def oracle(self, market_id: int) -> OraclePrice:
        return self.market_state(market_id).oracle

    def price(self, market_id: int) -> int:
        return self.oracle(market_id).price

    def must_be_fresh(self, market: Market) -> None:
        """Trading and liquidation pause while the oracle price is older than the limit."""
        age = self.time - self.oracle(market.id).time
        if age > market.staleness_s:
            raise StaleOracle(f"{market.ticker}: oracle price is {age}s old (limit {market.staleness_s}s)")

    def stale_holding(self, acc: Account) -> Market | None:
        """The first (by id) market the account holds a position in whose oracle price is
        stale, if any: its margin would value that position at an old price, so no collateral
        may leave it (by a withdrawal, a transfer or a trade in another market) and it is not
        liquidated until every price it holds is fresh again. From the margin inputs (read once
        per transaction): checked for every maker a taker reaches, so it must stay cheap."""
        time, inputs_of = self.time, self._margin_inputs
        stale: Market | None = None
        for market_id in acc.positions:
            market, _, _, oracle_time = inputs_of.get(market_id) or self._inputs(market_id)
            if time - oracle_time > market.staleness_s and (stale is None or market_id < stale.id):
                stale = market
        return stale

    def must_hold_fresh(self, acc: Account) -> None:
        """Raise ``StaleOracle`` if ``stale_holding(acc)``."""
        market = self.stale_holding(acc)
        if market is not None:
            self.must_be_fresh(market)

    def funding(self, market_id: int) -> FundingIndex:
        return self.market_state(market_id).funding

    def imf(self, market: Market) -> int:
        """Effective IMF (ppm); uses the end-of-block OI snapshot only for capped markets."""
        if market.oi_upper_cap <= market.oi_lower_cap:
            return market.imf_ppm
        state = self.market_state(market.id)
        key = (market.id, state.oi_snapshot, state.oracle.price)
        table = self.memo.imf
        imf = table.get(key)
        if imf is None:
            imf = remember(table, key, market.imf_effective(market.notional_ceil(key[1], key[2])))
        return imf

    # -- accounts ----------------------------------------------------------------------------

    def account(self, sub_id: bytes) -> Account:
        """The account, loaded once per transaction, with funding settled in memory."""
        acc = self.accounts.get(sub_id)
        if acc is not None:
            return acc
        raw = self.ctx.get(keys.subaccount(sub_id))
        if raw is None:
            acc = Account(sub_id, 0, {})
        else:
            table = self.memo.accounts
            loaded = table.get(raw)
            if loaded is None:
                loaded = remember(table, raw, load(raw))
            positions = loaded.positions
            acc = Account(sub_id, loaded.balance, positions.copy(), loaded.sizes)
            states = self._states
            for mid, pos in positions.items():
                index = (states.get(mid) or self.market_state(mid)).funding.index
                if index != pos.funding_index:
                    nano = -pos.size * (index - pos.funding_index)
                    paid = nano // FUNDING_SCALE  # toward -infinity
                    acc.balance += paid
                    acc.funding_received += paid
                    acc.funding_dust += nano - paid * FUNDING_SCALE
                    acc.positions[mid] = Position(pos.size, index, pos.entry_quote)
        self.accounts[sub_id] = acc
        return acc

    def replace(self, acc: Account) -> None:
        """Adopt a modified copy of an account (after a hypothetical check passed).

        The copy must have been taken since the last ``flush``: it carries the stored sizes, the
        settled funding and the balance of when it was taken, so one taken before a flush would
        count its open interest, holders and funding a second time and drop what the flush
        wrote. Such a copy is refused loudly (a bug in the caller, not a business rejection)
        instead of corrupting the aggregates; ``Account.written`` gives every flushed account a
        new ``original_sizes``, which is what tells it."""
        current = self.accounts.get(acc.sub_id)
        if current is not None and current.original_sizes is not acc.original_sizes:
            raise RuntimeError(f"account {acc.sub_id.hex()} copy predates the last flush; take it again")
        self.accounts[acc.sub_id] = acc
        self.dirty[acc.sub_id] = acc

    def touch(self, acc: Account) -> None:
        self.dirty[acc.sub_id] = acc

    def risk(self, acc: Account, market_id: int | None = None) -> Risk:
        """TNC, IMR and MMR of ``acc``.

        With ``market_id``, the other markets' contribution is taken from a per-transaction
        cache: a transaction changes positions in one market only (orders, liquidations and
        deleveraging are per market), so the rest of an account is fixed while it runs.
        """
        return Risk(*self._totals(acc, market_id))

    def allows(self, before: Account, after: Account, market_id: int) -> bool:
        """``transition_allowed`` from ``before`` to ``after`` (a change in ``market_id``). The
        risk before is computed only when the one after is not enough on its own (rarely):
        the answer is the same, one margin computation cheaper per check."""
        tnc, imr, mmr = self._totals(after, market_id)
        return tnc >= imr or transition_allowed(self.risk(before, market_id), Risk(tnc, imr, mmr))

    def _totals(self, acc: Account, market_id: int | None) -> Parts:
        """``risk`` as a plain tuple (``allows`` runs twice per fill: no named tuple needed)."""
        if market_id is None:
            tnc, imr, mmr = self._parts_sum(acc, None)
        else:
            slot = (acc.sub_id, market_id)
            rest = self._rest_risk.get(slot)
            if rest is None:
                rest = self._rest_risk[slot] = self._parts_sum(acc, market_id)
            tnc, imr, mmr = rest
            size = acc.size(market_id)
            if size:
                parts = self.position_parts(market_id, size)
                tnc, imr, mmr = tnc + parts[0], imr + parts[1], mmr + parts[2]
        return acc.balance + tnc, imr, mmr

    def _parts_sum(self, acc: Account, exclude: int | None) -> Parts:
        """Sum of ``position_parts`` over the account's markets other than ``exclude``, with the
        memo lookup inlined (a maker quoting every market has a position in each: this loop
        is most of a cross-margin check)."""
        tnc = imr = mmr = 0
        inputs_of, memo = self._margin_inputs, self.memo.parts
        for mid, pos in acc.positions.items():
            if mid != exclude:
                inputs = inputs_of.get(mid) or self._inputs(mid)
                parts = memo.get((mid, pos.size, inputs[1], inputs[2])) or self.position_parts(mid, pos.size)
                tnc += parts[0]
                imr += parts[1]
                mmr += parts[2]
        return tnc, imr, mmr

    def _inputs(self, market_id: int) -> Inputs:
        """The market's margin inputs (market, oracle price, effective IMF), read once per
        transaction: they do not change while it runs (an ``OracleUpdate`` computes no margin
        after writing the price; the OI snapshot is written only at the end of a ``MarketTick``).

        They are a function of the market and its decoded state alone, remembered across
        transactions by the state object's identity (``LedgerMemo.inputs``; two markets whose
        states have equal bytes share the object, hence the market check). The state is still
        read here, so the read set is unchanged."""
        state = self._states.get(market_id) or self.market_state(market_id)
        hit = self.memo.inputs.get(id(state))
        if hit is not None and hit[1][0].id == market_id:
            inputs = hit[1]
        else:
            market = self.market(market_id)
            inputs = (market, state.oracle.price, self.imf(market), state.oracle.time)
            remember(self.memo.inputs, id(state), (state, inputs))
        self._margin_inputs[market_id] = inputs
        return inputs

    def position_parts(self, market_id: int, size: int) -> Parts:
        """(value, IMR, MMR) of a position.

        The arithmetic is memoised across transactions (``LedgerMemo.parts``), keyed by every
        input: (market, size, price, effective IMF). Every transaction still reads the price
        and the OI snapshot itself (``_inputs``), so its read set is the same with or without
        a memo hit.
        """
        market, price, imf, _ = self._margin_inputs.get(market_id) or self._inputs(market_id)
        key = (market_id, size, price, imf)
        memo = self.memo.parts
        parts = memo.get(key)
        if parts is None:
            notional = market.notional_ceil(size, price)
            parts = remember(
                memo,
                key,
                (
                    market.value_floor(size, price),
                    ceil_div(notional * imf, PPM),
                    ceil_div(notional * market.imf_ppm * market.mmf_ppm, PPM * PPM),
                ),
            )
        return parts

    # -- writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write changed accounts and the aggregates their changes imply."""
        ctx = self.ctx
        oi: dict[int, int] = {}
        holder_changes: dict[int, list[tuple[bytes, bool]]] = {}
        for sub_id in sorted(self.dirty):
            acc = self.dirty[sub_id]
            ctx.put(keys.subaccount(sub_id), acc.stored(self.memo))
            if acc.funding_dust:
                ctx.add(keys.FUNDING_DUST, acc.funding_dust)
            if acc.funding_received:
                ctx.emit("funding_settled", subaccount=sub_id.hex(), amount=acc.funding_received)
            original, positions = acc.original_sizes, acc.positions
            changed = []  # (market, stored size, new size); a position is never of size 0
            kept = 0
            for mid, old in original.items():
                pos = positions.get(mid)
                if pos is None:
                    changed.append((mid, old, 0))
                else:
                    kept += 1
                    if pos.size != old:
                        changed.append((mid, old, pos.size))
            if len(positions) > kept:  # markets new to the account
                changed += [(mid, 0, pos.size) for mid, pos in positions.items() if mid not in original]
            for mid, old, new in changed:
                oi[mid] = oi.get(mid, 0) + max(new, 0) - max(old, 0)
                if (old == 0) != (new == 0):
                    holder_changes.setdefault(mid, []).append((sub_id, new != 0))
            acc.written()
        for mid, delta in sorted(oi.items()):
            if delta:
                ctx.add(keys.open_interest(mid), delta)
        for mid, changes in sorted(holder_changes.items()):
            key = keys.holders(mid)
            raw = ctx.get(key)
            members: list[bytes] = HOLDERS_DECODER.decode(raw) if raw else []
            for sub_id, present in changes:  # the list stays sorted: no set, no re-sort
                at = bisect_left(members, sub_id)
                found = at < len(members) and members[at] == sub_id
                if present and not found:
                    members.insert(at, sub_id)
                elif found and not present:
                    del members[at]
            ctx.put(key, encode(members))
        if self.fees:
            ctx.add(keys.FEES, self.fees)
        self.dirty = {}
        self.fees = 0

"""Binance USD-M market data -> typed market events -> exchange-level order flow.

Input format (the hftbacktest recording in ``../shared/data``): gzip text, one event per line,
``<local receive timestamp ns> <raw websocket JSON>``, streams ``<sym>@depth@0ms`` (depth diffs),
``<sym>@bookTicker`` (best bid/ask) and ``<sym>@trade``, plus one REST depth snapshot line
(``{"lastUpdateId": ...}``) somewhere after the first diffs.

Stage 1, ``read_events(path)``: parse each line into a ``DepthUpdate``, ``DepthSnapshot``,
``BookTicker`` or ``Trade`` with **integer** prices (``PRICE_DECIMALS``: cents) and quantities
(``QTY_DECIMALS``: 0.001 BTC); decimal strings are parsed exactly, never through floats.

Stage 2, ``OrderFlow``: turn events into what an exchange sees, as Binance's own book-keeping
rules prescribe:

- depth: diffs received before the snapshot are buffered (at most ``MAX_BUFFERED_DIFFS``) and
  applied after it, as Binance's procedure says; the snapshot sets the book; diffs with
  ``u < lastUpdateId`` are stale and dropped; every other diff sets the quantity of each level
  it names (0 removes the level).
- A diff whose ``pu`` is not the previous diff's ``u`` means the stream lost events (Binance:
  re-sync from a new snapshot). A recording cannot ask for one, so the gap is counted
  (``diff_gaps``) and the book carries on; a later snapshot in the recording re-syncs it, and
  levels the replay had posted that the new snapshot lacks are pulled.
- The replay *posts* liquidity only within ``band_bps`` of the mid (deep levels would only bloat
  the book). ``posted[side][px]`` is what the replay has on the book at a level; after each diff
  the posted quantity follows the real one: an increase is a ``Quote`` (a maker posts the
  difference), a decrease a ``Pull`` (a maker cancels that much). When the mid moves, a level
  that leaves the band is pulled entirely and a real level that enters it is posted, so the
  posted book near the touch is the real one even where no diff touched it since.
  ``max_level_qty`` caps what is posted per level (synthetic makers have finite collateral).
- trades: a ``Take`` by the aggressor (Binance's ``m`` = buyer is maker, so the taker sold) at
  the trade price for the trade quantity; the posted quantity at that level shrinks by the same
  amount (the take filled the makers there).
- best bid/ask: a ``Mid`` (floor of the average, in cents) whenever it changes: the oracle feed.
  A ticker newer than the book (its update id ``u`` above the last applied one) also sets the
  top of the book: the best levels get the ticker's quantities and levels better than them are
  removed (Binance's ticker is faster than its depth stream); a later, older diff does not
  bring back levels at or beyond that ticker's best prices. So the most active part of the
  book, the touch, moves as often as the real one.

The flow is deterministic (a pure function of the file) and approximate: the replay exchange's
own matching decides fills, so a later ``Pull`` may target liquidity that was already taken.
"""

from __future__ import annotations

import bisect
import gzip
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

PRICE_DECIMALS = 2  # prices in cents of USDT
QTY_DECIMALS = 3  # quantities in 0.001 BTC
BUY, SELL = 1, 2  # the exchange's side constants (paraexec.exchange.payloads)
DATA_FILE_NAME = "binance-usdm-btcusdt-20240808.gz"


def default_data_file() -> Path:
    """``../shared/data/<file>`` relative to the project root (never vendored into the package)."""
    project_root = Path(__file__).resolve().parents[3]
    return project_root.parent / "shared" / "data" / DATA_FILE_NAME


def parse_fixed(text: str, decimals: int) -> int:
    """Exact integer of a decimal string in units of ``10**-decimals`` ("61800.3", 2 -> 6180030)."""
    whole, _, frac = text.strip().partition(".")
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        raise ValueError(f"{text!r} has more than {decimals} decimals")
    sign = -1 if whole.startswith("-") else 1
    digits = whole.lstrip("+-") or "0"
    if not (digits.isdigit() and (not frac or frac.isdigit())):
        raise ValueError(f"not a decimal number: {text!r}")
    return sign * (int(digits) * 10**decimals + int(frac.ljust(decimals, "0") or "0"))


Level = tuple[int, int]  # (price in cents, quantity in 0.001 BTC)


class DepthUpdate(NamedTuple):
    ts_ns: int
    first_id: int  # U
    last_id: int  # u
    prev_id: int  # pu
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class DepthSnapshot(NamedTuple):
    ts_ns: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class MarketDataError(ValueError):
    """A recording that cannot be read: not gzip, cut short, or a line that is not what the
    recorder writes. Raised with the line number, so a user can find it."""


class BookTicker(NamedTuple):
    ts_ns: int
    bid_px: int
    bid_qty: int
    ask_px: int
    ask_qty: int
    update_id: int = -1  # the order book update id it reflects (``u``); -1 when unknown


class Trade(NamedTuple):
    ts_ns: int
    px: int
    qty: int
    taker_side: int  # BUY or SELL: the aggressor


MarketEvent = DepthUpdate | DepthSnapshot | BookTicker | Trade


def _levels(raw: list[list[str]]) -> tuple[Level, ...]:
    return tuple((parse_fixed(p, PRICE_DECIMALS), parse_fixed(q, QTY_DECIMALS)) for p, q in raw)


def parse_line(line: str) -> MarketEvent | None:
    """One recorded line as an event; ``None`` for blank lines and streams we do not use."""
    line = line.strip()
    if not line:
        return None
    ts_text, _, payload = line.partition(" ")
    ts = int(ts_text)
    msg: dict[str, Any] = msgspec.json.decode(payload)
    if "lastUpdateId" in msg:
        return DepthSnapshot(ts, _int(msg["lastUpdateId"]), _levels(msg["bids"]), _levels(msg["asks"]))
    data = msg.get("data", {})
    kind = data.get("e")
    if kind == "depthUpdate":
        ids = _int(data["U"]), _int(data["u"]), _int(data.get("pu", -1))
        return DepthUpdate(ts, *ids, _levels(data["b"]), _levels(data["a"]))
    if kind == "bookTicker":
        return BookTicker(
            ts,
            parse_fixed(data["b"], PRICE_DECIMALS),
            parse_fixed(data["B"], QTY_DECIMALS),
            parse_fixed(data["a"], PRICE_DECIMALS),
            parse_fixed(data["A"], QTY_DECIMALS),
            _int(data.get("u", -1)),
        )
    if kind == "trade":
        if type(data["m"]) is not bool:  # "false" as a string would read as a sell
            raise ValueError(f"m (buyer is maker) must be true or false, not {data['m']!r}")
        return Trade(
            ts, parse_fixed(data["p"], PRICE_DECIMALS), parse_fixed(data["q"], QTY_DECIMALS), SELL if data["m"] else BUY
        )
    return None


def _int(value: Any) -> int:
    """An update id: a JSON integer (a string id would compare with ints only to fail later)."""
    if type(value) is not int:
        raise ValueError(f"update id {value!r} is not an integer")
    return value


def read_lines(lines: Iterable[str], limit: int | None = None) -> Iterator[MarketEvent]:
    """Events of recorded lines, at most ``limit`` of them."""
    count = 0
    for number, line in enumerate(lines, 1):
        if limit is not None and count >= limit:
            return
        try:
            event = parse_line(line)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:  # msgspec errors too
            raise MarketDataError(f"line {number}: not a recorded event ({type(exc).__name__}: {exc})") from None
        if event is not None:
            count += 1
            yield event


def read_events(path: str | Path | None = None, limit: int | None = None) -> Iterator[MarketEvent]:
    """Events of the recording at ``path`` (default: the shared copy), read lazily."""
    path = Path(path) if path is not None else default_data_file()
    if not path.exists():
        raise FileNotFoundError(f"market data file {path} not found (pass --data-file PATH)")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            yield from read_lines(fh, limit)
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as exc:
        raise MarketDataError(f"{path}: not a complete gzip recording ({type(exc).__name__}: {exc})") from None


# -- stage 2: order flow --------------------------------------------------------------------


class Quote(NamedTuple):
    """A maker posts ``qty`` at ``px`` on ``side``."""

    ts_ns: int
    side: int
    px: int
    qty: int


class Pull(NamedTuple):
    """A maker cancels ``qty`` of its liquidity at ``px`` on ``side``."""

    ts_ns: int
    side: int
    px: int
    qty: int


class Take(NamedTuple):
    """A taker on ``side`` (BUY lifts asks) takes ``qty`` with limit price ``px``."""

    ts_ns: int
    side: int
    px: int
    qty: int


class Mid(NamedTuple):
    """The best bid/ask mid in cents (rounded down): the oracle price feed."""

    ts_ns: int
    px: int


Action = Quote | Pull | Take | Mid


class SideBook:
    """One side of the real book: quantity per price, plus the prices sorted (range removals)."""

    def __init__(self, levels: Iterable[Level] = ()) -> None:
        self.qty: dict[int, int] = {px: q for px, q in levels if q}
        self.prices: list[int] = sorted(self.qty)

    def get(self, px: int, default: int = 0) -> int:
        return self.qty.get(px, default)

    def set(self, px: int, qty: int) -> None:
        """Set a level's quantity; 0 removes it."""
        if qty:
            if px not in self.qty:
                bisect.insort(self.prices, px)
            self.qty[px] = qty
        elif self.qty.pop(px, None) is not None:
            del self.prices[bisect.bisect_left(self.prices, px)]

    def remove_above(self, px: int) -> list[int]:
        cut = bisect.bisect_right(self.prices, px)
        gone = self.prices[cut:]
        del self.prices[cut:]
        for p in gone:
            del self.qty[p]
        return gone

    def remove_below(self, px: int) -> list[int]:
        cut = bisect.bisect_left(self.prices, px)
        gone = self.prices[:cut]
        del self.prices[:cut]
        for p in gone:
            del self.qty[p]
        return gone


#: Diffs kept while no snapshot has been seen (a recording without one would otherwise grow it
#: with the whole file); older ones are dropped and counted as stale.
MAX_BUFFERED_DIFFS = 10_000


class OrderFlow:
    """Stage 2 of the module docstring: events in, ``Action`` s out (one instance per stream)."""

    def __init__(self, band_bps: int = 10, max_level_qty: int = 5_000) -> None:
        self.band_bps = band_bps
        self.max_level_qty = max_level_qty
        self.book: dict[int, SideBook] = {BUY: SideBook(), SELL: SideBook()}
        self.posted: dict[int, dict[int, int]] = {BUY: {}, SELL: {}}
        self.snapshot_id: int | None = None
        self.book_id = -1  # update id of the newest diff or ticker applied to ``book``
        self.ticker: BookTicker | None = None  # the newest ticker applied to ``book``
        self.mid: int | None = None
        self._band_mid: int | None = None  # the mid at the last out-of-band sweep
        self.stale_diffs = 0
        self.diff_gaps = 0  # diffs whose ``pu`` did not follow the previous diff's ``u``
        self._last_diff_id: int | None = None  # ``u`` of the last diff applied
        self.buffered: deque[DepthUpdate] = deque()  # diffs seen before the snapshot

    def actions(self, events: Iterable[MarketEvent]) -> Iterator[Action]:
        for event in events:
            yield from self.on_event(event)

    def on_event(self, event: MarketEvent) -> list[Action]:
        if isinstance(event, BookTicker):
            out: list[Action] = []
            mid = (event.bid_px + event.ask_px) // 2
            if mid != self.mid:
                self.mid = mid
                out.append(Mid(event.ts_ns, mid))
            if self.snapshot_id is not None and event.update_id > self.book_id:
                out.extend(self._on_ticker(event))
            return out
        if isinstance(event, Trade):
            return self._on_trade(event)
        if isinstance(event, DepthSnapshot):
            self.snapshot_id = self.book_id = event.last_update_id
            self._last_diff_id = None  # the next diff follows the snapshot, not the old stream
            self.book = {BUY: SideBook(event.bids), SELL: SideBook(event.asks)}
            named = {(BUY, px) for px, _ in event.bids} | {(SELL, px) for px, _ in event.asks}
            posted = {(side, px) for side in (BUY, SELL) for px in self.posted[side]}  # a re-sync
            out = self._follow(event.ts_ns, named | posted)
            buffered, self.buffered = self.buffered, deque()
            for diff in buffered:  # the stale ones (u < lastUpdateId) are counted and dropped below
                out.extend(self.on_event(diff))
            return out
        if self.snapshot_id is None:  # Binance: buffer the stream's diffs until the snapshot
            self.buffered.append(event)
            if len(self.buffered) > MAX_BUFFERED_DIFFS:
                self.buffered.popleft()
                self.stale_diffs += 1  # lost, stale or not
            return []
        if event.last_id < self.snapshot_id:
            self.stale_diffs += 1
            return []
        if self._last_diff_id is not None and event.prev_id != self._last_diff_id:
            self.diff_gaps += 1
        self._last_diff_id = event.last_id
        touched = set()
        older_than_ticker = self.ticker is not None and event.last_id < self.book_id
        for side, levels in ((BUY, event.bids), (SELL, event.asks)):
            book = self.book[side]
            for px, qty in levels:
                if older_than_ticker and self._beyond_ticker(side, px):
                    continue  # the newer ticker already says what the top of the book is
                book.set(px, qty)
                touched.add((side, px))
        self.book_id = max(self.book_id, event.last_id)
        return self._follow(event.ts_ns, touched | self._band_changes())

    def _beyond_ticker(self, side: int, px: int) -> bool:
        """Is ``px`` at or better than the last ticker's best price on ``side``?"""
        assert self.ticker is not None
        return px >= self.ticker.bid_px if side == BUY else px <= self.ticker.ask_px

    def _on_ticker(self, ticker: BookTicker) -> list[Action]:
        """Top of book from the ticker: best levels' quantities, and no level better than them."""
        self.ticker = ticker
        self.book_id = ticker.update_id
        touched = {(BUY, ticker.bid_px), (SELL, ticker.ask_px)}
        bids, asks = self.book[BUY], self.book[SELL]
        touched.update((BUY, px) for px in bids.remove_above(ticker.bid_px))
        touched.update((SELL, px) for px in asks.remove_below(ticker.ask_px))
        bids.set(ticker.bid_px, ticker.bid_qty)
        asks.set(ticker.ask_px, ticker.ask_qty)
        return self._follow(ticker.ts_ns, touched | self._band_changes())

    def in_band(self, px: int) -> bool:
        if self.mid is None:
            return False
        return abs(px - self.mid) * 10_000 <= self.mid * self.band_bps

    def _band_changes(self) -> set[tuple[int, int]]:
        """Posted levels now outside the band and real ones now inside it but not posted; the
        band only moves with the mid, so only then look."""
        if self.mid == self._band_mid or self.mid is None:
            return set()
        self._band_mid = self.mid
        levels = {(side, px) for side in (BUY, SELL) for px in self.posted[side] if not self.in_band(px)}
        reach = self.mid * self.band_bps // 10_000  # in_band: |px - mid| <= reach
        for side in (BUY, SELL):
            prices, posted = self.book[side].prices, self.posted[side]
            inside = prices[
                bisect.bisect_left(prices, self.mid - reach) : bisect.bisect_right(prices, self.mid + reach)
            ]
            levels.update((side, px) for px in inside if px not in posted)
        return levels

    def _follow(self, ts: int, levels: set[tuple[int, int]]) -> list[Action]:
        """Move the posted quantity of each level towards the real one (see module docstring)."""
        out: list[Action] = []
        for side, px in sorted(levels):
            target = min(self.book[side].get(px, 0), self.max_level_qty) if self.in_band(px) else 0
            posted = self.posted[side].get(px, 0)
            if target > posted:
                out.append(Quote(ts, side, px, target - posted))
            elif target < posted:
                out.append(Pull(ts, side, px, posted - target))
            if target:
                self.posted[side][px] = target
            else:
                self.posted[side].pop(px, None)
        return out

    def _on_trade(self, trade: Trade) -> list[Action]:
        maker_side = SELL if trade.taker_side == BUY else BUY
        posted = self.posted[maker_side]
        left = posted.get(trade.px, 0) - trade.qty
        if left > 0:
            posted[trade.px] = left
        else:
            posted.pop(trade.px, None)
        return [Take(trade.ts_ns, trade.taker_side, trade.px, trade.qty)]

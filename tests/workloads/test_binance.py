"""The Binance converter: exact integer parsing, Binance's snapshot rules, and the order flow."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paraexec.workloads.binance import (
    BUY,
    SELL,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    MarketDataError,
    Mid,
    OrderFlow,
    Pull,
    Quote,
    Take,
    Trade,
    default_data_file,
    parse_fixed,
    parse_line,
    read_events,
    read_lines,
)

SLICE = [
    '100 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","U":5,"u":9,"pu":4,'
    '"b":[["1000.00","1.000"]],"a":[["1000.50","2.000"]]}}',
    '110 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","b":"1000.00","B":"1.000","a":"1000.20","A":"0.500"}}',
    '120 {"lastUpdateId":10,"bids":[["1000.00","1.000"],["999.90","0.500"],["900.00","7.000"]],'
    '"asks":[["1000.20","0.500"]]}',
    '130 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","U":8,"u":9,"pu":7,"b":[["1000.00","9.000"]],"a":[]}}',
    '140 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","U":10,"u":12,"pu":9,'
    '"b":[["1000.00","1.500"],["999.90","0.000"]],"a":[["1000.20","0.800"]]}}',
    '150 {"stream":"btcusdt@trade","data":{"e":"trade","p":"1000.20","q":"0.300","m":false}}',
    '160 {"stream":"btcusdt@trade","data":{"e":"trade","p":"1000.00","q":"0.100","m":true}}',
    '170 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","b":"1000.00","B":"1.4","a":"1000.20","A":"0.5"}}',
    "",
    '180 {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"}}',
]


def test_parse_fixed_is_exact_and_strict():
    assert parse_fixed("61800.30", 2) == 6180030
    assert parse_fixed("61800.3", 2) == 6180030
    assert parse_fixed("0.014", 3) == 14
    assert parse_fixed("12", 3) == 12000
    assert parse_fixed("-1.5", 2) == -150
    with pytest.raises(ValueError):
        parse_fixed("0.0001", 3)
    with pytest.raises(ValueError):
        parse_fixed("1e5", 2)


@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=0, max_value=8))
def test_parse_fixed_round_trips_any_decimal(value, decimals):
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    text = f"{sign}{whole}.{frac:0{decimals}d}" if decimals else f"{sign}{whole}"
    assert parse_fixed(text, decimals) == value


def test_lines_become_typed_integer_events():
    events = list(read_lines(SLICE))
    assert [type(e).__name__ for e in events] == [
        "DepthUpdate",
        "BookTicker",
        "DepthSnapshot",
        "DepthUpdate",
        "DepthUpdate",
        "Trade",
        "Trade",
        "BookTicker",
    ]
    assert events[0] == DepthUpdate(100, 5, 9, 4, ((100000, 1000),), ((100050, 2000),))
    assert events[1] == BookTicker(110, 100000, 1000, 100020, 500)
    assert events[2].last_update_id == 10 and events[2].bids[2] == (90000, 7000)
    assert events[5] == Trade(150, 100020, 300, BUY)  # m=false: the buyer was the taker
    assert events[6].taker_side == SELL
    assert parse_line("") is None
    assert list(read_lines(SLICE, limit=2)) == events[:2]


def test_order_flow_follows_binance_snapshot_rules():
    flow = OrderFlow(band_bps=50, max_level_qty=10_000)
    actions = list(flow.actions(read_lines(SLICE)))
    # diff before the snapshot, and the stale diff (u=9 < lastUpdateId=10), are dropped
    assert flow.stale_diffs == 2
    assert actions[0] == Mid(110, 100010)
    # the snapshot posts in-band levels only (900.00 is 10% away: out of a 0.5% band)
    assert actions[1:4] == [Quote(120, BUY, 99990, 500), Quote(120, BUY, 100000, 1000), Quote(120, SELL, 100020, 500)]
    # the diff moves posted quantities to the real ones: +500 bid, level 999.90 pulled, +300 ask
    assert actions[4:7] == [Pull(140, BUY, 99990, 500), Quote(140, BUY, 100000, 500), Quote(140, SELL, 100020, 300)]
    assert actions[7:9] == [Take(150, BUY, 100020, 300), Take(160, SELL, 100000, 100)]
    # the takes consumed posted liquidity; the unchanged mid is not repeated
    assert flow.posted == {BUY: {100000: 1400}, SELL: {100020: 500}}
    assert len(actions) == 9


def test_levels_are_capped_and_pulled_when_leaving_the_band():
    flow = OrderFlow(band_bps=10, max_level_qty=700)
    events = [
        BookTicker(1, 100000, 1, 100002, 1),
        DepthSnapshot(2, 1, ((100000, 5000),), ()),
        BookTicker(3, 120000, 1, 120002, 1),  # mid jumps 20%: the level leaves the band
        DepthUpdate(4, 2, 2, 1, (), ((120002, 10),)),
    ]
    actions = list(flow.actions(events))
    assert Quote(2, BUY, 100000, 700) in actions
    assert Pull(4, BUY, 100000, 700) in actions
    assert flow.posted[BUY] == {}


def test_a_level_that_enters_the_band_is_posted_when_the_mid_moves():
    """The real book's 1001.40 ask is 14 bps from a 1000.00 mid: out of a 5 bps band, so not
    posted; when the mid rises to 1000.95 it is within the band and posted, though no diff has
    touched it since (the posted book near the touch is the real one)."""
    flow = OrderFlow(band_bps=5, max_level_qty=10_000)
    events = [
        BookTicker(1, 99990, 1, 100010, 1),  # mid 1000.00: band 999.50-1000.50
        DepthSnapshot(2, 1, ((99990, 300), (99900, 400)), ((100010, 200), (100140, 500))),
        BookTicker(3, 100090, 7, 100100, 9, 5),  # mid 1000.95: band 1000.45-1001.45
    ]
    actions = list(flow.actions(events))
    assert actions == [
        Mid(1, 100000),
        Quote(2, BUY, 99990, 300),
        Quote(2, SELL, 100010, 200),
        Mid(3, 100095),
        Pull(3, BUY, 99990, 300),  # left the band
        Quote(3, BUY, 100090, 7),  # the ticker's new best bid
        Pull(3, SELL, 100010, 200),  # below the ticker's best ask: gone from the real book
        Quote(3, SELL, 100100, 9),
        Quote(3, SELL, 100140, 500),  # entered the band: posted at the real quantity
    ]


def test_a_second_snapshot_resyncs_and_gaps_in_the_stream_are_counted():
    """A diff whose pu is not the previous u means the stream lost events: counted. A later
    snapshot replaces the book; a level posted before it that it lacks is pulled."""
    flow = OrderFlow(band_bps=50, max_level_qty=10_000)
    events = [
        BookTicker(1, 99990, 1, 100010, 1),
        DepthSnapshot(2, 10, ((99990, 300),), ((100010, 200),)),
        DepthUpdate(3, 11, 12, 10, ((99980, 100),), ()),
        DepthUpdate(4, 15, 16, 14, ((99970, 100),), ()),  # pu 14 != 12: a gap
        DepthUpdate(5, 17, 18, 16, (), ()),
        DepthSnapshot(6, 20, ((99990, 300),), ((100010, 250),)),
        DepthUpdate(7, 21, 22, 25, (), ()),  # after a snapshot the first diff is not a gap
    ]
    actions = list(flow.actions(events))
    assert flow.diff_gaps == 1
    assert actions[-3:] == [Pull(6, BUY, 99970, 100), Pull(6, BUY, 99980, 100), Quote(6, SELL, 100010, 50)]
    assert flow.posted == {BUY: {99990: 300}, SELL: {100010: 250}}


def test_flow_is_deterministic():
    first = list(OrderFlow().actions(read_lines(SLICE)))
    assert first == list(OrderFlow().actions(read_lines(SLICE)))


@pytest.fixture(scope="module")
def data_file():
    path = default_data_file()
    if not path.exists():
        pytest.skip(f"shared market data not present at {path}")
    return path


def test_real_data_slice(data_file):
    events = list(read_events(data_file, limit=3000))
    assert len(events) == 3000
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds["BookTicker"] and kinds["Trade"] and kinds["DepthUpdate"] and kinds["DepthSnapshot"] == 1
    assert all(e.ts_ns >= 1_723_161_255_000_000_000 for e in events)
    tickers = [e for e in events if isinstance(e, BookTicker)]
    assert all(t.bid_px < t.ask_px for t in tickers)
    assert all(5_000_000 < t.bid_px < 7_000_000 for t in tickers)  # BTC around 61,800 USDT in cents
    flow = OrderFlow(max_level_qty=2_000)
    actions = []
    for event in events:
        actions.extend(flow.on_event(event))
        for side in (BUY, SELL):  # what the replay has posted is always a positive, capped quantity
            assert all(0 < qty <= 2_000 for qty in flow.posted[side].values())
    counts = Counter(type(a).__name__ for a in actions)
    assert counts["Take"] == kinds["Trade"]
    assert counts["Quote"] > 0 and counts["Pull"] > 0 and counts["Mid"] > 0
    assert all(a.qty > 0 for a in actions if not isinstance(a, Mid))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-file"):
        next(itertools.islice(read_events(tmp_path / "absent.gz"), 1))


def test_an_unreadable_recording_is_a_typed_error_naming_the_place(tmp_path):
    """Not gzip, cut short, or a garbled line: ``MarketDataError`` (a ``ValueError``) with the
    reason and line, not whatever the parser or gzip raised (click shows an ``EOFError`` as a bare
    "Aborted.")."""
    import gzip

    good = '1 {"stream": "x", "data": {"e": "trade", "p": "100.5", "q": "0.002", "m": true}}'
    garbled = tmp_path / "garbled.gz"
    with gzip.open(garbled, "wt") as fh:
        fh.write(f"{good}\n{good}\n" + '2 {"data": {"e": "trade", "p": "x"}}\n')
    with pytest.raises(MarketDataError, match="line 3: not a recorded event"):
        list(read_events(garbled))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress((good + "\n").encode() * 2000)[:400])
    with pytest.raises(MarketDataError, match="not a complete gzip recording"):
        list(read_events(cut))
    plain = tmp_path / "plain.gz"
    plain.write_text(good)
    with pytest.raises(MarketDataError, match="BadGzipFile"):
        list(read_events(plain))


def test_newer_ticker_sets_the_top_of_book_and_older_diffs_cannot_undo_it():
    flow = OrderFlow(band_bps=50, max_level_qty=10_000)
    events = [
        BookTicker(1, 99990, 1, 100020, 1),  # no update id: only the mid
        DepthSnapshot(2, 10, ((100000, 1000), (99990, 500)), ((100020, 500), (100030, 700))),
        BookTicker(3, 99990, 400, 100020, 200, 12),  # the 1000.00 bid is gone, the touch shrank
        DepthUpdate(4, 11, 11, 10, ((100000, 900),), ((100040, 100),)),  # older than the ticker
        DepthUpdate(5, 12, 13, 11, ((100000, 300),), ()),  # newer: the bid is back
    ]
    actions = list(flow.actions(events))
    assert actions == [
        Mid(1, 100005),
        Quote(2, BUY, 99990, 500),
        Quote(2, BUY, 100000, 1000),
        Quote(2, SELL, 100020, 500),
        Quote(2, SELL, 100030, 700),
        Pull(3, BUY, 99990, 100),
        Pull(3, BUY, 100000, 1000),
        Pull(3, SELL, 100020, 300),
        Quote(4, SELL, 100040, 100),  # the older diff's 1000.00 bid (beyond the ticker) is ignored
        Quote(5, BUY, 100000, 300),
    ]
    assert flow.book[BUY].prices == [99990, 100000] and flow.book[SELL].get(100020) == 200


def test_diffs_before_the_snapshot_are_buffered_and_the_newer_ones_applied():
    """Binance's procedure: buffer the stream, then drop the diffs with u < lastUpdateId and
    apply the rest. A diff received before the snapshot but newer than it sets the level."""
    early = (
        '115 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","U":10,"u":11,"pu":9,'
        '"b":[["1000.00","3.000"]],"a":[]}}'
    )
    flow = OrderFlow(band_bps=50, max_level_qty=10_000)
    list(flow.actions(read_lines([SLICE[0], early, SLICE[2]])))
    assert flow.stale_diffs == 1  # only the diff with u=9 < lastUpdateId=10
    assert flow.book[BUY].get(100000) == 3000 and flow.book_id == 11


@pytest.mark.parametrize(
    "line",
    [
        '1 {"data":{"e":"depthUpdate","U":"5","u":9,"pu":4,"b":[],"a":[]}}',
        '1 {"lastUpdateId":"10","bids":[],"asks":[]}',
        '1 {"data":{"e":"trade","p":"100.5","q":"0.002","m":"false"}}',
    ],
    ids=("string-id", "string-snapshot-id", "string-maker-flag"),
)
def test_fields_of_the_wrong_json_type_are_refused(line):
    """A string update id would only fail later with a bare TypeError; "false" as a string
    would read as true (a sell): both are refused where they are read, naming the line."""
    with pytest.raises(MarketDataError, match="line 1"):
        list(read_lines([line]))

"""The exchange's state layout: small keys so that independent activity touches independent keys.

    x/bank/<owner>                      bank (faucet) balance, quote quantums (int)
    x/sa/<owner><num>                   Subaccount: quote balance + positions (one key per subaccount)
    x/o/<mid><owner><num><client_id>    OrderRef of a live resting or conditional order (for cancel)
    x/m/<mid>/p                         market parameters (for queries; immutable)
    x/m/<mid>/st                        MarketState: OraclePrice (price, time), FundingIndex (cumulative
                                        index, last funding time: settlements) and the open interest at
                                        the last end of block (OIMF) - every margin input of the market
    x/m/<mid>/or/<oracle_idx>           OracleReport (quorum median of several oracles)
    x/m/<mid>/fs                        FundingSamples (time-weighted premium since the last funding)
    x/m/<mid>/oi                        long open interest, base quantums (int, ctx.add deltas only)
    x/m/<mid>/bk/<side>                 sorted price-level index of one side (list of subticks)
    x/m/<mid>/lv/<side><subticks>       one price level: FIFO list of RestingOrder
    x/m/<mid>/h                         sorted holders (subaccount ids with a position) - sweep and ADL
    x/m/<mid>/cd/<shard>                untriggered conditional orders of the market whose owner
                                        falls in this shard (``conditional_shard``), oldest first
    x/lq/<owner><num>                   LiquidationUsage of the subaccount in the current block
    x/insurance, x/fees, x/fdust        hot aggregates, written with ctx.add only
    x/gate                              height until which withdrawals are gated
    x/oracles                           list of authorised oracle public keys

Orders in different markets share no key (except their subaccounts when the same trader trades
both). Conditional orders are split over ``CONDITIONAL_SHARDS`` lists by owner, so that traders
placing stop-losses in one market rarely write the same key; the market tick reads every shard.
Within a market, the level index of a side is the hot key: placing at a new price level or
emptying one writes it; fills inside existing levels write only those levels.
"""

from __future__ import annotations

import struct
from functools import cache

from ..types import Key

BANK = b"x/bank/"
SUBACCOUNT = b"x/sa/"
ORDER = b"x/o/"
MARKET = b"x/m/"
LIQUIDATION_USAGE = b"x/lq/"
INSURANCE = b"x/insurance"
FEES = b"x/fees"
FUNDING_DUST = b"x/fdust"
WITHDRAW_GATE = b"x/gate"
ORACLES = b"x/oracles"

_u16 = struct.Struct(">H")
_u32 = struct.Struct(">I")
_u64 = struct.Struct(">Q")

# Per-market keys come from small, fixed sets (markets are fixed at genesis) and are built on
# every margin check, so they are cached: one C-level lookup instead of packing and joining.


def bank(owner: bytes) -> Key:
    return BANK + owner


def subaccount_id(owner: bytes, number: int) -> bytes:
    """33 bytes: owner public key and subaccount number (0..127)."""
    return owner + bytes((number,))


def subaccount(sub_id: bytes) -> Key:
    return SUBACCOUNT + sub_id


def liquidation_usage(sub_id: bytes) -> Key:
    return LIQUIDATION_USAGE + sub_id


@cache
def market_prefix(market_id: int) -> bytes:
    return MARKET + _u16.pack(market_id)


def market_params(market_id: int) -> Key:
    return market_prefix(market_id) + b"/p"


@cache
def market_state(market_id: int) -> Key:
    """The market's ``MarketState``: oracle price, funding index and OI snapshot, the inputs of
    every margin computation in the market, in one key: a transaction reads them together
    (every cross-margined account reads them for each of its markets), so one read instead of
    three; their writers (oracle updates, the market tick) write the market's key either way."""
    return market_prefix(market_id) + b"/st"


def oracle_report(market_id: int, oracle_idx: int) -> Key:
    return market_prefix(market_id) + b"/or/" + _u16.pack(oracle_idx)


def funding_samples(market_id: int) -> Key:
    return market_prefix(market_id) + b"/fs"


@cache
def open_interest(market_id: int) -> Key:
    return market_prefix(market_id) + b"/oi"


@cache
def level_index(market_id: int, side: int) -> Key:
    return market_prefix(market_id) + b"/bk/" + bytes((side,))


def level(market_id: int, side: int, subticks: int) -> Key:
    return _level_prefix(market_id, side) + _u64.pack(subticks)


@cache
def _level_prefix(market_id: int, side: int) -> bytes:
    return market_prefix(market_id) + b"/lv/" + bytes((side,))


@cache
def holders(market_id: int) -> Key:
    return market_prefix(market_id) + b"/h"


#: How many lists a market's untriggered conditional orders are kept in (by the owner's first
#: byte): one list would make every two stop-loss placements in a market conflict.
CONDITIONAL_SHARDS = 16


def conditional_shard(sub_id: bytes) -> int:
    """The shard of a subaccount's conditional orders: all of one subaccount's are in one list."""
    return sub_id[0] % CONDITIONAL_SHARDS


@cache
def conditionals(market_id: int, shard: int) -> Key:
    return market_prefix(market_id) + b"/cd/" + bytes((shard,))


def order(market_id: int, sub_id: bytes, client_id: int) -> Key:
    return ORDER + _u16.pack(market_id) + sub_id + _u32.pack(client_id)

"""The exchange's transaction payloads (msgspec structs; the class name is the payload type).

Clients build a transaction with ``transaction.sign(key, chain_id, nonce, encode_payload(p))``.
Units: sizes in *base quantums* of the market (``10**atomic_resolution`` of the asset), prices
in *subticks* (one subtick is ``10**quantum_conversion_exponent`` quote quantums per base
quantum), money in *quote quantums* (1e-6 USDC). A subaccount is ``(owner, number)``, owner the
signer's public key; ``number`` is 0..MAX_SUBACCOUNT.

Enumerations are small ints (see the constants below) to keep the wire form compact.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Address = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
MAX_SUBACCOUNT = 127

# side
BUY = 1
SELL = 2
# order type
LIMIT = 0
MARKET = 1
# time in force
GTC = 0
IOC = 1
FOK = 2
POST_ONLY = 3
# condition
NONE = 0
STOP_LOSS = 1
TAKE_PROFIT = 2


class Deposit(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Move ``amount`` quote quantums from the sender's bank (faucet) balance to a subaccount."""

    subaccount: int
    amount: int


class Withdraw(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Move ``amount`` quote quantums from a subaccount back to the sender's bank balance."""

    subaccount: int
    amount: int


class TransferCollateral(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Move quote quantums from one of the sender's subaccounts to any subaccount."""

    from_subaccount: int
    to_owner: Address
    to_subaccount: int
    amount: int


class PlaceOrder(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """A limit/market order; conditional (stop-loss / take-profit) when ``condition`` != NONE.

    ``client_id`` names the order within (subaccount, market): the order id is
    (market_id, owner, subaccount, client_id). ``subticks`` is the limit price (ignored for
    MARKET orders, which are IOC with no price limit). ``good_til_block`` 0 means no expiry;
    otherwise the order is dropped once the height exceeds it. ``trigger_subticks`` is the
    oracle price (converted to subticks) at which a conditional order is placed. ``reduce_only``
    needs ``time_in_force`` IOC or FOK (as dYdX; otherwise the order is refused, INVALID_ORDER).
    """

    market_id: int
    subaccount: int
    client_id: int
    side: int
    quantums: int
    subticks: int
    order_type: int = LIMIT
    time_in_force: int = GTC
    reduce_only: bool = False
    good_til_block: int = 0
    condition: int = NONE
    trigger_subticks: int = 0


class CancelOrder(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    market_id: int
    subaccount: int
    client_id: int


class OracleUpdate(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """A price report by an authorised oracle key: ``price`` at the market's price exponent."""

    market_id: int
    price: int


class Liquidate(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Permissionless: liquidate ``(owner, subaccount)``'s position in ``market_id``."""

    owner: Address
    subaccount: int
    market_id: int


class MarketTick(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """System payload appended once per market at the end of every block.

    Triggers conditional orders, sweeps liquidatable subaccounts of the market, samples the
    funding premium, applies the hourly funding rate, and snapshots open interest. One per
    market so that the markets' end-of-block work is independent.
    """

    market_id: int


PAYLOAD_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (Deposit, Withdraw, TransferCollateral, PlaceOrder, CancelOrder, OracleUpdate, Liquidate, MarketTick)
}

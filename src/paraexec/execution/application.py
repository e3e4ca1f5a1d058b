"""The ``Application`` contract: the business rules, as a pure function of (state, tx).

An application declares its payload types (msgspec structs, by name), builds its genesis
state, and applies one decoded payload through a ``TxContext``. It must be deterministic:
no clocks (use ``ctx.env.time``), no randomness, no globals, no floats, no I/O. It refuses a
transaction by raising a ``BusinessError`` subclass; the runtime then rolls its writes back.

Applications may also ask for *system transactions*: unsigned payloads the block producer
appends to every block (an end-of-block liquidation sweep, say). They run like any other
transaction (so every executor handles them), with ``sender=None`` and no nonce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..types import Key, Value
from .contract import BlockEnv, TxContext


class Application(Protocol):
    name: str
    payload_types: Mapping[str, type]

    def genesis(self, config: Mapping[str, Any]) -> dict[Key, Value]:
        """The genesis state for ``config`` (a JSON-like mapping)."""
        ...

    def apply(self, ctx: TxContext, sender: bytes | None, payload: Any) -> None:
        """Apply one payload; raise ``BusinessError`` to refuse it."""
        ...

    def hint_keys(self, sender: bytes | None, payload: Any) -> tuple[Key, ...]:
        """Keys the payload will most likely touch (for scheduling affinity); may be empty."""
        ...

    # Optional: ``state_layout: int``, the version of the application's state layout (and of
    # rules that change what a stored chain replays to). A chain records it at genesis and
    # ``Chain.open`` refuses a store written with another one (``IncompatibleStore``) rather
    # than executing over keys the application no longer reads.

    # Optional: ``barrier(payload) -> bool``: the payload writes state that transactions of
    # every affinity group read (the exchange's oracle updates); the parallel executor then
    # schedules later transactions of other workers after it (``ChainRuntime.barrier``).

    def system_payloads(self, env: BlockEnv) -> list[bytes]:
        """Encoded payloads to append to the block at ``env`` as system transactions."""
        ...

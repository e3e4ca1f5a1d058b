"""Grevm-style hot-spot transfers: a small set of hot accounts receives a tunable share of accesses.

Grevm's benchmarks set contention not by shrinking the account universe (as the Block-STM paper
does) but by making a few accounts *hot*: each time a transaction picks an account (its sender,
then its receiver) it takes one of the ``hot_accounts`` hot accounts with probability
``hot_ratio`` and one of the other (cold) accounts otherwise. ``hot_ratio = 0`` is the
low-contention paper workload; ``hot_ratio = 1`` sends every transaction through the hot set.

Everything is deterministic from ``seed``: account keys come from ``"{seed}/account/{i}"`` (the
first ``hot_accounts`` indices are the hot ones) and block ``h`` draws from
``random.Random(f"{seed}/hotspot/{height}")``, so block ``h`` is the same whoever generates it.
Nonces continue from ``nonce_of`` (the chain's state) like ``TransferWorkload``; with
``declare_access=True`` each transfer declares its access list (both balances) for the
access-list executor, as ``TransferWorkload`` does, with the same random draws.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..crypto import SigningKey
from .transfers import INITIAL_BALANCE, sign_transfers


@dataclass
class HotspotWorkload:
    """Transfers where each account pick is hot with probability ``hot_ratio`` (see module doc)."""

    accounts: int
    hot_ratio: float = 0.5
    hot_accounts: int = 0  # 0: 1% of the accounts, at least 1
    seed: int = 0
    chain_id: str = "paraexec-dev"
    declare_access: bool = False
    app_name: str = field(default="transfers", init=False)
    keys: list[SigningKey] = field(init=False)

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ValueError("hotspot needs at least 2 accounts")
        if not 0.0 <= self.hot_ratio <= 1.0:
            raise ValueError(f"hot_ratio {self.hot_ratio} must be within [0, 1]")
        if self.hot_accounts <= 0:
            self.hot_accounts = max(1, self.accounts // 100)
        if self.hot_accounts >= self.accounts:
            raise ValueError(f"hot_accounts {self.hot_accounts} must be fewer than accounts {self.accounts}")
        self.keys = [SigningKey.from_seed_text(f"{self.seed}/account/{i}") for i in range(self.accounts)]
        self._nonces: dict[bytes, int] = {}

    def genesis_config(self) -> dict[str, object]:
        return {"accounts": {k.public_key.hex(): INITIAL_BALANCE for k in self.keys}}

    def pick(self, rng: random.Random) -> int:
        """Index of one account: hot with probability ``hot_ratio``, else uniformly cold."""
        if rng.random() < self.hot_ratio:
            return rng.randrange(self.hot_accounts)
        return rng.randrange(self.hot_accounts, self.accounts)

    def block(self, height: int, size: int, nonce_of: Callable[[bytes], int] | None = None) -> list[bytes]:
        """``size`` signed transfers for block ``height``; nonces continue from ``nonce_of``."""
        rng = random.Random(f"{self.seed}/hotspot/{height}")
        return sign_transfers(
            self.keys, rng, size, self.pick, self._nonces, nonce_of, self.chain_id, self.declare_access
        )

    def reset_nonces(self) -> None:
        self._nonces.clear()

"""The Block-STM paper's transfer workload: uniformly random peer-to-peer transfers.

Deterministic from ``seed``: account keys are derived from ``"{seed}/account/{i}"``, and each
block draws (sender, receiver, amount) from ``random.Random(f"{seed}/{height}")`` - so block
``h`` is the same whoever generates it and whatever came before. Contention is set by the
number of accounts: with 2 accounts every transaction conflicts with the next; with 10,000
almost none do.

Nonces continue from the chain's state (``nonce_of``), so a generator can resume a chain.

With ``declare_access=True`` every transfer declares its access list in the signed envelope
(writes: sender and receiver balances; the nonce is implicit), for the access-list executor.
The random draws are the same either way, so both variants move the same amounts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import codec
from ..apps.transfers import Transfer, balance_key
from ..crypto import SigningKey
from ..transaction import AccessList, encode_payload, sign

INITIAL_BALANCE = 10**12


@dataclass
class TransferWorkload:
    accounts: int
    seed: int = 0
    chain_id: str = "paraexec-dev"
    declare_access: bool = False
    keys: list[SigningKey] = field(init=False)

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ValueError("transfers need at least 2 accounts")
        self.keys = [SigningKey.from_seed_text(f"{self.seed}/account/{i}") for i in range(self.accounts)]
        self._nonces: dict[bytes, int] = {}

    def genesis_config(self) -> dict[str, object]:
        return {"accounts": {k.public_key.hex(): INITIAL_BALANCE for k in self.keys}}

    def block(self, height: int, size: int, nonce_of: Callable[[bytes], int] | None = None) -> list[bytes]:
        """``size`` signed transfers for block ``height``; nonces continue from ``nonce_of``."""
        rng = random.Random(f"{self.seed}/{height}")
        n = self.accounts
        return sign_transfers(
            self.keys, rng, size, lambda r: r.randrange(n), self._nonces, nonce_of, self.chain_id, self.declare_access
        )

    def reset_nonces(self) -> None:
        self._nonces.clear()


def sign_transfers(
    keys: list[SigningKey],
    rng: random.Random,
    size: int,
    pick: Callable[[random.Random], int],
    nonces: dict[bytes, int],
    nonce_of: Callable[[bytes], int] | None,
    chain_id: str,
    declare_access: bool,
) -> list[bytes]:
    """``size`` signed transfers: sender ``pick``, receiver ``pick``, amount 1..99, in that draw order.

    ``nonces`` carries each sender's next nonce across blocks (first use: ``nonce_of``, else 0);
    shared by the workloads that differ only in how they pick accounts.
    """
    txs = []
    for _ in range(size):
        src = keys[pick(rng)]
        dst = keys[pick(rng)]
        nonce = nonces.get(src.public_key)
        if nonce is None:
            nonce = nonce_of(src.public_key) if nonce_of else 0
        nonces[src.public_key] = nonce + 1
        payload = encode_payload(Transfer(dst.public_key, rng.randrange(1, 100)))
        access = None
        if declare_access:
            access = AccessList([], [balance_key(src.public_key), balance_key(dst.public_key)])
        txs.append(sign(src, chain_id, nonce, payload, access))
    return txs


def nonce_reader(get: Callable[[bytes], bytes | None]) -> Callable[[bytes], int]:
    from ..execution.runtime import nonce_key

    return lambda sender: codec.decode_int(get(nonce_key(sender)))

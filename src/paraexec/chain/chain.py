"""A chain on a ``StateStore``: genesis, block production, and verified replay.

- ``Chain.create(store, config)`` commits genesis (height 0, no transactions, the
  application's genesis state) and records the chain config in the store's meta.
- ``Chain.open(store)`` reads the config back; nothing else is needed to continue a chain.
  A store written with another state layout of the application (``state_layout``, recorded
  at genesis) is refused with ``IncompatibleStore``.
- ``produce_block(txs, time, executor, upcoming)`` appends the application's system
  transactions, executes, builds the header with the post-state root, and commits block +
  receipts + writes + height in one atomic store commit (while an executor's pending root is
  still being hashed elsewhere, the store writes the state meanwhile). ``upcoming`` (optional) are the
  transactions the producer expects in the next block: an executor that can check their
  signatures on idle cores meanwhile is told (``announce``).
- ``replay(executor)`` re-executes every stored block from genesis on a fresh in-memory store
  and checks each root against the stored header.

The chain holds no business rules: those are the application's.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from .. import codec
from ..errors import CorruptStore, IncompatibleStore, InvariantViolation
from ..execution.contract import BlockEnv, BlockOutput, Executor
from ..execution.gc_pause import gc_paused
from ..execution.runtime import SYSTEM_TAG, ChainRuntime, RuntimeSpec
from ..state import commitment
from ..state.lmdb_store import LmdbStore
from ..state.store import StateStore
from ..transaction import tx_hash
from .block import GENESIS_PARENT, Block, BlockHeader, decode_block, decode_receipts, txs_root


@dataclass(frozen=True)
class ChainConfig:
    """What defines a chain: its id, application, application config and genesis time."""

    chain_id: str
    app: str
    app_config: dict[str, Any]
    genesis_time: int = 0

    def __post_init__(self) -> None:
        """Types checked up front: a genesis file with ``"genesis_time": "0"`` must be refused,
        not written as a genesis block no decoder can read back."""
        if not isinstance(self.chain_id, str) or not self.chain_id or not isinstance(self.app, str):
            raise TypeError("chain_id and app must be strings (chain_id not empty)")
        if not isinstance(self.app_config, dict):
            raise TypeError(f"app_config must be an object, not {type(self.app_config).__name__}")
        if type(self.genesis_time) is not int or not 0 <= self.genesis_time < 2**63:
            raise TypeError(f"genesis_time must be a whole number of seconds >= 0, not {self.genesis_time!r}")

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ChainConfig:
        return cls(**json.loads(data))

    def runtime_spec(self, verify_signatures: bool = True) -> RuntimeSpec:
        return RuntimeSpec(self.app, self.app_config, self.chain_id, verify_signatures)


class ReplayMismatch(InvariantViolation):
    """Re-execution of a stored block gave a different root: the chain or an executor is wrong."""


class Chain:
    def __init__(self, store: StateStore, config: ChainConfig, verify_signatures: bool = True) -> None:
        self.store = store
        self.config = config
        self.runtime: ChainRuntime = config.runtime_spec(verify_signatures).build()
        #: (height, hashes of its transactions, system ones included) of the block
        #: ``produce_block`` committed last, so its caller need not hash them again (``tx_hashes``)
        self._last_tx_hashes: tuple[int, list[bytes]] = (-1, [])
        #: whether the last complete ``replay`` compared the stored state with the replayed one
        #: (False: the chain moved on meanwhile, or no replay ran to its end)
        self.state_checked = False

    @classmethod
    def create(cls, store: StateStore, config: ChainConfig) -> Chain:
        if store.height >= 0:
            raise InvariantViolation("store already holds a chain")
        chain = cls(store, config)
        # an application with clocks of its own (the exchange's oracle and funding) starts them at
        # its config's genesis time: one that differs from the chain's would see its first block
        # hours or years after its own start (a funding catch-up, every oracle price stale)
        app_time = getattr(chain.runtime.app, "genesis_time", None)
        if app_time is not None and app_time != config.genesis_time:
            raise ValueError(
                f"app_config genesis_time {app_time} differs from the chain's genesis_time {config.genesis_time}"
            )
        state = chain.runtime.app.genesis(config.app_config)
        acc = commitment.accumulate(state.items())
        header = BlockHeader(0, GENESIS_PARENT, config.genesis_time, txs_root([]), commitment.root_of(acc))
        meta = {"chain": config.to_json()}
        layout = chain._state_layout()
        if layout is not None:
            meta["state_layout"] = layout
        store.commit_block(0, dict(state), acc, codec.encode(Block(header, [])), codec.encode([]), meta)
        return chain

    @classmethod
    def open(cls, store: StateStore, verify_signatures: bool = True) -> Chain:
        raw = store.get_meta("chain")
        if raw is None:
            raise IncompatibleStore("store holds no chain (run `paraexec init` first)")
        try:
            config = ChainConfig.from_json(raw)
        except (ValueError, TypeError) as exc:  # JSON, UTF-8 or missing/unknown fields
            raise CorruptStore(f"the chain's metadata cannot be read ({type(exc).__name__}: {exc})") from None
        try:
            chain = cls(store, config, verify_signatures)
        except (ValueError, TypeError) as exc:  # an application this version lacks, or its config refused
            raise IncompatibleStore(f"this version cannot run the stored chain: {exc}") from None
        layout = chain._state_layout()
        stored = store.get_meta("state_layout")
        if layout is not None and stored != layout:
            written = "an unrecorded (older)" if stored is None else f"layout {stored.decode(errors='replace')}"
            raise IncompatibleStore(
                f"this {chain.config.app} chain was written with {written} state layout; this version"
                f" uses layout {layout.decode()}: start a new chain (fresh --data), or use the version that wrote it"
            )
        head = chain.block(store.height)
        if head.header.state_root != store.root:
            raise CorruptStore(
                f"the stored state's root {store.root.hex()[:16]} is not the root of the last block"
                f" ({store.height}: {head.header.state_root.hex()[:16]}): the state was changed outside paraexec"
            )
        return chain

    def _state_layout(self) -> bytes | None:
        """The application's ``state_layout`` as stored in the chain's metadata (``None``: it
        declares none)."""
        layout = getattr(self.runtime.app, "state_layout", None)
        return None if layout is None else str(layout).encode()

    @property
    def height(self) -> int:
        return self.store.height

    def block(self, height: int) -> Block:
        """The block at ``height``: ``KeyError`` above the chain's height, ``CorruptStore`` for
        one at or below it that the store lacks or cannot decode (damaged outside paraexec)."""
        block = read_block(self.store, height)
        if block is None:
            if 0 <= height <= self.height:
                raise CorruptStore(f"block {height} is missing from the store (the chain's height is {self.height})")
            raise KeyError(height)
        return block

    def receipts(self, height: int) -> list:  # list[Receipt]
        receipts = read_receipts(self.store, height)
        return [] if receipts is None else receipts

    def blocks(self, start: int = 1) -> Iterator[Block]:
        for height in range(start, self.height + 1):
            yield self.block(height)

    def produce_block(
        self, txs: Sequence[bytes], time: int, executor: Executor, upcoming: Sequence[bytes] | None = None
    ) -> tuple[Block, BlockOutput]:
        """Execute ``txs`` (plus system transactions) as the next block and commit it.

        Only the producer adds system transactions: user bytes carrying the system tag can never be
        valid user transactions and are left out of the block. ``upcoming``: see module docstring
        (a hint only: the next block may hold other transactions, and is checked in full).
        """
        parent = self.block(self.height)
        if time < parent.header.time:  # replay checks it too (``must_link``)
            raise ValueError(f"block time {time} is before its parent's {parent.header.time}")
        announce = getattr(executor, "announce", None)
        if upcoming and announce is not None:
            announce(self.runtime, [raw for raw in upcoming if raw[:1] != SYSTEM_TAG])
        env = BlockEnv(self.height + 1, time)
        user_txs = [raw for raw in txs if raw[:1] != SYSTEM_TAG]
        all_txs = user_txs + self.runtime.system_transactions(env)
        hashing = _tx_hasher().submit(_tx_hashes, all_txs)  # overlaps execution (see _tx_hasher)
        with gc_paused():  # every executor alike (see ``execution.gc_pause``)
            output = executor.execute_block(self.runtime, all_txs, self.store, env)
            hashes = hashing.result()
            built: list[Block] = []

            def block_bytes() -> bytes:
                # called once the root is known: inside the store's write transaction when it is
                # still pending (the state writes overlap its hashing, see ``BlockOutput``)
                header = BlockHeader(env.height, parent.hash, time, txs_root(hashes), output.state_root)
                built.append(Block(header, all_txs))
                return codec.encode(built[0])

            self.store.commit_block(
                env.height,
                output.write_set,
                lambda: output.accumulator,
                block_bytes,
                codec.encode(output.receipts),
                # user transactions only: a system transaction's bytes repeat every block (the
                # same market tick), so an index entry would point at its first block forever
                tx_hashes=hashes[: len(user_txs)],
            )
        self._last_tx_hashes = (env.height, hashes)
        return built[0], output

    def tx_hashes(self, block: Block) -> list[bytes]:
        """The hashes of ``block``'s transactions: those ``produce_block`` computed when it is the
        block it committed last, else computed now."""
        height, hashes = self._last_tx_hashes
        if height == block.header.height and len(hashes) == len(block.txs):
            return hashes
        return _tx_hashes(block.txs)

    def find_tx(self, hash_: bytes) -> tuple[int, int] | None:
        """(height, index) of the block position where the transaction with this hash was included."""
        return self.store.get_tx_location(hash_)

    def replay(self, executor: Executor, scratch: StateStore | None = None) -> Iterator[tuple[Block, BlockOutput]]:
        """Re-execute the chain from genesis; raise ``ReplayMismatch`` on any root or receipt
        difference, a header that does not follow its parent (``must_link``), or, after the last
        block, a stored state that is not the replayed one (``must_hold_state``).

        Blocks are re-executed on ``scratch`` (a fresh store; by default a temporary LMDB directory,
        so process-based executors read it directly), never on this chain's own store.
        """
        with contextlib.ExitStack() as stack:
            if scratch is None:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="paraexec-replay-"))
                scratch = LmdbStore(tmp, durable=False)
                stack.callback(scratch.close)
            fresh = Chain.create(scratch, self.config)
            if fresh.block(0).header.state_root != self.block(0).header.state_root:
                raise ReplayMismatch("genesis root differs")
            parent = self.block(0)
            for block in self.blocks():
                must_link(parent, block)
                parent = block
                with gc_paused():
                    output = executor.execute_block(fresh.runtime, block.txs, fresh.store, block.env)
                height = block.header.height
                if output.state_root != block.header.state_root:
                    raise ReplayMismatch(f"block {height}: root {output.state_root.hex()} != stored")
                if output.receipts != self.receipts(height):
                    raise ReplayMismatch(f"block {height}: receipts differ from stored")
                fresh.store.commit_block(height, output.write_set, output.accumulator, codec.encode(block), b"")
                yield block, output
            self.state_checked = self.must_hold_state(fresh.store, parent.header.height)

    def must_hold_state(self, replayed: StateStore, height: int) -> bool:
        """``ReplayMismatch`` unless this chain's stored state is, key for key and value for
        value, ``replayed`` (the state its blocks up to ``height`` produce). The roots vouch
        only for the stored accumulator, which values changed outside paraexec leave as it was,
        so only this finds them. Skipped when the chain moved past ``height`` meanwhile (a
        node appending to it as it was replayed): ``items`` reads the latest commit, so a
        difference counts only while the store, refreshed, is still at ``height``. Returns
        whether the states were compared."""
        if self.store.height != height:
            return False
        pairs = zip_longest(self.store.items(), replayed.items(), fillvalue=(None, None))
        for (key, value), (expected_key, expected) in pairs:
            if key != expected_key or value != expected:
                refresh = getattr(self.store, "refresh", None)
                if refresh is not None:
                    refresh()
                    if self.store.height != height:
                        return False
                where = min(k for k in (key, expected_key) if k is not None)
                raise ReplayMismatch(f"the stored state differs from the replayed one at key {where.hex()[:64]}")
        return True


def must_link(parent: Block, block: Block) -> None:
    """``ReplayMismatch`` unless ``block``'s header is the one its producer would have written
    after ``parent``: the next height, the parent's hash, a time not before the parent's, and
    the root of its own transactions. The state root is checked by re-executing it."""
    header, height = block.header, parent.header.height + 1
    if header.height != height:
        raise ReplayMismatch(f"block {height}: stored with height {header.height}")
    if header.parent_hash != parent.hash:
        raise ReplayMismatch(f"block {height}: parent hash {header.parent_hash.hex()} != {parent.hash.hex()}")
    if header.time < parent.header.time:
        raise ReplayMismatch(f"block {height}: time {header.time} before its parent's {parent.header.time}")
    if header.txs_root != txs_root([tx_hash(raw) for raw in block.txs]):
        raise ReplayMismatch(f"block {height}: txs_root does not match its transactions")


@functools.cache
def _tx_hasher() -> ThreadPoolExecutor:
    """One background thread that hashes a block's transactions while the executor runs it.

    The hashes (for ``txs_root`` and the tx index) do not depend on execution. With a
    process-based executor the coordinator thread mostly waits on its workers' pipes (the GIL
    released), so this thread's work comes off the block's serial path; with an in-process
    executor it only interleaves with the same total work.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="paraexec-txhash")


def _tx_hashes(txs: list[bytes]) -> list[bytes]:
    return [tx_hash(raw) for raw in txs]


def read_block(store: StateStore, height: int) -> Block | None:
    """The stored block at ``height`` (None if there is none); bytes that do not decode (a store
    damaged outside paraexec) raise ``CorruptStore`` naming the block, not a decoder error."""
    data = store.get_block(height)
    try:
        return None if data is None else decode_block(data)
    except codec.DECODE_ERRORS as exc:
        raise CorruptStore(f"block {height} cannot be read ({exc})") from None


def read_receipts(store: StateStore, height: int) -> list | None:  # list[Receipt] | None
    """The stored receipts of block ``height`` (None if there is no such block), as ``read_block``."""
    data = store.get_receipts(height)
    try:
        return None if data is None else decode_receipts(data)
    except codec.DECODE_ERRORS as exc:
        raise CorruptStore(f"the receipts of block {height} cannot be read ({exc})") from None

"""Blocks: a header that commits to its transactions and its post-state root, and the txs.

    BlockHeader(height, parent_hash, time, txs_root, state_root)
    hash(block)  = BLAKE2b-256(canonical header bytes)
    txs_root     = BLAKE2b-256 of the concatenated transaction hashes (computed once per block:
                   the same hashes key the transaction index)

``state_root`` is the root *after* executing the block (as in Ethereum), so replaying a chain
checks every block's execution, not only the last.
"""

from __future__ import annotations

import msgspec

from .. import codec, crypto
from ..execution.contract import BlockEnv, Receipt

GENESIS_PARENT = b"\x00" * 32


class BlockHeader(msgspec.Struct, array_like=True, frozen=True):
    height: int
    parent_hash: bytes
    time: int
    txs_root: bytes
    state_root: bytes


class Block(msgspec.Struct, array_like=True, frozen=True):
    header: BlockHeader
    txs: list[bytes]

    @property
    def hash(self) -> bytes:
        return crypto.hash32(codec.encode(self.header))

    @property
    def env(self) -> BlockEnv:
        return BlockEnv(self.header.height, self.header.time)


def txs_root(tx_hashes: list[bytes]) -> bytes:
    """The root over a block's transaction hashes (``transaction.tx_hash`` of each, in order)."""
    return crypto.hash32(b"".join(tx_hashes))


_block_decoder = msgspec.msgpack.Decoder(Block)
_receipts_decoder = msgspec.msgpack.Decoder(list[Receipt])


def decode_block(data: bytes) -> Block:
    return _block_decoder.decode(data)


def decode_receipts(data: bytes) -> list[Receipt]:
    return _receipts_decoder.decode(data)

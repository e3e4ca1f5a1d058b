"""Blocks, block production, persistence and replay."""

from .block import Block, BlockHeader
from .chain import Chain, ChainConfig, ReplayMismatch

__all__ = ["Block", "BlockHeader", "Chain", "ChainConfig", "ReplayMismatch"]

"""Execution: the contract (``TxContext``, ``Receipt``, ``BlockOutput``) and every executor."""

from .contract import BlockEnv, BlockOutput, Event, ExecStats, Receipt, Runtime, StateView, TxContext
from .sequential import SequentialExecutor

__all__ = [
    "BlockEnv",
    "BlockOutput",
    "Event",
    "ExecStats",
    "Receipt",
    "Runtime",
    "SequentialExecutor",
    "StateView",
    "TxContext",
]

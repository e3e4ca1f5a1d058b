"""Typed aliases shared by every layer.

Names follow the Block-STM paper: a transaction is known by its position in the block
(``TxnIndex``); each (re-)execution of it is an ``Incarnation``; the pair is a ``Version``.
Keys and values of the state are raw bytes: the layers above choose their encodings.
"""

from typing import NewType

TxnIndex = NewType("TxnIndex", int)
Incarnation = NewType("Incarnation", int)
Version = tuple[int, int]  # (txn_idx, incarnation)
Key = bytes
Value = bytes
#: The longest state key: LMDB's default maximum key size. Keys an application derives are far
#: shorter; the ones a sender declares (``transaction.AccessList``) are checked against it.
MAX_KEY_BYTES = 511
Height = NewType("Height", int)

#: The write set of a transaction or a block: ``None`` marks a deletion.
WriteSet = dict[Key, Value | None]

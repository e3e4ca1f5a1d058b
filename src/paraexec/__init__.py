"""paraexec: a parallel transaction execution engine with a perpetual-futures exchange.

Every executor produces exactly the result of running the block's transactions one by one
in block order (same receipts, same state root). See ``paraexec.execution.sequential`` for
the specification the fast executors are checked against.
"""

__version__ = "0.1.0"

"""Block-STM (Gelashvili et al., PPoPP'23) on threads: MVMemory, the collaborative scheduler, the executor.

- ``mvmemory``:  multi-version memory keyed by (key, txn_idx), ESTIMATE markers, delta entries.
- ``scheduler``: execution_idx / validation_idx / num_active_tasks, statuses and dependencies.
- ``executor``:  the worker loop, the recording TxContext, the lazy commit; ``BlockSTMExecutor``.

Importing the package registers the executor as ``"blockstm"`` (``make_executor("blockstm", w)``).
"""

from ..registry import register
from .executor import BlockSTMContext, BlockSTMExecutor
from .mvmemory import NOT_FOUND, Dependency, MVMemory, Resolved, Unresolved, Versioned
from .scheduler import Scheduler, TxnStatus

register("blockstm", lambda workers: BlockSTMExecutor(workers))

__all__ = [
    "NOT_FOUND",
    "BlockSTMContext",
    "BlockSTMExecutor",
    "Dependency",
    "MVMemory",
    "Resolved",
    "Scheduler",
    "TxnStatus",
    "Unresolved",
    "Versioned",
]

"""The collaborative scheduler of Block-STM (Gelashvili et al., PPoPP'23, Algorithms 4-5).

Threads do not own transactions: they repeatedly ask the scheduler for the next *task*, either
executing a version ``(txn_idx, incarnation)`` or validating one. Two indices, both only ever
fetch-and-incremented or lowered, define the work left:

- ``execution_idx``: the lowest transaction that may still need an execution;
- ``validation_idx``: the lowest transaction that may still need a validation.

``next_task`` prefers the lower of the two, so work proceeds close to block order and few
transactions are speculative at once. Each transaction has a status guarded by its lock:

    READY_TO_EXECUTE(i) --try_incarnate--> EXECUTING(i) --finish_execution--> EXECUTED(i)
    EXECUTING(i) --add_dependency--> ABORTING(i)              (read an ESTIMATE; waits on writer)
    EXECUTED(i) --try_validation_abort--> ABORTING(i)         (validation failed)
    ABORTING(i) --set_ready_status--> READY_TO_EXECUTE(i + 1)

An aborted transaction lowers ``validation_idx`` to ``txn_idx + 1`` (everything above it may
have read its writes, now ESTIMATEs); a finished execution that wrote a new location lowers it
to ``txn_idx`` (readers above may have missed the new write), otherwise only the transaction
itself is validated. A transaction that read an ESTIMATE of ``blocking`` parks in
``blocking``'s dependency list and is made ready again (``resume_dependencies``, which lowers
``execution_idx``) when ``blocking`` finishes re-executing.

Termination: the block is done when both indices are past the end and no task is in flight
(``num_active_tasks`` = 0); every index decrease happens while its thread still counts as
active, so nothing can lower an index afterwards. The paper reads the three atomics one by one
and needs ``decrease_cnt`` to detect a decrease between the reads; here every counter update and
the done check run under one small lock (``_counters``), so the check reads one consistent
snapshot (``decrease_cnt`` is still kept, as a statistic). The lock gives the same sequentially
consistent behaviour on GIL and free-threaded builds. Per-transaction locks guard status and dependencies;
``add_dependency`` holds the blocking transaction's lock and then the waiting transaction's,
always lower index first, so there is no lock cycle.

A ``halt`` (a bug in a worker, not a transaction's exception) marks the scheduler done so every
thread stops.
"""

from __future__ import annotations

import threading
from enum import IntEnum

from ...errors import InvariantViolation
from ...types import Version


class TxnStatus(IntEnum):
    READY_TO_EXECUTE = 0
    EXECUTING = 1
    EXECUTED = 2
    ABORTING = 3


class TaskKind(IntEnum):
    EXECUTION = 0
    VALIDATION = 1


Task = tuple[Version, TaskKind]

READY_TO_EXECUTE = TxnStatus.READY_TO_EXECUTE
EXECUTING = TxnStatus.EXECUTING
EXECUTED = TxnStatus.EXECUTED
ABORTING = TxnStatus.ABORTING
EXECUTION_TASK = TaskKind.EXECUTION
VALIDATION_TASK = TaskKind.VALIDATION


class Scheduler:
    """Hands out execution and validation tasks for one block (see module docstring)."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.execution_idx = 0
        self.validation_idx = 0
        self.decrease_cnt = 0
        self.num_active_tasks = 0
        self.done_marker = False
        self.halt_error: BaseException | None = None
        self._counters = threading.Lock()
        self._locks = [threading.Lock() for _ in range(block_size)]
        self._incarnation = [0] * block_size
        self._status = [READY_TO_EXECUTE] * block_size
        self._dependencies: list[list[int]] = [[] for _ in range(block_size)]

    # -- counters ---------------------------------------------------------------------------

    def _fetch_and_increment_execution_idx(self) -> int:
        with self._counters:
            idx = self.execution_idx
            self.execution_idx = idx + 1
            self.num_active_tasks += 1
            return idx

    def _fetch_and_increment_validation_idx(self) -> int:
        with self._counters:
            idx = self.validation_idx
            self.validation_idx = idx + 1
            self.num_active_tasks += 1
            return idx

    def _decrement_active(self) -> None:
        with self._counters:
            self.num_active_tasks -= 1
            if self.num_active_tasks < 0:
                raise InvariantViolation("num_active_tasks went negative")

    def decrease_execution_idx(self, target_idx: int) -> None:
        with self._counters:
            if target_idx < self.execution_idx:
                self.execution_idx = target_idx
            self.decrease_cnt += 1

    def decrease_validation_idx(self, target_idx: int) -> None:
        with self._counters:
            if target_idx < self.validation_idx:
                self.validation_idx = target_idx
            self.decrease_cnt += 1

    def done(self) -> bool:
        return self.done_marker

    def check_done(self) -> None:
        with self._counters:
            if min(self.execution_idx, self.validation_idx) >= self.block_size and self.num_active_tasks == 0:
                self.done_marker = True

    def halt(self, error: BaseException) -> None:
        """Stop every thread: a worker hit a bug (never a transaction's own exception)."""
        if self.halt_error is None:
            self.halt_error = error
        self.done_marker = True

    # -- statuses ---------------------------------------------------------------------------

    def status(self, txn_idx: int) -> tuple[int, TxnStatus]:
        with self._locks[txn_idx]:
            return self._incarnation[txn_idx], self._status[txn_idx]

    def try_incarnate(self, txn_idx: int) -> Version | None:
        """READY_TO_EXECUTE -> EXECUTING; releases the active task when it cannot."""
        if txn_idx < self.block_size:
            with self._locks[txn_idx]:
                if self._status[txn_idx] is READY_TO_EXECUTE:
                    self._status[txn_idx] = EXECUTING
                    return txn_idx, self._incarnation[txn_idx]
        self._decrement_active()
        return None

    def next_version_to_execute(self) -> Version | None:
        if self.execution_idx >= self.block_size:
            self.check_done()
            return None
        return self.try_incarnate(self._fetch_and_increment_execution_idx())

    def next_version_to_validate(self) -> Version | None:
        if self.validation_idx >= self.block_size:
            self.check_done()
            return None
        idx = self._fetch_and_increment_validation_idx()
        if idx < self.block_size:
            incarnation, status = self.status(idx)
            if status is EXECUTED:
                return idx, incarnation
        self._decrement_active()
        return None

    def next_task(self) -> Task | None:
        if self.validation_idx < self.execution_idx:
            version = self.next_version_to_validate()
            if version is not None:
                return version, VALIDATION_TASK
        else:
            version = self.next_version_to_execute()
            if version is not None:
                return version, EXECUTION_TASK
        return None

    def add_dependency(self, txn_idx: int, blocking_txn_idx: int) -> bool:
        """Park ``txn_idx`` until ``blocking_txn_idx`` re-executes; False if it already has."""
        if not blocking_txn_idx < txn_idx:
            raise InvariantViolation(f"txn {txn_idx} cannot depend on txn {blocking_txn_idx}")
        with self._locks[blocking_txn_idx]:
            if self._status[blocking_txn_idx] is EXECUTED:
                return False  # resolved before we locked: re-execute right away
            with self._locks[txn_idx]:
                self._must_be(txn_idx, EXECUTING)
                self._status[txn_idx] = ABORTING
            self._dependencies[blocking_txn_idx].append(txn_idx)
        self._decrement_active()  # the execution task ends here, without an output
        return True

    def _set_ready_status(self, txn_idx: int) -> None:
        with self._locks[txn_idx]:
            self._must_be(txn_idx, ABORTING)
            self._incarnation[txn_idx] += 1
            self._status[txn_idx] = READY_TO_EXECUTE

    def _resume_dependencies(self, dependent_txn_indices: list[int]) -> None:
        for dep_idx in dependent_txn_indices:
            self._set_ready_status(dep_idx)
        if dependent_txn_indices:
            self.decrease_execution_idx(min(dependent_txn_indices))

    def finish_execution(self, txn_idx: int, incarnation: int, wrote_new_location: bool) -> Task | None:
        """EXECUTING -> EXECUTED; wake dependents; maybe hand back the validation of this version."""
        with self._locks[txn_idx]:
            self._must_be(txn_idx, EXECUTING, incarnation)
            self._status[txn_idx] = EXECUTED
            dependents, self._dependencies[txn_idx] = self._dependencies[txn_idx], []
        self._resume_dependencies(dependents)
        if self.validation_idx > txn_idx:  # otherwise the index is already low enough
            if wrote_new_location:
                self.decrease_validation_idx(txn_idx)  # revalidate txn_idx and everything above
            else:
                return (txn_idx, incarnation), VALIDATION_TASK  # keeps the active task
        self._decrement_active()
        return None

    def try_validation_abort(self, txn_idx: int, incarnation: int) -> bool:
        """EXECUTED(incarnation) -> ABORTING; False when another thread got there first."""
        with self._locks[txn_idx]:
            if self._incarnation[txn_idx] == incarnation and self._status[txn_idx] is EXECUTED:
                self._status[txn_idx] = ABORTING
                return True
        return False

    def finish_validation(self, txn_idx: int, aborted: bool) -> Task | None:
        if aborted:
            self._set_ready_status(txn_idx)
            self.decrease_validation_idx(txn_idx + 1)  # higher transactions may have read its writes
            if self.execution_idx > txn_idx:  # otherwise the index is already low enough
                version = self.try_incarnate(txn_idx)
                if version is not None:
                    return version, EXECUTION_TASK  # keeps the active task
                return None  # try_incarnate released the active task
        self._decrement_active()
        return None

    def _must_be(self, txn_idx: int, status: TxnStatus, incarnation: int | None = None) -> None:
        if self._status[txn_idx] is not status or (
            incarnation is not None and self._incarnation[txn_idx] != incarnation
        ):
            raise InvariantViolation(
                f"txn {txn_idx}: expected {status.name}({incarnation}), "
                f"found {self._status[txn_idx].name}({self._incarnation[txn_idx]})"
            )

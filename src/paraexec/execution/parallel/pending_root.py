"""A block's state root returned pending while idle workers hash it (``ParallelExecutor._root``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import InvariantViolation
from ..contract import StateView
from ..sequential import finalize

if TYPE_CHECKING:
    from .executor import ParallelExecutor


class PendingRoot:
    """An in-process block's root while its helpers hash it (``ParallelExecutor._root``): the
    ``BlockOutput``'s pending root. Calling it waits for their replies and combines them with
    what is left to hash here; the result is computed once.

    The helpers hash against the block's pre-state snapshot, and so does this process (the
    store's read snapshot), so it must be called before the store moves past that state: the
    chain calls it inside the block's own LMDB write transaction. Called later, it raises
    ``InvariantViolation`` rather than hash against the wrong state. The executor drains it
    before its workers get any other message (``drain``): their replies come in order.
    """

    def __init__(
        self,
        executor: ParallelExecutor,
        finish: Callable[[], int | None],
        write_set: dict[bytes, bytes | None],
        state: StateView,
    ) -> None:
        self.executor = executor
        self.finish: Callable[[], int | None] | None = finish
        self.write_set = write_set
        self.state = state
        self.height = getattr(state, "height", None)
        self.generation = executor.generation
        self.result: tuple[int, bytes] | None = None
        #: told the seconds this process spent finishing the root (its share, the wait)
        self.on_done: Callable[[float], None] | None = None

    def _current(self) -> bool:
        """The store still holds the block's pre-state."""
        return getattr(self.state, "height", None) == self.height

    def __call__(self) -> tuple[int, bytes]:
        if self.result is not None:
            return self.result
        executor, finish, self.finish = self.executor, self.finish, None
        if executor._pending_root is self:
            executor._pending_root = None
        if not self._current():
            if finish is not None and executor.generation == self.generation:
                executor._restart()  # the helpers' reply is never read: replace them
            raise InvariantViolation("a pending state root was read after the store moved past its pre-state")
        started = time.perf_counter()
        if finish is None or executor.generation != self.generation:  # workers replaced: hash here
            self.result = finalize(self.write_set, self.state)
        else:
            self.result = executor._finish_root(finish, self.write_set, self.state)
        if self.on_done is not None:
            self.on_done(time.perf_counter() - started)
        return self.result

    def drain(self) -> None:
        """Finish now (the executor needs its workers), or, when the store already moved on
        (the caller never read this root), drop it and replace the workers."""
        if self._current():
            self()
        elif self.finish is not None and self.executor.generation == self.generation:
            self.finish = None
            self.executor._restart()

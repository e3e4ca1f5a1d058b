"""A runtime spec whose first build in each worker process fails (a transient error), for
``test_precheck``: importable by spawned workers, which unpickle it."""

from __future__ import annotations

import dataclasses
import multiprocessing
from typing import Any

from paraexec.execution.runtime import RuntimeSpec

_builds = 0


@dataclasses.dataclass(frozen=True)
class FlakySpec(RuntimeSpec):
    def build(self) -> Any:
        global _builds
        if multiprocessing.parent_process() is not None:
            _builds += 1
            if _builds == 1:
                raise MemoryError("transient failure building the runtime")
        return super().build()

"""Deterministic workload generators: seed in, signed blocks out.

Every workload offers the same small interface (``Workload``), so ``paraexec run`` and
``paraexec bench`` treat them alike:

- ``app_name`` and ``chain_id``: the chain the blocks are for;
- ``genesis_config()``: the application config of that chain's genesis;
- ``block(height, size, nonce_of)``: the signed transactions of block ``height``, about ``size``
  of them (market workloads add oracle updates and the like), nonces continuing from
  ``nonce_of(sender)`` (the chain's state) or from 0 on a fresh chain.

``make_workload(name, **params)`` builds one by name; parameters a workload does not take are
ignored, so a CLI can pass its whole option set (``accounts``, ``hot_ratio``, ``markets``...).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any, Protocol

#: The most accounts a workload is built with from the command line: every account's key is
#: derived and funded at genesis (a mistyped 1e9 spent minutes and gigabytes before a block).
MAX_ACCOUNTS = 1_000_000


class Workload(Protocol):
    app_name: str
    chain_id: str

    def genesis_config(self) -> dict[str, Any]: ...

    def block(self, height: int, size: int, nonce_of: Callable[[bytes], int] | None = None) -> list[bytes]: ...


@functools.cache
def workload_class(name: str) -> Callable[..., Workload]:
    """The class that builds workload ``name`` (imported on first use)."""
    if name == "transfers":
        from .transfers import TransferWorkload

        class Transfers(TransferWorkload):
            app_name = "transfers"

        return Transfers
    try:
        module, cls = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; known: {workload_names()}") from None
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)  # type: ignore[no-any-return]


#: name -> (module, class) of every workload but ``transfers`` (whose module has no ``app_name``).
WORKLOADS: dict[str, tuple[str, str]] = {
    "hotspot": ("hotspot", "HotspotWorkload"),
    "perps": ("perps", "PerpsWorkload"),
    "replay": ("replay", "ReplayWorkload"),
}

#: The parameter that sets a workload's contention (what the bench report plots speedup against).
CONTENTION_PARAM: dict[str, str] = {"transfers": "accounts", "hotspot": "hot_ratio", "perps": "markets"}


def workload_names() -> list[str]:
    return sorted(["transfers", *WORKLOADS])


def workload_params(name: str) -> set[str]:
    """The parameters workload ``name`` accepts."""
    return set(inspect.signature(workload_class(name)).parameters)


def make_workload(name: str, **params: Any) -> Workload:
    """The workload ``name`` built from the parameters it accepts (others are ignored)."""
    cls = workload_class(name)
    accepted = workload_params(name)
    return cls(**{k: v for k, v in params.items() if k in accepted and v is not None})

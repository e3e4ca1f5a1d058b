"""Applications by name. ``load_app`` is how runtimes (and worker processes) find them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..execution.application import Application


def _transfers(config: Mapping[str, Any]) -> Application:
    from .transfers import TransfersApp

    return TransfersApp(config)


def _exchange(config: Mapping[str, Any]) -> Application:
    from ..exchange.app import ExchangeApp  # type: ignore[import-not-found,unused-ignore]

    return ExchangeApp(config)  # type: ignore[no-any-return,unused-ignore]


APPS: dict[str, Callable[[Mapping[str, Any]], Application]] = {
    "transfers": _transfers,
    "exchange": _exchange,
}


def load_app(name: str, config: Mapping[str, Any] | None = None) -> Application:
    try:
        factory = APPS[name]
    except KeyError:
        raise ValueError(f"unknown application {name!r}; known: {sorted(APPS)}") from None
    return factory(config or {})

"""How every ``paraexec`` command refuses: one red line on stderr and an exit code, no traceback.

Results (tables, JSON) go to stdout and errors to stderr, so ``paraexec ... --json | jq`` reads
only results and a script sees why a command failed."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a user's error and exit with ``code``: 2 for a bad argument, 1 for a store, file or
    node that cannot be used. The message is printed as written (brackets in a path or an
    exception's text are not read as markup)."""
    err_console.print(f"[red]{escape(message)}", highlight=False)
    raise typer.Exit(code)


def must_hold_chain(data: Path) -> None:
    """Refuse (exit 1) a ``--data`` directory in which ``paraexec init`` or ``run`` made no chain
    (no ``data.mdb``, or an empty one: LMDB would answer it with "Bad file descriptor")."""
    database = data / "data.mdb"
    if not database.is_file() or database.stat().st_size == 0:
        fail(f"{data} holds no chain: run `paraexec init --data {data}` first")

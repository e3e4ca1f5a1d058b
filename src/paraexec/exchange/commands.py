"""``paraexec vectors run PATH...``: run exchange test vectors, one pass/fail line per vector."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    vectors = typer.Typer(help="Exchange test vectors (JSON scenarios with expected results).", no_args_is_help=True)

    @vectors.command("run")
    def run(paths: Annotated[list[Path], typer.Argument(help="vector files or directories")]) -> None:
        """Run vectors; exit 1 if any fails."""
        from ..cli_errors import fail
        from .vectors import load_vector, run_vector, vector_files

        files = vector_files(paths)
        if not files:
            fail("no vectors found", 2)
        failed = 0
        for path in files:
            try:
                problems = run_vector(load_vector(path))
            except Exception as exc:  # a crashing vector is a failing vector, reported as such
                problems = [f"error: {type(exc).__name__}: {exc}"]
            if problems:
                failed += 1
                console.print(f"[red]FAIL[/] {path}")
                for problem in problems:
                    console.print(f"      {problem}", markup=False)
            else:
                console.print(f"[green]pass[/] {path}")
        console.print(f"{len(files) - failed} passed, {failed} failed")
        if failed:
            raise typer.Exit(1)

    app.add_typer(vectors, name="vectors")

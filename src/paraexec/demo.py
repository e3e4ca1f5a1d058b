"""`make demo`: a small but real transfers chain on the LMDB default store, then a verified replay."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from typer.testing import CliRunner  # noqa: F401  (kept light: we call the CLI app in-process)

from .cli import app


def main() -> int:
    data = Path(".demo-data")
    shutil.rmtree(data, ignore_errors=True)
    steps = [
        ["run", "--data", str(data), "--accounts", "1000", "--block-size", "2000", "--blocks", "5", "--executor", "sequential"],
        ["replay", "--data", str(data), "--executor", "sequential"],
        ["inspect", "--data", str(data)],
    ]
    for argv in steps:
        print(f"\n$ paraexec {' '.join(argv)}")
        try:
            app(argv, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                return int(exc.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())

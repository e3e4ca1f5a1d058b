#!/usr/bin/env bash
# Instructions executed by one pass of the perps blocks (3 x 3,000 transactions, 8 markets,
# sequential, no signatures, in-memory store): callgrind's total for 1 pass minus that for 0
# passes (imports, genesis, block generation). On a shared 2-core VM the wall clock of the same
# pass moves by +-15-30%; the instruction count moves by well under 1%, so A/B a change of the
# execution code with this, and confirm it with `paraexec bench`. Needs valgrind (apt install
# valgrind); takes about a minute and a half. Usage: bash bench/icount.sh [SRC_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-src}
PY=.venv/bin/python
command -v valgrind >/dev/null || { echo "valgrind not found (apt install valgrind)" >&2; exit 1; }
total() {
  local out
  out=$(PYTHONPATH="$SRC" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$PY" bench/icount.py "$1" 2>&1)
  echo "$out" | grep -E '^[0-9a-f]{16}$' >&2 || true
  echo "$out" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
setup=$(total 0)
one=$(total 1)
echo "instructions per pass: $((one - setup)) (setup $setup)"

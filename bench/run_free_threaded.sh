#!/usr/bin/env bash
# Block-STM's threads on a free-threaded CPython (PEP 703, the GIL disabled): the runs behind the
# "free-threaded CPython" section of bench/RESULTS.md. Usage, from anywhere:
#
#     bash bench/run_free_threaded.sh /path/to/python3.14t
#
# The interpreter must be a free-threaded build (python.org's installers offer one; from source:
# ./configure --disable-gil && make && make install). The script makes a virtual environment for it
# in .venv-ft (once), installs the project there, and writes JSON to bench/out/ft-*.json.
#
# PYTHON_GIL=0: py-lmdb (3.0) does not declare that it runs without the GIL, and importing it would
# turn the GIL back on for the whole process (CPython warns when it does). Every run here uses the
# in-memory store, so LMDB is imported but never called. A node on such a build keeps the GIL
# (run it without PYTHON_GIL=0): its threads share the LMDB environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:?usage: bash bench/run_free_threaded.sh /path/to/free-threaded/python}
"$PY" -c 'import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)' \
  || { echo "$PY is not a free-threaded build (Py_GIL_DISABLED is not set)" >&2; exit 2; }
VERSION='import sys; print(sys.version)'
if [ ! -x .venv-ft/bin/paraexec ] || [ "$(.venv-ft/bin/python -c "$VERSION")" != "$("$PY" -c "$VERSION")" ]; then
  rm -rf .venv-ft  # missing, or made by another interpreter
  "$PY" -m venv .venv-ft
  .venv-ft/bin/python -m pip install -q --prefer-binary -e .
fi
OUT=bench/out
mkdir -p "$OUT"
PX="env PYTHON_GIL=0 .venv-ft/bin/paraexec bench --store memory --no-progress --aa"
EXE=sequential,blockstm,adaptive
# Block-STM paper transfers, signatures already verified, then checked in execution
$PX --workload transfers --accounts 10000,1000,100,10,2 --block-size 10000 --blocks 2 --executors $EXE \
  --workers 1,2 --repeat 5 --no-verify-signatures --json $OUT/ft-transfers-noverify.json
$PX --workload transfers --accounts 10000,100,2 --block-size 10000 --blocks 2 --executors $EXE \
  --workers 1,2 --repeat 5 --json $OUT/ft-transfers.json
# perps, 8 markets, price shock: end to end, then signatures already verified
$PX --workload perps --markets 8 --shock-at 2 --block-size 3000 --blocks 3 --executors $EXE \
  --workers 1,2 --repeat 5 --json $OUT/ft-perps.json
$PX --workload perps --markets 8 --shock-at 2 --block-size 3000 --blocks 3 --executors $EXE \
  --workers 1,2 --repeat 5 --no-verify-signatures --json $OUT/ft-perps-noverify.json
# the effect behind blockstm's numbers, alone: threads writing shared dicts and lists
.venv-ft/bin/python bench/ft_sharing.py

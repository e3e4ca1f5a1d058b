#!/usr/bin/env bash
# Scaling runs for issue 4's "workers 1, 2, 4, 8, 16" table, sized for the device machine's
# budget (one call; an estimate of a few minutes on 16 cores, not yet measured there). The same command lines work on any machine;
# the JSON records the machine (cores, model) it ran on, and bench/to_markdown.py turns it into
# the RESULTS.md tables.
#
# On the device machine (no network, Python 3.12 with typer/rich/matplotlib/numpy): first run
# `bash bench/fetch_device_wheels.sh` here, then call the device with carry [".whl"] and the
# command `OUT=$OUT bash bench/run_scaling.sh`; the JSON comes back under the reply's files_at.
# Here: `make install && OUT=bench/out bash bench/run_scaling.sh` (WORKERS and REPEAT override).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
WORKERS=${WORKERS:-1,2,4,8,16}
REPEAT=${REPEAT:-3}
mkdir -p "$OUT"
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=${PYTHON:-python3}
  if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/paraexec-site .whl/*.whl
    export PYTHONPATH=/tmp/paraexec-site:src
  else
    export PYTHONPATH=src
  fi
fi
export PYTHONUNBUFFERED=1
"$PY" -c 'import os, platform, sys; print(platform.node(), os.cpu_count(), "cores,", sys.version.split()[0])'
PX=("$PY" -m paraexec)
EXE=sequential,parallel,adaptive

# Block-STM paper workload at low contention, end to end (signatures checked) and without signatures.
"${PX[@]}" bench --workload transfers --accounts 10000 --block-size 10000 --blocks 3 --executors $EXE \
  --workers "$WORKERS" --repeat "$REPEAT" --json "$OUT/scaling-transfers-e2e.json"
"${PX[@]}" bench --workload transfers --accounts 10000 --block-size 10000 --blocks 2 --executors $EXE \
  --workers "$WORKERS" --repeat "$REPEAT" --no-verify-signatures --json "$OUT/scaling-transfers-noverify.json"
# perps, 8 markets, price shock
"${PX[@]}" bench --workload perps --accounts 1000 --markets 8 --shock-at 2 --block-size 3000 --blocks 3 \
  --executors $EXE --workers "$WORKERS" --repeat "$REPEAT" --json "$OUT/scaling-perps.json"
for f in "$OUT"/scaling-*.json; do "$PY" bench/to_markdown.py "$f" > "${f%.json}.md"; done

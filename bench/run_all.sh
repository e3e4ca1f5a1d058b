#!/usr/bin/env bash
# The benchmark runs behind bench/RESULTS.md. Run from the project root after `make install`;
# outputs (JSON + HTML reports) go to bench/out/. Each line is one `paraexec bench` run: every
# executor on identical blocks, medians of --repeat runs, ratios against sequential measured in the
# same run, the machine recorded in the JSON. `--aa` adds a second sequential executor timed like the
# others (row `sequential-aa`): its speedup is 1.0 but for the box's noise, the floor every other
# ratio of that table must clear.
set -euo pipefail
cd "$(dirname "$0")/.."
PX=.venv/bin/paraexec
OUT=bench/out
mkdir -p "$OUT"
EXE=sequential,parallel,blockstm,adaptive
# the transfers runs also show the worker plan alone (`parallel` without its time guard)
EXT=$EXE,parallel-workers

# Block-STM paper workload: transfers, block size 10,000, accounts 2..10,000; end to end (signatures checked).
# 4 blocks a pass: each block is produced knowing the next one (idle workers check its signatures
# ahead), so the first block of a pass shows the cold start and the others the steady state.
$PX bench --workload transfers --accounts 2,10,100,1000,10000 --block-size 10000 --blocks 4 \
  --executors $EXT --workers 1,2 --repeat 5 --aa --json $OUT/transfers-e2e.json --report $OUT/transfers-e2e.html
# the same with signatures already verified (execution + commit + root only)
$PX bench --workload transfers --accounts 2,10,100,1000,10000 --block-size 10000 --blocks 2 \
  --executors $EXT --workers 1,2 --repeat 9 --aa --no-verify-signatures --json $OUT/transfers-noverify.json --report $OUT/transfers-noverify.html
# declared access lists
$PX bench --workload transfers --accounts 10000,2 --declare-access --block-size 10000 --blocks 2 \
  --executors sequential,access-list --workers 2 --repeat 5 --aa --json $OUT/transfers-access.json
# perps market simulation, 8 markets, price shock
$PX bench --workload perps --accounts 1000 --markets 8 --shock-at 2 --block-size 3000 --blocks 3 \
  --executors $EXE --workers 2 --repeat 11 --aa --json $OUT/perps.json --report $OUT/perps.html
# the same perps blocks with signatures already verified: what is left is execution, commit and root,
# so this shows how much of the perps speedup is parallel execution rather than parallel signature checks
$PX bench --workload perps --accounts 1000 --markets 8 --shock-at 2 --block-size 3000 --blocks 3 \
  --executors $EXE,parallel-workers --workers 2 --repeat 7 --aa --no-verify-signatures --json $OUT/perps-noverify.json
# real Binance BTCUSDT replay (one hot market)
$PX bench --workload replay --accounts 200 --block-size 3000 --blocks 3 \
  --executors $EXE --workers 2 --repeat 11 --aa --json $OUT/replay.json --report $OUT/replay.html
# commit + state-root cost per written key (1,000,000-key state, 10,000-transfer blocks)
$PX bench-commit --state-keys 1000000 --block-txs 10000 --processes 2 --repeat 5 --json $OUT/commit.json

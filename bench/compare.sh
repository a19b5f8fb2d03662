#!/usr/bin/env bash
# ix beside graphile-worker, pg-boss and the pgbench bound (limit/run.sh: PostgreSQL doing only a
# job's SQL) on the same PostgreSQL, interleaved, RUNS rounds (default 3). Prints one JSON line a
# run, labelled, to stdout and to bench/results/, then each figure's median and ix's ratios to
# graphile-worker and to the bound.
# Usage: bench/compare.sh   (needs ../shared/bench-peers beside this checkout, and PGHOST etc.)
# Env: RUNS (3), PEERS_DIR (../shared/bench-peers), PGHOST/PGPORT/PGUSER (127.0.0.1:5432, postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
peers_src="${PEERS_DIR:-../shared/bench-peers}"
peers="$(mktemp -d)/bench-peers"
cp -r "$peers_src" "$peers" && chmod -R u+w "$peers"
(cd "$peers" && npm ci --no-audit --no-fund >/dev/null)
npm run build --silent
mkdir -p bench/results
out="bench/results/compare-$(date +%Y%m%d-%H%M%S).jsonl"
pgurl="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}"
label() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s.trim().split("\n").pop());r.label=process.argv[1];console.log(JSON.stringify(r))})' "$1"; }
for i in $(seq 1 "$RUNS"); do
  (cd "$peers" && GW_BATCHING=1 BENCH_QUIET=1 node bench-graphile-worker.js) | label "graphile-worker batching" | tee -a "$out"
  (cd "$peers" && BOSS_BATCH=1000 BENCH_QUIET=1 node bench-pgboss.js) | label "pg-boss batchSize=1000" | tee -a "$out"
  node --import tsx bench/worker.ts 2>/dev/null | label "ix prefetch=1000" | tee -a "$out"
  PGURL="$pgurl" bash "$peers/limit/run.sh" | label "pgbench bound" | tee -a "$out"
done
node bench/compare-summary.mjs "$out"
echo "results: $out" >&2

#!/usr/bin/env bash
# ix beside graphile-worker and pg-boss on the same PostgreSQL, interleaved, RUNS rounds
# (default 2). Prints one JSON line a run, labelled, to stdout and to bench/results/.
# Usage: bench/compare.sh   (needs ../shared/bench-peers beside this checkout, and PGHOST etc.)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-2}"
peers_src="${PEERS_DIR:-../shared/bench-peers}"
peers="$(mktemp -d)/bench-peers"
cp -r "$peers_src" "$peers" && chmod -R u+w "$peers"
(cd "$peers" && npm ci --no-audit --no-fund >/dev/null)
mkdir -p bench/results
out="bench/results/compare-$(date +%Y%m%d-%H%M%S).jsonl"
label() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s.trim().split("\n").pop());r.label=process.argv[1];console.log(JSON.stringify(r))})' "$1"; }
for i in $(seq 1 "$RUNS"); do
  (cd "$peers" && GW_BATCHING=1 BENCH_QUIET=1 node bench-graphile-worker.js) | label "graphile-worker batching" | tee -a "$out"
  (cd "$peers" && BOSS_BATCH=1000 BENCH_QUIET=1 node bench-pgboss.js) | label "pg-boss batchSize=1000" | tee -a "$out"
  node --import tsx bench/worker.ts 2>/dev/null | label "ix prefetch=1000" | tee -a "$out"
done
echo "results: $out" >&2

#!/usr/bin/env bash
# bench/fair.ts on this tree and on BASE (default: the last commit with the oldest-first claim),
# interleaved, ROUNDS rounds (default 3). Prints one labelled JSON line a run, to stdout and to
# bench/results/. Usage: bench/fair.sh   (env as bench/fair.ts: FLOOD, C, PIPELINE_MS, …)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
BASE="${BASE:-fc205fd}"
base="$(mktemp -d)/base"
git worktree add -q --detach "$base" "$BASE"
trap 'git worktree remove --force "$base"' EXIT
ln -s "$PWD/node_modules" "$base/node_modules"
cp bench/fair.ts "$base/bench/fair.ts"
mkdir -p bench/results
out="bench/results/fair-$(date +%Y%m%d-%H%M%S).jsonl"
label() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s.trim().split("\n").pop());r.label=process.argv[1];console.log(JSON.stringify(r))})' "$1"; }
for i in $(seq 1 "$ROUNDS"); do
  node --import tsx bench/fair.ts 2>/dev/null | label "fair claim ($(git rev-parse --short HEAD))" | tee -a "$out"
  (cd "$base" && node --import tsx bench/fair.ts 2>/dev/null) | label "oldest first ($BASE)" | tee -a "$out"
done
echo "results: $out" >&2

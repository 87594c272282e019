#!/usr/bin/env bash
# Regenerates reports/examples/: scenarios/smoke.toml against the KV reference Worker (before
# its control plane moved out of KV) and against the D1/Durable Objects one (after), and their
# comparison. Needs what a Worker run needs (Node.js 20, npm); takes about a minute.
#
#   scripts/regenerate-examples.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release
bin=target/release/kvchaos
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ex=reports/examples

run() { # NAME WORKER
  local rc=0
  "$bin" run scenarios/smoke.toml --worker "mock/workers/$2" --no-tui --out "$tmp/$1" || rc=$?
  # 0 pass, 1 a threshold or check failed (expected for the KV Worker); anything else is not a
  # run to show.
  if [ "$rc" -gt 1 ]; then
    echo "error: the $1 run ended with exit code $rc" >&2
    exit "$rc"
  fi
  local dir
  dir=$(ls -d "$tmp/$1"/smoke-*)
  rm -rf "${ex:?}/$1"
  mkdir -p "$ex/$1"
  # worker.log stays out: it holds local paths and ports and nothing the reports need.
  cp "$dir"/{summary.json,report.md,report.html,junit.xml,latency.hlog,timeseries.csv,history.jsonl,mockkv.json} "$ex/$1/"
}

run before-kv-control-plane kv-control-plane
run after-d1-do-control-plane d1-do-control-plane

rc=0
"$bin" compare "$ex/before-kv-control-plane" "$ex/after-d1-do-control-plane" \
  --fail-if verdicts --fail-if 'error_rate +0pp' --fail-if 'kv_puts +0' --fail-if 'p99 +100%' \
  --html "$ex/compare.html" > "$ex/compare.md" || rc=$?
echo "compare exit code: $rc (0: every gate held, 1: a gate failed)"
[ "$rc" -le 1 ]

#!/usr/bin/env bash
# Runs the benchmark matrix of docs/benchmarks.md and prints it as a Markdown table.
#
#   bash cmd/ledgerbench/matrix.sh [POSTGRES_ADMIN_URL] [DURATION]
#
# POSTGRES_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable) names a
# server where the script may create and drop the database "ledgerbench" (a fresh one per run).
# Each line of results is also kept in $RESULTS (default ./ledgerbench-results.jsonl). Every run
# has its ledgerd in a child process (--server process), so that its CPU time per award is read
# apart from the load generator's; on PostgreSQL each run also reports the CPU of the database's
# backends and the bytes per award after VACUUM FULL. Every run ends with the invariant check
# (ledger.Verify): the script stops at the first run whose invariants do not hold.
set -euo pipefail
cd "$(dirname "$0")/../.."
ADMIN="${1:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
DURATION="${2:-5s}"
RESULTS="${RESULTS:-ledgerbench-results.jsonl}"
BENCH="$(mktemp -d)/ledgerbench"
go build -o "$BENCH" ./cmd/ledgerbench
PG="$(sed -E 's#^(postgres(ql)?://[^/]*)/[^?]*#\1/ledgerbench#' <<<"$ADMIN")"
: > "$RESULTS"

freshdb() { psql "$ADMIN" -qc "DROP DATABASE IF EXISTS ledgerbench WITH (FORCE)" -c "CREATE DATABASE ledgerbench" >/dev/null; }
run() { # run ENGINE ARGS...
  local engine=$1; shift
  local db=()
  if [ "$engine" = postgres ]; then freshdb; db=(--database "$PG"); fi
  echo "--- ledgerbench ${db[*]} $*" >&2
  "$BENCH" "${db[@]}" --server process --duration "$DURATION" --json "$@" | tee -a /dev/stderr | tail -n 1 >> "$RESULTS"
}

for engine in sqlite postgres; do
  for clients in 1 16 64 256; do
    run "$engine" --clients "$clients" --envelopes 1 --batching both
  done
  run "$engine" --clients 64 --envelopes 30 --batching both
  run "$engine" --clients 64 --envelopes 1 --release-ratio 0.2
  run "$engine" --clients 64 --envelopes 1 --hold-ratio 1                      # every award a hold, then its confirmation
  run "$engine" --clients 64 --envelopes 1 --hold-ratio 0.3 --payment-ratio 0.5 # awards, holds + confirmations, payments
  run "$engine" --clients 64 --envelopes 1 --log on                            # the transparency log on
  run "$engine" --clients 64 --envelopes 1 --log off                           # ... and off, right after
  run "$engine" --clients 4 --bulk 1000
done
run postgres --clients 64 --envelopes 1 --preload 1000000

"$BENCH" table < "$RESULTS"

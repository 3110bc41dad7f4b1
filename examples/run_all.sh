#!/usr/bin/env bash
# Runs every example client against a fresh ledgerd:
#   1. installs what the examples need, if missing: Debian's protoc, gRPC Python plugin and
#      python3-grpcio (apt-get, as root or through sudo), and the Node.js packages (npm ci, for
#      node and ts);
#   2. builds ledgerd and starts it on a free port of 127.0.0.1 with a new SQLite file;
#   3. runs examples/python, examples/node and examples/ts against it;
#   4. stops ledgerd, and exits 1 if any example failed.
#
#   bash examples/run_all.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

step() { printf '\n=== %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# Debian's python3-grpcio and python3-protobuf are installed for Debian's own Python, which is
# /usr/bin/python3; a `python3` found first on PATH (pyenv, a venv) may not have them.
python=/usr/bin/python3
apt_packages=(protobuf-compiler protobuf-compiler-grpc libprotobuf-dev python3-grpcio python3-protobuf)

step "what the examples need"
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "run_all.sh: not root and no sudo: install ${missing[*]} with apt-get" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Debian packages present: ${apt_packages[*]}"
fi
for cmd in go node npm "$python"; do
  command -v "$cmd" >/dev/null || { echo "run_all.sh: $cmd is missing" >&2; exit 1; }
done
start=$(now)
(cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
(cd examples/ts && npm ci --no-audit --no-fund --loglevel=error)
echo "npm ci: $(since "$start")"

tmp="$(mktemp -d)"
ledgerd_pid=""
stop_ledgerd() {
  if [ -n "$ledgerd_pid" ] && kill -0 "$ledgerd_pid" 2>/dev/null; then
    kill -TERM "$ledgerd_pid"
    for _ in $(seq 1 100); do kill -0 "$ledgerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$ledgerd_pid" 2>/dev/null && kill -KILL "$ledgerd_pid"
    wait "$ledgerd_pid" 2>/dev/null || true
  fi
  ledgerd_pid=""
}
cleanup() {
  stop_ledgerd
  rm -rf "$tmp"
}
trap cleanup EXIT

step "ledgerd"
start=$(now)
go build -o "$tmp/ledgerd" ./cmd/ledgerd
echo "built in $(since "$start")"
# Port 0: the system picks a free port, which ledgerd logs as `msg="ledgerd listening" address=...`.
# LEDGER_* variables of the caller's environment (a tokens file, a database URL...) are left out:
# the examples call a plaintext ledgerd without credentials, as on loopback by default.
ledgerd_env=()
while IFS= read -r v; do ledgerd_env+=(-u "$v"); done < <(compgen -e | grep '^LEDGER_' || true)
# The transparency log on (docs/transparency.md), a checkpoint at every entry, for transparency.py.
"$tmp/ledgerd" log-key generate --origin run-all.example/log --out "$tmp/log.key" >"$tmp/log.vkey"
env "${ledgerd_env[@]}" "$tmp/ledgerd" --listen 127.0.0.1:0 --database "$tmp/ledger.db" --log-format text --log-level info \
  --log-key "$tmp/log.key" --checkpoint-every 1 \
  2>"$tmp/ledgerd.log" &
ledgerd_pid=$!
address=""
for _ in $(seq 1 600); do
  address="$(sed -n 's/.*msg="ledgerd listening" address=\([^ ]*\).*/\1/p' "$tmp/ledgerd.log" | head -n1)"
  [ -n "$address" ] && break
  if ! kill -0 "$ledgerd_pid" 2>/dev/null; then
    echo "run_all.sh: ledgerd stopped before listening:" >&2
    cat "$tmp/ledgerd.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$address" ]; then
  echo "run_all.sh: ledgerd did not listen within 60 s:" >&2
  cat "$tmp/ledgerd.log" >&2
  exit 1
fi
echo "ledgerd listening on $address (SQLite file $tmp/ledger.db)"

failed=()
run_example() {
  local name="$1"
  shift
  step "example: $name"
  local t
  t=$(now)
  if "$@"; then
    echo "--- $name: passed in $(since "$t")"
  else
    echo "--- $name: FAILED (exit $?) in $(since "$t")"
    failed+=("$name")
  fi
}
python_example() {
  bash examples/python/generate.sh && "$python" examples/python/client.py "$address" &&
    "$python" examples/python/transparency.py "$address" "$(cat "$tmp/log.vkey")"
}
node_example() {
  node examples/node/client.js "$address"
}
ts_example() {
  # The committed gen/ must be what protoc-gen-es makes of the .proto files today.
  local fresh
  fresh="$(mktemp -d)"
  sed "s|out: examples/ts/gen|out: $fresh|" examples/ts/buf.gen.yaml >"$fresh.yaml"
  go tool -modfile=tools/go.mod buf generate --template "$fresh.yaml"
  if ! diff -r "$fresh" examples/ts/gen >/dev/null; then
    echo "examples/ts/gen is stale: run 'go tool -modfile=tools/go.mod buf generate --template examples/ts/buf.gen.yaml' and commit" >&2
    rm -rf "$fresh" "$fresh.yaml"
    return 1
  fi
  rm -rf "$fresh" "$fresh.yaml"
  (cd examples/ts && npm run --silent build) && node examples/ts/dist/client.js "$address"
}
run_example python python_example
run_example node node_example
run_example typescript ts_example

step "stopping ledgerd"
stop_ledgerd
if grep -q 'level=ERROR' "$tmp/ledgerd.log"; then
  echo "ledgerd logged errors:"
  grep 'level=ERROR' "$tmp/ledgerd.log"
  failed+=("ledgerd log")
fi

step "summary"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "every example passed"

#!/usr/bin/env bash
# Generates the Python stubs of the budget ledger's API into examples/python/gen/ (not committed:
# run this again after the .proto files change), and checks the shipped deps/ (committed). Uses Debian's protoc and gRPC plugin, the
# versions that match Debian's python3-grpcio and python3-protobuf:
#   apt-get install -y protobuf-compiler protobuf-compiler-grpc libprotobuf-dev python3-grpcio python3-protobuf
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
gen="$here/gen"

protoc="$(command -v protoc || true)"
plugin="$(command -v grpc_python_plugin || true)"
if [ -z "$protoc" ] || [ -z "$plugin" ]; then
  echo "generate.sh: protoc and grpc_python_plugin are needed: apt-get install -y protobuf-compiler protobuf-compiler-grpc libprotobuf-dev" >&2
  exit 1
fi
# The well-known types (google/protobuf/*.proto) come with libprotobuf-dev.
wkt=/usr/include
if [ ! -f "$wkt/google/protobuf/timestamp.proto" ]; then
  echo "generate.sh: $wkt/google/protobuf/timestamp.proto is missing: apt-get install -y libprotobuf-dev" >&2
  exit 1
fi

deps="$here/deps"
cd "$root"

# The API's dependencies, protovalidate's validate.proto and googleapis' google/api annotations,
# are shipped generated in deps/ (committed): their options are not used by a client, but the
# API's generated modules import them, and without them Python fails with "No module named
# 'buf'". `generate.sh --deps` regenerates them; otherwise this checks that they are up to date.
gen_deps() {
  "$protoc" -I third_party -I "$wkt" --python_out="$1" \
    third_party/buf/validate/validate.proto third_party/google/api/*.proto
}
if [ "${1:-}" = "--deps" ]; then
  rm -rf "$deps/buf" "$deps/google"
  gen_deps "$deps"
  echo "regenerated ${deps#"$root"/}"
  exit 0
fi
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
gen_deps "$fresh"
if ! diff -r --exclude=README.md --exclude=__pycache__ "$fresh" "$deps" >/dev/null; then
  echo "generate.sh: examples/python/deps/ is not what $("$protoc" --version) makes of third_party/: run 'bash examples/python/generate.sh --deps' and commit" >&2
  exit 1
fi

rm -rf "$gen"
mkdir -p "$gen"
# The API, with gRPC stubs, and the google.rpc error details the client decodes. The Python
# packages are namespace packages: no __init__.py needed, and gen/google/rpc and deps/google/api
# merge with Debian's google.protobuf.
"$protoc" \
  -I proto -I third_party -I examples/protos -I "$wkt" \
  --python_out="$gen" \
  --grpc_python_out="$gen" --plugin=protoc-gen-grpc_python="$plugin" \
  proto/budgetledger/v1/*.proto
"$protoc" \
  -I proto -I third_party -I examples/protos -I "$wkt" \
  --python_out="$gen" \
  examples/protos/google/rpc/status.proto examples/protos/google/rpc/error_details.proto
echo "generated into ${gen#"$root"/}:"
(cd "$gen" && find . -name '*.py' | sort | sed 's|^\./|  |')

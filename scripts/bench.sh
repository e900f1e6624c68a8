#!/usr/bin/env bash
# `make bench`: every benchmark, from a clean clone.
#  1. Platform under load (bench/cmd/parleybench): the services as separate processes
#     (bin/auth, bin/chat, bin/inference x N, bin/gateway) with NATS and a private MariaDB,
#     a fake provider (bin/fakehf), simulated users through the HTTP API; results in
#     .data/bench/results/results.{md,json} and docs/benchmarks.md "Platform under load".
#     PARLEY_BENCH_ARGS adds flags, e.g. PARLEY_BENCH_ARGS="-users 1000 -workers 1 -profile".
#  2. Chat history at scale (tests/bench/chathistory), when present.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

# 1,000 users hold ~2,000 client sockets, as many in the gateway, and more in NATS.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "== build (make build, fakehf, parleybench, parleysvc); open files limit $(ulimit -n)"
make --no-print-directory build >/dev/null
go build -o bin/ ./libs/devstack/cmd/fakehf ./bench/cmd/parleybench ./bench/cmd/parleysvc

out=".data/bench/results"
mkdir -p "$out"
echo "== platform under load"
# shellcheck disable=SC2086 # PARLEY_BENCH_ARGS is a list of flags
./bin/parleybench -bin bin -out "$out" ${PARLEY_BENCH_ARGS:-}
echo "(tables also in $out/results.md, raw figures in $out/results.json)"

if [ -d tests/bench/chathistory ] && [ "${PARLEY_BENCH_SKIP_HISTORY:-}" = "" ]; then
  echo "== chat history at scale"
  db=".data/bench/history-mysql"
  TEST_MYSQL_DSN=$(go run ./libs/devstack/cmd/devdb start "$db")
  export TEST_MYSQL_DSN
  trap 'go run ./libs/devstack/cmd/devdb stop "$db" >/dev/null 2>&1 || true' EXIT
  (cd tests && go test -run '^$' -bench ChatHistory -benchtime 200x -timeout 30m ./bench/chathistory)
fi

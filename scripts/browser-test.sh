#!/usr/bin/env bash
# Builds the web app and the launcher, starts the whole product on free ports with its
# own data directory (offline demo model, no HuggingFace token), runs the browser tests
# in headless Chromium against it, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

(cd web && npm run build)
go build -o bin/parley ./deploy/local/cmd/parley

dir=$(mktemp -d /tmp/parley-e2e.XXXXXX)
env -u HF_API_TOKEN -u OPENAI_BASE_URL -u DB_HOST -u NATS_URL PARLEY_DATA_DIR="$dir" PARLEY_NATS_PORT=0 GATEWAY_ADDR="127.0.0.1:0" \
  AUTH_ARGON2_MEMORY_KIB=8192 AUTH_ARGON2_TIME=1 ./bin/parley >"$dir/parley.log" 2>&1 &
pid=$!
stop() {
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  mariadb-admin --no-defaults --protocol=socket --socket="$dir/mysql/mysqld.sock" -uroot shutdown >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
for _ in $(seq 1 600); do
  if [ -s "$dir/url" ]; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$dir/parley.log"; echo "parley exited before it was ready" >&2; exit 1; fi
  sleep 0.2
done
[ -s "$dir/url" ] || { tail -50 "$dir/parley.log"; echo "parley not ready" >&2; exit 1; }
url=$(cat "$dir/url")
echo "parley under test at $url"
if ! (cd web && BASE_URL="$url" npm run e2e); then
  echo "--- parley log (tail)"; tail -80 "$dir/parley.log"
  exit 1
fi

#!/usr/bin/env bash
# `make test`: Go unit, component and end-to-end tests against a private MariaDB and
# embedded NATS servers, the web app's unit tests, and browser tests in headless Chromium
# against the whole product started with the one-process launcher.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

bash scripts/deps.sh

data=".data/test"
mkdir -p "$data"
TEST_MYSQL_DSN=$(go run ./libs/devstack/cmd/devdb start "$data/mysql")
export TEST_MYSQL_DSN
cleanup() { go run ./libs/devstack/cmd/devdb stop "$data/mysql" >/dev/null 2>&1 || true; }
trap cleanup EXIT

pkgs=$(go list -m -f '{{.Dir}}/...' | sed "s|^$PWD|.|")
echo "== go vet"
go vet $pkgs
echo "== go test"
go test -count=1 -timeout 25m $pkgs
echo "== Dockerfile lint"
bash scripts/lint-docker.sh

if [ -f web/package.json ]; then
  echo "== web unit tests"
  (cd web && npm test)
  echo "== browser tests"
  bash scripts/browser-test.sh
fi
echo "== all tests passed"

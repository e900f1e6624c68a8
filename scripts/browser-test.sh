#!/usr/bin/env bash
# Builds the web app and the launcher, then starts two copies of the whole product on free
# ports, each with its own throw-away data directory, and runs the browser tests in headless
# Chromium against them:
#
#   demo      the offline demo model (no HuggingFace token), words 60 ms apart so Stop and
#             resume always meet a running answer: e2e/app.test.mjs, then the long-chat
#             measurements of e2e/longchat.test.mjs (chats of 10 to 10,000 messages seeded
#             straight into the stack's private MariaDB).
#   provider  HuggingFace models served by the fake router (libs/devstack/cmd/fakehf), which
#             answers the first three chat requests with 429s (Retry-After, then backoff) and
#             echoes questions: e2e/provider.test.mjs (an answer that waits for a rate-limited
#             model, counts down and completes; Stop while waiting) and the typing-latency
#             measurement of the long-chat suite (a long Markdown answer streaming).
#
# E2E_SUITES     suites to run (default "app provider longchat")
# E2E_BENCH_FILE where the long-chat suite writes its figures (default .data/browser-bench.json)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export GOTOOLCHAIN=local
suites=" ${E2E_SUITES:-app provider longchat} "
want() { [[ "$suites" == *" $1 "* ]]; }

(cd web && npm run build)
go build -o bin/parley ./deploy/local/cmd/parley

work=$(mktemp -d /tmp/parley-e2e.XXXXXX)
go build -o "$work/fakehf" ./libs/devstack/cmd/fakehf

stop() {
  for f in "$work"/*.suite-pid; do
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for name in demo provider; do
    [ -f "$work/$name.pid" ] || continue
    local pid
    pid=$(cat "$work/$name.pid")
    kill -INT "$pid" 2>/dev/null || true
  done
  for name in demo provider; do
    [ -f "$work/$name.pid" ] || continue
    local pid
    pid=$(cat "$work/$name.pid")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    mariadb-admin --no-defaults --protocol=socket --socket="$work/$name/mysql/mysqld.sock" -uroot shutdown >/dev/null 2>&1 || true
  done
  if [ -f "$work/fakehf.pid" ]; then kill -INT "$(cat "$work/fakehf.pid")" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT

# The fake HuggingFace router: echoes the question (-tokens 0) quickly, and answers the
# first three chat requests with a 429 carrying Retry-After: 1 and two 429s without a
# hint (the worker's backoff, about 2 s then 4 s, which it waits outside its slot).
"$work/fakehf" -addr 127.0.0.1:0 -tokens 0 -ttft 100ms -gap 2ms -script 429-retry-after,429,429 \
  >"$work/fakehf.url" 2>"$work/fakehf.log" &
echo $! >"$work/fakehf.pid"
for _ in $(seq 1 100); do [ -s "$work/fakehf.url" ] && break; sleep 0.1; done
fake_url=$(head -1 "$work/fakehf.url")
[ -n "$fake_url" ] || { cat "$work/fakehf.log"; echo "fakehf did not start" >&2; exit 1; }

# start_stack NAME [VAR=value...]: the launcher with its own data directory $work/NAME.
start_stack() {
  local name=$1
  shift
  mkdir -p "$work/$name"
  env -u HF_API_TOKEN -u HF_CHAT_BASE_URL -u OPENAI_BASE_URL -u DB_HOST -u NATS_URL \
    PARLEY_DATA_DIR="$work/$name" PARLEY_NATS_PORT=0 GATEWAY_ADDR="127.0.0.1:0" OLLAMA_URL= \
    AUTH_ARGON2_MEMORY_KIB=8192 AUTH_ARGON2_TIME=1 "$@" ./bin/parley >"$work/$name.log" 2>&1 &
  echo $! >"$work/$name.pid"
}
wait_stack() {
  local name=$1 pid
  pid=$(cat "$work/$name.pid")
  for _ in $(seq 1 600); do
    if [ -s "$work/$name/url" ]; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then tail -50 "$work/$name.log"; echo "$name stack exited before it was ready" >&2; exit 1; fi
    sleep 0.2
  done
  [ -s "$work/$name/url" ] || { tail -50 "$work/$name.log"; echo "$name stack not ready" >&2; exit 1; }
}

start_stack demo INFERENCE_DEMO_WORD_DELAY=60ms
start_stack provider HF_API_TOKEN=hf_fake_test_token HF_CHAT_BASE_URL="$fake_url" HF_API_MAX_TOKENS=8000
wait_stack demo
wait_stack provider
demo_url=$(cat "$work/demo/url")
provider_url=$(cat "$work/provider/url")
echo "parley under test: demo model at $demo_url, fake HuggingFace at $provider_url (router $fake_url)"

failed=()
# start_suite SUITE STACK [VAR=value...]: runs web's `npm run e2e:SUITE` in the background.
start_suite() {
  local suite=$1 stack=$2
  shift 2
  echo "$stack" >"$work/$suite.stack"
  (cd web && exec env "$@" npm run --silent "e2e:$suite") >"$work/$suite.out" 2>&1 &
  echo $! >"$work/$suite.suite-pid"
}
# finish_suite SUITE: waits for it and prints its report (and its stack's log tail if it failed).
finish_suite() {
  local suite=$1 stack
  stack=$(cat "$work/$suite.stack")
  local rc=0
  wait "$(cat "$work/$suite.suite-pid")" || rc=$?
  echo "=== browser suite: $suite (against the $stack stack)"
  cat "$work/$suite.out"
  if [ "$rc" -ne 0 ]; then
    failed+=("$suite")
    echo "--- $stack stack log (tail)"
    tail -80 "$work/$stack.log"
  fi
}
# app and provider wait on models and timers more than they compute, so they run side by
# side; the long-chat measurements run alone, so that nothing else competes with them.
if want app; then start_suite app demo BASE_URL="$demo_url"; fi
if want provider; then start_suite provider provider BASE_URL="$provider_url"; fi
if want app; then finish_suite app; fi
if want provider; then finish_suite provider; fi
if want longchat; then
  mkdir -p .data
  start_suite longchat demo BASE_URL="$demo_url" E2E_MYSQL_SOCKET="$work/demo/mysql/mysqld.sock" \
    E2E_PROVIDER_URL="$provider_url" E2E_BENCH_FILE="${E2E_BENCH_FILE:-$root/.data/browser-bench.json}"
  finish_suite longchat
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "browser suites failed: ${failed[*]}" >&2
  exit 1
fi
echo "browser suites passed:$suites"

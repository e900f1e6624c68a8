# Parley: `make run` starts the whole product, `make test` runs every test.
SHELL := /bin/bash
export GOTOOLCHAIN := local
export GOFLAGS := -buildvcs=false

# Every Go module of the workspace, as package patterns (./libs/events/... etc.).
GO_PKGS = $(shell go list -m -f '{{.Dir}}/...' | sed "s|^$(CURDIR)|.|")
WEB_SRC := $(shell find web/src web/public web/index.html web/package.json web/package-lock.json web/vite.config.ts -type f 2>/dev/null)

.PHONY: run build web test test-go test-web test-browser bench lint fmt clean

## run: build the web app if its sources changed, then start everything in one process.
run: web bin/parley
	./bin/parley

## build: the one-process launcher and the four service binaries.
build: bin/parley
	go build -o bin/ ./services/auth/cmd/auth ./services/chat/cmd/chat ./services/inference/cmd/inference ./services/gateway/cmd/gateway

bin/parley: FORCE
	go build -o bin/parley ./deploy/local/cmd/parley

## web: build the SPA into web/dist when its sources are newer than the build.
web: web/dist/index.html

web/dist/index.html: $(WEB_SRC)
	@if ! command -v npm >/dev/null; then echo "npm not found: the API runs, the web app is not built (install Node.js 20+ and npm)"; exit 0; fi; \
	if [ -f web/package.json ]; then cd web && { [ -d node_modules ] && [ ! package-lock.json -nt node_modules/.package-lock.json ] || npm ci --no-audit --no-fund; } && npm run build; fi

## test: every test, with a private MariaDB, embedded NATS and headless Chromium started here.
test:
	bash scripts/test.sh

## bench: benchmarks (see docs/benchmarks.md).
bench:
	bash scripts/bench.sh

lint:
	go vet $(GO_PKGS)
	@test -z "$$(gofmt -l $$(go list -m -f '{{.Dir}}'))" || { gofmt -l $$(go list -m -f '{{.Dir}}'); exit 1; }

fmt:
	gofmt -w $$(go list -m -f '{{.Dir}}')

clean:
	rm -rf bin web/dist

FORCE:

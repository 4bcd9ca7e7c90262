# The README's test command is `make test`.
GO ?= go

.PHONY: build test race lint tidy fuzz bench bench-smoke reliability reliability-ci release release-check

build:
	CGO_ENABLED=0 $(GO) build -o bin/chatd ./cmd/chatd

# test: formatting, vet, and every test with the race detector (fuzz seed
# corpora run as ordinary tests). The packages' tests first (a line per
# package), then cmd/chatd's end-to-end tests, the long part, a line per
# test as each ends, with the whole output of any that fails.
SHELL := /bin/bash
test: lint
	@echo "== go test -race: the packages"
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/cmd/chatd$$')
	@echo "== go test -race: cmd/chatd, end to end on real processes and sockets (several minutes)"
	set -o pipefail; $(GO) test -race -count=1 -timeout 20m -json ./cmd/chatd/ | $(GO) run ./internal/testprogress

race: test

# staticcheck is pinned and run with `go run`, so it needs no install step
# and stays out of go.mod.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
TAGS_ALL := reliability docker release

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags '$(TAGS_ALL)' ./...
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags '$(TAGS_ALL)' ./...

tidy:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

# fuzz: run every fuzz target of every package for FUZZTIME (default 30s);
# the targets are found with go test -list, so a new one is run without
# being listed here.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# bench: every benchmark (framing, sanitizing, formatting, the envelope,
# fan-out to N sessions) with allocations; docs/performance.md has figures.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# bench-smoke: every benchmark, briefly, so that they keep working; it never
# fails on a speed figure.
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime 100x -benchmem ./...

# reliability: the whole reliability suite at full scale (faults on process
# and docker compose clusters, abuse, a 10-minute soak); see
# docs/reliability.md. About half an hour; run as root for the
# vanished-client test.
reliability:
	CHATD_RELIABILITY=full $(GO) test -tags 'reliability docker' -count=1 -timeout 60m -run '^TestReliability' -v ./cmd/chatd/

# reliability-ci: the same suite in its bounded form (what CI runs).
reliability-ci:
	$(GO) test -tags 'reliability docker' -count=1 -timeout 20m -run '^TestReliability' -v ./cmd/chatd/

# release: static, reproducible binaries for linux, darwin and windows
# (archives with README, LICENSE and the third-party licenses), .debs for
# linux amd64 and arm64, and SHA256SUMS, in dist/ (deploy/release.sh).
# VERSION defaults to git describe.
release:
	deploy/release.sh

# release-check: lint the .debs and check the release: checksums, the
# archives' contents, each linux binary's `chatd version` (arm64 under
# qemu-aarch64 when present), the amd64 binary's start and handshake, the
# .deb's files.
release-check: release
	lintian --fail-on error,warning --pedantic --display-info dist/*.deb
	$(GO) test -tags release -count=1 -run '^TestRelease' -v ./cmd/chatd/

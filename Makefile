# The README's test command is `make test`.
GO ?= go

.PHONY: build test race lint tidy fuzz bench bench-smoke reliability reliability-ci

build:
	CGO_ENABLED=0 $(GO) build -o bin/chatd ./cmd/chatd

# test: formatting, vet, and every test with the race detector (fuzz seed
# corpora run as ordinary tests).
test: lint
	$(GO) test -race -count=1 -timeout 20m ./...

race: test

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

tidy:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

# fuzz: run each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzFramer$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzSanitize$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzJSONString$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./bus/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFast$$' -fuzztime $(FUZZTIME) ./bus/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFastTakesEncoded$$' -fuzztime $(FUZZTIME) ./bus/
	$(GO) test -run '^$$' -fuzz '^FuzzEncode$$' -fuzztime $(FUZZTIME) ./bus/
	$(GO) test -run '^$$' -fuzz '^FuzzCommand$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzWSMessage$$' -fuzztime $(FUZZTIME) ./gateway/

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

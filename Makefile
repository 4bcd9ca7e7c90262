# The README's test command is `make test`.
GO ?= go

.PHONY: build test race lint tidy fuzz bench

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
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./bus/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFast$$' -fuzztime $(FUZZTIME) ./bus/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFastTakesEncoded$$' -fuzztime $(FUZZTIME) ./bus/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

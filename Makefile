# Tranche: the two commands a newcomer needs are `make run` and `make test`.
# bash for `set -o pipefail`: go test's status survives testsum's pipe.
SHELL     := /bin/bash
GO        ?= go
DATA      ?= .tranche
ADDR      ?= 127.0.0.1:8080
BIN       := bin/tranche
BENCH_BIN := bin/tranche-bench
ASL_VALIDATOR_VERSION := 4.0.0
ASL_DIR   := .cache/asl-validator
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/tranchehq/tranche/internal/app.Version=$(VERSION)

# The tests' output goes through testsum (internal/testenv/cmd/testsum): a
# line per package, the whole output of whatever failed, a line saying what
# is still running after 30 s of quiet, and at the end the skipped tests
# and their reasons. GOTESTFLAGS goes to go test (e.g. GOTESTFLAGS='-run
# TestExport'); TESTSUM_FLAGS=-v prints every line as go test -v does.
TESTSUM       := $(CURDIR)/.cache/bin/testsum
GOTESTFLAGS   ?=
TESTSUM_FLAGS ?=
# The longest-running test packages, started first so that they do not
# finish last alone (go test starts packages in the order it is given).
SLOW_TEST_PKGS := ./internal/app ./internal/aws/dynamodb ./test
# Every package but the AWS ones (aws.mk's AWS_TEST_PKGS).
UNIT_PKGS = $(shell $(GO) list ./... | grep -v -e '/internal/aws/' -e '/internal/app$$' -e '/infra$$' -e '/functions/')

.PHONY: all build run test unit testsum lint fmt-check vet asl-validate fuzz bench bench-short bench-1m bench-3m clean

all: build

build: ## the single local binary, and the benchmark that measures it
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tranche
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BENCH_BIN) ./cmd/tranche-bench

run: build ## the local server with demo data (an empty --data dir gets generated demo data)
	./$(BIN) serve --addr $(ADDR) --data $(DATA)

# Everything CI runs: lint, the ASL check, then one go test of every
# package (aws.mk's test-go: dynalite, aws-lambda-rie and the Lambda
# bootstraps are installed or built first, each saying so).
test: TEST_PKGS = $(SLOW_TEST_PKGS) ./...
test: lint asl-validate test-go ## everything CI runs

# Every package but the AWS ones, which need dynalite and the Lambda
# emulator (test-aws; under CI=true their suites fail without them).
unit: testsum
	@echo "unit: go test of every package but the AWS ones"
	@set -o pipefail; $(GO) test -json -count=1 $(GOTESTFLAGS) $(UNIT_PKGS) | $(TESTSUM) $(TESTSUM_FLAGS)

testsum:
	@$(GO) build -o $(TESTSUM) ./internal/testenv/cmd/testsum

lint: fmt-check vet

fmt-check:
	@echo "lint: gofmt -l"
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@echo "lint: go vet ./... (compiles every package: minutes on an empty build cache)"
	@$(GO) vet ./...

# Validates the full ASL syntax (our runner executes a subset of it). Needs
# npm; without it the check is skipped with a message (fails under CI=true).
asl-validate:
	@if command -v npm >/dev/null 2>&1; then \
	  if [ ! -x $(ASL_DIR)/node_modules/.bin/asl-validator ]; then \
	    echo "asl-validate: installing asl-validator@$(ASL_VALIDATOR_VERSION) from npm into $(ASL_DIR)"; \
	    npm install --silent --no-audit --no-fund --prefix $(ASL_DIR) asl-validator@$(ASL_VALIDATOR_VERSION) >/dev/null || exit 1; \
	  fi; \
	  for def in statemachines/*.asl.json; do \
	    echo "asl-validate: $$def"; \
	    $(ASL_DIR)/node_modules/.bin/asl-validator --json-path $$def || exit 1; \
	  done; \
	elif [ "$$CI" = true ]; then echo "asl-validate: CI=true and npm not found: the full ASL syntax check cannot run"; exit 1; \
	else echo "asl-validate: npm not found, SKIPPING the full ASL syntax check"; fi

# Every fuzz target (auth assertions and scopes, _typeFilter, _elements,
# ...) for FUZZTIME each; `go test` alone runs only their seeds. CI runs it
# briefly.
FUZZTIME ?= 10s
fuzz:
	@mkdir -p .cache/fuzz; for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/' | sort -u); do \
	    echo "fuzz: $$pkg $$f for $(FUZZTIME)"; \
	    if ! $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg > .cache/fuzz/$$f.log 2>&1; then \
	      if [ -n "$$(git status --porcelain --untracked-files=all -- $$pkg/testdata/fuzz/$$f 2>/dev/null)" ]; then \
	        cat .cache/fuzz/$$f.log; echo "fuzz: $$f found a failing input (in $$pkg/testdata/fuzz/$$f)"; exit 1; \
	      fi; \
	      tail -5 .cache/fuzz/$$f.log; echo "fuzz: $$f stopped without a failing input (the fuzzing engine on a loaded machine); its seeds pass in go test"; \
	    fi; \
	  done; \
	done

SYNTHEA   := ../shared/data/synthea-100
BENCH_DATASET := $(if $(wildcard $(SYNTHEA)),--dataset $(SYNTHEA),)
# bin/tranche-bench runs bin/tranche import and serve as child processes
# (docs/benchmarks.md). The full runs keep their results in
# docs/benchmarks.md's "Latest run" (BENCH_MARKDOWN= to leave it alone);
# the short one, which CI runs, does not.
BENCH_MARKDOWN ?= docs/benchmarks.md
BENCH_OUT = --json bench.json $(if $(BENCH_MARKDOWN),--markdown $(BENCH_MARKDOWN),)

bench: build ## 10k and 100k resources (+ synthea-100 when present): every table and the summary of the targets
	./$(BENCH_BIN) --resources 10000,100000 $(BENCH_DATASET) $(BENCH_OUT)

bench-short: build ## the short mode CI runs so the benchmark cannot rot (well under 2 minutes)
	./$(BENCH_BIN) --short --json bench.json

bench-1m: build ## 10k, 100k and 1M resources (several minutes, about 6 GB of disk)
	./$(BENCH_BIN) --resources 10000,100000,1000000 $(BENCH_DATASET) $(BENCH_OUT)

bench-3m: build ## 100k, 1M and 3M resources: import RSS flat from 100k to 3M (about half an hour, about 20 GB of disk)
	./$(BENCH_BIN) --resources 100000,1000000,3000000 $(BENCH_DATASET) $(BENCH_OUT)

clean:
	rm -rf bin .cache

include aws.mk

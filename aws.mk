# aws.mk: the AWS deployment's targets. The Makefile includes it.
#
#   make test-aws           the AWS adapter tests against dynalite (npm, pinned by
#                           infra/dynalite/package-lock.json) and gofakes3 in-process,
#                           and the Lambda bench: the real bootstraps (built for the
#                           host) under aws-lambda-rie (pinned below, in .cache/bin)
#   make test-go            the same setup for TEST_PKGS (default every package):
#                           what `make test` runs after lint
#   make lambda-rie         installs that aws-lambda-rie
#   make lambda-host        the bootstraps for this machine, as the bench runs them
#   make build-lambdas      every function's bootstrap under bin/lambda/, with sizes
#   sam build               runs `make build-<LogicalId>` per function (BuildMethod: makefile)
#   make localstack-deploy  / localstack-test: the same stack on LocalStack (samlocal,
#                           awslocal; not run in CI)

GO           ?= go
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DYNALITE_DIR := .cache/dynalite
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags '-s -w -X github.com/tranchehq/tranche/internal/app.Version=$(VERSION)'
AWS_TEST_PKGS := ./internal/aws/... ./internal/app/... ./infra/... ./functions/...
STACK        ?= tranche
LAMBDAS      := $(notdir $(patsubst %/,%,$(dir $(wildcard functions/*/main.go))))
# The Lambda Runtime Interface Emulator of the bench (internal/aws/awstest/rie.go
# names the same version): go install'ed into .cache/bin, reinstalled when the
# binary there is missing or another version.
RIE_MODULE   := github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
RIE_VERSION  := v0.0.0-20261030222936-bef5c4ba774d
RIE          := $(CURDIR)/.cache/bin/aws-lambda-rie
# Where the bench's bootstraps are built for the host, and how: the flags
# must equal awstest.HostBuildFlags (internal/aws/awstest/rie.go; a test
# checks), so the bench finds them up to date. go build relinks only a
# bootstrap whose inputs changed; no -ldflags -X VERSION here, which would
# relink all of them whenever `git describe --dirty` changes.
LAMBDA_HOST_DIR   := $(CURDIR)/.cache/lambda-host
LAMBDA_HOST_FLAGS := -tags lambda.norpc -ldflags '-s -w'
TEST_PKGS ?= ./...

.PHONY: test-aws test-go dynalite lambda-rie lambda-host build-lambdas localstack-deploy localstack-test

# SAM's makefile build: `sam build` runs `make build-KickoffFunction` with
# ARTIFACTS_DIR set; the function's code is functions/<lowercased id>/.
build-%Function:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(LAMBDA_FLAGS) \
	  -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(shell echo '$*' | tr '[:upper:]' '[:lower:]')

build-lambdas: ## every function as SAM builds it (linux/arm64), with its size
	@for f in $(LAMBDAS); do \
	  GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(LAMBDA_FLAGS) -o bin/lambda/$$f/bootstrap ./functions/$$f || exit 1; \
	  printf '%-12s %s bytes\n' $$f $$(wc -c < bin/lambda/$$f/bootstrap); \
	done

# dynalite at the version the lockfile pins; reinstalled when the lockfile
# changes. Without npm it says so and does nothing (test-go decides what
# that means).
dynalite:
	@if ! command -v npm >/dev/null 2>&1; then echo "dynalite: npm not found"; exit 0; fi; \
	if ! cmp -s infra/dynalite/package-lock.json $(DYNALITE_DIR)/package-lock.json || [ ! -f $(DYNALITE_DIR)/node_modules/dynalite/cli.js ]; then \
	  echo "dynalite: installing it from npm (infra/dynalite/package-lock.json) into $(DYNALITE_DIR)"; \
	  mkdir -p $(DYNALITE_DIR) && cp infra/dynalite/package.json infra/dynalite/package-lock.json $(DYNALITE_DIR)/ && \
	  npm ci --silent --no-audit --no-fund --prefix $(DYNALITE_DIR) >/dev/null; \
	fi

lambda-rie:
	@if ! $(GO) version -m $(RIE) 2>/dev/null | grep -q 'mod[[:space:]]*github.com/aws/aws-lambda-runtime-interface-emulator[[:space:]]*$(RIE_VERSION)'; then \
	  echo "lambda-rie: installing $(RIE_MODULE)@$(RIE_VERSION) into $(dir $(RIE))"; \
	  mkdir -p $(dir $(RIE)) && GOBIN=$(dir $(RIE)) $(GO) install $(RIE_MODULE)@$(RIE_VERSION); \
	fi

# Every function's bootstrap for this machine in one go build (it links
# them in parallel and skips those already up to date), for the Lambda
# bench (internal/app/rie_test.go) to run under aws-lambda-rie.
lambda-host:
	@echo "lambda-host: building $(words $(LAMBDAS)) Lambda bootstraps for $$($(GO) env GOOS)/$$($(GO) env GOARCH) into $(LAMBDA_HOST_DIR) (unchanged ones are not relinked)"
	@mkdir -p $(LAMBDA_HOST_DIR) && start=$$(date +%s) && \
	$(GO) build $(LAMBDA_HOST_FLAGS) -o $(LAMBDA_HOST_DIR)/ ./functions/... && \
	echo "lambda-host: done in $$(( $$(date +%s) - start ))s"

test-aws: TEST_PKGS = $(AWS_TEST_PKGS)
test-aws: test-go

# test-go starts dynalite on a free port, waits until it accepts
# connections (polling, at most 10 s), runs one go test of TEST_PKGS with
# TRANCHE_DYNAMODB_ENDPOINT through testsum, and stops dynalite whatever
# happens. TRANCHE_RIE and TRANCHE_LAMBDA_DIR run the Lambda bench
# (internal/app/rie_test.go) under the pinned emulator with the bootstraps
# lambda-host built. Without node/npm the DynamoDB tests skip with a
# message (under CI=true the target fails instead).
test-go: export TRANCHE_RIE = $(RIE)
test-go: export TRANCHE_LAMBDA_DIR = $(LAMBDA_HOST_DIR)
test-go: lambda-rie dynalite lambda-host testsum
	@set -o pipefail; \
	gotest() { \
	  echo "test: go test of $$($(GO) list $(TEST_PKGS) | wc -l) packages ($(if $(GOTESTFLAGS),$(GOTESTFLAGS); ,)builds the test binaries first: minutes on an empty build cache)"; \
	  $(GO) test -json -count=1 $(GOTESTFLAGS) $(TEST_PKGS) | $(TESTSUM) $(TESTSUM_FLAGS); \
	}; \
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then \
	  if [ "$$CI" = true ]; then echo "test: CI=true and node/npm not found: dynalite cannot run, so the DynamoDB adapter tests would test nothing"; exit 1; fi; \
	  echo "test: node/npm not found: the DynamoDB adapter tests will SKIP"; \
	  gotest; exit $$?; \
	fi; \
	port=$$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'); \
	node $(DYNALITE_DIR)/node_modules/dynalite/cli.js --host 127.0.0.1 --port $$port \
	  --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >$(DYNALITE_DIR)/dynalite.log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT INT TERM; \
	ready=; for i in $$(seq 1 100); do \
	  if node -e 'require("net").connect(+process.argv[1],"127.0.0.1").on("connect",()=>process.exit(0)).on("error",()=>process.exit(1))' $$port; then ready=1; break; fi; \
	  kill -0 $$pid 2>/dev/null || break; \
	  sleep 0.1; \
	done; \
	if [ -z "$$ready" ]; then echo "test: dynalite did not start:"; cat $(DYNALITE_DIR)/dynalite.log; exit 1; fi; \
	echo "test: dynalite on 127.0.0.1:$$port"; \
	TRANCHE_DYNAMODB_ENDPOINT=http://127.0.0.1:$$port gotest

# LocalStack (not run in CI: it needs Docker). The stack's HTTP API is API
# Gateway v2, which LocalStack serves only in its paid plans (docs/aws.md):
# on Community, localstack-deploy fails at HttpApi. samlocal and awslocal point the
# SAM and AWS CLIs at LocalStack; the functions there get AWS_ENDPOINT_URL from
# LocalStack, and S3PathStyle=true.
localstack-deploy: ## deploy the stack to a running LocalStack with API Gateway v2 (a paid plan)
	@command -v samlocal >/dev/null && command -v awslocal >/dev/null || { echo "localstack-deploy needs samlocal and awslocal (pip install aws-sam-cli-local awscli-local)"; exit 1; }
	@awslocal apigatewayv2 get-apis >/dev/null 2>&1 || { echo "localstack-deploy: this LocalStack does not serve API Gateway v2 (HTTP APIs), which the stack's API is: that needs a paid LocalStack plan (docs/aws.md, Try it on LocalStack)"; exit 1; }
	@mkdir -p .cache/localstack
	@test -s .cache/localstack/secrets || AWS=awslocal infra/create-secrets.sh $(STACK) > .cache/localstack/secrets 2> .cache/localstack/registration-token
	samlocal build
	samlocal deploy --stack-name $(STACK) --resolve-s3 --capabilities CAPABILITY_IAM --no-confirm-changeset \
	  --parameter-overrides $$(cat .cache/localstack/secrets) S3PathStyle=true

localstack-test: build ## register a client on the LocalStack stack and export through it
	@api=$$(awslocal cloudformation describe-stacks --stack-name $(STACK) --query "Stacks[0].Outputs[?OutputKey=='HttpApiId'].OutputValue" --output text); \
	base=http://$$api.execute-api.localhost.localstack.cloud:4566; \
	bucket=$$(awslocal cloudformation describe-stacks --stack-name $(STACK) --query "Stacks[0].Outputs[?OutputKey=='DataBucketName'].OutputValue" --output text); \
	mkdir -p .cache/localstack/data && ./$(BIN) generate --patients 10 --out .cache/localstack/data && \
	awslocal s3 cp --recursive .cache/localstack/data s3://$$bucket/incoming/localstack-test/ && \
	token=$$(sed 's/^registration token: //' .cache/localstack/registration-token); \
	./$(BIN) register --fhir $$base --initial-token $$token --generate-key .cache/localstack/key.jwk --out-client .cache/localstack/client.json && \
	./$(BIN) export --client .cache/localstack/client.json --type Patient,Observation --out .cache/localstack/export

# Gatehouse — make help lists the targets.
GO        ?= go
BIN       := bin/gatehouse
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(BUILD_DATE)
# Helm and kubectl-validate are built once into this folder and reused.
TOOLS     ?= $(or $(GATEHOUSE_TOOLS),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/gatehouse-tools)
SUDO      := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && echo sudo)
TEST_FLAGS ?= -race -count=1 -timeout 12m
CONFIG    ?=

.PHONY: help build run test test-go deps-test bench fuzz mutate lint fmt tidy validate-config chart-test chart-golden chart-docs load load-attest load-sessions load-telemetry load-rls load-redis load-redis-nolease load-devices load-reference conformance image ci

help: ## list targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/gatehouse (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatehouse

run: build ## serve the embedded demo config (--demo) on :9191 (gRPC) and :9192 (admin); CONFIG=file to use your own
	./$(BIN) serve $(if $(CONFIG),--config $(CONFIG),--demo)

deps-test: ## install what the tests need (redis-server, and redis-cli for the cluster test, from Debian) when missing
	@{ command -v redis-server && command -v redis-cli; } >/dev/null 2>&1 || { echo "installing redis-server and redis-tools"; \
	  $(SUDO) apt-get install -y --no-install-recommends redis-server redis-tools >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update >/dev/null && $(SUDO) apt-get install -y --no-install-recommends redis-server redis-tools >/dev/null; }; }
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required for the tests"; exit 1; }
	@command -v redis-cli >/dev/null 2>&1 || { echo "redis-cli is required for the tests"; exit 1; }

test: deps-test test-go chart-test ## everything CI runs: Go tests with -race, then the Helm chart checks

test-go: deps-test ## Go tests with the race detector
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...

bench: ## benchmarks (compare runs with benchstat)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./policy/... ./ratelimit/... ./extauthz/... | tee bench.out

# Every parser that reads client or file input, as package:target. Go fuzzes one target
# per run, so each gets its own `go test -fuzz`, anchored so that no name matches two.
FUZZ_TARGETS := \
	./extauthz/:FuzzCheck \
	./policy/:FuzzUserToken \
	./policy/:FuzzUserClaims \
	./policy/:FuzzPayload \
	./policy/:FuzzNormalizePath \
	./policy/attest/:FuzzCheck \
	./policy/attest/:FuzzCheckClaims \
	./policy/attest/appattest/:FuzzCBOR \
	./policy/attest/appattest/:FuzzAttestation \
	./policy/attest/appattest/:FuzzAssertion \
	./policy/attest/playintegrity/:FuzzDecode \
	./policy/attest/playintegrity/:FuzzPayload \
	./policy/session/:FuzzVerifySession \
	./ratelimit/:FuzzParseDomain \
	./ratelimit/rls/:FuzzShouldRateLimit \
	./config/:FuzzLoad
FUZZTIME   ?= 10s
FUZZ_FLAGS ?=

fuzz: ## run every fuzz target for FUZZTIME each (default 10s), one after another
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== $$name ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZ_FLAGS) $$pkg; done

# Mutation testing: gremlins, pinned, built once into $(TOOLS)/bin. Slow (each mutant
# rebuilds and reruns a package's tests), so not part of test; CPU is often shared, hence
# few workers and a generous timeout.
GREMLINS_VERSION ?= v0.6.0
MUTATE_FLAGS ?= --workers 2 --timeout-coefficient 10

mutate: ## mutation testing of policy/... and ratelimit/... (gremlins; slow, not part of test)
	@if [ ! -x $(TOOLS)/bin/gremlins ] || [ "$$(cat $(TOOLS)/bin/.gremlins.version 2>/dev/null)" != $(GREMLINS_VERSION) ]; then \
	  echo "building gremlins $(GREMLINS_VERSION) into $(TOOLS)/bin (once)..."; mkdir -p $(TOOLS)/bin; \
	  GOBIN=$(TOOLS)/bin $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION) && \
	  echo $(GREMLINS_VERSION) > $(TOOLS)/bin/.gremlins.version; fi
	$(TOOLS)/bin/gremlins unleash $(MUTATE_FLAGS) --exclude-files attesttest ./policy
	$(TOOLS)/bin/gremlins unleash $(MUTATE_FLAGS) ./ratelimit

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt: ## gofmt every file
	gofmt -w $$(git ls-files '*.go')

tidy: ## go mod tidy
	$(GO) mod tidy

validate-config: build ## validate the demo and example configurations
	./$(BIN) validate --config config/demo.yaml
	./$(BIN) validate --config deploy/compose/gatehouse/config.yaml
	@for f in config/testdata/good/*.yaml; do ./$(BIN) validate --config $$f || exit 1; done

chart-test: ## helm lint/template, offline schema validation, negative cases, golden render
	GATEHOUSE_TOOLS=$(TOOLS) bash scripts/chart-test.sh

chart-golden: ## accept a change to the chart's default render (review the diff)
	GATEHOUSE_TOOLS=$(TOOLS) UPDATE_GOLDEN=1 bash scripts/chart-test.sh

chart-docs: ## regenerate the chart's config schema (from config's types) and README values table (from values.yaml)
	$(GO) run ./internal/chartgen

# --concurrency given in LOAD_FLAGS wins over each target's own levels.
# BEFORE=path/to/an/older/gatehouse measures that build too, in the same rounds (reported as "variant").
LOAD_FLAGS ?= --duration 10s --warmup 2s --rounds 2 --conns 2
# BEFORE applies whether LOAD_FLAGS is the default or given on the command line.
override LOAD_FLAGS += $(if $(BEFORE),--variant-gatehouse $(BEFORE))
# Redis runs add concurrency 2, where calls rarely overlap: each is its own round trip.
REDIS_CONCURRENCY ?= 2,16,64

bin/gatehouse-load: FORCE
	$(GO) build -o bin/gatehouse-load ./cmd/gatehouse-load

load: build bin/gatehouse-load ## ext_authz load run: Gatehouse vs a no-op server in the same run (concurrency 16 and 64)
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode authz $(LOAD_FLAGS)

load-attest: build bin/gatehouse-load ## /v1/secure with 10,000 devices, each with its own attestation token: cache hit ratio
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode authz --attest --devices 10000 $(LOAD_FLAGS)

load-sessions: build bin/gatehouse-load ## /v1/secure with 1,000 devices each carrying a session token (exchanged once for its attestation token)
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode authz --sessions --devices 1000 $(LOAD_FLAGS)

load-telemetry: build bin/gatehouse-load ## the same ext_authz run with tracing (every request sampled, OTLP) against tracing off
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode authz --env OTEL_TRACES_EXPORTER=none \
	  --variant-env OTEL_TRACES_EXPORTER=otlp --variant-env OTEL_TRACES_SAMPLER=always_on --otlp-sink $(LOAD_FLAGS)

load-extproc: build bin/gatehouse-load ## ext_proc streams: Gatehouse's Process vs a no-op ext_proc server, 1 KiB and 16 KiB response bodies
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode extproc --body-sizes 1024,16384 $(LOAD_FLAGS)

load-rls: build bin/gatehouse-load ## RLS load run with the memory store: server CPU per call vs the no-op
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode rls --gen-config $(LOAD_FLAGS)

load-redis: build bin/gatehouse-load deps-test ## RLS load run with the Redis store (Redis CPU and round trips included)
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode rls --redis --concurrency $(REDIS_CONCURRENCY) $(LOAD_FLAGS)

load-devices: build bin/gatehouse-load deps-test ## Check with 100,000 attested devices, each with a GCRA throttle and a monthly app quota, on Redis (CPU vs the no-op, Redis included)
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode authz --device-throttle --redis --devices 100000 --concurrency 16,64 $(LOAD_FLAGS)

# The reference server, pinned; built once into $(TOOLS) (it needs the Go module proxy).
RATELIMIT_REF ?= github.com/envoyproxy/ratelimit/src/service_cmd@v1.4.1-0.20260122083618-3fb702589d36

conformance: deps-test ## the rate-limit service conformance suite: envoyproxy/ratelimit (when built) and Gatehouse against the answers recorded from it
	GO=$(GO) bash scripts/conformance.sh $(TOOLS)/bin/service_cmd $(RATELIMIT_REF)

load-redis-nolease: build bin/gatehouse-load deps-test ## load-redis with leases off: one Redis round trip per request
	./bin/gatehouse-load run --gatehouse ./$(BIN) --mode rls --redis --no-lease --concurrency $(REDIS_CONCURRENCY) $(LOAD_FLAGS)

load-reference: bin/gatehouse-load deps-test ## the load-redis run with envoyproxy/ratelimit in Gatehouse's place, for comparison
	@test -x $(TOOLS)/bin/service_cmd || GOBIN=$(TOOLS)/bin $(GO) install $(RATELIMIT_REF)
	@echo "the target reported as \"gatehouse\" below is envoyproxy/ratelimit"
	./bin/gatehouse-load run --mode rls --redis --concurrency $(REDIS_CONCURRENCY) $(LOAD_FLAGS) \
	  --target-cmd "scripts/ratelimit-reference.sh $(TOOLS)/bin/service_cmd {grpc} {admin} {config}"

.PHONY: FORCE
FORCE:

CONTAINER_ENGINE ?= docker
IMAGE ?= gatehouse:$(VERSION)
image: ## container image (needs a container engine: docker or podman)
	$(CONTAINER_ENGINE) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE) -t $(IMAGE) .

ci: test ## what .ci/run runs

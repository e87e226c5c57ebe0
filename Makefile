# Starling build, run and test targets. `make help` lists them.

GO        ?= go
BIN       ?= bin/starling
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
PKGS      := ./...
FUZZTIME  ?= 10s

.PHONY: help build run test test-unit test-e2e bench bench-micro lint fuzz clean

help:
	@echo "make build   build $(BIN) (static, CGO_ENABLED=0)"
	@echo "make run     run one node: MQTT on 127.0.0.1:1883, data in ./data"
	@echo "make test    run every test with the race detector (e2e included)"
	@echo "make bench   compare Starling with Mosquitto on this machine (about 14 minutes), write docs/benchmarks.md"
	@echo "make bench-micro  run the hot-path Go benchmarks with allocation counts; BASE=rev compares with benchstat"
	@echo "make lint    gofmt, go vet and go mod verify"
	@echo "make fuzz    run each fuzz target for FUZZTIME (default $(FUZZTIME))"
	@echo "make conformance  run the MQTT conformance suite and print its coverage"
	@echo "make bench-quick    smoke-check every cell of make bench (about 2 minutes, writes a temporary file)"
	@echo "make image   build the starling:dev container image"
	@echo "make helm-lint    lint the Helm chart"
	@echo "make deploy-test  test the image, Compose project and chart"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/starling

run: build
	./$(BIN) serve --listen tcp://127.0.0.1:1883 --data-dir ./data

test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/e2e)

test-e2e:
	$(GO) test -race -count=1 -timeout 15m ./test/e2e/...

# bench is the side-by-side comparison with Mosquitto (scripts/bench-compare.sh).
bench:
	scripts/bench-compare.sh

# bench-micro runs the hot-path micro-benchmarks; BASE=rev also runs them at
# rev and prints benchstat's comparison. bench-all runs every Go benchmark.
bench-micro:
	scripts/bench-micro.sh $(BASE)

bench-all:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) mod verify

# fuzz runs every Fuzz target of every package for FUZZTIME each: a
# duration (10s) or a count of executions (20000x). A count has no deadline,
# which a short timed run can trip while the fuzzer is still shrinking an
# input; CI uses a count for that reason.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; \
		done; \
	done

clean:
	rm -rf bin

# conformance runs the MQTT 3.1.1 and 5.0 conformance suite (test/conformance)
# against an in-process node and ends with covered/total per version.
# CONFORMANCE_ADDR=host:port runs it against another broker, and
# CONFORMANCE_STRICT=1 makes the known gaps fail.
.PHONY: conformance
conformance:
	$(GO) test -count=1 ./test/conformance/ -run . -v

# image builds the container image from bin/starling (see Dockerfile and
# docs/deployment.md) and tags it $(IMAGE):dev and $(IMAGE):VERSION, where
# VERSION is what `bin/starling version` prints.
# helm-lint lints and renders the chart with its default and its TLS
# values, then runs the Go tests that decode the rendered manifests
# strictly into the Kubernetes API types (no Docker needed).
# deploy-test runs the image, Compose and chart tests of test/deploy.
.PHONY: image helm-lint deploy-test
IMAGE ?= starling
HELM  ?= $(shell command -v helm 2>/dev/null || echo "$$($(GO) env GOPATH)/bin/helm")

# The tag comes from the binary, because $(VERSION) is evaluated again in
# each recipe and HEAD may move in between.
image: build
	@version=$$(./$(BIN) version | cut -d' ' -f2) && \
	echo "docker build -t $(IMAGE):dev -t $(IMAGE):$$version ." && \
	docker build --build-arg VERSION=$$version -t $(IMAGE):dev -t $(IMAGE):$$version .

helm-lint:
	$(HELM) lint --strict deploy/helm/starling
	$(HELM) lint --strict deploy/helm/starling -f deploy/helm/starling/ci/tls-values.yaml
	$(HELM) template rel deploy/helm/starling --namespace mqtt >/dev/null
	$(HELM) template rel deploy/helm/starling --namespace mqtt -f deploy/helm/starling/ci/tls-values.yaml >/dev/null
	HELM=$(HELM) $(GO) test -count=1 -run '^TestHelm_(Lint|Template|StrictDecode|ClusterObjects|GeneratedClusterSecret)' ./test/deploy/

deploy-test:
	HELM=$(HELM) $(GO) test -count=1 -timeout 5m -v ./test/deploy/

# proto regenerates the Go code of proto/ (committed, so a build needs no
# protoc). It installs nothing. Prerequisites, on PATH:
#   protoc 3.21 or later    (Debian: apt-get install protobuf-compiler)
#   protoc-gen-go v1.36.12  (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12)
#   protoc-gen-go-grpc v1.6.2 (go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2)
.PHONY: proto
proto:
	@command -v protoc >/dev/null || { echo "make proto: protoc not found on PATH; install protobuf-compiler 3.21 or later"; exit 1; }
	@command -v protoc-gen-go >/dev/null || { echo "make proto: protoc-gen-go not found on PATH; run go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 and add \$$(go env GOPATH)/bin to PATH"; exit 1; }
	@command -v protoc-gen-go-grpc >/dev/null || { echo "make proto: protoc-gen-go-grpc not found on PATH; run go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2 and add \$$(go env GOPATH)/bin to PATH"; exit 1; }
	protoc --proto_path=proto --go_out=. --go_opt=module=github.com/starling-mqtt/starling \
		--go-grpc_out=. --go-grpc_opt=module=github.com/starling-mqtt/starling \
		$$(find proto -name '*.proto' | sort)

.PHONY: bench-compare bench-quick bench-all
bench-compare: bench

bench-quick:
	QUICK=1 scripts/bench-compare.sh

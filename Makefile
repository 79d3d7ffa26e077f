# Bowline — common tasks. `make help` lists them.
GO      ?= go
BIN     ?= bin/bowline
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/bowline-mesh/bowline/internal/cli.version=$(VERSION) -X github.com/bowline-mesh/bowline/internal/cli.commit=$(COMMIT)

# Images: `make images` tags bowline as $(HUB)/bowline:$(TAG); bowline install
# uses the same default.
HUB     ?= docker.io/bowline-mesh
TAG     ?= $(VERSION)
KUBE    := hack/kube

.PHONY: help build up test race lint tools e2e bench bench-short samples fuzz helm-check images kube-bins kube-up kube-down kube-load conformance

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the static bowline binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/bowline

up: build samples ## build, then run Bookinfo on this machine (bowline up); INGRESS_PORT=N to move the gateway
	$(BIN) up samples/bookinfo/platform/local $(if $(INGRESS_PORT),--ingress-port $(INGRESS_PORT))

samples: ## build the Bookinfo sample apps
	$(MAKE) -C samples/bookinfo build

test: lint helm-check tools ## the README's test command: lint, the Helm chart check, the e2e tools, then as root make kube-up, go test -race ./... against that cluster and one Gateway API conformance test
	@if [ "$$(id -u)" = 0 ]; then \
		line=$$($(MAKE) -s --no-print-directory kube-up | tail -1); \
		case "$$line" in "export KUBECONFIG="*) ;; *) echo "make test: make kube-up failed (see above)" >&2; exit 1;; esac; \
		eval "$$line" && \
		export KUBEBUILDER_ASSETS="$$(dirname "$$(command -v kube-apiserver)")" && \
		echo "make test: Kubernetes tests use $$KUBECONFIG" && $(GO) test -race ./... && \
		echo "make test: the Gateway API conformance suite's HTTPRouteSimpleSameNamespace (make conformance runs them all)" && \
		GO=$(GO) CONFORMANCE_RUN_TEST=HTTPRouteSimpleSameNamespace CONFORMANCE_REPORT=$$(mktemp -d)/report.yaml $(KUBE)/conformance.sh; \
	else \
		echo "make test: not root, so no cluster (make kube-up needs root): the Kubernetes tests skip; sudo make test runs them"; \
		$(GO) test -race ./...; \
	fi

race: test ## alias of test

helm-check: ## render the Helm chart with Helm's engine and compare it with what bowline install applies
	cd hack/helmcheck && $(GO) test ./...

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## gofmt, go vet and staticcheck (built from its module, pinned)
	@out=$$(gofmt -l . | grep -v '^samples/.*/bin/' || true); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd conformance && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

tools: ## build (once, cached in ~/.cache/bowline) the real Jaeger and Prometheus the e2e tests run, from their Go modules
	$(GO) test -count=1 -timeout 30m -run '^TestBuildTools$$' ./test/e2e

e2e: tools ## end-to-end tests only (real processes on loopback; netns tests need root)
	$(GO) test -race -count=1 ./test/e2e/...

images: build ## image tarballs in bin/images: $(HUB)/bowline:$(TAG) and the Bookinfo apps under Istio's image names
	HUB=$(HUB) TAG=$(TAG) GO=$(GO) $(KUBE)/images.sh

kube-bins: ## build (once, cached in ~/.cache/bowline/kube) Kubernetes v1.37.2, etcd and CoreDNS from Go modules
	$(KUBE)/build.sh

kube-up: images ## start (or reuse) the single-node test cluster; last line: export KUBECONFIG=... PATH=...
	$(KUBE)/up.sh

kube-down: ## remove the test cluster and everything it made
	$(KUBE)/down.sh

kube-load: ## import an image tarball into the test cluster: make kube-load IMAGE=file.tar
	@test -n "$(IMAGE)" || { echo "usage: make kube-load IMAGE=file.tar" >&2; exit 2; }
	$(KUBE)/load.sh $(IMAGE)

conformance: ## (root) the Gateway API conformance suite against Bowline on the test cluster; report in conformance/reports
	@line=$$($(MAKE) -s --no-print-directory kube-up | tail -1); \
	case "$$line" in "export KUBECONFIG="*) ;; *) echo "make conformance: make kube-up failed (see above)" >&2; exit 1;; esac; \
	eval "$$line" && GO=$(GO) $(KUBE)/conformance.sh

fuzz: ## run each fuzz target for 30s
	$(GO) test ./internal/config -run XXX -fuzz FuzzParse -fuzztime 30s

bench: ## run the benchmarks (data plane vs nginx/HAProxy, control plane) and record results under bench/results
	bash bench/dataplane/run.sh
	@if [ -f bench/controlplane/run.sh ]; then echo bash bench/controlplane/run.sh; bash bench/controlplane/run.sh; \
	elif [ -f bench/controlplane/main.go ]; then echo $(GO) run ./bench/controlplane; $(GO) run ./bench/controlplane; fi
	$(GO) test -run XXX -bench . -benchmem ./bench/...

bench-short: ## a quick benchmark run (< 5 minutes)
	bash bench/dataplane/run.sh -short
	@if [ -f bench/controlplane/run.sh ]; then echo bash bench/controlplane/run.sh -short; bash bench/controlplane/run.sh -short; \
	elif [ -f bench/controlplane/main.go ]; then echo $(GO) run ./bench/controlplane -short; $(GO) run ./bench/controlplane -short; fi
	$(GO) test -short -run XXX -bench . -benchmem -benchtime 1s ./bench/...

# besu-operator — every entry point a user or CI needs.
#   make test   every test: lint, generated-artifact drift, unit and integration
#   make demo   local cluster + operator + sample network, until Ready
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
# Cache for the control-plane binaries and the local cluster's state: outside the repo.
export BESU_OPERATOR_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/besu-operator

.PHONY: help
help:
	@echo "make test     run every test (builds the local control plane on first use)"
	@echo "make demo     bring up a local cluster, run the operator, apply samples/qbft-network.yaml"
	@echo "make tools    build or reuse the pinned control-plane binaries"
	@echo "make generate regenerate CRDs and other committed artifacts"

.PHONY: tools
tools:
	hack/build-tools.sh >/dev/null

.PHONY: build
build:
	$(CARGO) build --workspace --locked

.PHONY: fmt
fmt:
	$(CARGO) fmt --all

.PHONY: lint
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

.PHONY: unit
unit:
	$(CARGO) test --workspace --locked --lib --bins

.PHONY: test
test: lint tools build
	hack/run-tests.sh

# The local control plane (hack/local-cluster.sh): `eval "$$(make -s cluster-up)"`
# sets KUBECONFIG; `make test` then reuses it instead of starting its own.
.PHONY: cluster-up
cluster-up: tools
	@hack/local-cluster.sh up

.PHONY: cluster-down
cluster-down:
	@hack/local-cluster.sh down

.PHONY: generate
generate:
	$(CARGO) run --quiet --bin besu-operator -- crd --write .

# A local cluster, the operator and samples/qbft-network.yaml, until Ready.
.PHONY: demo
demo:
	hack/demo.sh up

.PHONY: demo-down
demo-down:
	hack/demo.sh down

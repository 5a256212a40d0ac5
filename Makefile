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
# Cargo's build directory is a cache as well: a fresh clone (CI) then compiles only this
# workspace's crates, not its dependencies. CARGO_TARGET_DIR=target keeps it in the checkout.
export CARGO_TARGET_DIR ?= $(BESU_OPERATOR_CACHE)/target

.PHONY: help
help:
	@echo "make test     run every test (builds the local control plane on first use)"
	@echo "make demo     bring up a local cluster, run the operator, apply samples/qbft-network.yaml"
	@echo "make tools    build or reuse the pinned Go tools (control plane, helm, operator-sdk, Prometheus)"
	@echo "make tools-lock  re-lock hack/tools/<tool> after changing a pin in hack/versions.env (TOOL=name)"
	@echo "make generate regenerate CRDs and other committed artifacts"
	@echo "make chaos    the operator SIGKILLed at 50 seeded random points (CHAOS_SEED=... replays)"
	@echo "make bench    operator at scale, and bring-up latency next to kubectl, on the local cluster; prints figures"
	@echo "make bundle   regenerate and validate the OLM bundle (operator-sdk)"
	@echo "make image    build the operator image (docker or podman; IMAGE=...)"
	@echo "make images   build the local cluster's real-node images from local files (no registry)"

.PHONY: tools
tools:
	hack/build-tools.sh >/dev/null

# Rewrite the locks (hack/tools/<tool>/go.mod, go.sum) of the tools whose pin in
# hack/versions.env changed; TOOL=name re-locks that one. Review and commit hack/tools/.
.PHONY: tools-lock
tools-lock:
	hack/build-tools.sh lock $(TOOL)

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

# Each phase's time goes to $(BESU_PHASES); hack/run-tests.sh prints the summary at the end.
.PHONY: test
test: export BESU_PHASES := $(CURDIR)/target/run-tests/phases.tsv
test:
	@mkdir -p target/run-tests && : > "$(BESU_PHASES)"
	@inc="$(CARGO_TARGET_DIR)/debug/incremental"; if [ -d "$$inc" ] && [ "$$(du -sm "$$inc" | cut -f1)" -gt 8192 ]; then \
	  echo "[test] $$inc holds over 8 GiB (incremental builds of earlier checkouts): removed"; rm -rf "$$inc"; fi
	@hack/phase.sh lint $(MAKE) --no-print-directory lint
	@hack/phase.sh tools hack/build-tools.sh >/dev/null
	@# The test build makes every binary the run needs (the operator and the stand-in too, as
	@# the integration tests need them), before the images, which carry the binaries the
	@# tests run (tests/real_node_basics.rs compares them). No `cargo build` before it: the
	@# dev-dependencies add features to shared crates (bitflags "std", through tempfile),
	@# so its kube, reqwest and operator builds would be compiled again here (measured with
	@# empty caches: build 122 s + test build 141 s, against 243 s for the test build alone).
	@hack/phase.sh "test build" $(CARGO) test --workspace --locked --no-run
	@if [ "$${BESU_REAL_NODE:-1}" != 0 ]; then hack/phase.sh images $(MAKE) --no-print-directory images; fi
	hack/run-tests.sh

# The real node's Debian packages (installed here, before the network watcher of
# hack/run-tests.sh starts, as crates and modules are fetched before it) and its images
# (hack/real-node.sh images): pause and CoreDNS, the operator's
# binary under the image name of manifests/install.yaml, the Besu stand-in
# under the pinned Besu image's name, and Geth and Prysm (the EthereumNode's clients)
# under their default image names. No registry, no container engine.
# BESU_IMAGE_PROFILE=debug (the default) puts in the operator and the stand-in exactly as the
# tests run them (the test build's binaries); =release builds them as the Dockerfile does
# (about 4 more minutes with empty caches).
export BESU_IMAGE_PROFILE ?= debug
.PHONY: images
images:
	hack/real-node.sh deps
	hack/build-tools.sh build kubernetes-node coredns geth prysm external-snapshotter external-provisioner csi-driver >/dev/null
	$(if $(filter release,$(BESU_IMAGE_PROFILE)),$(CARGO) build --release --locked -p besu-operator -p besu-sim --bin besu-operator --bin besu-standin,$(CARGO) test --workspace --locked --no-run)
	hack/real-node.sh images

# The local control plane (hack/local-cluster.sh): `eval "$$(make -s cluster-up)"`
# sets KUBECONFIG; `make test` then reuses it instead of starting its own.
.PHONY: cluster-up
cluster-up: tools
	@hack/local-cluster.sh up

.PHONY: cluster-down
cluster-down:
	@hack/local-cluster.sh down

# Everything generated by the binary: manifests/crd, manifests/rbac, manifests/operator,
# manifests/install.yaml, the Helm chart and the OLM bundle (tests/generated.rs: drift).
.PHONY: generate
generate:
	$(CARGO) run --quiet --bin besu-operator -- crd --write .

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
IMAGE ?= ghcr.io/nodeops/besu-operator:$(VERSION)
BUNDLE_IMAGE ?= ghcr.io/nodeops/besu-operator-bundle:v$(VERSION)
# docker or podman, whichever exists; override with CONTAINER_ENGINE=...
CONTAINER_ENGINE ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)

# The OLM bundle (bundle/), regenerated and checked with the pinned operator-sdk.
.PHONY: bundle
bundle: tools generate
	"$$(hack/build-tools.sh bindir)/operator-sdk/operator-sdk" bundle validate ./bundle --select-optional suite=operatorframework

# The operator image from ./Dockerfile. Needs docker or podman (none on the dev machine;
# tests never build images):
#   make image IMAGE=registry.example.com/besu-operator:0.1.0 && make image-push IMAGE=...
#   make bundle-image bundle-push BUNDLE_IMAGE=...
.PHONY: image image-push bundle-image bundle-push
image:
	@test -n "$(CONTAINER_ENGINE)" || { echo "make image: no docker or podman here. Where one exists: docker build -t $(IMAGE) . && docker push $(IMAGE)"; exit 1; }
	$(CONTAINER_ENGINE) build -t $(IMAGE) .
image-push: image
	$(CONTAINER_ENGINE) push $(IMAGE)
bundle-image:
	@test -n "$(CONTAINER_ENGINE)" || { echo "make bundle-image: no docker or podman here. Where one exists: docker build -f bundle/bundle.Dockerfile -t $(BUNDLE_IMAGE) bundle/"; exit 1; }
	$(CONTAINER_ENGINE) build -f bundle/bundle.Dockerfile -t $(BUNDLE_IMAGE) bundle/
bundle-push: bundle-image
	$(CONTAINER_ENGINE) push $(BUNDLE_IMAGE)

# The operator SIGKILLed at 50 seeded random points (tests/chaos.rs; make test runs 5).
# CHAOS_SEED=<seed> replays a run; CHAOS_POINTS=N another count.
.PHONY: chaos
chaos: export CHAOS_POINTS ?= 50
chaos: tools build
	hack/run-tests.sh --test chaos -- --nocapture

# Benchmarks (tests/bench_scale.rs, #[ignore]d in make test): figures are printed, never
# compared with limits. They run the release build of the operator, as users get it.
#   scale:    BENCH_NETWORKS=N (default 10, at most 100) networks of 5 nodes, then at rest;
#             BENCH_BASELINE_BIN=<another build> runs it first, side by side, with ratios.
#   bring-up: BENCH_ROUNDS=N (default 10) rounds of 1 network and of BENCH_BRINGUP_NETWORKS
#             (default 10) networks at once, each next to the same objects applied with kubectl
#             (the limit) and created in the operator's three stages by a client (the floor).
# BENCH=many_networks or BENCH=bring_up_latency runs one of them.
.PHONY: bench
bench: tools build
	$(CARGO) build --release --locked --bin besu-operator
	BESU_OPERATOR_BIN=$(abspath $(CARGO_TARGET_DIR))/release/besu-operator \
	  hack/run-tests.sh --test bench_scale -- --ignored --nocapture $(BENCH)

# A local cluster, the operator and samples/qbft-network.yaml, until Ready.
.PHONY: demo
demo:
	hack/demo.sh up

.PHONY: demo-down
demo-down:
	hack/demo.sh down

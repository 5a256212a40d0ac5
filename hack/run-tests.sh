#!/usr/bin/env bash
# Every unit and integration test, against a real local control plane, with the
# network watcher on. `make test` runs it after lint, tools and build.
#
#   - reuses the cluster $KUBECONFIG points at if it is a running local cluster
#     (hack/local-cluster.sh), otherwise starts one in a fresh state dir and
#     always tears it down (trap), then checks nothing of it is left;
#   - runs `cargo test --workspace --locked --no-fail-fast` with KUBECONFIG and
#     BESU_CLUSTER_DIR exported, RUST_TEST_THREADS (default 2) threads;
#   - fails if any non-loopback TCP socket of this run was seen (hack/netwatch.sh).
#
# Extra arguments go to `cargo test` (e.g. hack/run-tests.sh --test cluster_basics).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

log() { printf '[run-tests] %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }

cache=${BESU_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/besu-operator}
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/besu-operator-tests.XXXXXX")
t_start=$(now_ms)

# Phase timings: `make test` passes BESU_PHASES with lint, tools and build already in it;
# this script adds its own phases and one line per test binary, and prints the summary.
phases=${BESU_PHASES:-$run_dir/phases.tsv}
mkdir -p "$(dirname "$phases")" "$repo/target/run-tests"
record() { # NAME START_MS EXIT
  local ms=$(( $(now_ms) - $2 ))
  printf '%s\t%d.%01d\t%s\n' "$1" $((ms / 1000)) $(((ms % 1000) / 100)) "$3" >>"$phases"
}
cargo_log="$repo/target/run-tests/cargo-test.log"
# "Running tests/day2.rs (target/debug/deps/day2-...)" ... "test result: ... finished in 12.34s"
record_test_binaries() {
  [ -f "$cargo_log" ] || return 0
  awk '
    /^[[:space:]]+Running / { name = $2; if (name == "unittests") name = "unit " $3; next }
    /^[[:space:]]+Doc-tests / { name = "doc-tests " $2; next }
    /^test result: / && name != "" {
      secs = $NF; sub(/s$/, "", secs)
      printf "  test %s\t%.1f\t%s\n", name, secs, ($3 == "ok." ? 0 : 1)
      name = ""
    }' "$cargo_log" >>"$phases"
}
print_summary() {
  [ -s "$phases" ] || return 0
  printf '\n[run-tests] time per phase (s):\n' >&2
  awk -F'\t' '{ printf "  %-48s %8s  %s\n", $1, $2, ($3 == 0 ? "" : "FAILED") }' "$phases" >&2
  printf '  %-48s %8.1f\n' "run-tests.sh total" "$(( $(now_ms) - t_start ))e-3" >&2
  cp "$phases" "$repo/target/run-tests/phases.tsv" 2>/dev/null || true
}

# Every process started from here on carries the tag: the watcher counts their
# sockets as this run's, even for daemons re-parented away from this shell.
export BESU_NETWATCH_TAG="run-tests-$$-$RANDOM"

hack/netwatch.sh self-test

own_cluster=""
watcher=""
# The watcher's log outlives the run dir: target/run-tests/netwatch.log.
keep_netwatch_log() {
  if [ -f "$run_dir/netwatch/netwatch.log" ]; then
    mkdir -p "$repo/target/run-tests"
    cp "$run_dir/netwatch/netwatch.log" "$repo/target/run-tests/netwatch.log"
  fi
}
cleanup() {
  local rc=$?
  if [ -n "$watcher" ]; then
    hack/netwatch.sh stop "$run_dir/netwatch"
    wait "$watcher" 2>/dev/null || true
  fi
  keep_netwatch_log
  if [ -n "$own_cluster" ] && [ -d "$own_cluster" ]; then
    BESU_CLUSTER_DIR=$own_cluster hack/local-cluster.sh down || rc=1
  fi
  print_summary
  rm -rf "$run_dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

netwatch_pid_dir=""
if [ -n "${KUBECONFIG:-}" ] && [ -f "$(dirname "$KUBECONFIG")/cluster.env" ] &&
  BESU_CLUSTER_DIR=$(dirname "$KUBECONFIG") hack/local-cluster.sh status 2>/dev/null; then
  export BESU_CLUSTER_DIR
  BESU_CLUSTER_DIR=$(dirname "$KUBECONFIG")
  netwatch_pid_dir="$BESU_CLUSTER_DIR/pids"
  log "reusing the running cluster in $BESU_CLUSTER_DIR"
else
  own_cluster="$run_dir/cluster"
  export BESU_CLUSTER_DIR=$own_cluster
fi

# Compile first, outside the watch: a fresh machine may still fetch crates
# (dev-dependencies) here, which is the build's business, not the tests'.
t=$(now_ms)
build_rc=0
${CARGO:-cargo} test --workspace --locked --no-run "$@" || build_rc=$?
record "test build" "$t" "$build_rc"
[ $build_rc = 0 ] || exit $build_rc
log "test build in $(( $(now_ms) - t )) ms"

# The watcher starts before the cluster so that the cluster's own traffic is
# watched too.
mkdir -p "$run_dir/netwatch"
NETWATCH_PID_DIR=$netwatch_pid_dir hack/netwatch.sh run "$run_dir/netwatch" "$BESU_NETWATCH_TAG" 5400 &
watcher=$!

if [ -n "$own_cluster" ]; then
  t=$(now_ms)
  up_rc=0
  env_line=$(hack/local-cluster.sh up) || up_rc=$?
  record "cluster up" "$t" "$up_rc"
  [ $up_rc = 0 ] || exit $up_rc
  eval "$env_line"
  log "cluster up in $(( $(now_ms) - t )) ms ($own_cluster)"
fi
export KUBECONFIG="$BESU_CLUSTER_DIR/kubeconfig"

# 2 cores: two test threads per test binary; test binaries run one at a time.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-2}
t=$(now_ms)
test_rc=0
${CARGO:-cargo} test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$cargo_log" || test_rc=$?
record_test_binaries
record "cargo test (all binaries)" "$t" "$test_rc"
log "cargo test finished in $(( $(now_ms) - t )) ms (exit $test_rc)"

hack/netwatch.sh stop "$run_dir/netwatch"
net_rc=0
wait "$watcher" || net_rc=$?
watcher=""
keep_netwatch_log
[ $net_rc = 0 ] || log "network watcher: non-loopback sockets seen (see above and target/run-tests/netwatch.log)"

# Tear down our cluster now (not only in the trap) and prove nothing is left.
down_rc=0
if [ -n "$own_cluster" ]; then
  pids=$(cat "$own_cluster"/pids/*.pid 2>/dev/null || true)
  ports=$(sed -n 's/^[A-Z_]*PORT=//p' "$own_cluster/cluster.env")
  t=$(now_ms)
  BESU_CLUSTER_DIR=$own_cluster hack/local-cluster.sh down || down_rc=$?
  record "cluster down" "$t" "$down_rc"
  for pid in $pids; do
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1 || true)
    if [ -n "$state" ] && [ "$state" != Z ]; then
      log "process $pid of the cluster is still alive after down ($(cat "/proc/$pid/comm" 2>/dev/null))"
      down_rc=1
    fi
  done
  for port in $ports; do
    if [ -n "$(ss -Htln "( sport = :$port )")" ]; then
      log "port $port of the cluster still listens after down"
      down_rc=1
    fi
  done
  [ -d "$own_cluster" ] && { log "state dir $own_cluster remains after down"; down_rc=1; }
  [ $down_rc = 0 ] && log "down left no process, port or state behind"
  own_cluster=""
fi

log "total $(( $(now_ms) - t_start )) ms: tests exit $test_rc, network watcher exit $net_rc, teardown exit $down_rc"
[ $test_rc = 0 ] && [ $net_rc = 0 ] && [ $down_rc = 0 ]

#!/usr/bin/env bash
# Every unit and integration test, against a real local control plane, with the
# network watcher on. `make test` runs it after lint, tools and build.
#
#   - reuses the cluster $KUBECONFIG points at if it is a running local cluster
#     (hack/local-cluster.sh), otherwise starts one in a fresh state dir and
#     always tears it down (trap), then checks nothing of it is left;
#   - runs every test binary of `cargo test --workspace` with KUBECONFIG and
#     BESU_CLUSTER_DIR exported, RUST_TEST_THREADS (default 2) threads each, on two
#     clusters at once (see REAL, SIDE and EXCLUSIVE below): on the run's cluster, the
#     binaries that need its real node, one at a time; on a kwok-only cluster of their
#     own, the others, BESU_TEST_LANES (default 2) at a time, longest first (the end-to-end
#     tests mostly wait on the cluster, not the CPU), then those that would disturb a
#     shared cluster, alone; then a throwaway-cluster test; then the doc-tests. Each
#     binary's output is printed whole when it ends;
#   - fails if any non-loopback TCP socket of this run was seen (hack/netwatch.sh).
#
# Extra arguments go to `cargo test` (e.g. hack/run-tests.sh --test cluster_basics),
# which then runs as one plain `cargo test` with them. BESU_TEST_ONLY="tests/a.rs
# tests/b.rs" runs only those binaries, each where a full run would (lane, side, alone).
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

# Where each binary runs (BESU_SIDE_CLUSTER=1, the default): two clusters side by side.
#   - The run's cluster, with the real node: the binaries that need the real node (REAL),
#     one at a time. Alone on their cluster, the in-cluster install (an operator watching
#     every namespace) disturbs nobody.
#   - A kwok-only cluster started for the run: every other binary, BESU_TEST_LANES at a
#     time, longest first; then, alone on it, the binaries that would disturb a shared
#     cluster (SIDE): the API server outage, and operators watching every namespace (they
#     would reconcile the other binaries' networks).
# Then EXCLUSIVE, alone: a second, throwaway cluster. BESU_SIDE_CLUSTER=0 runs everything on
# the run's cluster: the lanes (REAL included, but the install), then SIDE and the install
# one at a time.
REAL="tests/real_node_ethereum.rs tests/real_node_chain.rs tests/real_node_install.rs tests/real_node_basics.rs tests/real_node_backup.rs"
# Of REAL: the longest, which runs beside the rest, and the one that runs alone after them.
REAL_LONG="tests/real_node_ethereum.rs"
REAL_ALONE="tests/real_node_install.rs"
SIDE="tests/fault_apiserver.rs tests/rbac_cluster.rs"
EXCLUSIVE="tests/cluster_down.rs"
if [ "${BESU_SIDE_CLUSTER:-1}" = 0 ]; then
  EXCLUSIVE="$SIDE tests/real_node_install.rs $EXCLUSIVE"
  SIDE=""
  REAL=""
fi
side_cluster="$run_dir/side-cluster"
# Longest first (figures from earlier runs), so that the lanes end close together;
# binaries not listed follow in cargo's order.
LONGEST_FIRST="tests/real_node_ethereum.rs tests/fault_matrix.rs tests/day2.rs tests/monitoring_prometheus.rs tests/chaos.rs
  tests/network.rs tests/monitoring_sample.rs tests/rbac_namespaced.rs tests/sim_chain.rs
  tests/real_node_chain.rs tests/leader_election.rs tests/monitoring_operator.rs tests/cluster_basics.rs"

# run_one NAME EXECUTABLE DIR: one test binary, its output kept and printed whole (under
# a lock) when it ends, its time and exit recorded as a phase.
run_one() {
  local name=$1 exe=$2 dir=$3 t0 rc=0 out slug tmp
  slug=$(printf '%s' "$name" | tr '/ ' '__')
  out="$run_dir/out/$slug.log"
  # The binary's temporary files (the operator logs of tests/operator) in a dir of its
  # own: kept in target/run-tests/failed/ if it fails, removed otherwise.
  tmp="$run_dir/tmp/$slug"
  mkdir -p "$tmp"
  t0=$(now_ms)
  (cd "$dir" && TMPDIR=$tmp CARGO_MANIFEST_DIR=$dir "$exe") >"$out" 2>&1 || rc=$?
  record "  test $name" "$t0" "$rc"
  if [ $rc != 0 ]; then
    mkdir -p "$failed_dir/$slug"
    find "$tmp" -maxdepth 1 -name '*.log' -exec cp {} "$failed_dir/$slug/" \; 2>/dev/null || true
  fi
  rm -rf "$tmp"
  {
    flock 9
    printf '\n[run-tests] ==== %s: %s in %d s\n' "$name" "$([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)")" $(( ($(now_ms) - t0) / 1000 ))
    cat "$out"
  } 9>>"$run_dir/print.lock" >&2
  return $rc
}
failed_dir="$repo/target/run-tests/failed"
rm -rf "$failed_dir"
export failed_dir
export -f run_one record now_ms

# The binaries of one cluster: those in $1 (a file of "NAME EXE DIR" lines) LANES at a
# time, then those named in $2 one at a time.
run_on_cluster() { # ORDERED_FILE "ALONE NAMES"
  local rc=0 name exe dir
  if [ -s "$1" ]; then
    tr '\t' '\n' <"$1" | xargs -d '\n' -n 3 -P "${BESU_TEST_LANES:-2}" bash -c 'run_one "$@"' _ || rc=1
  fi
  for name in $2; do
    IFS=$'\t' read -r name exe dir < <(grep -P "^\Q$name\E\t" "$binaries") || continue
    run_one "$name" "$exe" "$dir" || rc=1
  done
  return $rc
}

# The kwok-only cluster: started, its binaries run (the lanes, then SIDE), stopped, leaving
# nothing (the same checks as cluster_down).
side_lane() { # ORDERED_FILE
  local rc=0 t env_line
  t=$(now_ms)
  env_line=$(BESU_CLUSTER_DIR=$side_cluster BESU_REAL_NODE=0 hack/local-cluster.sh up) || {
    record "side cluster up" "$t" 1
    return 1
  }
  record "side cluster up" "$t" 0
  KUBECONFIG=$side_cluster/kubeconfig BESU_CLUSTER_DIR=$side_cluster run_on_cluster "$1" "$SIDE" || rc=1
  t=$(now_ms)
  BESU_CLUSTER_DIR=$side_cluster hack/local-cluster.sh down >/dev/null || rc=1
  [ -d "$side_cluster" ] && { log "side cluster state $side_cluster remains after down"; rc=1; }
  record "side cluster down" "$t" "$rc"
  return $rc
}

in_list() { case " $(echo $2) " in *" $1 "*) return 0 ;; esac; return 1; }
# The names in $1 that this run has binaries for.
present() {
  local name out=""
  for name in $1; do
    if grep -qP "^\Q$name\E\t" "$binaries"; then out="$out $name"; fi
  done
  echo "${out# }"
}

run_lanes() {
  local rc=0 name exe dir ordered="$run_dir/ordered.tsv" n side=""
  mkdir -p "$run_dir/out"
  : >"$ordered"
  if [ -n "${BESU_TEST_ONLY:-}" ]; then
    # Only these binaries (names as in the summary, e.g. "tests/day2.rs"), each where it
    # would run in a full run: a lane, the side cluster or alone.
    awk -F'\t' -v only=" $BESU_TEST_ONLY " 'index(only, " " $1 " ")' "$binaries" >"$binaries.only"
    mv "$binaries.only" "$binaries"
  fi
  for name in $LONGEST_FIRST; do
    in_list "$name" "$REAL $EXCLUSIVE $SIDE" || grep -P "^\Q$name\E\t" "$binaries" >>"$ordered" || true
  done
  while IFS=$'\t' read -r name exe dir; do
    in_list "$name" "$LONGEST_FIRST $REAL $EXCLUSIVE $SIDE" && continue
    printf '%s\t%s\t%s\n' "$name" "$exe" "$dir" >>"$ordered"
  done <"$binaries"
  n=$(wc -l <"$ordered")
  export run_dir phases binaries
  export -f run_on_cluster
  # Only the REAL, SIDE and EXCLUSIVE binaries this run has.
  REAL=$(present "$REAL")
  SIDE=$(present "$SIDE")
  EXCLUSIVE=$(present "$EXCLUSIVE")
  if [ "${BESU_SIDE_CLUSTER:-1}" != 0 ]; then
    log "on the run's cluster: $(present "$REAL_LONG") beside the rest of ${REAL:-none} one at a time, then $(present "$REAL_ALONE") alone; then alone: ${EXCLUSIVE:-none}"
    # Only when it has binaries (a cluster for none would be wasted).
    if [ "$n" -gt 0 ] || [ -n "$SIDE" ]; then
      log "on a kwok-only cluster of their own: $n test binaries, ${BESU_TEST_LANES:-2} at a time, then alone: ${SIDE:-none}"
      export SIDE side_cluster
      # The kwok cluster and its binaries yield the CPU to the real node (BESU_SIDE_NICE,
      # default 10): real clients keep time (a Prysm validator that misses its slots
      # stalls the devnet), while the kwok tests wait on deadlines with room to spare.
      # Nice only matters while both want the 2 cores.
      ( renice -n "${BESU_SIDE_NICE:-10}" -p "$BASHPID" >/dev/null; side_lane "$ordered" ) &
      side=$!
    fi
    # The real node's longest binary (the EthereumNode devnet) runs beside the others that
    # keep to their own namespaces; the in-cluster install, whose operator watches every
    # namespace, runs after them, alone.
    local long beside alone
    long=$(present "$REAL_LONG"); alone=$(present "$REAL_ALONE")
    beside=""
    for name in $REAL; do in_list "$name" "$REAL_LONG $REAL_ALONE" || beside="$beside $name"; done
    ( run_on_cluster /dev/null "$long" ) &
    local long_pid=$!
    run_on_cluster /dev/null "$beside" || rc=1
    wait "$long_pid" || rc=1
    run_on_cluster /dev/null "$alone" || rc=1
    if [ -n "$side" ]; then wait "$side" || rc=1; fi
  else
    log "$n test binaries, ${BESU_TEST_LANES:-2} at a time; then alone: ${EXCLUSIVE:-none}"
    run_on_cluster "$ordered" "" || rc=1
  fi
  run_on_cluster /dev/null "$EXCLUSIVE" || rc=1
  return $rc
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
  if [ -d "$side_cluster" ]; then
    BESU_CLUSTER_DIR=$side_cluster hack/local-cluster.sh down >/dev/null || rc=1
  fi
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
binaries="$run_dir/binaries.tsv"
# "NAME<TAB>EXECUTABLE<TAB>PACKAGE DIR" per test binary, from cargo's artifact messages.
${CARGO:-cargo} test --workspace --locked --no-run --message-format=json-render-diagnostics "$@" |
  python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    t = m["target"]
    name = "tests/%s.rs" % t["name"] if t["kind"][0] == "test" else "unit " + os.path.relpath(t["src_path"])
    print("%s\t%s\t%s" % (name, m["executable"], os.path.dirname(m["manifest_path"])))
' >"$binaries" || build_rc=$?
record "test build (run-tests)" "$t" "$build_rc"
[ $build_rc = 0 ] || exit $build_rc
log "test build in $(( $(now_ms) - t )) ms"

# The watcher starts before the cluster so that the cluster's own traffic is
# watched too.
mkdir -p "$run_dir/netwatch"
NETWATCH_PID_DIR=$netwatch_pid_dir hack/netwatch.sh run "$run_dir/netwatch" "$BESU_NETWATCH_TAG" 5400 &
watcher=$!

if [ -n "$own_cluster" ]; then
  # The machine's kernel settings before the real node (check-clean compares after down).
  hack/real-node.sh snapshot-sysctls "$run_dir/sysctl-before.conf"
  t=$(now_ms)
  up_rc=0
  env_line=$(hack/local-cluster.sh up) || up_rc=$?
  record "cluster up" "$t" "$up_rc"
  [ $up_rc = 0 ] || exit $up_rc
  eval "$env_line"
  log "cluster up in $(( $(now_ms) - t )) ms ($own_cluster)"
fi
export KUBECONFIG="$BESU_CLUSTER_DIR/kubeconfig"

# 2 cores: two test threads per test binary.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-2}
t=$(now_ms)
test_rc=0
if [ $# -gt 0 ]; then
  ${CARGO:-cargo} test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$cargo_log" || test_rc=$?
  record_test_binaries
else
  run_lanes || test_rc=$?
  t_doc=$(now_ms)
  doc_rc=0
  ${CARGO:-cargo} test --workspace --locked --doc 2>&1 | tee "$cargo_log" || doc_rc=$?
  record "  doc-tests" "$t_doc" "$doc_rc"
  [ $doc_rc = 0 ] || test_rc=$doc_rc
fi
record "cargo test (all binaries)" "$t" "$test_rc"
log "tests finished in $(( $(now_ms) - t )) ms (exit $test_rc)"

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
  # The real node's traces: bridge, network namespaces, iptables chains, cgroups, mounts,
  # shims, kernel settings (hack/real-node.sh check-clean lists what is left).
  hack/real-node.sh check-clean "$run_dir/sysctl-before.conf" || down_rc=1
  [ $down_rc = 0 ] && log "down left no process, port, state, network, cgroup, mount or kernel setting behind"
  own_cluster=""
fi

log "total $(( $(now_ms) - t_start )) ms: tests exit $test_rc, network watcher exit $net_rc, teardown exit $down_rc"
[ $test_rc = 0 ] && [ $net_rc = 0 ] && [ $down_rc = 0 ]

#!/usr/bin/env bash
# make demo: a local cluster (unless KUBECONFIG already reaches one) with the Besu
# simulator answering for every Besu pod, the CRDs, the operator running in the
# background, samples/qbft-network.yaml until Ready, and then the chain advancing: the
# member's block height read over JSON-RPC twice, a few seconds apart.
#
#   hack/demo.sh up     bring it all up (idempotent)
#   hack/demo.sh down   stop the demo's operator and the local cluster it started
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${BESU_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/besu-operator}
demo_dir="$cache/demo"
mkdir -p "$demo_dir"
bin=$("$here/build-tools.sh" bindir)
kubectl="$bin/kubernetes/kubectl"
target=${CARGO_TARGET_DIR:-$root/target}
operator="$target/debug/besu-operator"
sim=${BESU_SIM_BIN:-$target/debug/besu-sim}
NAMESPACE=${DEMO_NAMESPACE:-besu-demo}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

operator_running() {
  local pid
  pid=$(cat "$demo_dir/operator.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q besu-operator "/proc/$pid/cmdline" 2>/dev/null
}

up() {
  say "building besu-operator and besu-sim (cargo; about 3 min on 2 cores with empty caches)"
  (cd "$root" && cargo build --locked --bin besu-operator --bin besu-sim)
  [ -x "$operator" ] || die "$operator is missing after the build: run cargo build --bin besu-operator"
  # Without the simulator no pod answers JSON-RPC and no block is produced: the demo
  # would show a network that is Ready on paper only.
  [ -x "$sim" ] || die "the Besu simulator $sim is missing: run cargo build --bin besu-sim (or set BESU_SIM_BIN)"
  export BESU_SIM_BIN=$sim
  # The demo's network runs on the kwok nodes with the simulator: no real node (it needs
  # root and two more builds); BESU_REAL_NODE=1 make demo starts one anyway.
  export BESU_REAL_NODE=${BESU_REAL_NODE:-0}
  if [ "$BESU_REAL_NODE" = 1 ]; then
    say "building the real node's tools and images (make images)"
    (cd "$root" && make --no-print-directory images >/dev/null)
  fi
  say "building the local cluster's pinned Go tools (cached after the first run; about 10 min on 2 cores)"
  "$here/build-tools.sh" build etcd kwok kubernetes >/dev/null

  if [ -n "${KUBECONFIG:-}" ] && "$kubectl" get --raw /readyz >/dev/null 2>&1; then
    say "using the cluster in KUBECONFIG=$KUBECONFIG"
    local cdir; cdir=$(dirname "$KUBECONFIG")
    if [ -f "$cdir/cluster.env" ]; then
      # A local cluster: `up` starts its simulator if it is not running (idempotent).
      eval "$(BESU_CLUSTER_DIR=$cdir "$here/local-cluster.sh" up)"
    fi
  else
    say "starting the local cluster (hack/local-cluster.sh up)"
    eval "$("$here/local-cluster.sh" up)"
    touch "$demo_dir/started-cluster"
  fi
  echo "$KUBECONFIG" > "$demo_dir/kubeconfig-path"

  say "installing the CRDs"
  "$operator" crd | "$kubectl" apply --server-side --field-manager=besu-operator -f - >/dev/null
  "$kubectl" wait --for=condition=Established --timeout=60s \
    crd/besunetworks.besu.nodeops.dev crd/besunodes.besu.nodeops.dev >/dev/null

  if operator_running; then
    say "the operator is already running (pid $(cat "$demo_dir/operator.pid"))"
  else
    say "starting the operator (log: $demo_dir/operator.log)"
    nohup "$operator" run --http-addr 127.0.0.1:0 >"$demo_dir/operator.log" 2>&1 &
    echo $! > "$demo_dir/operator.pid"
  fi

  say "applying samples/qbft-network.yaml in namespace $NAMESPACE"
  "$kubectl" create namespace "$NAMESPACE" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
  "$kubectl" -n "$NAMESPACE" apply -f "$root/samples/qbft-network.yaml"

  say "waiting for the network to become Ready (bootnode, then validators, then member; Prometheus and Grafana)"
  local deadline=$((SECONDS + 180)) phase="" last=""
  while :; do
    phase=$("$kubectl" -n "$NAMESPACE" get besunetwork qbft -o jsonpath='{.status.phase}' 2>/dev/null || true)
    local line
    line=$("$kubectl" -n "$NAMESPACE" get besunode --no-headers 2>/dev/null | awk '{print $1"="$4}' | tr '\n' ' ')
    if [ "$phase $line" != "$last" ]; then
      printf '   phase=%s  %s\n' "${phase:-<none>}" "$line" >&2
      last="$phase $line"
    fi
    # The chain is Ready, and so is every node (Prometheus and Grafana included).
    if [ "$phase" = Ready ] && [ -n "$line" ] && ! tr ' ' '\n' <<<"$line" | grep -v '^$' | grep -qv '=Ready$'; then
      break
    fi
    if [ $SECONDS -ge $deadline ]; then
      "$kubectl" -n "$NAMESPACE" describe besunetwork qbft >&2 || true
      echo "the network did not become Ready in 180 s; see $demo_dir/operator.log" >&2
      exit 1
    fi
    sleep 1
  done
  "$kubectl" -n "$NAMESPACE" get besunetwork,besunode
  show_chain_advancing
  cat <<MSG

The network is Ready and producing blocks. Try:
  export KUBECONFIG=$KUBECONFIG
  alias kubectl=$kubectl   # the pinned kubectl from hack/build-tools.sh
  kubectl -n $NAMESPACE describe besunetwork qbft        # conditions, genesis checksum, bootnode enodes
  kubectl -n $NAMESPACE get statefulsets,pods,pvc,secrets
  kubectl -n $NAMESPACE get configmap qbft-genesis -o jsonpath='{.data.genesis\.json}'
  kubectl -n $NAMESPACE get configmap qbft-prometheus-config -o jsonpath='{.data.besu-alerts\.yml}'   # the alert rules
  kubectl -n $NAMESPACE delete secret qbft-validator-2-key   # watch it go Degraded, never regenerated
  $operator render -f samples/ibft2-network.yaml   # what the operator would create, offline
Stop everything with: make demo-down
MSG
}

# eth_blockNumber from the member's JSON-RPC (its pod IP, port rpc-http), as a number.
member_height() {
  local ip=$1 body
  body=$(curl -sS --max-time 3 -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' "http://$ip:8545/" 2>/dev/null) || return 1
  body=$(sed -n 's/.*"result":"0x\([0-9a-fA-F]*\)".*/\1/p' <<<"$body")
  [ -n "$body" ] || return 1
  echo $((16#$body))
}

show_chain_advancing() {
  local pod ip h1 h2 deadline
  pod=$("$kubectl" -n "$NAMESPACE" get pods -l besu.nodeops.dev/network=qbft,besu.nodeops.dev/node-type=member \
    -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
  ip=$("$kubectl" -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.status.podIP}' 2>/dev/null || true)
  [ -n "$pod" ] && [ -n "$ip" ] || die "no member pod with an IP in namespace $NAMESPACE"
  case "$ip" in 127.*) ;; *) die "member pod $pod has IP $ip, not a loopback address of the local cluster; not connecting" ;; esac
  h1=$(member_height "$ip") || die "member $pod ($ip:8545) does not answer eth_blockNumber: is the Besu simulator running? (see $(dirname "$KUBECONFIG")/logs/besu-sim.log; make demo-down && make demo)"
  say "member $pod ($ip:8545): block $h1; reading it again in a few seconds"
  deadline=$((SECONDS + 20))
  while :; do
    sleep 1
    h2=$(member_height "$ip") || h2=$h1
    [ "$h2" -gt "$h1" ] && [ $SECONDS -ge $((deadline - 15)) ] && break
    [ $SECONDS -lt $deadline ] || die "the chain is not advancing: block $h1, then $h2 after 20 s (kubectl -n $NAMESPACE describe besunetwork qbft)"
  done
  say "member $pod: block $h2 ($((h2 - h1)) blocks later): the chain is advancing"
}

down() {
  if operator_running; then
    kill "$(cat "$demo_dir/operator.pid")" 2>/dev/null || true
    say "stopped the demo operator"
  fi
  rm -f "$demo_dir/operator.pid"
  if [ -f "$demo_dir/started-cluster" ]; then
    "$here/local-cluster.sh" down
    rm -f "$demo_dir/started-cluster"
  fi
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

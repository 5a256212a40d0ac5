#!/usr/bin/env bash
# make demo: a local cluster (unless KUBECONFIG already reaches one), the CRDs, the
# operator running in the background, and samples/qbft-network.yaml until Ready.
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
operator="$root/target/debug/besu-operator"
NAMESPACE=${DEMO_NAMESPACE:-besu-demo}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

operator_running() {
  local pid
  pid=$(cat "$demo_dir/operator.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q besu-operator "/proc/$pid/cmdline" 2>/dev/null
}

up() {
  say "building the operator (and the Besu simulator)"
  (cd "$root" && cargo build --quiet --bin besu-operator -p besu-operator -p besu-sim)
  "$here/build-tools.sh" >/dev/null

  if [ -n "${KUBECONFIG:-}" ] && "$kubectl" get --raw /readyz >/dev/null 2>&1; then
    say "using the cluster in KUBECONFIG=$KUBECONFIG"
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
  cat <<MSG

The network is Ready. Try:
  export KUBECONFIG=$KUBECONFIG
  alias kubectl=$kubectl   # the pinned kubectl from hack/build-tools.sh
  kubectl -n $NAMESPACE describe besunetwork qbft        # conditions, genesis checksum, bootnode enodes
  kubectl -n $NAMESPACE get statefulsets,pods,pvc,secrets
  kubectl -n $NAMESPACE get configmap qbft-genesis -o jsonpath='{.data.genesis\.json}'
  kubectl -n $NAMESPACE get configmap qbft-prometheus-config -o jsonpath='{.data.besu-alerts\.yml}'   # the alert rules
  kubectl -n $NAMESPACE delete secret qbft-validator-2-key   # watch it go Degraded, never regenerated
  target/debug/besu-operator render -f samples/ibft2-network.yaml   # what the operator would create, offline
Stop everything with: make demo-down
MSG
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

#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, for tests and the demo:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# (three fake nodes), every socket on 127.0.0.1, all state in one directory.
#
#   hack/local-cluster.sh up       start (or reuse) the cluster; prints `export KUBECONFIG=...`
#   hack/local-cluster.sh env      print that line again (fails if the cluster is not up)
#   hack/local-cluster.sh status   say whether it is up (exit 0) or not (exit 1)
#   hack/local-cluster.sh down     stop every process it started and remove the state dir
#
# The real node (hack/real-node.sh): by default `up` also starts one real Kubernetes
# node, real-node-0 (kubelet, containerd, kube-proxy, CoreDNS), tainted and labelled
# nodeops.dev/real-node=true so that only pods that ask for it land there. Then the
# API server listens on the real node's bridge (198.18.0.1), where pods reach it as
# kubernetes.default.svc, Services get ClusterIPs from 198.19.0.0/16, and the
# endpointslice controllers run (CoreDNS needs them; for kwok pods, whose loopback IPs
# endpoints refuse, they fail and retry with backoff). BESU_REAL_NODE=0: kwok nodes only,
# everything on 127.0.0.1 as described below. It needs root.
#
# State dir: $BESU_CLUSTER_DIR, default $BESU_OPERATOR_CACHE/cluster. Only the
# `export` line goes to stdout, so `eval "$(hack/local-cluster.sh up)"` works.
# Needs: the binaries of hack/build-tools.sh, openssl, iproute2 (ss), base64.
#
# Addresses: pods get IPs from their node's podCIDR inside 127.64.0.0/12
# (controller-manager --allocate-node-cidrs, kwok assigns from it), Services
# ClusterIPs from 127.32.0.0/16 (accepted by kube-apiserver 1.37), nodes are
# 127.0.10.x. The API server refuses loopback addresses in Endpoints and
# EndpointSlices (ValidateEndpointIP): so the apiserver runs with
# --advertise-address=127.0.0.1 --endpoint-reconciler-type=none (the default
# reconciler exits: "cannot use public IP 127.0.0.1 with endpoint reconciler"),
# and the endpoints / endpointslice / mirroring controllers are off (they could
# only fail and flood Warning events). Services get ClusterIPs but no endpoints;
# nothing routes Service IPs here (no kube-proxy, no DNS), so no process ever
# connects to them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=real-node.sh
source "$here/real-node.sh"

cache=${BESU_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/besu-operator}
dir=${BESU_CLUSTER_DIR:-$cache/cluster}
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
bin=$("$here/build-tools.sh" bindir)
kubectl="$bin/kubernetes/kubectl"

# The real node on (1, default) or off (0); a running cluster keeps the mode it was
# started with (cluster.env), whatever the environment says later.
REAL_NODE=${BESU_REAL_NODE:-1}
if [ -f "$dir/cluster.env" ]; then
  REAL_NODE=$(sed -n 's/^REAL_NODE=//p' "$dir/cluster.env")
  REAL_NODE=${REAL_NODE:-0}
fi
case "$REAL_NODE" in 0 | 1) ;; *) echo "BESU_REAL_NODE must be 0 or 1, not $REAL_NODE" >&2; exit 2 ;; esac
if [ "$REAL_NODE" = 1 ]; then
  API_ADDR=$REAL_NODE_IP
  SERVICE_CIDR=$REAL_NODE_SERVICE_CIDR
else
  API_ADDR=127.0.0.1
  SERVICE_CIDR=127.32.0.0/16
fi
# Pod IPs: a /16 of 127.64.0.0/12 per cluster (pick_cluster_cidr).
CLUSTER_CIDR=127.64.0.0/12
# besu-sim binds pod IPs on this machine's loopback, so clusters running side by side
# must not share them: each `up` claims a free /16 here (the claim names its state dir).
POD_RANGE_CLAIMS=/tmp/besu-local-cluster-pod-ranges
# Pods on a node without a podCIDR yet would get this range instead; `up`
# waits for every node's podCIDR, so it is only a loopback safety net.
KWOK_FALLBACK_CIDR=127.127.0.0/16
NODE_COUNT=3
# The daemons `status` requires (down stops them, and besu-sim, in its own order).
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
[ "$REAL_NODE" = 0 ] || COMPONENTS+=(containerd kubelet kube-proxy volume-perms csi-driver csi-provisioner csi-snapshotter snapshot-controller)

log() { printf '[local-cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now_ms() { date +%s%3N; }

# --- processes ----------------------------------------------------------------

pid_of() { cat "$dir/pids/$1.pid" 2>/dev/null || true; }

# Alive and really ours: a running (not zombie) process whose command line or
# environment names the state dir (a recycled PID is never taken for ours).
# A process caught between fork and exec (just started) can show an empty command line
# and environment for an instant (measured: 2 of 300 reads right after `setsid CMD &`), so
# a live process that does not look like ours is read again a few times before it is
# taken for someone else's: a recycled PID never matches, however often it is read.
is_ours_alive() {
  local pid=$1 state try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] && [ "$state" != X ] || return 1
    tr '\0' '\n' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$dir/" && return 0
    tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -qxF -- "BESU_CLUSTER_DIR=$dir" && return 0
    sleep 0.05
  done
  return 1
}

# start NAME CMD...: detached (own session), logs in the state dir, PID recorded.
start() {
  local name=$1; shift
  # Appends: a component started again (after an API server outage) keeps its old log.
  setsid "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 &
  echo $! > "$dir/pids/$name.pid"
}

stop_one() {
  local name=$1 pid deadline
  pid=$(pid_of "$name")
  if ! is_ours_alive "$pid"; then rm -f "$dir/pids/$name.pid"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(now_ms) + 15000 ))
  while is_ours_alive "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
  if is_ours_alive "$pid"; then
    log "$name (pid $pid) did not stop on TERM within 15 s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$(( $(now_ms) + 5000 ))
    while is_ours_alive "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
    is_ours_alive "$pid" && die "$name (pid $pid) is still alive after KILL"
  fi
  rm -f "$dir/pids/$name.pid"
}

# --- ports --------------------------------------------------------------------

port_in_use() { [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]; }

# Free TCP ports on 127.0.0.1, below the kernel's ephemeral range so that no
# outgoing connection takes one between choosing and binding.
pick_ports() {
  local n=$1 picked=() p
  while [ ${#picked[@]} -lt "$n" ]; do
    p=$(( 20000 + RANDOM % 12000 ))
    port_in_use "$p" && continue
    [[ " ${picked[*]} " == *" $p "* ]] && continue
    picked+=("$p")
  done
  echo "${picked[@]}"
}

# A /16 of 127.64.0.0/12 that no other running local cluster on this machine uses
# (not 127.64/16, which clusters from before the claims use). A claim is stale once
# its state dir is gone or its cluster.env names another range.
pick_cluster_cidr() {
  local k cidr f owner fd
  mkdir -p "$POD_RANGE_CLAIMS"
  exec {fd}>"$POD_RANGE_CLAIMS/.lock"
  flock "$fd"
  for k in $(shuf -i 65-79); do
    cidr="127.$k.0.0/16" f="$POD_RANGE_CLAIMS/127.$k"
    owner=$(cat "$f" 2>/dev/null || true)
    if [ -n "$owner" ] && [ "$owner" != "$dir" ] && [ -d "$owner" ] &&
      { [ ! -f "$owner/cluster.env" ] || grep -qxF "CLUSTER_CIDR=$cidr" "$owner/cluster.env"; }; then
      continue
    fi
    echo "$dir" > "$f"
    echo "$cidr"
    return 0
  done
  die "every /16 of 127.64.0.0/12 is claimed by another local cluster (see $POD_RANGE_CLAIMS)"
}

# --- certificates and kubeconfigs --------------------------------------------

pki() {
  local p="$dir/pki"
  mkdir -p "$p"
  command -v openssl >/dev/null || die "openssl is required (Debian: apt-get install openssl)"
  newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  newkey "$p/ca.key"
  openssl req -x509 -new -key "$p/ca.key" -subj "/CN=besu-operator-local-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$p/ca.crt" 2>/dev/null
  # sign NAME SUBJECT EXTENSIONS
  sign() {
    newkey "$p/$1.key"
    openssl req -new -key "$p/$1.key" -subj "$2" -out "$p/$1.csr" 2>/dev/null
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
      -days 825 -extfile <(printf '%s\n' "$3") -out "$p/$1.crt" 2>/dev/null
    rm -f "$p/$1.csr"
  }
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$API_ADDR,IP:${SERVICE_CIDR%.0/*}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign admin "/O=system:masters/CN=besu-local-admin" "$client"
  sign controller-manager "/CN=system:kube-controller-manager" "$client"
  sign scheduler "/CN=system:kube-scheduler" "$client"
  # kwok manages many nodes, their leases and pods; it runs as a cluster admin.
  sign kwok "/O=system:masters/CN=kwok-controller" "$client"
  # The operator under the Secret audit (tests/network.rs, audit-policy.yaml).
  sign operator-audited "/O=system:masters/CN=besu-operator-audited" "$client"
  if [ "$REAL_NODE" = 1 ]; then
    sign kube-proxy "/CN=system:kube-proxy" "$client"
    sign kubelet "/O=system:nodes/CN=system:node:$REAL_NODE_NAME" "$client"
    sign kubelet-serving "/O=system:nodes/CN=system:node:$REAL_NODE_NAME" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:$REAL_NODE_IP,DNS:$REAL_NODE_NAME"
    # The API server's client certificate for kubelet calls (logs, exec, port-forward).
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  fi
  # Service-account tokens: signed by the apiserver (TokenRequest) and by the
  # controller-manager's token controller.
  newkey "$p/sa.key"
  openssl pkey -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  rm -f "$p/ca.srl"
  chmod 600 "$p"/*.key
}

# kubeconfig NAME USER: a kubeconfig with embedded certificates.
kubeconfig() {
  local p="$dir/pki" out="$dir/$1.kubeconfig"
  [ "$1" = admin ] && out="$dir/kubeconfig"
  cat > "$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: besu-local
  cluster:
    server: https://$API_ADDR:$API_PORT
    certificate-authority-data: $(base64 -w0 < "$p/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 < "$p/$1.crt")
    client-key-data: $(base64 -w0 < "$p/$1.key")
contexts:
- name: besu-local
  context:
    cluster: besu-local
    user: $2
current-context: besu-local
EOF
  chmod 600 "$out"
}

# --- status -------------------------------------------------------------------

k() { "$kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=5s "$@"; }

apiserver_ready() { [ "$(k get --raw=/readyz 2>/dev/null)" = ok ]; }

is_up() {
  [ -f "$dir/cluster.env" ] && [ -f "$dir/kubeconfig" ] || return 1
  local c
  for c in "${COMPONENTS[@]}"; do is_ours_alive "$(pid_of "$c")" || return 1; done
  apiserver_ready
}

# is_up without the real node's components (up checks it before starting them).
control_plane_up() {
  local c
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    is_ours_alive "$(pid_of "$c")" || return 1
  done
  apiserver_ready
}

env_line() { echo "export KUBECONFIG=$dir/kubeconfig"; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$(( $(now_ms) + secs * 1000 ))
  until "$@" >/dev/null 2>&1; do
    local c
    for c in "${COMPONENTS[@]}"; do
      local pid; pid=$(pid_of "$c")
      if [ -n "$pid" ] && ! is_ours_alive "$pid"; then
        log "$c exited; last lines of $dir/logs/$c.log:"; tail -n 20 "$dir/logs/$c.log" >&2 || true
        die "$c died while waiting for: $what"
      fi
    done
    if [ "$(now_ms)" -ge "$deadline" ]; then die "timed out after ${secs}s waiting for: $what"; fi
    sleep 0.2
  done
}

nodes_ready() {
  local out
  out=$(k get nodes -l besu-operator.local/fake-node=true -o \
    jsonpath='{range .items[*]}{.spec.podCIDR}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  [ "$(printf '%s\n' "$out" | grep -cE '^127\.[0-9.]+/[0-9]+ True$')" -eq "$NODE_COUNT" ]
}

default_sa_exists() { k -n default get serviceaccount default; }
scheduler_listening() { [ -n "$(ss -Htln "( sport = :$SCHEDULER_PORT )")" ]; }

# --- up -----------------------------------------------------------------------

nodes_manifest() {
  local i
  for ((i = 0; i < NODE_COUNT; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    besu-operator.local/fake-node: "true"
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    topology.kubernetes.io/zone: local-$i
    type: kwok
status:
  addresses:
  - type: InternalIP
    address: 127.0.10.$((i + 1))
  - type: Hostname
    address: kwok-node-$i
  capacity: &resources
    cpu: "16"
    memory: 64Gi
    # Room for make bench's 100 networks (500 pods) on the 3 fake nodes.
    pods: "256"
    ephemeral-storage: 200Gi
  allocatable: *resources
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: $K8S_VERSION
    containerRuntimeVersion: kwok://$KWOK_VERSION
    kernelVersion: kwok
    osImage: kwok fake node
    bootID: ""
    machineID: ""
    systemUUID: ""
EOF
  done
}

# real_or_kwok A B: A with the real node, B without.
real_or_kwok() { if [ "$REAL_NODE" = 1 ]; then echo "$1"; else echo "$2"; fi; }

# The kube-apiserver, with the ports of $dir/cluster.env (or of `up`, being written).
start_apiserver() {
  local p="$dir/pki"
  start kube-apiserver "$bin/kubernetes/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="$API_ADDR" --advertise-address="$API_ADDR" --secure-port="$API_PORT" \
    $(real_or_kwok "--kubelet-client-certificate=$p/apiserver-kubelet-client.crt --kubelet-client-key=$p/apiserver-kubelet-client.key --kubelet-certificate-authority=$p/ca.crt --kubelet-preferred-address-types=InternalIP" --endpoint-reconciler-type=none) \
    --enable-admission-plugins=PodNodeSelector,PodTolerationRestriction$(real_or_kwok ,NodeRestriction "") \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit/audit.log" \
    --audit-log-format=json --audit-log-mode=blocking --audit-log-maxsize=0 \
    --cert-dir="$dir/pki/apiserver-generated" --profiling=false --v=0
}

# Both run with leader election, as on a real control plane: one that cannot renew
# its lease for 10 s (an API server outage) exits, and its kubelet starts it again
# with fresh caches (here: `start-apiserver`). With --leader-elect=false they stay up
# across an outage, and the scheduler's cache can keep a pod it never bound as assumed,
# so the pod stays Pending for good (seen after a 33 s outage).
start_controller_manager() {
  local p="$dir/pki"
  start kube-controller-manager "$bin/kubernetes/kube-controller-manager" \
    --kubeconfig="$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$CONTROLLER_MANAGER_PORT" --cert-dir="$dir/pki/controller-manager-generated" \
    --leader-elect=true --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --controllers="$(real_or_kwok "*" "*,-endpoints-controller,-endpointslice-controller,-endpointslice-mirroring-controller")" \
    --enable-hostpath-provisioner=true --profiling=false --v=0
}

start_scheduler() {
  start kube-scheduler "$bin/kubernetes/kube-scheduler" \
    --kubeconfig="$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --cert-dir="$dir/pki/scheduler-generated" \
    --leader-elect=true --profiling=false --v=0
}

# For fault tests: stop the kube-apiserver alone (etcd, controllers and the Besu simulator
# keep running), and start it again with the same flags, waiting until it is ready.
# The controller-manager and scheduler lose their leases in any outage over 10 s and
# exit; `start` starts them again.
apiserver_outage() {
  case "$1" in
    stop) is_up || die "not up: $dir"; stop_one kube-apiserver; log "kube-apiserver stopped" ;;
    start)
      [ -f "$dir/cluster.env" ] && is_ours_alive "$(pid_of etcd)" || die "no cluster with a running etcd in $dir"
      is_ours_alive "$(pid_of kube-apiserver)" && die "kube-apiserver is running"
      local v
      for v in API_PORT ETCD_PORT CONTROLLER_MANAGER_PORT SCHEDULER_PORT SERVICE_CIDR CLUSTER_CIDR; do
        printf -v "$v" '%s' "$(sed -n "s/^$v=//p" "$dir/cluster.env")"
      done
      start_apiserver
      local deadline=$(( $(now_ms) + 60000 ))
      until apiserver_ready; do
        is_ours_alive "$(pid_of kube-apiserver)" || { tail -n 20 "$dir/logs/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
        [ "$(now_ms)" -lt "$deadline" ] || die "timed out after 60s waiting for: kube-apiserver /readyz"
        sleep 0.2
      done
      log "kube-apiserver started again"
      # What a kubelet does for static pods: start again the components that exited
      # on losing their leader lease during the outage.
      if ! is_ours_alive "$(pid_of kube-controller-manager)"; then
        start_controller_manager; log "kube-controller-manager restarted (it lost its lease)"
      fi
      if ! is_ours_alive "$(pid_of kube-scheduler)"; then
        start_scheduler; log "kube-scheduler restarted (it lost its lease)"
      fi
      wait_for "all components running" 30 is_up
      ;;
  esac
}

up() {
  if is_up; then
    log "already up ($dir)"
    is_ours_alive "$(pid_of besu-sim)" || start_besu_sim
    env_line; return 0
  fi
  local t0; t0=$(now_ms)
  if [ -d "$dir" ]; then log "removing stale state in $dir"; down_quiet; fi
  local c
  for c in etcd/etcd kubernetes/kube-apiserver kubernetes/kube-controller-manager kubernetes/kube-scheduler kubernetes/kubectl kwok/kwok; do
    [ -x "$bin/$c" ] || die "$bin/$c is missing: run hack/build-tools.sh (or make tools) first"
  done
  mkdir -p "$dir"/{logs,pids,etcd,kwok-home,audit}
  chmod 700 "$dir"
  # A failed `up` leaves nothing running: show the logs' ends, then stop all.
  trap up_failed EXIT

  local ports; read -r -a ports <<< "$(pick_ports 10)"
  ETCD_PORT=${ports[0]} ETCD_PEER_PORT=${ports[1]} API_PORT=${ports[2]}
  CONTROLLER_MANAGER_PORT=${ports[3]} SCHEDULER_PORT=${ports[4]} KWOK_PORT=${ports[5]}
  KUBELET_PORT=${ports[6]} KUBELET_HEALTHZ_PORT=${ports[7]}
  KUBE_PROXY_HEALTHZ_PORT=${ports[8]} KUBE_PROXY_METRICS_PORT=${ports[9]}
  CLUSTER_CIDR=$(pick_cluster_cidr)
  cat > "$dir/cluster.env" <<EOF
# Written by hack/local-cluster.sh up; read by tests and scripts.
K8S_VERSION=$K8S_VERSION
KWOK_VERSION=$KWOK_VERSION
ETCD_VERSION=$ETCD_VERSION
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
CONTROLLER_MANAGER_PORT=$CONTROLLER_MANAGER_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
KWOK_PORT=$KWOK_PORT
SERVICE_CIDR=$SERVICE_CIDR
CLUSTER_CIDR=$CLUSTER_CIDR
REAL_NODE=$REAL_NODE
CLUSTER_DOMAIN=${REAL_NODE_CLUSTER_DOMAIN:-cluster.local}
API_ADDR=$API_ADDR
KUBELET_PORT=$KUBELET_PORT
KUBELET_HEALTHZ_PORT=$KUBELET_HEALTHZ_PORT
KUBE_PROXY_HEALTHZ_PORT=$KUBE_PROXY_HEALTHZ_PORT
KUBE_PROXY_METRICS_PORT=$KUBE_PROXY_METRICS_PORT
AUDIT_LOG=$dir/audit/audit.log
KUBECONFIG=$dir/kubeconfig
EOF
  pki
  kubeconfig admin besu-local-admin
  kubeconfig controller-manager system:kube-controller-manager
  kubeconfig scheduler system:kube-scheduler
  kubeconfig kwok kwok-controller
  kubeconfig operator-audited besu-operator-audited
  cp "$here/cluster/audit-policy.yaml" "$here/cluster/kwok-stages.yaml" "$dir/"
  if [ "$REAL_NODE" = 1 ]; then
    kubeconfig kubelet "system:node:$REAL_NODE_NAME"
    kubeconfig kube-proxy system:kube-proxy
    real_node_deps
    real_node_net_up
  fi
  log "state dir $dir; apiserver https://$API_ADDR:$API_PORT"

  start etcd "$bin/etcd/etcd" --name=local --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="local=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level=warn

  local p="$dir/pki"
  start_apiserver

  wait_for "kube-apiserver /readyz" 60 apiserver_ready
  log "apiserver ready after $(( $(now_ms) - t0 )) ms"
  # The others need the apiserver's RBAC bootstrap (done when /readyz is ok):
  # started earlier, the controller-manager exits on a forbidden ConfigMap.
  nodes_manifest | k apply -f - >/dev/null
  k apply -f "$here/cluster/storage.yaml" >/dev/null
  start_controller_manager
  start_scheduler

  # HOME inside the state dir: kwok would otherwise also load ~/.kwok/kwok.yaml.
  # The lease duration must be explicit: with a stages-only --config kwok renews no
  # node Lease, the node lifecycle controller marks the nodes NotReady after its
  # grace period, and every pod loses its Ready condition.
  start kwok env HOME="$dir/kwok-home" "$bin/kwok/kwok" \
    --kubeconfig="$dir/kwok.kubeconfig" --config="$dir/kwok-stages.yaml" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 \
    --cidr="$KWOK_FALLBACK_CIDR" --node-ip=127.0.10.250 \
    --server-address="127.0.0.1:$KWOK_PORT"

  wait_for "the control plane and kwok running" 10 control_plane_up
  wait_for "$NODE_COUNT nodes Ready with a podCIDR" 60 nodes_ready
  wait_for "ServiceAccount default/default (controller-manager)" 60 default_sa_exists
  wait_for "kube-scheduler serving" 30 scheduler_listening
  start_besu_sim
  if [ "$REAL_NODE" = 1 ]; then
    start_volume_perms
    real_node_join
  fi
  trap - EXIT
  log "up in $(( $(now_ms) - t0 )) ms"
  env_line
}

up_failed() {
  local rc=$? f
  trap - EXIT
  [ "$rc" = 0 ] && return 0
  for f in "$dir"/logs/*.log; do
    [ -s "$f" ] || continue
    log "--- last lines of $f"; tail -n 15 "$f" >&2
  done
  log "up failed; stopping what it started"
  down_quiet || true
  exit "$rc"
}

# The hostpath provisioner makes each volume's directory root-owned 0750
# (pkg/volume/hostpath/host_path.go), and hostPath volumes get no fsGroup ownership,
# so a non-root container (Besu runs as uid 1000) could not write its data. A real
# cluster's CSI driver applies fsGroup; here this loop opens each new volume directory
# to its pod instead (0777), within 0.2 s of its creation, before any pod can use it
# (a claim is bound before its pod is scheduled).
start_volume_perms() {
  start volume-perms env BESU_CLUSTER_DIR="$dir" bash -c '
    while :; do
      find /tmp/hostpath_pv -mindepth 1 -maxdepth 1 -type d -perm 0750 -exec chmod 0777 {} + 2>/dev/null
      sleep 0.2
    done'
}

# === Besu simulator hook ======================================================
# hack/besu-sim: if $BESU_SIM_BIN is set and executable (or
# ${CARGO_TARGET_DIR:-target}/debug/besu-sim exists), it runs beside the cluster with KUBECONFIG and
# BESU_CLUSTER_DIR in its environment; its PID is recorded like the others and
# `down` stops it. It is optional: `status` does not require it.
start_besu_sim() {
  local sim=${BESU_SIM_BIN:-}
  local built=${CARGO_TARGET_DIR:-$here/../target}/debug/besu-sim
  if [ -n "$sim" ] && [ ! -x "$sim" ]; then
    die "BESU_SIM_BIN=$sim is not an executable: build it with cargo build --bin besu-sim"
  fi
  [ -z "$sim" ] && [ -x "$built" ] && sim="$built"
  if [ -z "$sim" ]; then
    log "no Besu simulator ($built not built): pods will be Ready but no node answers JSON-RPC"
    return 0
  fi
  # is_ours_alive recognises it by BESU_CLUSTER_DIR in its environment.
  rm -f "$dir/besu-sim.addr"
  start besu-sim env KUBECONFIG="$dir/kubeconfig" BESU_CLUSTER_DIR="$dir" "$sim"
  # Tests find its admin endpoint in $dir/besu-sim.addr, written once it serves.
  local deadline=$(( $(now_ms) + 10000 ))
  until [ -s "$dir/besu-sim.addr" ] || [ "$(now_ms)" -ge "$deadline" ]; do sleep 0.1; done
  if [ -s "$dir/besu-sim.addr" ]; then
    log "besu-sim started ($sim, pid $(pid_of besu-sim), admin $(cat "$dir/besu-sim.addr"))"
  else
    tail -n 30 "$dir/logs/besu-sim.log" >&2 || true
    die "besu-sim ($sim) wrote no admin address within 10 s; see $dir/logs/besu-sim.log"
  fi
}
# ==============================================================================

# --- down ---------------------------------------------------------------------

# Directories the hostpath provisioner made for this cluster's volumes.
remove_volume_dirs() {
  is_ours_alive "$(pid_of kube-apiserver)" || return 0
  local path
  k get pv -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null |
    while read -r path; do
      case "$path" in /tmp/hostpath_pv/?*) rm -rf -- "$path" ;; esac
    done || true
}

down_quiet() {
  [ -d "$dir" ] || return 0
  local ports=() v
  if [ -f "$dir/cluster.env" ]; then
    for v in ETCD_PORT ETCD_PEER_PORT API_PORT CONTROLLER_MANAGER_PORT SCHEDULER_PORT KWOK_PORT; do
      ports+=("$(sed -n "s/^$v=//p" "$dir/cluster.env")")
    done
    API_PORT=$(sed -n 's/^API_PORT=//p' "$dir/cluster.env")
  fi
  stop_one besu-sim
  stop_one kwok
  if [ "$REAL_NODE" = 1 ]; then
    stop_one volume-perms
    real_node_leave
  fi
  stop_one kube-scheduler
  # The controller-manager provisions volumes: stop it before listing them.
  stop_one kube-controller-manager
  remove_volume_dirs
  stop_one kube-apiserver
  stop_one etcd
  [ "$REAL_NODE" = 0 ] || real_node_net_down
  local p
  for p in "${ports[@]}"; do
    [ -n "$p" ] || continue
    if [ -n "$(ss -Htln "( sport = :$p )")" ]; then die "port $p is still listening after down"; fi
  done
  rm -rf -- "$dir"
}

down() {
  if [ ! -d "$dir" ]; then log "nothing to stop ($dir does not exist)"; return 0; fi
  down_quiet
  log "down: stopped and removed $dir"
}

# Field N (as numbered in proc(5)) of /proc/PID/stat; the command name in
# field 2 may contain spaces, so count from the ")" that ends it.
stat_field() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f"$(( $2 - 2 ))"; }

# Watchdog for test binaries: once process PID is gone (or a zombie), `down`.
down_when_gone() {
  local pid=$1 started
  started=$(stat_field "$pid" 22)
  [ -n "$started" ] || { down; return; }
  while [ "$(stat_field "$pid" 22)" = "$started" ] && [ "$(stat_field "$pid" 3)" != Z ]; do
    sleep 0.5
  done
  down
}

case "${1:-}" in
  up) up ;;
  down-when-gone) [ -n "${2:-}" ] || die "usage: $0 down-when-gone PID"; down_when_gone "$2" ;;
  down) down ;;
  stop-apiserver) apiserver_outage stop ;;
  start-apiserver) apiserver_outage start ;;
  status)
    if is_up; then
      log "up: $dir (apiserver https://$API_ADDR:$(sed -n 's/^API_PORT=//p' "$dir/cluster.env"))"
      for c in "${COMPONENTS[@]}" besu-sim; do
        pid=$(pid_of "$c")
        if [ -z "$pid" ]; then continue; fi
        if is_ours_alive "$pid"; then log "  $c pid $pid"; else log "  $c pid $pid (exited; see $dir/logs/$c.log)"; fi
      done
      exit 0
    else
      log "not up: $dir"; exit 1
    fi ;;
  env) is_up || die "not up: $dir (run: hack/local-cluster.sh up)"; env_line ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac

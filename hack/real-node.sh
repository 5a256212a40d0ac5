#!/usr/bin/env bash
# The real node of the local cluster: a kubelet with containerd, runc and the CNI bridge,
# kube-proxy and CoreDNS, next to the kwok nodes, running real containers from images
# built on this machine (no registry).
#
#   hack/real-node.sh deps          install the Debian packages it needs (if missing)
#   hack/real-node.sh images        build the image archives (pause, CoreDNS, the operator,
#                                   the Besu stand-in, Geth, Prysm) into $BESU_OPERATOR_CACHE/images
#   hack/real-node.sh check-clean   exit 1, listing them, if any bridge, network namespace,
#                                   iptables chain, cgroup, mount or kernel setting of a
#                                   real node is left on the machine
#
# hack/local-cluster.sh sources this file and calls real_node_net_up (before the API
# server, which listens on the bridge), real_node_join (after the control plane) and
# real_node_leave (in down). BESU_REAL_NODE=0 turns the real node off (kwok only).
#
# Addresses, all inside this machine (facts: ../shared/recipes/real-node/REPORT.md):
#   bridge besu0 = 198.18.0.1/24: the node IP, the kubelet's and the API server's address
#   (pods reach it as kubernetes.default.svc; the kubelet refuses a loopback node IP);
#   pods 198.18.0.0/24 (host-local IPAM), Services 198.19.0.0/16, cluster DNS 198.19.0.10.
#   Pod routes: the bridge subnet and the Service range only; no default route, no
#   masquerade, and a FORWARD rule drops anything from the bridge to another interface.
# What it changes on the machine, and `leave` undoes (check-clean proves it):
#   the bridge, /run/netns/cni-*, veths, /kubepods cgroups, kubelet and containerd mounts,
#   iptables chains (KUBE-*, CNI-*, BESU-*) and kernel settings (REAL_NODE_SYSCTLS: the
#   kubelet sets vm.overcommit_memory, kernel.panic, kernel.panic_on_oops; we set
#   net.ipv4.ip_forward, which pod -> Service -> pod needs), restored from a snapshot.
# Settings the machine needs (REPORT.md): failCgroupV1: false (cgroup v1 only here),
# containerd restrict_oom_score_adj (no CAP_SYS_RESOURCE: nothing may lower oom_score_adj).

REAL_NODE_BRIDGE=besu0
REAL_NODE_IP=198.18.0.1
REAL_NODE_POD_CIDR=198.18.0.0/24
REAL_NODE_SERVICE_CIDR=198.19.0.0/16
REAL_NODE_DNS_IP=198.19.0.10
# The cluster's DNS domain: deliberately not cluster.local, so that every real-node test
# shows that nothing the operator renders assumes Kubernetes' default domain (review R4).
# A reserved name (RFC 6761 .test): nothing outside this machine ever answers for it.
REAL_NODE_CLUSTER_DOMAIN=${BESU_CLUSTER_DOMAIN:-nodeops.test}
REAL_NODE_NAME=real-node-0
# The label and taint that keep pods off the real node unless they ask for it
# (tests: a namespace annotated by PodNodeSelector and PodTolerationRestriction).
REAL_NODE_LABEL=nodeops.dev/real-node
# containerd's sockets and state: a short path (socket paths are limited to 107 bytes).
REAL_NODE_RUN=/run/besu-real-node
REAL_NODE_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops net.ipv4.ip_forward net.ipv4.conf.all.route_localnet kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
REAL_NODE_PACKAGES="containerd runc containernetworking-plugins iptables conntrack gcc libc6-dev"
# Image names: the operator's and Besu's exactly as manifests/install.yaml, the chart and
# the operator's default image use them, so both apply unmodified.
REAL_NODE_IMAGE_PREFIX=besu-operator.local
PAUSE_IMAGE=$REAL_NODE_IMAGE_PREFIX/pause:3.10

rn_log() { printf '[real-node] %s\n' "$*" >&2; }
rn_die() { rn_log "error: $*"; exit 1; }

rn_repo() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }
rn_cache() { echo "${BESU_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/besu-operator}"; }
rn_images_dir() { echo "$(rn_cache)/images"; }

# --- deps ---------------------------------------------------------------------

real_node_deps() {
  local missing=() p
  for p in $REAL_NODE_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || rn_die "the real node needs root and these Debian packages: ${missing[*]} (or run with BESU_REAL_NODE=0 for kwok nodes only)"
  rn_log "installing Debian packages: ${missing[*]}"
  local t0=$SECONDS
  # No daemon from these packages may start on its own: the node starts its own containerd.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; added_policy=1; fi
  if ! { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends "${missing[@]}" >/dev/null; }; then
    [ $added_policy = 0 ] || rm -f "$policy"
    rn_die "apt-get install ${missing[*]} failed (see above); BESU_REAL_NODE=0 runs kwok nodes only"
  fi
  [ $added_policy = 0 ] || rm -f "$policy"
  rn_log "installed in $((SECONDS - t0)) s"
}

# --- images -------------------------------------------------------------------

# A root filesystem for a dynamically linked binary: the binary and the shared libraries
# ldd names (this machine is Debian 12, as distroless cc-debian12 and the Dockerfile's builder).
rn_copy_with_libs() { # BINARY DEST_IN_ROOT ROOT
  local bin=$1 dest=$2 root=$3 lib
  install -D -m 0755 "$bin" "$root$dest"
  for lib in $(ldd "$bin" | grep -oE '/[^ ]+\.so[^ ]*'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

rn_passwd() { # ROOT "name:uid"...
  local root=$1; shift
  mkdir -p "$root/etc" "$root/tmp"; chmod 1777 "$root/tmp"
  : > "$root/etc/passwd"; : > "$root/etc/group"
  local e
  for e in root:0 "$@"; do
    printf '%s:x:%s:%s:%s:/nonexistent:/sbin/nologin\n' "${e%%:*}" "${e##*:}" "${e##*:}" "${e%%:*}" >> "$root/etc/passwd"
    printf '%s:x:%s:\n' "${e%%:*}" "${e##*:}" >> "$root/etc/group"
  done
}

# The operator image's name and its runtime settings, read from the files users use:
# manifests/install.yaml (name) and the Dockerfile's final stage (USER, ENTRYPOINT, CMD).
rn_operator_image() { sed -n 's/^ *image: \(.*besu-operator:.*\)$/\1/p' "$(rn_repo)/manifests/install.yaml" | head -n 1; }
rn_dockerfile() { # INSTRUCTION: its JSON/args in the last stage
  awk -v i="$1" 'toupper($1) == "FROM" { v = "" } toupper($1) == i { $1 = ""; sub(/^ /, ""); v = $0 } END { print v }' "$(rn_repo)/Dockerfile"
}
rn_api_const() { sed -n "s/^pub const $1: &str = \"\\(.*\\)\";/\\1/p" "$(rn_repo)/api/src/common.rs"; }
rn_besu_image() { rn_api_const DEFAULT_BESU_IMAGE; }

# real_node_images [NAME...]: pause coredns prometheus operator besu geth prysm (default: all).
real_node_images() {
  local wanted=" ${*:-pause coredns prometheus operator besu geth prysm} "
  local repo out target t0=$SECONDS
  repo=$(rn_repo); out=$(rn_images_dir); target=${CARGO_TARGET_DIR:-$repo/target}
  local profile=${BESU_IMAGE_PROFILE:-debug}
  case $profile in debug | release) ;; *) rn_die "BESU_IMAGE_PROFILE=$profile: debug or release" ;; esac
  mkdir -p "$out"
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/besu-images.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN

  # pause: Kubernetes' own pause.c from the pinned module, linked statically.
  local kmod gomodcache bin
  bin=$("$repo/hack/build-tools.sh" bindir)
  if [[ $wanted == *" pause "* ]]; then
  gomodcache=$(go env GOMODCACHE)
  kmod="$gomodcache/k8s.io/kubernetes@$K8S_VERSION"
  if [ ! -f "$kmod/build/pause/linux/pause.c" ]; then
    (cd "$repo/hack/tools/kubernetes-node" && GOFLAGS=-mod=readonly go mod download k8s.io/kubernetes) >/dev/null
  fi
  mkdir -p "$work/pause"
  gcc -Os -static -DVERSION=v3.10-besu-local -o "$work/pause/pause" "$kmod/build/pause/linux/pause.c"
  python3 "$repo/hack/mkimage.py" "$work/pause" "$out/pause.tar" "$PAUSE_IMAGE" \
    '{"Entrypoint":["/pause"],"User":"65535:65535"}'
  fi

  # CoreDNS, built by hack/build-tools.sh (static, CGO off).
  if [[ $wanted == *" coredns "* ]]; then
  mkdir -p "$work/coredns"
  install -m 0755 "$bin/coredns/coredns" "$work/coredns/coredns"
  rn_passwd "$work/coredns" nonroot:65532
  python3 "$repo/hack/mkimage.py" "$work/coredns" "$out/coredns.tar" \
    "$REAL_NODE_IMAGE_PREFIX/coredns:${COREDNS_VERSION#v}" '{"Entrypoint":["/coredns"],"User":"65532:65532"}'
  fi

  # Prometheus, built by hack/build-tools.sh, under the operator's default Prometheus
  # image name, laid out as the official image (/bin/prometheus, user nobody).
  if [[ $wanted == *" prometheus "* ]]; then
    mkdir -p "$work/prometheus/bin" "$work/prometheus/prometheus"
    install -m 0755 "$bin/prometheus/prometheus" "$work/prometheus/bin/prometheus"
    install -m 0755 "$bin/prometheus/promtool" "$work/prometheus/bin/promtool"
    chmod 0777 "$work/prometheus/prometheus"
    rn_passwd "$work/prometheus" nobody:65534
    python3 "$repo/hack/mkimage.py" "$work/prometheus" "$out/prometheus.tar" "$(rn_api_const DEFAULT_PROMETHEUS_IMAGE)" \
      '{"Entrypoint":["/bin/prometheus"],"User":"65534:65534","WorkingDir":"/prometheus"}'
  fi

  # The operator: the binary of $BESU_IMAGE_PROFILE (debug unless release), where the
  # Dockerfile's runtime stage has its release binary (same path, user, entrypoint and
  # command; tests/real_node_basics.rs compares them).
  if [[ $wanted == *" operator "* ]]; then
  local entry cmd user
  entry=$(rn_dockerfile ENTRYPOINT); cmd=$(rn_dockerfile CMD); user=$(rn_dockerfile USER)
  [ -x "$target/$profile/besu-operator" ] || rn_die "$target/$profile/besu-operator is missing: make images (BESU_IMAGE_PROFILE=$profile)"
  rn_copy_with_libs "$target/$profile/besu-operator" "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0])' "$entry")" "$work/operator"
  rn_passwd "$work/operator" "nonroot:${user%%:*}"
  python3 "$repo/hack/mkimage.py" "$work/operator" "$out/operator.tar" "$(rn_operator_image)" \
    "{\"Entrypoint\":$entry,\"Cmd\":$cmd,\"User\":\"$user\"}"
  fi

  # The Besu stand-in under the pinned Besu image's name, where the rendered container
  # runs Besu (/opt/besu/bin/besu), as Besu's image user (uid 1000).
  if [[ $wanted == *" besu "* ]]; then
  [ -x "$target/$profile/besu-standin" ] || rn_die "$target/$profile/besu-standin is missing: make images (BESU_IMAGE_PROFILE=$profile)"
  rn_copy_with_libs "$target/$profile/besu-standin" /opt/besu/bin/besu "$work/besu"
  rn_passwd "$work/besu" besu:1000
  python3 "$repo/hack/mkimage.py" "$work/besu" "$out/besu.tar" "$(rn_besu_image)" \
    '{"Entrypoint":["/opt/besu/bin/besu"],"User":"1000:1000","WorkingDir":"/opt/besu"}'
  fi
  # The EthereumNode's clients, built by hack/build-tools.sh, under the operator's default
  # image names and laid out as the upstream images, so the rendered pod runs the same here
  # as in production. Geth as ethereum/client-go (Dockerfile: /usr/local/bin/geth,
  # ENTRYPOINT ["geth"] found on PATH; static, cgo off). Prysm as its Bazel images
  # (cmd/{beacon-chain,validator}/BUILD.bazel: the binary at the root, ENTRYPOINT ["/beacon-chain"]
  # or ["/validator"], and /app/cmd/<name>/<name> linked to it for older deployments);
  # cgo (BLS), so with glibc. Upstream runs them as root; these run as nonroot (65532), so
  # the data directories must be writable volumes (the root filesystem can be read-only).
  if [[ $wanted == *" geth "* ]]; then
    mkdir -p "$work/geth/usr/local/bin"
    install -m 0755 "$bin/geth/geth" "$work/geth/usr/local/bin/geth"
    rn_passwd "$work/geth" nonroot:65532
    python3 "$repo/hack/mkimage.py" "$work/geth" "$out/geth.tar" "$(rn_api_const DEFAULT_GETH_IMAGE)" \
      '{"Entrypoint":["geth"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"User":"65532:65532","ExposedPorts":{"8545/tcp":{},"8546/tcp":{},"30303/tcp":{},"30303/udp":{}}}'
  fi
  if [[ $wanted == *" prysm "* ]]; then
    local c
    for c in beacon-chain validator; do
      rn_copy_with_libs "$bin/prysm/$c" "/$c" "$work/prysm-$c"
      mkdir -p "$work/prysm-$c/app/cmd/$c"
      ln -s "/$c" "$work/prysm-$c/app/cmd/$c/$c"
      rn_passwd "$work/prysm-$c" nonroot:65532
    done
    python3 "$repo/hack/mkimage.py" "$work/prysm-beacon-chain" "$out/prysm-beacon-chain.tar" \
      "$(rn_api_const DEFAULT_PRYSM_BEACON_IMAGE)" '{"Entrypoint":["/beacon-chain"],"User":"65532:65532"}'
    python3 "$repo/hack/mkimage.py" "$work/prysm-validator" "$out/prysm-validator.tar" \
      "$(rn_api_const DEFAULT_PRYSM_VALIDATOR_IMAGE)" '{"Entrypoint":["/validator"],"User":"65532:65532"}'
  fi
  rn_log "images built in $((SECONDS - t0)) s: $(cd "$out" && ls -- *.tar | tr '\n' ' ')($out)"
}

# --- network and kernel settings ----------------------------------------------

rn_snapshot_sysctls() { # FILE
  local k
  for k in $REAL_NODE_SYSCTLS; do
    [ -e "/proc/sys/${k//.//}" ] && printf '%s = %s\n' "$k" "$(sysctl -n "$k")"
  done > "$1"
}

# Before the API server starts (it listens on the bridge): the bridge, a snapshot of the
# kernel settings, ip_forward, and the FORWARD guard.
real_node_net_up() {
  [ "$(id -u)" = 0 ] || rn_die "the real node needs root (or BESU_REAL_NODE=0 for kwok nodes only)"
  if ip link show "$REAL_NODE_BRIDGE" >/dev/null 2>&1; then
    local owner; owner=$(cat "$REAL_NODE_RUN/owner" 2>/dev/null || echo unknown)
    rn_die "the bridge $REAL_NODE_BRIDGE exists: another local cluster's real node is up ($owner). One real node per machine: bring that cluster down, or BESU_REAL_NODE=0"
  fi
  mkdir -p "$REAL_NODE_RUN"
  echo "$dir" > "$REAL_NODE_RUN/owner"
  [ -f "$dir/sysctl-before.conf" ] || rn_snapshot_sysctls "$dir/sysctl-before.conf"
  ip link add "$REAL_NODE_BRIDGE" type bridge
  ip addr add "$REAL_NODE_IP/24" dev "$REAL_NODE_BRIDGE"
  ip link set "$REAL_NODE_BRIDGE" up
  sysctl -q -w net.ipv4.ip_forward=1
  # Nothing from the pods' bridge is ever forwarded to another interface.
  iptables -N BESU-REAL-NODE 2>/dev/null || true
  iptables -A BESU-REAL-NODE -i "$REAL_NODE_BRIDGE" ! -o "$REAL_NODE_BRIDGE" -j DROP
  iptables -A BESU-REAL-NODE -o "$REAL_NODE_BRIDGE" ! -i "$REAL_NODE_BRIDGE" -j DROP
  iptables -I FORWARD 1 -j BESU-REAL-NODE
}

# --- join ---------------------------------------------------------------------

rn_write_containerd_config() {
  local d=$dir/real-node
  cat > "$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd"
state = "$REAL_NODE_RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$REAL_NODE_RUN/containerd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
EOF
  mkdir -p "$d/cni"
  cat > "$d/cni/10-besu.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "besu-real-node",
  "plugins": [
    {"type": "bridge", "bridge": "$REAL_NODE_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$REAL_NODE_RUN/ipam",
              "ranges": [[{"subnet": "$REAL_NODE_POD_CIDR", "gateway": "$REAL_NODE_IP"}]],
              "routes": [{"dst": "$REAL_NODE_SERVICE_CIDR"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

rn_write_kubelet_config() {
  local d=$dir/real-node p=$dir/pki
  printf 'nameserver %s\nsearch %s\n' "$REAL_NODE_DNS_IP" "$REAL_NODE_CLUSTER_DOMAIN" > "$d/resolv.conf"
  cat > "$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$REAL_NODE_RUN/containerd.sock
address: $REAL_NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $p/kubelet-serving.crt
tlsPrivateKeyFile: $p/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $p/ca.crt}
authorization: {mode: Webhook}
clusterDomain: $REAL_NODE_CLUSTER_DOMAIN
clusterDNS: [$REAL_NODE_DNS_IP]
resolvConf: $d/resolv.conf
podLogsDir: $d/pod-logs
failSwapOn: false
rotateCertificates: false
serverTLSBootstrap: false
registerWithTaints:
- {key: $REAL_NODE_LABEL, value: "true", effect: NoSchedule}
# Absolute disk floors: a percentage of a large shared disk (5% of 252 GiB is 12.6 GiB)
# tainted the node with disk-pressure while 12 GiB were still free, and no pod scheduled.
evictionHard: {memory.available: "200Mi", nodefs.available: "2Gi", imagefs.available: "2Gi"}
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
containerLogMaxSize: 10Mi
maxPods: 60
# Each pod is synced every 10 s instead of every minute: a changed Secret or ConfigMap
# reaches its volumes within about 10 s (what a test that rotates a mounted Secret waits).
syncFrequency: 10s
EOF
  cat > "$d/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $REAL_NODE_POD_CIDR
hostnameOverride: $REAL_NODE_NAME
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
nodePortAddresses: ["$REAL_NODE_IP/32"]
iptables: {localhostNodePorts: false, masqueradeAll: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
EOF
}

rn_ctr() { ctr --address "$REAL_NODE_RUN/containerd.sock" -n k8s.io "$@"; }

rn_node_ready() {
  [ "$(k get node "$REAL_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
rn_coredns_ready() {
  [ "$(k -n kube-system get pods -l k8s-app=kube-dns -o jsonpath='{.items[*].status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# No image is ever pulled: every image a test uses is imported from a local archive,
# and a pull of any other (an image the operator renders that was not built here)
# must fail here instead of reaching a registry. containerd's registry client honours
# the proxy variables, so a dead loopback proxy makes every pull fail at once with
# "proxyconnect tcp: dial tcp 127.0.0.1:9: connect: connection refused", before any
# name of a registry is even resolved.
start_containerd() {
  start containerd env BESU_CLUSTER_DIR="$dir" HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 \
    https_proxy=http://127.0.0.1:9 http_proxy=http://127.0.0.1:9 NO_PROXY= no_proxy= \
    /usr/bin/containerd --config "$dir/real-node/containerd.toml"
}
start_kubelet() {
  start kubelet "$bin/kubernetes-node/kubelet" --config="$dir/real-node/kubelet.yaml" \
    --kubeconfig="$dir/kubelet.kubeconfig" --hostname-override="$REAL_NODE_NAME" \
    --node-ip="$REAL_NODE_IP" --node-labels="$REAL_NODE_LABEL=true" \
    --root-dir="$dir/real-node/kubelet" --cert-dir="$dir/real-node/kubelet-pki" --v=1
}
start_kube_proxy() { start kube-proxy "$bin/kubernetes-node/kube-proxy" --config="$dir/real-node/kube-proxy.yaml" --v=1; }

# After the control plane is up: containerd, the images, the kubelet, kube-proxy, CoreDNS.
real_node_join() {
  local t0; t0=$(now_ms)
  local images; images=$(rn_images_dir)
  local i
  for i in pause coredns geth prysm-beacon-chain prysm-validator; do
    [ -f "$images/$i.tar" ] || rn_die "$images/$i.tar is missing: run hack/real-node.sh images (make test does)"
  done
  mkdir -p "$dir/real-node"/{pod-logs,kubelet,kubelet-pki}
  rn_write_containerd_config
  rn_write_kubelet_config
  start_containerd
  wait_for "containerd socket" 30 test -S "$REAL_NODE_RUN/containerd.sock"
  for i in "$images"/*.tar; do
    rn_ctr images import "$i" >/dev/null || rn_die "ctr images import $i failed"
  done
  start_kubelet
  wait_for "node $REAL_NODE_NAME Ready" 120 rn_node_ready
  start_kube_proxy
  k apply -f - >/dev/null <<EOF
$(sed -e "s|@COREDNS_IMAGE@|$REAL_NODE_IMAGE_PREFIX/coredns:${COREDNS_VERSION#v}|" \
      -e "s|@DNS_IP@|$REAL_NODE_DNS_IP|" -e "s|@LABEL@|$REAL_NODE_LABEL|" \
      -e "s|@DOMAIN@|$REAL_NODE_CLUSTER_DOMAIN|" "$here/cluster/coredns.yaml")
EOF
  wait_for "CoreDNS Ready on $REAL_NODE_NAME" 120 rn_coredns_ready
  real_node_snapshots_up
  log "real node $REAL_NODE_NAME Ready with CoreDNS and VolumeSnapshots in $(( $(now_ms) - t0 )) ms"
}

# --- VolumeSnapshots ------------------------------------------------------------
# The VolumeSnapshot CRDs and snapshot-controller (kubernetes-csi/external-snapshotter), and
# a CSI driver that takes snapshots: the project's own (hack/csi-driver; the upstream
# hostpath driver is not served by the module proxy) with the upstream csi-provisioner and
# csi-snapshotter sidecars. All run as processes on this machine beside the kubelet, on
# loopback to the API server (admin credentials: test infrastructure, not the product).
# Volumes and snapshots are directories under $dir/real-node/csi; the kubelet bind-mounts
# a volume into its pod through the driver and applies fsGroup (CSIDriver fsGroupPolicy).
# StorageClass and VolumeSnapshotClass: $REAL_NODE_CSI_CLASS. The kwok-only cluster has
# none of this, so the CRDs are missing there (the operator's "not served" case).
REAL_NODE_CSI_DRIVER=hostpath.csi.nodeops.dev
REAL_NODE_CSI_CLASS=nodeops-csi
rn_csi_socket() { echo "$REAL_NODE_RUN/csi/csi.sock"; }
rn_csi_registered() {
  k get csinode "$REAL_NODE_NAME" -o jsonpath='{.spec.drivers[*].name}' 2>/dev/null | grep -qw "$REAL_NODE_CSI_DRIVER"
}
rn_snapshot_crds_established() {
  local c
  for c in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
    [ "$(k get crd "$c.snapshot.storage.k8s.io" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ] || return 1
  done
}
# The snapshot CRDs of the locked external-snapshotter: its client module's config/crd.
rn_snapshot_crd_dir() {
  local repo; repo=$(rn_repo)
  (cd "$repo/hack/tools/external-snapshotter" && GOFLAGS=-mod=readonly go mod download -json \
    github.com/kubernetes-csi/external-snapshotter/client/v8 2>/dev/null) |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | sed 's|$|/config/crd|'
}
real_node_snapshots_up() {
  local crds c
  crds=$(rn_snapshot_crd_dir)
  [ -f "$crds/snapshot.storage.k8s.io_volumesnapshots.yaml" ] ||
    rn_die "the VolumeSnapshot CRDs are missing (${crds:-no client/v8 module}): run hack/build-tools.sh build external-snapshotter"
  for c in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
    k apply -f "$crds/snapshot.storage.k8s.io_$c.yaml" >/dev/null
  done
  wait_for "the VolumeSnapshot CRDs Established" 30 rn_snapshot_crds_established
  for c in csi-driver/nodeops-csi external-provisioner/csi-provisioner external-snapshotter/csi-snapshotter external-snapshotter/snapshot-controller; do
    [ -x "$bin/$c" ] || rn_die "$bin/$c is missing: run hack/build-tools.sh build external-snapshotter external-provisioner csi-driver (make test does)"
  done
  # The kubelet finds plugins by their sockets in <root-dir>/plugins_registry and dials that
  # path, which a socket address limits to 107 bytes: the name is kept short.
  local reg="$dir/real-node/kubelet/plugins_registry/nodeops-csi.sock"
  [ "${#reg}" -le 107 ] ||
    rn_die "the CSI registration socket path is ${#reg} bytes ($reg), over a socket's 107: use a shorter BESU_CLUSTER_DIR"
  mkdir -p "$dir/real-node/csi" "$REAL_NODE_RUN/csi"
  start csi-driver "$bin/csi-driver/nodeops-csi" --driver-name="$REAL_NODE_CSI_DRIVER" \
    --node-id="$REAL_NODE_NAME" --state-dir="$dir/real-node/csi" --endpoint="$(rn_csi_socket)" \
    --registration-socket="$reg"
  wait_for "the CSI driver's socket" 30 test -S "$(rn_csi_socket)"
  start csi-provisioner "$bin/external-provisioner/csi-provisioner" --csi-address="$(rn_csi_socket)" \
    --kubeconfig="$dir/kubeconfig" --leader-election=false --timeout=60s --v=2
  start csi-snapshotter "$bin/external-snapshotter/csi-snapshotter" --csi-address="$(rn_csi_socket)" \
    --kubeconfig="$dir/kubeconfig" --leader-election=false --timeout=60s --v=2
  start snapshot-controller "$bin/external-snapshotter/snapshot-controller" \
    --kubeconfig="$dir/kubeconfig" --leader-election=false --v=2
  k apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: $REAL_NODE_CSI_DRIVER
spec:
  attachRequired: false
  podInfoOnMount: false
  fsGroupPolicy: File
  volumeLifecycleModes: [Persistent]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $REAL_NODE_CSI_CLASS
provisioner: $REAL_NODE_CSI_DRIVER
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: $REAL_NODE_CSI_CLASS
driver: $REAL_NODE_CSI_DRIVER
deletionPolicy: Delete
EOF
  wait_for "the CSI driver registered with the kubelet" 60 rn_csi_registered
}

# --- leave --------------------------------------------------------------------

# Removes every rule that jumps to one of our chains, then the chains, in every table.
rn_iptables_cleanup() {
  local ipt t rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle raw; do
      "$ipt" -t "$t" -S >/dev/null 2>&1 || continue
      { "$ipt" -t "$t" -S | grep -E '^-A [A-Z]+ .*-j (KUBE|CNI|BESU)-' || true; } | while read -r rule; do
        eval "$ipt -t $t -D ${rule#-A }" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$t" -S | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI|BESU)-/ { print $2 }'); do
        "$ipt" -t "$t" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$t" -S | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI|BESU)-/ { print $2 }'); do
        "$ipt" -t "$t" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

real_node_leave() {
  local owner; owner=$(cat "$REAL_NODE_RUN/owner" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$dir" ] && [ -d "$owner" ]; then
    return 0 # another cluster's node
  fi
  stop_one snapshot-controller
  stop_one csi-snapshotter
  stop_one csi-provisioner
  stop_one kube-proxy
  stop_one kubelet
  stop_one csi-driver
  if is_ours_alive "$(pid_of containerd)"; then
    local t
    for t in $(rn_ctr tasks ls -q 2>/dev/null); do rn_ctr tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    local deadline=$(( $(now_ms) + 10000 ))
    while [ -n "$(rn_ctr tasks ls -q 2>/dev/null | grep -v '^$' || true)" ] && [ "$(now_ms)" -lt "$deadline" ]; do
      for t in $(rn_ctr tasks ls -q 2>/dev/null); do rn_ctr tasks delete -f "$t" >/dev/null 2>&1 || true; done
      sleep 0.2
    done
    for t in $(rn_ctr containers ls -q 2>/dev/null); do rn_ctr containers delete "$t" >/dev/null 2>&1 || true; done
  fi
  stop_one containerd
  # Shims outlive containerd: any left for our state dir go now.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $REAL_NODE_RUN/" 2>/dev/null || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  rn_iptables_cleanup
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }'); do ip netns delete "$ns" 2>/dev/null || true; done
  local m
  grep -oE " ($dir|$REAL_NODE_RUN)/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h/kubepods" ] || continue
    find "$h/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# Last, once the API server (listening on the bridge) has stopped: the bridge, the
# FORWARD guard, the kernel settings as they were before the node.
real_node_net_down() {
  local owner; owner=$(cat "$REAL_NODE_RUN/owner" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$dir" ] && [ -d "$owner" ]; then
    return 0 # another cluster's node
  fi
  rn_iptables_cleanup
  if ip link show "$REAL_NODE_BRIDGE" >/dev/null 2>&1; then ip link delete "$REAL_NODE_BRIDGE"; fi
  if [ -f "$dir/sysctl-before.conf" ]; then sysctl -q -p "$dir/sysctl-before.conf" >/dev/null 2>&1 || true; fi
  rm -rf -- "$REAL_NODE_RUN"
}

# Everything a real node leaves on the machine, if anything (nothing printed: clean).
# SNAPSHOT: the kernel settings from before the node (optional).
real_node_leftovers() {
  local snapshot=${1:-}
  ip link show "$REAL_NODE_BRIDGE" >/dev/null 2>&1 && echo "bridge $REAL_NODE_BRIDGE"
  ip -o link show type veth 2>/dev/null | grep -q "master $REAL_NODE_BRIDGE" && echo "veths on $REAL_NODE_BRIDGE"
  ip netns list 2>/dev/null | awk '/^cni-/ { print "network namespace " $1 }'
  local ipt t
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle raw; do
      "$ipt" -t "$t" -S 2>/dev/null | awk -v w="$ipt -t $t" '$1 == "-N" && $2 ~ /^(KUBE|CNI|BESU)-/ { print w " chain " $2 }'
    done
  done
  local h
  for h in /sys/fs/cgroup/*/; do [ -d "$h/kubepods" ] && echo "cgroup ${h}kubepods"; done
  grep -E " $REAL_NODE_RUN/| [^ ]*/real-node/(kubelet|containerd)" /proc/self/mounts | awk '{ print "mount " $2 }'
  pgrep -a -f "containerd-shim-runc-v2 .*-address $REAL_NODE_RUN/" 2>/dev/null | sed 's/^/process /' || true
  [ -e "$REAL_NODE_RUN" ] && echo "directory $REAL_NODE_RUN"
  if [ -n "$snapshot" ] && [ -f "$snapshot" ]; then
    local now; now=$(mktemp); rn_snapshot_sysctls "$now"
    diff "$snapshot" "$now" | sed -n 's/^> /kernel setting changed: /p'
    rm -f "$now"
  fi
  return 0
}

# --- standalone ---------------------------------------------------------------
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  here=$(cd "$(dirname "$0")" && pwd)
  # shellcheck source=versions.env
  source "$here/versions.env"
  case "${1:-}" in
    deps) real_node_deps ;;
    images) shift; real_node_images "$@" ;;
    check-clean)
      left=$(real_node_leftovers "${2:-}")
      if [ -n "$left" ]; then rn_log "left on the machine:"; printf '  %s\n' "$left" >&2; exit 1; fi
      rn_log "clean: no bridge, network namespace, iptables chain, cgroup, mount or shim of a real node" ;;
    snapshot-sysctls) rn_snapshot_sysctls "${2:?file}" ;;
    *) echo "usage: $0 deps|images|check-clean [SYSCTL_SNAPSHOT]|snapshot-sysctls FILE" >&2; exit 2 ;;
  esac
fi

#!/usr/bin/env bash
# Builds the pinned control-plane binaries from Go modules and caches them
# outside the repository, keyed by version. A warm machine rebuilds nothing.
#
#   hack/build-tools.sh            build (or reuse) everything, print the bin dir
#   hack/build-tools.sh bindir     print the bin dir only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${BESU_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/besu-operator}
bin="$cache/bin"
mkdir -p "$bin" "$cache/build"

log() { printf '[build-tools] %s\n' "$*" >&2; }

if [ "${1:-}" = bindir ]; then echo "$bin"; exit 0; fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# Downloads module@version and prints the path of its go.mod; fails with the
# proxy's own error (some tagged versions are listed but not downloadable).
module_gomod() {
  local json err gomod
  json=$(go mod download -json "$1" || true)
  err=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p')
  if [ -n "$err" ]; then
    log "cannot download $1: $err"
    log "pick another version in hack/versions.env"
    return 1
  fi
  gomod=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || { log "no go.mod for $1"; return 1; }
  echo "$gomod"
}

# --- Kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
build_kubernetes() {
  local v=$K8S_VERSION minor major out="$bin/kubernetes-$K8S_VERSION"
  major=$(echo "${v#v}" | cut -d. -f1); minor=$(echo "${v#v}" | cut -d. -f2)
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=0
  for c in "${cmds[@]}"; do [ -x "$out/$c" ] || missing=1; done
  [ $missing = 0 ] && return 0
  log "building Kubernetes $v (cold: ~15-25 min on 2 cores)"
  local w="$cache/build/kubernetes-$v"
  rm -rf "$w"; mkdir -p "$w"; cd "$w"
  # The module's own go.mod replaces its staging modules with ./staging paths,
  # which `go install` refuses. A wrapper module requires k8s.io/kubernetes and
  # replaces every staging module by its tagged v0.MINOR.PATCH release. The
  # list is derived from the upstream go.mod, not typed by hand.
  local gomod
  gomod=$(module_gomod "k8s.io/kubernetes@$v")
  local staging_v="v0.${minor}.${v##*.}"
  {
    echo "module besu-operator.local/kubernetes-tools"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    echo "replace ("
    grep -E '^[[:space:]]*k8s\.io/[^ ]+ => \./staging/' "$gomod" |
      awk -v sv="$staging_v" '{print "\t" $1 " => " $1 " " sv}'
    echo ")"
  } > go.mod
  local n; n=$(grep -c ' => k8s.io/' go.mod)
  log "wrapper module replaces $n staging modules with $staging_v"
  go mod download k8s.io/kubernetes
  local pkgs=(); for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  go get "${pkgs[@]}"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  mkdir -p "$out.tmp"
  for c in "${cmds[@]}"; do
    log "go build $c"
    go build -trimpath -ldflags "$ld" -o "$out.tmp/$c" "k8s.io/kubernetes/cmd/$c"
  done
  rm -rf "$out"; mv "$out.tmp" "$out"
}

# --- kwok (fake kubelets)
build_kwok() {
  local out="$bin/kwok-$KWOK_VERSION"
  [ -x "$out/kwok" ] && return 0
  log "building kwok $KWOK_VERSION"
  mkdir -p "$out.tmp"
  GOBIN="$out.tmp" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  rm -rf "$out"; mv "$out.tmp" "$out"
}

# --- etcd
build_etcd() {
  local out="$bin/etcd-$ETCD_VERSION"
  [ -x "$out/etcd" ] && return 0
  log "building etcd $ETCD_VERSION"
  local w="$cache/build/etcd-$ETCD_VERSION"
  rm -rf "$w"; mkdir -p "$w"; cd "$w"
  local gomod
  gomod=$(module_gomod "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  {
    echo "module besu-operator.local/etcd-tools"
    echo
    echo "go 1.25"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    echo "replace ("
    grep -E '^[[:space:]]*go\.etcd\.io/etcd/[^ ]+ => \.\./' "$gomod" |
      awk -v v="$ETCD_VERSION" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > go.mod
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  mkdir -p "$out.tmp"
  go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_etcd
build_kwok
build_kubernetes
# Stable names for the scripts: links into the versioned directories.
ln -sfn "kubernetes-$K8S_VERSION" "$bin/kubernetes"
ln -sfn "kwok-$KWOK_VERSION" "$bin/kwok"
ln -sfn "etcd-$ETCD_VERSION" "$bin/etcd"
echo "$bin"

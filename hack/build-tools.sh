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
  log "building Kubernetes $v (cold: ~7 min on 2 cores)"
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

# --- helm (lint and template of the chart in manifests/helm). Like helm's Makefile, the
# Kubernetes version it assumes (for `helm template` and lint's deprecation checks) is
# derived from the k8s.io/client-go version in its go.mod: v0.M.x is Kubernetes 1.M.
build_helm() {
  local v=$HELM_VERSION out="$bin/helm-$HELM_VERSION"
  [ -x "$out/helm" ] && return 0
  log "building helm $v"
  local gomod client_go k8s_minor
  gomod=$(module_gomod "helm.sh/helm/v3@$v")
  client_go=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")
  k8s_minor=$(echo "${client_go#v}" | cut -d. -f2)
  [ -n "$k8s_minor" ] || { log "no k8s.io/client-go in helm's go.mod"; return 1; }
  local h=helm.sh/helm/v3 ld
  ld="-s -w -X $h/internal/version.version=$v -X $h/internal/version.gitTreeState=clean"
  ld+=" -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
  ld+=" -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$k8s_minor"
  local tmp; tmp=$(mktemp -d "$out.tmp.XXXXXX"); chmod 755 "$tmp"
  GOBIN="$tmp" go install -trimpath -ldflags "$ld" "$h/cmd/helm@$v"
  rm -rf "$out"; mv -T "$tmp" "$out"
}

# --- operator-sdk (bundle validate). containers_image_openpgp: a pure-Go signature
# backend instead of gpgme, so it builds with CGO_ENABLED=0. `go install pkg@version`
# refuses here (it lists the module's versions for deprecation notices, and the proxy
# answers 403 for that list), so a wrapper module requires the pinned version, like
# etcd above; upstream go.mod has no replace directives to carry over (checked below).
build_operator_sdk() {
  local v=$OPERATOR_SDK_VERSION out="$bin/operator-sdk-$OPERATOR_SDK_VERSION"
  [ -x "$out/operator-sdk" ] && return 0
  log "building operator-sdk $v"
  local w="$cache/build/operator-sdk-$v"
  rm -rf "$w"; mkdir -p "$w"; cd "$w"
  local gomod
  gomod=$(module_gomod "github.com/operator-framework/operator-sdk@$v")
  if grep -qE '^[[:space:]]*replace|=>' "$gomod"; then
    log "operator-sdk $v has replace directives in its go.mod: carry them into the wrapper"
    return 1
  fi
  printf 'module besu-operator.local/operator-sdk-tools\n\ngo 1.25\n\nrequire github.com/operator-framework/operator-sdk %s\n' "$v" > go.mod
  local repo=github.com/operator-framework/operator-sdk
  go get -tags containers_image_openpgp "$repo/cmd/operator-sdk@$v"
  local tmp; tmp=$(mktemp -d "$out.tmp.XXXXXX"); chmod 755 "$tmp"
  go build -trimpath -tags containers_image_openpgp \
    -ldflags "-s -w -X $repo/internal/version.Version=$v -X $repo/internal/version.GitVersion=$v" \
    -o "$tmp/operator-sdk" "$repo/cmd/operator-sdk"
  rm -rf "$out"; mv -T "$tmp" "$out"
}

# --- prometheus and promtool (monitoring tests: a real Prometheus on loopback, promtool
# check config/rules). Its go.mod has a replace directive, so `go install` refuses: a
# wrapper module requires the pinned module version and carries the replaces over. The
# web UI is not embedded (no builtinassets tag): the tests use the HTTP API only.
build_prometheus() {
  local v=$PROMETHEUS_VERSION out="$bin/prometheus-$PROMETHEUS_VERSION"
  [ -x "$out/prometheus" ] && [ -x "$out/promtool" ] && return 0
  log "building prometheus $v (module $PROMETHEUS_MODULE; cold: ~3 min on 2 cores)"
  local w="$cache/build/prometheus-$v"
  rm -rf "$w"; mkdir -p "$w"; cd "$w"
  local gomod repo=github.com/prometheus/prometheus
  gomod=$(module_gomod "$repo@$PROMETHEUS_MODULE")
  {
    echo "module besu-operator.local/prometheus-tools"
    echo
    echo "go 1.25"
    echo
    echo "require $repo $PROMETHEUS_MODULE"
    echo
    grep -E '^replace ' "$gomod" || true
  } > go.mod
  go get "$repo/cmd/prometheus@$PROMETHEUS_MODULE" "$repo/cmd/promtool@$PROMETHEUS_MODULE"
  local c=github.com/prometheus/common/version ld
  ld="-s -w -X $c.Version=${v#v} -X $c.Branch=HEAD -X $c.Revision=$PROMETHEUS_MODULE -X $c.BuildUser=besu-operator"
  local tmp; tmp=$(mktemp -d "$out.tmp.XXXXXX"); chmod 755 "$tmp"
  for cmd in prometheus promtool; do
    log "go build $cmd"
    go build -trimpath -ldflags "$ld" -o "$tmp/$cmd" "$repo/cmd/$cmd"
  done
  rm -rf "$out"; mv -T "$tmp" "$out"
}

build_etcd
build_kwok
build_kubernetes
build_helm
build_operator_sdk
build_prometheus
# Stable names for the scripts: links into the versioned directories.
ln -sfn "kubernetes-$K8S_VERSION" "$bin/kubernetes"
ln -sfn "kwok-$KWOK_VERSION" "$bin/kwok"
ln -sfn "etcd-$ETCD_VERSION" "$bin/etcd"
ln -sfn "helm-$HELM_VERSION" "$bin/helm"
ln -sfn "operator-sdk-$OPERATOR_SDK_VERSION" "$bin/operator-sdk"
ln -sfn "prometheus-$PROMETHEUS_VERSION" "$bin/prometheus"
echo "$bin"

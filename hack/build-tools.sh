#!/usr/bin/env bash
# Builds the pinned Go tools (local control plane, helm, operator-sdk, Prometheus, and the
# real node's Ethereum clients: Geth, Prysm) and
# caches them outside the repository. A warm machine rebuilds nothing.
#
# Versions: hack/versions.env is the pin, the one place a version is set by hand.
# Locks:    hack/tools/<tool>/go.mod + go.sum, derived from the pin by `lock` and committed.
#           They fix the version and checksum of every module in the tool's graph; builds
#           run with -mod=readonly, so a build that would change them fails instead of
#           drifting. tests/tools_lock.rs fails when a lock and its pin disagree, or when a
#           cached binary was built from other module versions than the lock's.
# Cache:    $BESU_OPERATOR_CACHE/bin/<tool>-<version>-<hash of go.mod+go.sum>, so changing one
#           pin (and re-locking) rebuilds exactly that tool. $bin/<tool> links to it.
#
#   hack/build-tools.sh              build (or reuse) every tool, print the bin dir
#   hack/build-tools.sh build TOOL.. build (or reuse) only these (make demo: the cluster's)
#   hack/build-tools.sh bindir       print the bin dir only
#   hack/build-tools.sh lock [TOOL]  rewrite the locks whose version differs from the pin
#                                    (or TOOL's lock, always); review and commit hack/tools/
#   hack/build-tools.sh list         the tools and their pins
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${BESU_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/besu-operator}
bin="$cache/bin"
logs="$cache/logs"
locks="$here/tools"

if [ "${1:-}" = bindir ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin" "$logs"

# Progress goes to the terminal (stderr); the Go toolchain's output goes to a log per tool.
say() { printf '[tools] %s\n' "$*" >&2; }
fmt_s() { local s=$1; if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi; }

export CGO_ENABLED=0 GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
# The Go compiler collects garbage less often: the tools compile about 18% faster, for
# little memory. Measured on 2 cores with an empty GOCACHE (modules downloaded): Kubernetes'
# four control-plane binaries 501 s at the default GOGC=100, 410 s at 800 (the machine's
# MemAvailable fell 0.7 GB at 100, 1.5 GB at 800); helm 113-118 s at 100, 99 s at 400,
# 95 s at 800. Only this script's go commands see it.
export GOGC=${BESU_TOOLS_GOGC:-800}

# --- the tools -----------------------------------------------------------------
# name | main module | pin variable | packages (under the module) | binaries | minutes on
# 2 cores with empty caches (measured, README "Tests") | label
# Geth and Prysm (2026-11-28, GOCACHE and GOMODCACHE empty, downloads included): geth 1m51s,
# prysm (all five binaries) 2m54s. Prysm's tools/unencrypted-keys-gen and tools/keystores
# make the EIP-2335 keystores of the interop validator keys (hack/eth-devnet.sh genesis).
TOOLS=(
  "etcd|go.etcd.io/etcd/server/v3|ETCD_VERSION|.|etcd|1|etcd"
  "kwok|sigs.k8s.io/kwok|KWOK_VERSION|cmd/kwok|kwok|2|kwok"
  "kubernetes|k8s.io/kubernetes|K8S_VERSION|cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl|kube-apiserver kube-controller-manager kube-scheduler kubectl|7|Kubernetes"
  "kubernetes-node|k8s.io/kubernetes|K8S_VERSION|cmd/kubelet cmd/kube-proxy|kubelet kube-proxy|1|kubelet and kube-proxy (the real node)"
  "coredns|github.com/coredns/coredns|COREDNS_VERSION|.|coredns|2|CoreDNS (the real node)"
  "helm|helm.sh/helm/v3|HELM_VERSION|cmd/helm|helm|1|helm"
  "operator-sdk|github.com/operator-framework/operator-sdk|OPERATOR_SDK_VERSION|cmd/operator-sdk|operator-sdk|3|operator-sdk"
  "prometheus|github.com/prometheus/prometheus|PROMETHEUS_MODULE|cmd/prometheus cmd/promtool|prometheus promtool|3|Prometheus and promtool"
  "geth|github.com/ethereum/go-ethereum|GETH_VERSION|cmd/geth|geth|2|Geth (the real node's EthereumNode images)"
  "prysm|github.com/OffchainLabs/prysm/v7|PRYSM_VERSION|cmd/beacon-chain cmd/validator cmd/prysmctl tools/unencrypted-keys-gen tools/keystores|beacon-chain validator prysmctl unencrypted-keys-gen keystores|3|Prysm (the real node's EthereumNode images)"
  "external-snapshotter|github.com/kubernetes-csi/external-snapshotter/v8|EXTERNAL_SNAPSHOTTER_VERSION|cmd/snapshot-controller cmd/csi-snapshotter|snapshot-controller csi-snapshotter|2|the VolumeSnapshot controller and CSI snapshotter (the real node)"
  "external-provisioner|github.com/kubernetes-csi/external-provisioner/v6|EXTERNAL_PROVISIONER_VERSION|cmd/csi-provisioner|csi-provisioner|2|the CSI provisioner (the real node)"
)

tool_field() { # tool_field NAME INDEX
  local t
  for t in "${TOOLS[@]}"; do
    IFS='|' read -r -a f <<<"$t"
    if [ "${f[0]}" = "$1" ]; then echo "${f[$2]}"; return 0; fi
  done
  say "unknown tool $1 (known: $(for t in "${TOOLS[@]}"; do printf '%s ' "${t%%|*}"; done))"
  return 1
}
pkg_path() { if [ "$2" = . ]; then echo "$1"; else echo "$1/$2"; fi; }

# The version of MODULE that a lock's go.mod requires (empty if none).
locked_version() {
  awk -v m="$2" '
    $1 == "require" && $2 == m { print $3; exit }
    $1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod" 2>/dev/null || true
}

# --- lock: pin -> hack/tools/<tool>/go.mod + go.sum --------------------------------

# Downloads module@version and prints the path of its go.mod (for replace directives).
module_gomod() {
  local json err gomod
  json=$(GOFLAGS=-mod=mod go mod download -json "$1" 2>/dev/null || true)
  err=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p')
  if [ -n "$err" ]; then
    say "cannot download $1: $err"
    say "pick another version in hack/versions.env"
    return 1
  fi
  gomod=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || { say "no go.mod for $1"; return 1; }
  echo "$gomod"
}

# The replace directives a tool's wrapper module needs, derived from upstream's go.mod.
replaces_for() { # NAME VERSION UPSTREAM_GOMOD
  case "$1" in
    kubernetes | kubernetes-node)
      # Upstream replaces its staging modules with ./staging paths, which a module
      # outside its tree cannot use: each becomes its tagged v0.MINOR.PATCH release.
      local minor staging_v
      minor=$(echo "${2#v}" | cut -d. -f2)
      staging_v="v0.${minor}.${2##*.}"
      grep -E '^[[:space:]]*k8s\.io/[^ ]+ => \./staging/' "$3" |
        awk -v sv="$staging_v" '{print "replace " $1 " => " $1 " " sv}'
      ;;
    etcd)
      # Likewise etcd's sibling modules (../api, ../pkg, ...) at the same tag.
      grep -E '^[[:space:]]*go\.etcd\.io/etcd/[^ ]+ => \.\./' "$3" |
        awk -v v="$2" '{print "replace " $1 " => " $1 " " v}'
      ;;
    prysm)
      # Prysm replaces github.com/tyler-smith/go-bip39 with ./third_party/go-bip39, a nested
      # module its module zip does not contain (the upstream repository was deleted; the
      # proxy still serves it): it becomes the version Prysm requires. The rest carry over.
      awk '
        $1 == "replace" && $4 ~ /^\./ { next }
        $1 == "replace" { print }' "$3"
      awk '$1 == "github.com/tyler-smith/go-bip39" && $2 ~ /^v/ { print "replace " $1 " => " $1 " " $2; exit }' "$3"
      ;;
    external-snapshotter)
      # Its client module (the API types and the CRDs the real node installs) is replaced
      # by ./client, a nested module: it becomes client/v8 at the same tag. The rest carry over.
      awk '
        $1 == "replace" && $4 ~ /^\./ { next }
        $1 == "replace" { print }' "$3"
      echo "replace github.com/kubernetes-csi/external-snapshotter/client/v8 => github.com/kubernetes-csi/external-snapshotter/client/v8 $2"
      ;;
    *)
      # Replace directives that point at other module versions carry over as they are;
      # a local-path replace cannot, and is refused.
      if grep -E '=>[[:space:]]*\.' "$3" >/dev/null; then
        say "$1 $2 replaces a module with a local path in its go.mod: teach replaces_for about it"
        return 1
      fi
      awk '
        /^replace \(/ { inblock = 1; next }
        inblock && /^\)/ { inblock = 0; next }
        inblock && NF { print "replace " $0; next }
        /^replace / { print }' "$3"
      ;;
  esac
}

lock_tool() {
  local name=$1 module pinvar pin pkgs w log t0
  module=$(tool_field "$name" 1); pinvar=$(tool_field "$name" 2); pkgs=$(tool_field "$name" 3)
  pin=${!pinvar}
  log="$logs/lock-$name.log"; : >"$log"
  say "locking $name at $pin ($module; log: $log)"
  t0=$SECONDS
  w=$(mktemp -d "${TMPDIR:-/tmp}/besu-tools-lock.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$w'" RETURN
  local gomod
  gomod=$(module_gomod "$module@$pin") || return 1
  {
    echo "// The lock of the $name tool: generated by \`hack/build-tools.sh lock $name\` from"
    echo "// $pinvar in hack/versions.env. Do not edit by hand; tests/tools_lock.rs checks it."
    echo "module besu-operator.local/tools/$name"
    echo
    echo "go 1.25"
    echo
    echo "require $module $pin"
    echo
    local p; for p in $pkgs; do echo "tool $(pkg_path "$module" "$p")"; done
    echo
    replaces_for "$name" "$pin" "$gomod"
  } >"$w/go.mod"
  # Start from upstream's go.sum: its checksums were verified with the module itself, and
  # some versions it names are served by the proxy but unknown to the checksum database
  # (Prysm's quic-go pseudo-version: sum.golang.org answers 404). tidy drops what is unused.
  local updir; updir=$(GOFLAGS=-mod=mod go mod download -json "$module@$pin" 2>/dev/null |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ ! -f "$updir/go.sum" ] || cp "$updir/go.sum" "$w/go.sum"
  if ! (cd "$w" && GOFLAGS=-mod=mod go mod tidy) >>"$log" 2>&1; then
    say "go mod tidy failed for $name $pin; last 30 lines of $log:"
    tail -n 30 "$log" >&2
    return 1
  fi
  local got; got=$(locked_version "$w" "$module")
  if [ "$got" != "$pin" ]; then
    say "the lock of $name resolved $module to ${got:-nothing}, not the pin $pin"
    return 1
  fi
  mkdir -p "$locks/$name"
  cp "$w/go.mod" "$w/go.sum" "$locks/$name/"
  say "locked $name $pin in $(fmt_s $((SECONDS - t0))): hack/tools/$name/go.mod, go.sum ($(wc -l <"$w/go.sum") checksums); review and commit them"
}

# --- build: lock -> cached binaries ----------------------------------------------

ldflags_for() { # NAME
  case "$1" in
    kubernetes | kubernetes-node)
      local v=$K8S_VERSION major minor
      major=$(echo "${v#v}" | cut -d. -f1); minor=$(echo "${v#v}" | cut -d. -f2)
      printf '%s' "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
      ;;
    helm)
      # Like helm's Makefile: the Kubernetes version it assumes (helm template, lint's
      # deprecation checks) comes from the k8s.io/client-go version in its module graph.
      local h=helm.sh/helm/v3 client_go k8s_minor
      client_go=$(locked_version "$locks/helm" k8s.io/client-go)
      k8s_minor=$(echo "${client_go#v}" | cut -d. -f2)
      printf '%s' "-s -w -X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$k8s_minor -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$k8s_minor"
      ;;
    operator-sdk)
      local r=github.com/operator-framework/operator-sdk
      printf '%s' "-s -w -X $r/internal/version.Version=$OPERATOR_SDK_VERSION -X $r/internal/version.GitVersion=$OPERATOR_SDK_VERSION"
      ;;
    prometheus)
      local c=github.com/prometheus/common/version
      printf '%s' "-s -w -X $c.Version=${PROMETHEUS_VERSION#v} -X $c.Branch=HEAD -X $c.Revision=$PROMETHEUS_MODULE -X $c.BuildUser=besu-operator"
      ;;
    prysm)
      printf '%s' "-s -w -X github.com/OffchainLabs/prysm/v7/runtime/version.gitTag=$PRYSM_VERSION"
      ;;
    *) printf '%s' "-s -w" ;;
  esac
}
# cgo is off for every tool (static binaries) but Prysm: its BLS library (blst) is C, so its
# binaries link glibc dynamically (images copy the libraries: rn_copy_with_libs). blst is
# compiled portable (no ADX/SHA extensions assumed), as Prysm's go-build instructions say.
# Geth builds without cgo (pure-Go secp256k1 and KZG), so it stays static.
cgo_for() { case "$1" in prysm) echo 1 ;; *) echo 0 ;; esac; }
cgo_cflags_for() { case "$1" in prysm) echo "-O2 -D__BLST_PORTABLE__" ;; *) echo "" ;; esac; }
# operator-sdk: containers_image_openpgp, a pure-Go signature backend instead of gpgme, so
# it builds with CGO_ENABLED=0. Prometheus: no builtinassets (the tests use the HTTP API).
tags_for() { case "$1" in operator-sdk) echo containers_image_openpgp ;; *) echo "" ;; esac; }

# The hint for a build that failed, from what the toolchain said.
explain_failure() { # NAME LOG
  if grep -qE 'missing go\.sum entry|updates to go\.mod needed|go: updates to go\.sum needed' "$2"; then
    say "hack/tools/$1/go.mod or go.sum is incomplete or stale, and builds never change them."
    say "Run: hack/build-tools.sh lock $1   then review and commit hack/tools/$1/"
  elif grep -qE 'checksum mismatch|SECURITY ERROR' "$2"; then
    say "a downloaded module does not match its checksum in hack/tools/$1/go.sum (altered lock"
    say "or altered download). Do not re-lock blindly: check git diff hack/tools/$1/ first."
  elif grep -qE '403 Forbidden|404 Not Found|410 Gone|not found: ' "$2"; then
    say "the module proxy refused a module of $1 (see above): pick another version in"
    say "hack/versions.env, then hack/build-tools.sh lock $1"
  fi
}

# Prints the directory the tool's binaries live in once built.
# The tool's packages, as `go build` and `go list` take them.
tool_targets() { # NAME
  local module p
  module=$(tool_field "$1" 1)
  for p in $(tool_field "$1" 3); do pkg_path "$module" "$p"; done
}

# Whether every binary of the tool is in the cache for its current lock.
tool_built() { # NAME
  local out b
  [ -f "$locks/$1/go.mod" ] && [ -f "$locks/$1/go.sum" ] || return 1
  out=$(tool_out "$1")
  for b in $(tool_field "$1" 4); do [ -x "$out/$b" ] || return 1; done
}

tool_out() { # NAME
  local name=$1 pinvar pin key
  pinvar=$(tool_field "$name" 2); pin=${!pinvar}
  key=$(cat "$locks/$name/go.mod" "$locks/$name/go.sum" | sha256sum | cut -c1-12)
  echo "$bin/$name-$pin-$key"
}

build_tool() {
  local name=$1 module pinvar pin pkgs bins minutes label out
  module=$(tool_field "$name" 1); pinvar=$(tool_field "$name" 2); pkgs=$(tool_field "$name" 3)
  bins=$(tool_field "$name" 4); minutes=$(tool_field "$name" 5); label=$(tool_field "$name" 6)
  pin=${!pinvar}
  if [ ! -f "$locks/$name/go.mod" ] || [ ! -f "$locks/$name/go.sum" ]; then
    say "hack/tools/$name/go.mod or go.sum is missing. Run: hack/build-tools.sh lock $name"
    return 1
  fi
  local locked; locked=$(locked_version "$locks/$name" "$module")
  if [ "$locked" != "$pin" ]; then
    say "hack/versions.env pins $name at $pin ($pinvar) but hack/tools/$name/go.mod locks ${locked:-nothing}."
    say "Run: hack/build-tools.sh lock $name   then review and commit hack/tools/$name/"
    return 1
  fi
  out=$(tool_out "$name")
  if tool_built "$name"; then ln -sfn "$(basename "$out")" "$bin/$name"; return 0; fi

  local log="$logs/build-$name.log" t0=$SECONDS
  : >"$log"
  say "building $label $pin: about $minutes min on 2 cores with empty caches (log: $log)"
  local tmp; tmp=$(mktemp -d "$out.tmp.XXXXXX"); chmod 755 "$tmp"
  local ld tags ok=1
  ld=$(ldflags_for "$name"); tags=$(tags_for "$name")
  local pkga=($pkgs) bina=($bins) targets
  mapfile -t targets < <(tool_targets "$name")
  # One `go build` for all of a tool's packages: it compiles their shared packages once and
  # links the binaries at the same time. Several packages go to a directory, each binary
  # named after its package's last element (the names in TOOLS say so; checked below).
  local dest="$tmp/${bina[0]}"
  [ ${#pkga[@]} = 1 ] || dest="$tmp/"
  printf '== go build %s\n' "$bins" >>"$log"
  if ! (cd "$locks/$name" && export CGO_ENABLED="$(cgo_for "$name")" &&
      { [ -z "$(cgo_cflags_for "$name")" ] || export CGO_CFLAGS="$(cgo_cflags_for "$name")"; } &&
      go build -trimpath ${tags:+-tags "$tags"} -ldflags "$ld" -o "$dest" "${targets[@]}") >>"$log" 2>&1; then
    ok=0
  fi
  for b in "${bina[@]}"; do
    [ $ok = 0 ] || [ -x "$tmp/$b" ] || { echo "go build made no $b: $(ls "$tmp")" >>"$log"; ok=0; }
  done
  if [ $ok = 0 ]; then
    rm -rf "$tmp"
    say "building $label $pin FAILED after $(fmt_s $((SECONDS - t0))); last 30 lines of $log:"
    tail -n 30 "$log" >&2
    explain_failure "$name" "$log"
    return 1
  fi
  rm -rf "$out"; mv -T "$tmp" "$out"
  # Older builds of this tool (other versions or locks) are not used any more.
  local old
  for old in "$bin/$name"-v*; do
    [ "$old" = "$out" ] || [ ! -d "$old" ] || rm -rf "$old"
  done
  ln -sfn "$(basename "$out")" "$bin/$name"
  say "built $label $pin in $(fmt_s $((SECONDS - t0)))"
}

all_tools() { local t; for t in "${TOOLS[@]}"; do echo "${t%%|*}"; done; }

# The project's own CSI driver (hack/csi-driver, the real node's VolumeSnapshots): built like
# a tool, from its own locked module graph, cached by the hash of its sources and lock.
# `build csi-driver` builds it; `build` with no names builds it after the tools.
csi_src="$here/csi-driver"
build_csi_driver() {
  local key out log="$logs/build-csi-driver.log" t0=$SECONDS tmp
  key=$(cat "$csi_src"/go.mod "$csi_src"/go.sum "$csi_src"/*.go | sha256sum | cut -c1-12)
  out="$bin/csi-driver-$key"
  if [ -x "$out/nodeops-csi" ]; then ln -sfn "$(basename "$out")" "$bin/csi-driver"; return 0; fi
  say "building the local CSI driver (hack/csi-driver): under a minute (log: $log)"
  tmp=$(mktemp -d "$out.tmp.XXXXXX"); chmod 755 "$tmp"
  if ! (cd "$csi_src" && go build -trimpath -ldflags "-s -w" -o "$tmp/nodeops-csi" .) >"$log" 2>&1; then
    rm -rf "$tmp"
    say "building the local CSI driver FAILED; last 30 lines of $log:"
    tail -n 30 "$log" >&2
    ! grep -qE 'missing go\.sum entry|updates to go\.(mod|sum) needed' "$log" ||
      say "its go.mod or go.sum is stale: run (cd hack/csi-driver && go mod tidy), review and commit"
    return 1
  fi
  rm -rf "$out"; mv -T "$tmp" "$out"
  local old
  for old in "$bin"/csi-driver-*; do [ "$old" = "$out" ] || [ ! -d "$old" ] || rm -rf "$old"; done
  ln -sfn "$(basename "$out")" "$bin/csi-driver"
  say "built the local CSI driver in $(fmt_s $((SECONDS - t0)))"
}

case "${1:-build}" in
  build)
    t_all=$SECONDS
    shift || true
    wanted=${*:-$(all_tools) csi-driver}
    # One tool at a time: one `go build` keeps both cores busy most of the time (two tools
    # at a time, tried with empty caches, took 1206 s for every tool against 1134 s).
    # Downloading every tool's modules in the background while the first ones compiled
    # was not faster either (the proxy here is fast; unpacking 6.4 GB of modules took the
    # CPU the compiles needed: etcd and kwok took 3m34s instead of 1m35s, a nice-19 cargo
    # clippy beside them too, and every tool 20m11s against 21m11s before GOGC=800).
    for t in $wanted; do
      if [ "$t" = csi-driver ]; then build_csi_driver; continue; fi
      tool_field "$t" 0 >/dev/null; build_tool "$t"
    done
    [ $((SECONDS - t_all)) -lt 2 ] || say "all tools ready in $(fmt_s $((SECONDS - t_all)))"
    echo "$bin"
    ;;
  lock)
    shift
    if [ $# -gt 0 ]; then
      for t in "$@"; do tool_field "$t" 0 >/dev/null; lock_tool "$t"; done
    else
      n=0
      for t in $(all_tools); do
        module=$(tool_field "$t" 1); pinvar=$(tool_field "$t" 2)
        if [ ! -f "$locks/$t/go.sum" ] || [ "$(locked_version "$locks/$t" "$module")" != "${!pinvar}" ]; then
          lock_tool "$t"; n=$((n + 1))
        fi
      done
      say "$n lock(s) rewritten"
    fi
    ;;
  list)
    # name, module, pin variable, pin, packages, binaries (tab-separated; tests/tools_lock.rs)
    for t in $(all_tools); do
      pinvar=$(tool_field "$t" 2)
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$(tool_field "$t" 1)" "$pinvar" "${!pinvar}" \
        "$(tool_field "$t" 3)" "$(tool_field "$t" 4)"
    done
    ;;
  *) echo "usage: $0 [build|bindir|lock [TOOL...]|list]" >&2; exit 2 ;;
esac

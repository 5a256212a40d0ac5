#!/usr/bin/env bash
# Network watcher: every socket of a test run must stay on loopback, or on the local
# cluster's real node networks: 198.18.0.0/15 (hack/real-node.sh: the bridge besu0,
# pods and Services), and nothing else.
#
#   hack/netwatch.sh run OUT_DIR TAG [MAX_SECONDS]
#       Samples `ss -Htanp` every 0.5 s until OUT_DIR/stop exists (or MAX_SECONDS,
#       default 7200, pass). Records in OUT_DIR/netwatch.log every TCP socket with
#       an address outside 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and 198.18.0.0/15
#       (also as ::ffff:198.18.0.0/111), and exits 1 if
#       any of them was ours; OUT_DIR/violations.log then lists them.
#   hack/netwatch.sh stop OUT_DIR      ask a running watcher to finish
#   hack/netwatch.sh self-test         checks the classifier on made-up ss lines
#
# Which sockets are "ours": it sees every process of the machine and decides by
# process, not by filtering the sample. A socket is ours when a process holding
# it has TAG in its environment as BESU_NETWATCH_TAG=TAG (run-tests exports it
# before starting anything, so the cluster's daemons, cargo and every test carry
# it, even after they are re-parented), or its PID is in $NETWATCH_PID_DIR/*.pid
# (a reused cluster). Sockets held only by other processes are logged as
# "foreign" and do not fail the run: this machine has unrelated traffic (its
# control service listens on 0.0.0.0:2024; other engineers' cargo and go fetch
# crates and modules). A socket that ss shows with no process (TIME-WAIT, or
# a process outside our view) is ours unless it was already there before the
# run, its 4-tuple was seen held by a foreign process, it is an inbound
# connection to a foreign listener, or its remote end was seen used by a
# foreign process at any time during the run (a fetch by another engineer's
# go or cargo leaves TIME-WAIT sockets before and after the one sample that
# catches its process); otherwise it fails the run ("unattributed"). The price:
# a connection of ours shorter than one sample, to the very address a foreign
# process also used, would pass; a longer one is caught with its process.
#
# Listening sockets count too: a process of ours listening on 0.0.0.0 or any
# address outside those ranges is a violation.
#
# Pods of the real node live in their own network namespaces (/run/netns/cni-*),
# which `ss` on the host does not show: every 4th sample reads each of them too, and
# any socket there with an address outside the ranges is a violation (every pod of
# the real node is the run's). A pod listening on 0.0.0.0 is fine: its namespace has
# only its own bridge address.
set -euo pipefail

SS_CMD=${NETWATCH_SS_CMD:-ss -Htanp}

# Prints "STATE LOCAL PEER PIDS" (PIDS comma separated or "-") for every socket
# with a non-loopback address; listeners only when bound off loopback.
non_loopback_sockets() {
  $SS_CMD 2>/dev/null | awk '
    function host(a) {
      sub(/%[^]:]*/, "", a)               # interface suffix: 127.0.0.53%lo:53
      if (a ~ /^\[/) { sub(/^\[/, "", a); sub(/\]:[^:]*$/, "", a) }
      else { sub(/:[^:]*$/, "", a) }
      return a
    }
    function loopback(h) {
      return h ~ /^127\./ || h == "::1" || h ~ /^::ffff:127\./ || h ~ /^(::ffff:)?198\.1[89]\./
    }
    {
      state = $1; local = $4; peer = $5
      pids = ""; rest = $0
      while (match(rest, /pid=[0-9]+/)) {
        p = substr(rest, RSTART + 4, RLENGTH - 4)
        pids = pids (pids == "" ? "" : ",") p
        rest = substr(rest, RSTART + RLENGTH)
      }
      if (pids == "") pids = "-"
      if (state == "LISTEN" || state == "UNCONN") {
        if (!loopback(host(local))) print state, local, peer, pids
      } else if (!loopback(host(local)) || !loopback(host(peer))) {
        print state, local, peer, pids
      }
    }'
}

declare -A pid_class=()      # pid -> ours|foreign
declare -A tuple_class=()    # "local peer" -> ours|foreign|baseline
declare -A foreign_remote=() # peer -> 1 when a foreign process used it
declare -A foreign_listen=() # local port -> 1 for listeners that are not ours
declare -A reported=()       # dedupe of log lines

TAG=""
CLASS=""
PID_DIR=${NETWATCH_PID_DIR:-}

# classify_pid PID: sets CLASS to ours|foreign (cached per PID).
classify_pid() {
  local pid=$1
  if [ -z "${pid_class[$pid]:-}" ]; then
    pid_class[$pid]=foreign
    if [ -n "$TAG" ] && tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -qxF "BESU_NETWATCH_TAG=$TAG"; then
      pid_class[$pid]=ours
    elif [ -n "$PID_DIR" ] && cat "$PID_DIR"/*.pid 2>/dev/null | grep -qx "$pid"; then
      pid_class[$pid]=ours
    fi
  fi
  CLASS=${pid_class[$pid]}
}

comm_of() {
  [ "$1" = - ] && { echo '(no process)'; return; }
  local pid; for pid in ${1//,/ }; do printf '%s(%s) ' "$(cat "/proc/$pid/comm" 2>/dev/null || echo '?')" "$pid"; done
}

port_of() { echo "${1##*:}"; }

# classify STATE LOCAL PEER PIDS: sets CLASS to ours|foreign|baseline|unattributed.
# Runs in the watcher's own shell (never in $(...)) so that what it learns stays.
classify() {
  local state=$1 laddr=$2 peer=$3 pids=$4 key="$2 $3" pid c
  if [ "$pids" != - ]; then
    c=foreign
    for pid in ${pids//,/ }; do classify_pid "$pid"; [ "$CLASS" = ours ] && c=ours; done
    if [ "$c" = foreign ]; then
      if [ "$state" = LISTEN ]; then foreign_listen[$(port_of "$laddr")]=1; else foreign_remote[$peer]=1; fi
    fi
    tuple_class[$key]=$c
    CLASS=$c; return
  fi
  if [ -n "${tuple_class[$key]:-}" ]; then CLASS=${tuple_class[$key]}; return; fi
  if [ "$state" = LISTEN ]; then foreign_listen[$(port_of "$laddr")]=1; CLASS=foreign; return; fi
  if [ -n "${foreign_listen[$(port_of "$laddr")]:-}" ]; then CLASS=foreign; return; fi
  if [ -n "${foreign_remote[$peer]:-}" ]; then CLASS=foreign; return; fi
  CLASS=unattributed
}

declare -A pending=()        # "local peer" -> log line of an unattributed socket

POD_NETNS_DIR=${NETWATCH_POD_NETNS_DIR:-/run/netns}
pod_samples=0
# Every 4th sample: the sockets in the real node's pod network namespaces.
pod_sockets_sample() {
  local out=$1 ns state laddr peer rest line
  pod_samples=$((pod_samples + 1))
  [ $((pod_samples % 4)) = 1 ] || return 0
  for ns in "$POD_NETNS_DIR"/cni-*; do
    [ -e "$ns" ] || continue
    while read -r state _ _ laddr peer rest; do
      case "$state" in LISTEN | UNCONN) [[ $laddr == 0.0.0.0:* || $laddr == \[::\]:* || $laddr == \*:* ]] && continue ;; esac
      if pod_addr_allowed "$laddr" && pod_addr_allowed "$peer"; then continue; fi
      line="ours $state $laddr $peer pod netns $(basename "$ns")"
      [ -n "${reported["$line"]:-}" ] && continue
      reported["$line"]=1
      printf '%s %s\n' "$(date -u +%FT%T.%3NZ)" "$line" >> "$out/netwatch.log"
      printf '%s\n' "$line" >> "$out/violations.log"
    done < <(${NETWATCH_POD_SS_CMD:-nsenter --net="$ns" ss -Htan} 2>/dev/null)
  done
}
pod_addr_allowed() {
  local h=${1%:*}
  h=${h#[}; h=${h%]}; h=${h%%%*}
  [[ $h == 127.* || $h == ::1 || $h == ::ffff:127.* || $h == 198.18.* || $h == 198.19.* || $h == ::ffff:198.18.* || $h == ::ffff:198.19.* || $h == "*" || $h == 0.0.0.0 || $h == :: ]]
}

# sample OUT: one pass; appends new findings to OUT/netwatch.log and
# violations of our processes to OUT/violations.log. Unattributed sockets wait
# in `pending` (see settle).
sample() {
  local out=$1 state laddr peer pids c line
  while read -r state laddr peer pids; do
    classify "$state" "$laddr" "$peer" "$pids"; c=$CLASS
    line="$c $state $laddr $peer $(comm_of "$pids")"
    if [ -z "${reported["$c $laddr $peer"]:-}" ]; then
      reported["$c $laddr $peer"]=1
      printf '%s %s\n' "$(date -u +%FT%T.%3NZ)" "$line" >> "$out/netwatch.log"
      case $c in
        ours) printf '%s\n' "$line" >> "$out/violations.log" ;;
        unattributed) pending["$laddr $peer"]=$line ;;
      esac
    fi
  done < <(non_loopback_sockets)
  pod_sockets_sample "$out"
}

# settle OUT [final]: an unattributed socket whose remote end a foreign process
# was seen using (before or after it) is that process's short connection: log
# it as foreign. With "final", whatever is left is a violation.
settle() {
  local out=$1 final=${2:-} key peer
  for key in "${!pending[@]}"; do
    peer=${key#* }
    if [ -n "${foreign_remote[$peer]:-}" ]; then
      printf '%s foreign-by-remote %s\n' "$(date -u +%FT%T.%3NZ)" "${pending[$key]#unattributed }" >> "$out/netwatch.log"
      unset "pending[$key]"
    elif [ -n "$final" ]; then
      printf '%s\n' "${pending[$key]}" >> "$out/violations.log"
      unset "pending[$key]"
    fi
  done
}

# Everything present before the run started is not the run's.
baseline() {
  local out=$1 state laddr peer pids c
  while read -r state laddr peer pids; do
    classify "$state" "$laddr" "$peer" "$pids"; c=$CLASS
    if [ "$c" = unattributed ]; then tuple_class["$laddr $peer"]=baseline; c=baseline; fi
    printf '%s %s %s %s %s %s\n' "$(date -u +%FT%T.%3NZ)" "$c" "$state" "$laddr" "$peer" "$(comm_of "$pids")" >> "$out/netwatch.log"
    reported["$c $laddr $peer"]=1
  done < <(non_loopback_sockets)
}

run() {
  local out=$1 max=${3:-7200}
  TAG=$2
  [ -n "$TAG" ] || { echo "netwatch: empty tag" >&2; exit 2; }
  mkdir -p "$out"; rm -f "$out/stop" "$out/violations.log"
  : > "$out/netwatch.log"; : > "$out/violations.log"
  baseline "$out"
  echo "netwatch: watching (tag $TAG, log $out/netwatch.log)" >&2
  local start=$SECONDS samples=0
  while [ ! -e "$out/stop" ] && [ $((SECONDS - start)) -lt "$max" ]; do
    sample "$out"; settle "$out"; samples=$((samples + 1))
    sleep 0.5
  done
  sample "$out"; settle "$out" final; samples=$((samples + 1))
  [ -e "$out/stop" ] || echo "netwatch: max duration ${max}s reached" >&2
  local n; n=$(wc -l < "$out/violations.log")
  if [ "$n" -gt 0 ]; then
    echo "netwatch: FAIL: $n non-loopback socket(s) of this run (${samples} samples):" >&2
    sed 's/^/  /' "$out/violations.log" >&2
    exit 1
  fi
  echo "netwatch: ok: no non-loopback socket of this run in ${samples} samples ($(grep -c ' foreign \| baseline ' "$out/netwatch.log" || true) foreign/baseline ignored)" >&2
}

stop() {
  : > "$1/stop"
}

# Made-up ss output through the real classifier: a test of the watcher that can
# fail, without opening any non-loopback socket.
self_test() {
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  local tag="self-test-$$-$RANDOM"
  # A process of "ours": a child carrying the tag; a "foreign" one: without it.
  # Idle stand-in processes (killed below); wait for their exec so that
  # /proc/PID/environ is theirs, not the forking shell's.
  BESU_NETWATCH_TAG=$tag tail -f /dev/null & local ours=$!
  env -u BESU_NETWATCH_TAG tail -f /dev/null & local foreign=$!
  local deadline=$((SECONDS + 10))
  until [ "$(cat /proc/$ours/comm 2>/dev/null)" = tail ] && [ "$(cat /proc/$foreign/comm 2>/dev/null)" = tail ]; do
    [ $SECONDS -lt $deadline ] || { echo "self-test: stand-in processes did not start" >&2; return 1; }
  done
  cat > "$tmp/ss" <<EOF
LISTEN 0 128 0.0.0.0:2024 0.0.0.0:*
LISTEN 0 4096 127.0.0.1:23456 0.0.0.0:* users:(("kube-apiserver",pid=$ours,fd=7))
ESTAB 0 0 127.0.0.1:40000 127.0.0.1:23456 users:(("kubectl",pid=$ours,fd=3))
ESTAB 0 0 [::1]:40001 [::1]:23456 users:(("kubectl",pid=$ours,fd=3))
ESTAB 0 0 [::ffff:127.0.0.1]:40002 [::ffff:127.0.0.1]:23456 users:(("x",pid=$ours,fd=3))
LISTEN 0 4096 198.18.0.1:23457 0.0.0.0:* users:(("kube-apiserver",pid=$ours,fd=8))
ESTAB 0 0 198.18.0.1:40003 198.18.0.7:8545 users:(("besu-operator",pid=$ours,fd=12))
ESTAB 0 0 198.18.0.1:40004 198.19.0.10:53 users:(("x",pid=$ours,fd=13))
ESTAB 0 0 192.0.2.2:2024 192.0.2.1:51000
TIME-WAIT 0 0 192.0.2.2:40999 203.0.113.80:443
ESTAB 0 0 192.0.2.2:41000 203.0.113.80:443 users:(("cargo",pid=$foreign,fd=9))
TIME-WAIT 0 0 192.0.2.2:41001 203.0.113.80:443
EOF
  TAG=$tag
  NETWATCH_SS_CMD="cat $tmp/ss" SS_CMD="cat $tmp/ss"
  mkdir -p "$tmp/out"; : > "$tmp/out/netwatch.log"; : > "$tmp/out/violations.log"
  # A pod network namespace of the real node: allowed sockets only, for now.
  mkdir -p "$tmp/netns"; : > "$tmp/netns/cni-self-test"
  POD_NETNS_DIR=$tmp/netns NETWATCH_POD_SS_CMD="cat $tmp/podss"
  printf '%s\n' "LISTEN 0 4096 0.0.0.0:8545 0.0.0.0:*" "ESTAB 0 0 198.18.0.5:40000 198.18.0.6:30303" \
    "ESTAB 0 0 198.18.0.5:40001 198.19.0.10:53" > "$tmp/podss"
  sample "$tmp/out"; settle "$tmp/out"
  local fail=0
  if [ -s "$tmp/out/violations.log" ]; then echo "self-test: clean sample reported violations:" >&2; cat "$tmp/out/violations.log" >&2; fail=1; fi
  grep -q '^.* foreign ESTAB 192.0.2.2:41000 203.0.113.80:443' "$tmp/out/netwatch.log" || { echo "self-test: foreign connection not logged" >&2; fail=1; }
  grep -q ' foreign TIME-WAIT 192.0.2.2:41001 203.0.113.80:443' "$tmp/out/netwatch.log" || { echo "self-test: TIME-WAIT to a foreign remote not classified foreign" >&2; fail=1; }
  grep -q ' foreign-by-remote TIME-WAIT 192.0.2.2:40999 203.0.113.80:443' "$tmp/out/netwatch.log" || { echo "self-test: TIME-WAIT seen before the foreign process not settled as foreign" >&2; fail=1; }
  cat > "$tmp/ss" <<EOF
ESTAB 0 0 192.0.2.2:42000 198.51.100.7:8545 users:(("besu-operator",pid=$ours,fd=11))
LISTEN 0 128 0.0.0.0:9090 0.0.0.0:* users:(("besu-sim",pid=$ours,fd=5))
SYN-SENT 0 1 [2001:db8::2]:42002 [2001:db8::9]:443 users:(("x",pid=$ours,fd=4))
TIME-WAIT 0 0 192.0.2.2:42001 198.51.100.8:30303
ESTAB 0 0 198.18.0.1:42004 198.20.0.1:8545 users:(("x",pid=$ours,fd=14))
ESTAB 0 0 198.18.0.1:42005 10.0.0.1:443 users:(("x",pid=$ours,fd=15))
EOF
  echo "ESTAB 0 0 198.18.0.5:40002 203.0.113.9:443" >> "$tmp/podss"
  pod_samples=0
  sample "$tmp/out"; settle "$tmp/out" final
  local n; n=$(wc -l < "$tmp/out/violations.log")
  if [ "$n" -ne 7 ]; then echo "self-test: expected 7 violations, got $n:" >&2; cat "$tmp/out/violations.log" >&2; fail=1; fi
  kill "$ours" "$foreign" 2>/dev/null || true
  wait "$ours" "$foreign" 2>/dev/null || true
  if [ $fail = 0 ]; then echo "netwatch self-test: ok" >&2; else echo "netwatch self-test: FAILED" >&2; return 1; fi
}

case "${1:-}" in
  run) shift; run "$@" ;;
  stop) stop "$2" ;;
  self-test) self_test ;;
  *) echo "usage: $0 run OUT_DIR TAG [MAX_SECONDS] | stop OUT_DIR | self-test" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs one phase of `make test` and records how long it took, for the summary that
# hack/run-tests.sh prints at the end of every run (and in every CI log).
#
#   hack/phase.sh NAME COMMAND [ARGS...]   appends "NAME<TAB>seconds<TAB>exit" to $BESU_PHASES
set -uo pipefail
name=$1; shift
start=$(date +%s%3N)
printf '[phase] %s: %s\n' "$name" "$*" >&2
"$@"
rc=$?
ms=$(( $(date +%s%3N) - start ))
if [ -n "${BESU_PHASES:-}" ]; then
  mkdir -p "$(dirname "$BESU_PHASES")"
  printf '%s\t%d.%01d\t%d\n' "$name" $((ms / 1000)) $(((ms % 1000) / 100)) "$rc" >>"$BESU_PHASES"
fi
[ $rc = 0 ] || printf '[phase] %s failed (exit %d) after %d s\n' "$name" "$rc" $((ms / 1000)) >&2
exit $rc

#!/usr/bin/env bash
# make bench: runs bench/run.lua inside ./dpdklua with a private temp dir
# (memif sockets, configs, outputs) and lock dir, and kills whatever a row
# left running (every process it starts names that dir in its command line or
# environment).
#   bash bench/run.sh [row ...]      BENCH_QUICK=1: smoke run; BENCH_RUNS=n
set -uo pipefail
cd "$(dirname "$0")/.."
BENCH_TMP=$(mktemp -d /tmp/dpdklua-bench.XXXXXX)
DPDKLUA_LOCK_DIR="$BENCH_TMP/locks"
mkdir -p "$DPDKLUA_LOCK_DIR"
export BENCH_TMP DPDKLUA_LOCK_DIR
export BENCH_BIN=${BENCH_BIN:-build/bench}
reap() {
    local pids=() p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        # its command line or its environment (DPDK_ENV_CONFIG) names the temp dir
        cat "$p/cmdline" "$p/environ" 2>/dev/null | tr '\0' ' ' | grep -qF "$BENCH_TMP/" &&
            pids+=("${p#/proc/}")
    done
    [ ${#pids[@]} -gt 0 ] && kill -9 "${pids[@]}" 2>/dev/null
    rm -rf "$BENCH_TMP"
    # the raw memif programs' EAL runtime dirs (--file-prefix <tag>-<suffix>-s|c)
    rm -rf /var/run/dpdk/*-"${BENCH_TMP##*.}"-[sc]
}
trap reap EXIT
# the tap row's kernel clients must never reach the uplink (scripts/test-routes.sh)
bash scripts/test-routes.sh run ./dpdklua bench/run.lua "$@"

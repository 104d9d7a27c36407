#!/usr/bin/env bash
# fuzz/run.sh SECONDS HARNESS... — run each libFuzzer harness (built by
# `make SAN=fuzz fuzzers` into build-fuzz/fuzz/) for SECONDS, starting from its
# regression corpus fuzz/corpus/<harness>/ plus what earlier runs found
# (build-fuzz/corpus/<harness>/, not committed). A crash, a leak, a sanitizer
# report or an input slower than 10 s stops the run; the input is kept in
# build-fuzz/crashes/<harness>/. Once the cause is fixed, copy that input into
# fuzz/corpus/<harness>/: the suite (spec/fuzz_spec.lua) replays that folder.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=$1
shift
status=0
for h in "$@"; do
    bin=build-fuzz/fuzz/${h}_fuzz
    work=build-fuzz/corpus/$h
    crashes=build-fuzz/crashes/$h
    mkdir -p "$work" "$crashes"
    dict=()
    [ -f "fuzz/$h.dict" ] && dict=(-dict="fuzz/$h.dict")
    log=$(mktemp)
    "$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 -artifact_prefix="$crashes/" \
        "${dict[@]}" "$work" "fuzz/corpus/$h" > "$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -aE '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    if [ "$rc" -ne 0 ]; then
        grep -av '^#[0-9]' "$log" | tail -n 60
        echo "fuzz: $h FAILED after ${runs:-?} runs (exit $rc); input in $crashes/"
        status=1
    else
        echo "fuzz: $h ok: ${runs:-?} runs in ${secs} s, coverage ${cov:-?} edges, corpus $(ls "$work" | wc -l) inputs"
    fi
    rm -f "$log"
done
exit "$status"

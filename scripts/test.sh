#!/usr/bin/env bash
# Runs the busted suite inside ./dpdklua and ends with a one-line summary
# ("busted: N passed, N failed"). Extra arguments go to busted (e.g. a spec
# file, --filter, or -o TAP). Needs root (taps, locks): `make test` uses sudo
# when needed.
#
# DPDKLUA=path runs the suite on another build of dpdklua; a sanitizer build
# (make asan: DPDKLUA=./dpdklua-asan) also gets sanitizer options under which
# any AddressSanitizer/UndefinedBehaviorSanitizer report, in the runner or in
# any child process, fails the run (see docs/reliability.md).
set -uo pipefail
cd "$(dirname "$0")/.."

DPDKLUA=$(realpath "${DPDKLUA:-./dpdklua}")
export DPDKLUA
san_dir=
case "$(basename "$DPDKLUA")" in
*-asan)
    # Reports go to files (log_path: one per process; ASan and UBSan share
    # the runtime, so one prefix), so that a report from a child a spec
    # expected to fail, or ignored, still fails the run; the text is printed
    # below. Why these options: docs/reliability.md.
    san_dir=$(mktemp -d /tmp/dpdklua-asan.XXXXXX)
    export DPDKLUA_BUILD=build-asan DPDKLUA_SAN=asan
    export ASAN_OPTIONS="log_path=$san_dir/report:detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_odr_violation=2:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1:${ASAN_OPTIONS_EXTRA:-}"
    export UBSAN_OPTIONS="log_path=$san_dir/report:print_stacktrace=1:halt_on_error=1:abort_on_error=1:${UBSAN_OPTIONS_EXTRA:-}"
    ;;
esac

# Keep the suite's core/device locks away from services running on this machine.
DPDKLUA_LOCK_DIR=$(mktemp -d /tmp/dpdklua-locks.XXXXXX)
log=$(mktemp)
# The specs' scripts, configs and outputs (spec/helpers/child.lua): every
# process a spec starts names a file in here, which is how the end of the run
# finds one that a spec left behind.
DPDKLUA_SPEC_TMP=$(mktemp -d /tmp/dpdklua-spec.XXXXXX)
export DPDKLUA_LOCK_DIR DPDKLUA_ROOT=$PWD DPDKLUA_SPEC_TMP
# Test traffic stays on this machine (scripts/test-routes.sh): the routes are
# added while any suite runs and removed by the last one to finish.
routes_lock=/run/dpdklua-test-routes.lock
exec {routes_fd}>"$routes_lock"
flock -s "$routes_fd"
bash scripts/test-routes.sh add
# Every process the suite starts carries DPDKLUA_TEST_RUN=<this shell's pid>.<its
# start time> in its environment: it is set for busted only, and whatever a spec
# starts inherits it (setsid or not, whatever its command line). The end of the
# run kills every process with this run's mark (a busy-polling server left
# running would hold a core for good); the start of a run kills what a run
# whose test.sh is gone left (one killed with SIGKILL runs no trap).
unset DPDKLUA_TEST_RUN # ours is set for busted below; an outer run's is not ours
start_time() { # field 22 of /proc/<pid>/stat (after "pid (comm) ": the 20th)
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    set -- $s
    echo "${20}"
}
run_id="$$.$(start_time $$)"
# "pid mark" for every process carrying a mark (grep reads each environ once)
marked() {
    grep -saozE '^DPDKLUA_TEST_RUN=[0-9]+\.[0-9]+$' /proc/[0-9]*/environ | tr '\0' '\n' |
        sed -nE 's,^/proc/([0-9]+)/environ:DPDKLUA_TEST_RUN=,\1 ,p'
}
# Processes of run $1 (and, for this run, those whose command line names its
# spec directory): named once, then killed until none is left (one that was
# forking when the scan ran shows up in the next).
reap() {
    local id=$1 why=$2 pass pids p m
    for pass in $(seq 1 50); do
        pids=()
        while read -r p m; do
            [ "$m" = "$id" ] && [ "$p" != "$$" ] && pids+=("$p")
        done < <(marked)
        if [ "$id" = "$run_id" ]; then
            for p in /proc/[0-9]*; do
                p=${p#/proc/}
                [ "$p" = "$$" ] || [ "$p" = "$BASHPID" ] && continue
                tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -qF "$DPDKLUA_SPEC_TMP/" && pids+=("$p")
            done
        fi
        [ ${#pids[@]} -eq 0 ] && return 0
        if [ "$pass" -eq 1 ]; then
            echo "test.sh: $why: ${#pids[@]} process(es) still running; killing them:" >&2
            for p in "${pids[@]}"; do
                echo "  $p: $(tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | cut -c1-200)" >&2
            done
        fi
        kill -9 "${pids[@]}" 2>/dev/null
        sleep 0.1
    done
}
reap_stale_runs() {
    local p m pid
    while read -r p m; do
        pid=${m%.*}
        # its test.sh still runs (a zombie has ended: a SIGKILLed test.sh may wait
        # a while for init to collect it)
        [ "$(start_time "$pid")" = "${m#*.}" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null &&
            continue
        reap "$m" "an earlier run (test.sh pid $pid) is gone"
    done < <(marked | sort -u -k2,2)
}
reap_stale_runs
busted_done=
cleanup() {
    if [ -n "$busted_done" ]; then
        reap "$run_id" "a spec left them"
    else
        reap "$run_id" "the run was interrupted"
    fi
    rm -rf "$DPDKLUA_LOCK_DIR" "$log" "$DPDKLUA_SPEC_TMP" ${san_dir:+"$san_dir"}
    flock -u "$routes_fd"
    if flock -xn "$routes_fd"; then bash scripts/test-routes.sh del; fi
}
trap cleanup EXIT

# busted inside dpdklua itself (what .busted's lua= asks for), without the
# re-exec: busted's own re-exec under a Lua 5.2 `lua` ran the suite twice.
# {routes_fd}>&-: no spec's child inherits the routes lock; one that outlives
# the run would hold it (exclusively, after the cleanup's flock -x) and stop
# every later run at the flock -s above.
DPDKLUA_TEST_RUN=$run_id "$DPDKLUA" "$(command -v busted)" --ignore-lua "$@" {routes_fd}>&- 2>&1 |
    tee "$log"
rc=${PIPESTATUS[0]}
busted_done=1
reports=0
if [ -n "$san_dir" ]; then
    for f in "$san_dir"/*; do
        [ -e "$f" ] || continue
        reports=$((reports + 1))
        echo "==== sanitizer report $(basename "$f") ===="
        cat "$f"
    done
    echo "sanitizer: $reports report(s)"
fi
# busted's summary: "N successes / N failures / N errors / N pending : T seconds".
# The first such line: a failure's message may quote another run's output after it.
line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -aE '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' | head -n 1)
if [ -n "$line" ]; then
    passed=$(sed -E 's/^([0-9]+) success.*/\1/' <<<"$line")
    failed=$(sed -E 's/.* ([0-9]+) failures? \/ ([0-9]+) errors?.*/\1+\2/' <<<"$line")
    failed=$((failed))
    pending=$(sed -E 's/.* ([0-9]+) pending.*/\1/' <<<"$line")
elif grep -qaE '^1\.\.[0-9]+' "$log"; then # TAP output
    passed=$(grep -caE '^ok ' "$log")
    failed=$(grep -caE '^not ok ' "$log")
    pending=$(grep -caE '^ok .*# SKIP' "$log")
else
    echo "busted: no summary (the runner crashed?)"
    exit 1
fi
echo "busted: $passed passed, $failed failed, $pending skipped"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] && [ "$reports" -eq 0 ]

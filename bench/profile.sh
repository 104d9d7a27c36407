#!/usr/bin/env bash
# Where the server worker's time goes under the HTTP keep-alive load:
# examples/http.lua (core 1) under bench/httpload.lua (core 0) over memif,
# perf record -e cpu-clock on the server for SECONDS, report by symbol.
#   bash bench/profile.sh [connections=32] [seconds=5] [perf|lua] [ka|close]
# close: the cps row's load (bench/httpload.lua close: connect, one request
# with Connection: close, close) instead of keep-alive.
# lua: LuaJIT's own profiler (jit.p, as luajit -jp) on the server's Lua
# state instead of perf: which Lua functions (and "[C]"/VM states) take the time.
#   bash bench/profile.sh bulk [seconds=5]
#   bash bench/profile.sh pingpong [seconds=5]  (64 B ping-pong: echo side and client)
#   bash bench/profile.sh many [connections=10000] [seconds=5] [perf|lua|luaserver]  (the
#     conns row's keep-alive load on many held connections: server and load generator;
#     lua: jit.p on the load generator against bench/nullhttp.lua, its ceiling;
#     luaserver: jit.p on the HTTP server, JITP_MODE=v for its VM states)
# bulk: one stream (bench/bulk.lua), perf on the sender (core 1) and the
# receiver (core 0) at once; prints the Gbit/s and both reports.
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-32}
secs=${2:-5}
dir=$(mktemp -d /tmp/dpdklua-bench.XXXXXX)
export DPDKLUA_LOCK_DIR=$dir
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
eal='"--no-huge","-m","256","--no-pci","--no-telemetry"'
cfg() { # role core host
    printf '{"dpdk_cores":[%d],"eal_args":[%s],"devices":[{"vdev":"net_memif_%s,role=%s,socket=%s/p.sock,id=0","mac":"02:db:09:00:00:%02x","addresses":["10.9.0.%d/24"]}]}' \
        "$2" "$eal" "$1" "$1" "$dir" "$3" "$3" > "$dir/$1.json"
}
cfg server 1 2
cfg client 0 3
# A perf report (perf report -q --sort dso,symbol) summed by part of the worker.
by_part() {
    awk '{
        pct = $1; sub("%", "", pct); dso = $2; sym = $4
        if (dso ~ /memif|ethdev|mbuf|mempool|ring/ || sym ~ /^rte_/) part = "driver (memif rx/tx, mbufs)"
        else if (sym ~ /^(dl_now|now_ms|clock_ms|sys_now|sys_check_timeouts|clock_gettime)/ || dso ~ /vdso/) part = "clock and lwIP timers"
        else if (sym ~ /^(tcp_|ip4_|ip6_|ip_|etharp|ethernet_|pbuf_|mem_|memp_|inet_|lwip_|netif_|icmp|nd6|ethip6)/) part = "lwIP input/output"
        else if (sym ~ /^(glue_|st_|inst_|tc_)/) part = "stack glue (host <-> lwIP)"
        else if (sym ~ /^(dl_|poll_io|worker_|take_forwarded|steer_)/) part = "host loop (dl_poll, FFI entry points)"
        else if (dso ~ /luajit|JIT/ || sym ~ /^lj_/) part = "Lua (interpreter, JIT code, GC)"
        else if (dso ~ /libc/) part = "libc (memcpy, malloc)"
        else if (dso ~ /kernel/) part = "kernel"
        else part = "other"
        sum[part] += pct
    } END { for (p in sum) printf "%6.1f%%  %s\n", sum[p], p }' "$1" | sort -rn
}
if [ "$conns" = bulk ]; then
    secs=${2:-5}
    ./dpdklua bench/bulk.lua server "$dir/server.json" 10.9.0.2 9001 > "$dir/server.out" 2>&1 &
    server=$!
    for _ in $(seq 100); do grep -q READY "$dir/server.out" && break; sleep 0.1; done
    ./dpdklua bench/bulk.lua client "$dir/client.json" 10.9.0.2 9001 $((secs + 2)) > "$dir/load.out" 2>&1 &
    load=$!
    sleep 1
    perf record -q -e cpu-clock -F 4999 -p "$server" -o "$dir/s.data" -- sleep "$secs" 2>/dev/null &
    perf record -q -e cpu-clock -F 4999 -p "$load" -o "$dir/c.data" -- sleep "$secs" 2>/dev/null
    wait $load || true
    grep gbps "$dir/load.out" || cat "$dir/load.out"
    kill $server 2>/dev/null || true
    for side in s:sender c:receiver; do
        echo "--- ${side#*:} ---"
        perf report -q -i "$dir/${side%%:*}.data" --no-children --sort dso,symbol 2>/dev/null \
            | grep -v '^$' | head -25
    done
    exit 0
fi
if [ "$conns" = pingpong ]; then
    # perf on the echo side (core 1) and the timing client (core 0) at once;
    # the client's own p50/p99 are printed first (perf's sampling adds a little).
    ./dpdklua bench/pingpong.lua server "$dir/server.json" 10.9.0.2 9000 > "$dir/server.out" 2>&1 &
    server=$!
    for _ in $(seq 100); do grep -q READY "$dir/server.out" && break; sleep 0.1; done
    ./dpdklua bench/pingpong.lua client "$dir/client.json" 10.9.0.2 9000 $((secs * 500000)) \
        > "$dir/load.out" 2>&1 &
    load=$!
    sleep 1
    perf record -q -e cpu-clock -F 4999 -p "$server" -o "$dir/s.data" -- sleep "$secs" 2>/dev/null &
    perf record -q -e cpu-clock -F 4999 -p "$load" -o "$dir/c.data" -- sleep "$secs" 2>/dev/null || true
    wait $load || true
    cat "$dir/load.out" "$dir/server.out"
    kill $server 2>/dev/null || true
    for side in s:echo-server c:client; do
        echo "--- ${side#*:} ---"
        perf report -q -i "$dir/${side%%:*}.data" --no-children --sort dso,symbol 2>/dev/null \
            | grep -v '^$' > "$dir/${side%%:*}.txt"
        head -20 "$dir/${side%%:*}.txt"
        echo "- by part -"
        by_part "$dir/${side%%:*}.txt"
    done
    exit 0
fi
if [ "$conns" = many ]; then
    # perf on the HTTP server (core 1) and the load generator (core 0) once the
    # generator has opened and released its connections (httpload.lua idle).
    n=${2:-10000}
    secs=${3:-5}
    if [ "${4:-perf}" = lua ]; then
        "${DPDKLUA:-./dpdklua}" bench/nullhttp.lua "$dir/server.json" 10.9.0.2 8080 > "$dir/server.out" 2>&1 &
        for _ in $(seq 100); do grep -q READY "$dir/server.out" && break; sleep 0.1; done
        "${DPDKLUA:-./dpdklua}" bench/jitp.lua "$dir/jitp.txt" bench/httpload.lua "$dir/client.json" \
            10.9.0.2 8080 "$n" "$secs" idle 0.5 > "$dir/load.out" 2>&1 || true
        cat "$dir/load.out"
        head -45 "$dir/jitp.txt"
        exit 0
    fi
    if [ "${4:-perf}" = luaserver ]; then
        # jit.p on the HTTP server for its whole life: its start, the
        # generator's connect and 0.5 s hold are a small part of a long run
        DPDK_ENV_CONFIG=$dir/server.json "${DPDKLUA:-./dpdklua}" bench/jitp.lua "$dir/jitp.txt" \
            examples/http.lua 8080 1 > "$dir/server.out" 2>&1 &
        server=$!
        for _ in $(seq 100); do grep -q "http server" "$dir/server.out" && break; sleep 0.1; done
        "${DPDKLUA:-./dpdklua}" bench/httpload.lua "$dir/client.json" 10.9.0.2 8080 "$n" "$secs" \
            idle 0.5 > "$dir/load.out" 2>&1 || true
        kill -INT $server 2>/dev/null || true # block_on returns "interrupted", jit.p writes
        wait $server || true
        cat "$dir/load.out"
        head -45 "$dir/jitp.txt"
        exit 0
    fi
    DPDK_ENV_CONFIG=$dir/server.json ./dpdklua examples/http.lua 8080 1 > "$dir/server.out" 2>&1 &
    server=$!
    for _ in $(seq 100); do grep -q "http server" "$dir/server.out" && break; sleep 0.1; done
    ./dpdklua bench/httpload.lua "$dir/client.json" 10.9.0.2 8080 "$n" $((secs + 2)) idle \
        > "$dir/load.out" 2>&1 &
    load=$!
    for _ in $(seq 3000); do grep -q IDLE "$dir/load.out" && break; sleep 0.1; done
    sleep $((secs + 2)) # the idle hold, then the warm-up
    perf record -q -e cpu-clock -F 4999 -p "$server" -o "$dir/s.data" -- sleep "$secs" 2>/dev/null &
    perf record -q -e cpu-clock -F 4999 -p "$load" -o "$dir/c.data" -- sleep "$secs" 2>/dev/null || true
    wait $load || true
    cat "$dir/load.out"
    kill $server 2>/dev/null || true
    for side in s:server c:generator; do
        echo "--- ${side#*:} ---"
        perf report -q -i "$dir/${side%%:*}.data" --no-children --sort dso,symbol 2>/dev/null \
            | grep -v '^$' > "$dir/${side%%:*}.txt"
        head -25 "$dir/${side%%:*}.txt"
        echo "- by part -"
        by_part "$dir/${side%%:*}.txt"
    done
    exit 0
fi
mode=${3:-perf}
load_mode=${4:-ka}
if [ "$mode" = lua ]; then
    DPDK_ENV_CONFIG=$dir/server.json "${DPDKLUA:-./dpdklua}" bench/jitp.lua "$dir/jitp.txt" examples/http.lua 8080 1 \
        > "$dir/server.out" 2>&1 &
else
    DPDK_ENV_CONFIG=$dir/server.json "${DPDKLUA:-./dpdklua}" examples/http.lua 8080 1 > "$dir/server.out" 2>&1 &
fi
server=$!
for _ in $(seq 100); do grep -q "http server" "$dir/server.out" && break; sleep 0.1; done
"${DPDKLUA:-./dpdklua}" bench/httpload.lua "$dir/client.json" 10.9.0.2 8080 "$conns" $((secs + 2)) "$load_mode" > "$dir/load.out" 2>&1 &
load=$!
sleep 2
if [ "$mode" = lua ]; then
    wait $load || true
    cat "$dir/load.out"
    kill $server
    wait $server || true
    head -40 "$dir/jitp.txt"
    exit 0
fi
perf record -q -e cpu-clock -F 4999 -g -p "$server" -o "$dir/perf.data" -- sleep "$secs" 2>/dev/null
wait $load || true
cat "$dir/load.out"
kill $server 2>/dev/null || { echo "the server ended early:"; cat "$dir/server.out"; }
perf report -q -i "$dir/perf.data" --no-children -g none --sort dso,symbol 2>/dev/null \
    | grep -v '^$' > "$dir/report.txt"
head -30 "$dir/report.txt"
echo "--- by part (docs/performance.md) ---"
by_part "$dir/report.txt"

#!/usr/bin/env bash
# Where the server worker's time goes under the HTTP keep-alive load:
# examples/http.lua (core 1) under bench/httpload.lua (core 0) over memif,
# perf record -e cpu-clock on the server for SECONDS, report by symbol.
#   bash bench/profile.sh [connections=32] [seconds=5] [lua]
# lua: LuaJIT's own profiler (jit.p, as luajit -jp) on the server's Lua
# state instead of perf: which Lua functions (and "[C]"/VM states) take the time.
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
mode=${3:-perf}
if [ "$mode" = lua ]; then
    DPDK_ENV_CONFIG=$dir/server.json ./dpdklua bench/jitp.lua "$dir/jitp.txt" examples/http.lua 8080 1 \
        > "$dir/server.out" 2>&1 &
else
    DPDK_ENV_CONFIG=$dir/server.json ./dpdklua examples/http.lua 8080 1 > "$dir/server.out" 2>&1 &
fi
server=$!
for _ in $(seq 100); do grep -q "http server" "$dir/server.out" && break; sleep 0.1; done
./dpdklua bench/httpload.lua "$dir/client.json" 10.9.0.2 8080 "$conns" $((secs + 2)) > "$dir/load.out" 2>&1 &
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
kill $server
perf report -q -i "$dir/perf.data" --no-children --sort dso,symbol --percent-limit 0.7 2>/dev/null \
    | grep -v '^$' | grep -v '^ *|' | grep -v '^ *-' | head -40

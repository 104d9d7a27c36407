#!/usr/bin/env bash
# The README's first command (`make demo`): run examples/http.lua on the
# embedded default config (net_tap dl0, no hugepages) and let the kernel's
# curl talk to it through the tap, then stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${PORT:-8080}
log=$(mktemp)
./dpdklua examples/http.lua "$port" > "$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
    grep -q "http server on port" "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "demo: the server did not start"; exit 1; }
    sleep 0.1
done
grep "http server on port" "$log"
addr=$(sed -n 's|.*curl http://\([0-9.]*\):.*|\1|p' "$log")
echo "+ curl -sS http://$addr:$port/hello http://$addr:$port/again   (two requests, one connection)"
curl -sS --max-time 5 "http://$addr:$port/hello" "http://$addr:$port/again"
echo "demo: dpdklua answered curl through the tap; stopping the server"

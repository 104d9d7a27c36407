#!/usr/bin/env bash
# Keeps the suite's test traffic on this machine. The specs put their stacks
# on 10.0.0.0–10.239.255.255 and fd01::/16–fdef::/16 behind taps they make;
# when a tap is gone (its dpdklua child died or has not started yet), a kernel
# client's SYN to its address would follow the default route out of the
# uplink. While the suite runs, every /16 of those ranges that the machine
# does not already use gets an `unreachable` route: a tap's connected /24 or
# /64 is more specific and wins while the tap exists; without it, connect()
# fails at once with "No route to host".
#
#   scripts/test-routes.sh add      add the routes (idempotent)
#   scripts/test-routes.sh del      remove the routes this script adds
#   scripts/test-routes.sh list     print the prefixes it would protect
#   scripts/test-routes.sh check    exit 1 (and name them) when any of those
#                                   prefixes lacks its route: a spec started by
#                                   hand outside scripts/test.sh (spec/helpers/
#                                   child.lua refuses to make a tap then)
#   scripts/test-routes.sh run CMD… run CMD with the routes in place (make bench,
#                                   make soak): shared with other runs, removed
#                                   by the last one to end
#
# A /16 that overlaps a route or address the machine already has (a LAN in
# 10/8, the uplink's own prefix, a resolver) is left alone, so the suite never
# cuts this machine off from anything it uses.
set -euo pipefail

in_use() { # prints the machine's own prefixes and resolvers, one per line
    ip -4 route show table all | awk '$1 != "unreachable" {print $1}'
    ip -6 route show table all | awk '$1 != "unreachable" {print $1}'
    ip -o addr show | awk '{print $4}'
    awk '/^nameserver/ {print $2}' /etc/resolv.conf 2>/dev/null || true
}

# The candidate prefixes that overlap nothing in use.
candidates() {
    local used
    used=$(in_use)
    python3 - "$used" <<'EOF'
import ipaddress, sys
used = []
for word in sys.argv[1].split():
    if word in ("default", "local", "broadcast", "multicast", "anycast"):
        continue
    try:
        used.append(ipaddress.ip_network(word, strict=False))
    except ValueError:
        pass
cands = [ipaddress.ip_network(f"10.{i}.0.0/16") for i in range(240)]
cands += [ipaddress.ip_network(f"fd{i:02x}::/16") for i in range(1, 0xf0)]
for c in cands:
    # a used prefix as wide as /8 or wider (a default route, 10/8 itself) is
    # not "using" one /16 in particular; anything narrower inside c is
    if any(u.version == c.version and u.overlaps(c) and u.prefixlen > 8 for u in used):
        continue
    print(c)
EOF
}

add_routes() {
    candidates | sed 's/^/route replace unreachable /' | ip -batch - 2>/dev/null ||
        candidates | while read -r p; do ip route replace unreachable "$p" || true; done
}

unreachable_routes() { # the prefixes that have an unreachable route, one per line
    { ip -4 route show type unreachable; ip -6 route show type unreachable; } | awk '{print $2}'
}

del_routes() {
    unreachable_routes | grep -E '^(10\.[0-9]+\.0\.0/16|fd[0-9a-f]{2}::/16)$' |
        sed 's/^/route del unreachable /' | ip -batch - 2>/dev/null || true
}

case "${1:-}" in
add)
    add_routes
    ;;
del)
    del_routes
    ;;
list)
    candidates
    ;;
check)
    missing=$(comm -23 <(candidates | sort) <(unreachable_routes | sort))
    if [ -n "$missing" ]; then
        echo "$(echo "$missing" | wc -l) test prefixes have no unreachable route, e.g. $(echo "$missing" | head -1)" >&2
        exit 1
    fi
    ;;
run)
    shift
    # the lock scripts/test.sh holds the same way: shared while routes are
    # needed, the last holder to end (an exclusive lock succeeds) removes them
    exec {routes_fd}>/run/dpdklua-test-routes.lock
    flock -s "$routes_fd"
    add_routes
    rc=0
    "$@" {routes_fd}>&- || rc=$?
    flock -u "$routes_fd"
    if flock -xn "$routes_fd"; then del_routes; fi
    exit "$rc"
    ;;
*)
    echo "usage: $0 add|del|list|check|run CMD..." >&2
    exit 2
    ;;
esac

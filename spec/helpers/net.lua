-- Test helper: a dpdklua service on its own tap device, and kernel-side
-- peers (python sockets, curl) that talk to it through the tap.
--
--   local svc = net.service("dltc1", 61, [[ ...lua using CONFIG... ]])
--   svc.ip / svc.peer_ip       -- 10.61.0.2 (stack) and 10.61.0.1 (kernel)
--   net.python([[ ...python using IP... ]]) → rc, output
local child = require "spec.helpers.child"

local M = {}

-- Start `code` in a child dpdklua with a one-tap config; code sees CONFIG
-- (the config path) and must print "READY" (or opts.ready) once it listens.
function M.service(ifname, net, code, opts)
    opts = opts or {}
    local dev = child.tap_device(ifname, net, opts.device)
    local cfg = child.config({ cores = opts.cores or { 0 }, devices = { dev } })
    local prologue = ("local CONFIG = %q\nlocal dpdk = require 'dpdk'\nlocal tcp = require 'dpdk.tcp'\n")
        :format(cfg)
    local p = child.start(prologue .. code, { env = opts.env })
    local svc = {
        proc = p, config = cfg, ifname = ifname,
        ip = ("10.%d.0.2"):format(net), peer_ip = ("10.%d.0.1"):format(net),
    }
    local ready = p:wait_output(opts.ready or "READY", opts.ready_timeout or 20)
    if not ready then
        local out, err = p:stdout(), p:stderr()
        p:kill(9)
        error(("service did not get ready\nstdout:\n%s\nstderr:\n%s"):format(out, err), 2)
    end
    function svc.stop()
        local rc = p:kill(15)
        return rc
    end
    return svc
end

-- Run a python3 program; its stdout+stderr and exit status.
function M.python(code, timeout)
    local file = child.tmpfile(".py", code)
    return child.sh(("timeout -s KILL %d python3 %s"):format(timeout or 60, child.quote(file)))
end

-- A gateway: the tap's kernel side moves into a "router" namespace that
-- forwards to a "far" namespace, whose host answers on port 7400 with "far
-- host sees <peer address>" over IPv4 and IPv6. Forwarding is switched on
-- inside the router namespace only, so the machine's own settings stay as they
-- are. g = { tap = "dltgw", router = "dlgwr", far = "dlgwh", veth = { "dlgwa",
-- "dlgwb" }, near4 = "10.201.0.1/24", near6 = "fd01::1/64", far4 = "10.202.0",
-- far6 = "fd02::" }: the router takes near4/near6 on the tap and .1/::1 of the
-- far networks, the far host .2/::2 with the router as its default route.
-- Returns the far server's process; M.gateway_down(g) removes the namespaces.
function M.gateway(g)
    local function sh(cmd)
        local rc, out = child.sh(cmd)
        assert(rc == 0, cmd .. ": " .. out)
    end
    local r = "ip netns exec " .. g.router .. " "
    local h = "ip netns exec " .. g.far .. " "
    local a, b = g.veth[1], g.veth[2]
    sh("ip netns add " .. g.router .. " && ip netns add " .. g.far)
    sh("ip link set " .. g.tap .. " netns " .. g.router)
    sh("ip link add " .. a .. " netns " .. g.router .. " type veth peer name " .. b .. " netns " .. g.far)
    sh(r .. "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
    sh(r .. "ip link set lo up && " .. r .. "ip link set " .. g.tap .. " up && " .. r .. "ip link set " .. a .. " up")
    sh(r .. "ip addr add " .. g.near4 .. " dev " .. g.tap .. " && " .. r .. "ip addr add " .. g.far4 .. ".1/24 dev " .. a)
    sh(r .. "ip -6 addr add " .. g.near6 .. " dev " .. g.tap .. " nodad && " .. r .. "ip -6 addr add " .. g.far6 .. "1/64 dev " .. a .. " nodad")
    sh(h .. "ip link set lo up && " .. h .. "ip link set " .. b .. " up")
    sh(h .. "ip addr add " .. g.far4 .. ".2/24 dev " .. b .. " && " .. h .. "ip route add default via " .. g.far4 .. ".1")
    sh(h .. "ip -6 addr add " .. g.far6 .. "2/64 dev " .. b .. " nodad && " .. h .. "ip -6 route add default via " .. g.far6 .. "1")
    local server = child.start_shell(h .. "python3 -u " .. child.quote(child.tmpfile(".py", ([[
import socket, threading
def serve(family, addr):
    l = socket.socket(family); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((addr, 7400)); l.listen(64)
    while True:
        c, peer = l.accept()
        c.sendall(("far host sees " + peer[0] + "\n").encode()); c.close()
threading.Thread(target=serve, args=(socket.AF_INET, "%s.2"), daemon=True).start()
threading.Thread(target=serve, args=(socket.AF_INET6, "%s2"), daemon=True).start()
print("LISTENING", flush=True)
threading.Event().wait()
]]):format(g.far4, g.far6))))
    if not server:wait_output("LISTENING") then
        local err = server:stderr()
        server:kill(9)
        error("the far host's server did not start: " .. err, 2)
    end
    return server
end

function M.gateway_down(g)
    child.sh("ip netns del " .. g.router .. " 2>/dev/null; ip netns del " .. g.far .. " 2>/dev/null")
end

return M

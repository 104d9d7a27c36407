-- Test helper: a dpdklua service on its own tap device, and kernel-side
-- peers (python sockets, curl) that talk to it through the tap.
--
--   local svc = net.service("dltc1", 61, [[ ...lua using CONFIG... ]])
--   svc.ip / svc.peer_ip       -- 10.61.0.2 (stack) and 10.61.0.1 (kernel)
--   net.block_on_service("dltc1", 61, [[ ...body of rt:block_on... ]])
--   net.python([[ ...python using IP... ]]) → rc, output
--   local out = net.run_on_tap("dltc2", 62, [[ ...lua using tcp, PEER, SELF... ]])
--   local peers = net.kernel_peers("10.62.0.1", { [7000] = "echo" })
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

-- net.service for the usual shape: opts.prelude (code, e.g. functions the body
-- calls), then a one-worker runtime on CONFIG (opts.runtime: more of its
-- options, as Lua text: "max_connections = 20") and body inside
-- rt:block_on. Takes net.service's opts as well.
function M.block_on_service(ifname, net, body, opts)
    opts = opts or {}
    local code = ("%s\nlocal rt = assert(dpdk.runtime{ workers = 1, config = CONFIG%s })\n"
        .. "rt:block_on(function()\n%s\nend)\n"):format(opts.prelude or "",
        opts.runtime and (", " .. opts.runtime) or "", body)
    return M.service(ifname, net, code, opts)
end

-- Run a python3 program; its stdout+stderr and exit status.
function M.python(code, timeout)
    local file = child.tmpfile(".py", code)
    return child.sh(("timeout -s KILL %d python3 %s"):format(timeout or 60, child.quote(file)))
end

-- A child script on a one-tap runtime: `dpdk`, `tcp`, PEER and SELF (the
-- tap's kernel-side and stack addresses) and `rt` (opts.workers, default 1,
-- on opts.cores, default {0, 1}; opts.device adds fields to the tap's entry)
-- are defined in its first four lines, then comes body.
function M.tap_script(ifname, net, body, opts)
    opts = opts or {}
    local dev = child.tap_device(ifname, net, opts.device)
    local cfg = child.config({ cores = opts.cores or { 0, 1 }, devices = { dev } })
    return ([[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local PEER, SELF = %q, %q
local rt = assert(dpdk.runtime{ workers = %d, config = %q })
%s
]]):format(("10.%d.0.1"):format(net), ("10.%d.0.2"):format(net), opts.workers or 1, cfg, body)
end

-- Run body inside rt:block_on in a tap_script (opts.after runs after it, at
-- the top level) in a fresh dpdklua, which must exit 0 within opts.timeout
-- seconds (default 60). Returns its stdout and stderr.
function M.run_on_tap(ifname, net, body, opts)
    opts = opts or {}
    local code = "rt:block_on(function()\n" .. body .. "\nend)\n" .. (opts.after or "")
    local r = child.run_ok(M.tap_script(ifname, net, code, opts), { timeout = opts.timeout or 60 })
    return r.stdout, r.stderr
end

-- The python peers every kernel_peers process has: serve(port, handler)
-- listens on IP and runs handler(c, addr) in a thread per connection; echo
-- sends back what it gets until EOF; sink counts a connection's bytes and
-- prints "SINK EOF <n>" at its end (or "SINK RESET <n>").
local PEERS = [[
import socket, threading
def serve(port, handler):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1); l.bind((IP, port)); l.listen(64)
    def loop():
        while True:
            c, addr = l.accept()
            threading.Thread(target=handler, args=(c, addr), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
def echo(c, addr):
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
def sink(c, addr):
    n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            n += len(b)
        print("SINK EOF %d" % n, flush=True)
    except ConnectionResetError:
        print("SINK RESET %d" % n, flush=True)
]]

-- Kernel-side python peers of a tap, bound to ip (IP_FREEBIND: before the tap
-- exists, and never a wildcard). `ports` maps each port to the name of its
-- handler: echo, sink (above) or one that `handlers` (python) defines.
-- Returns the process once it listens; kill it by PID (proc:kill(9)).
function M.kernel_peers(ip, ports, handlers)
    local list = {}
    for port in pairs(ports) do list[#list + 1] = port end
    table.sort(list)
    local serves = {}
    for i, port in ipairs(list) do serves[i] = ("serve(%d, %s)\n"):format(port, ports[port]) end
    local p = child.start_python(("IP = %q\n"):format(ip) .. PEERS .. (handlers or "")
        .. table.concat(serves) .. "print(\"LISTENING\", flush=True)\nthreading.Event().wait()\n")
    if not p:wait_output("LISTENING") then
        local err = p:stderr()
        p:kill(9)
        error("the kernel-side peers did not start: " .. err, 2)
    end
    return p
end

-- A service for dpdk.stats() checks on its own tap: `workers` workers (cores 0
-- and 1 for two, else 0), each listening on the stack's address, port 7015.
-- A connection's line "stats" is answered with dpdk.stats() as
-- "w<i>.<field>=<value>" and "p<i>.<field>=<value>" lines, a "ballast=<n>"
-- line (a string kept alive while the figures are taken) and "END"; "hold"
-- with nothing; "arm" marks the connection, and "go" (on another) sends the
-- armed one 200 000 bytes and answers "sent"; anything else is echoed. Each
-- worker logs "listening on worker <i>" at warn. opts: device (extra tap
-- fields), env. M.PY_STATS is python's stats(sock) for its answer.
local STATS_SERVICE = [[
local rt = assert(dpdk.runtime{ workers = %d, config = CONFIG })
rt:run(function(ip)
    local dpdk = require "dpdk"
    local tcp = require "dpdk.tcp"
    local armed
    local function dump(s)
        local out = {}
        for i, w in ipairs(s.workers) do
            for k, v in pairs(w) do out[#out + 1] = ("w%%d.%%s=%%s"):format(i - 1, k, tostring(v)) end
        end
        for i, p in ipairs(s.ports) do
            for k, v in pairs(p) do out[#out + 1] = ("p%%d.%%s=%%s"):format(i - 1, k, tostring(v)) end
        end
        table.sort(out)
        return table.concat(out, "\n")
    end
    local l = assert(tcp.listen(ip, 7015))
    if dpdk.worker_id() == 0 then print("READY") io.stdout:flush() end
    dpdk.log("warn", "listening on worker", dpdk.worker_id())
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            c:settimeout(20000)
            while true do
                local line = c:receive("*l")
                if not line then break end
                if line == "stats" then
                    -- a string that stays alive while the figures are taken
                    local ballast = string.rep("x", 3 * 1024 * 1024)
                    local s = require("dpdk").stats()
                    c:send(dump(s) .. "\nballast=" .. #ballast .. "\nEND\n")
                elseif line == "arm" then -- "go" on another connection sends to this one
                    armed = c
                elseif line == "go" then
                    armed:send(string.rep("y", 200000))
                    c:send("sent\n")
                elseif line ~= "hold" then
                    c:send(line .. "\n")
                end
            end
            c:close()
        end)
    end
end, %q)
]]

function M.stats_service(ifname, net, workers, opts)
    opts = opts or {}
    local code = STATS_SERVICE:format(workers, ("10.%d.0.2"):format(net))
    return M.service(ifname, net, code,
        { cores = workers == 2 and { 0, 1 } or { 0 }, device = opts.device, env = opts.env })
end

-- Python: stats(s) sends "stats" on a stats_service connection and returns
-- its answer as { "w0.rx_packets": n, ... }.
M.PY_STATS = [[
def stats(s):
    s.sendall(b"stats\n")
    buf = b""
    while not buf.endswith(b"\nEND\n"):
        b = s.recv(65536)
        if not b: raise Exception("closed: %r" % buf)
        buf += b
    body = buf.split(b"END\n")[0].decode()
    out = {}
    for line in body.splitlines():
        k, _, v = line.partition("=")
        out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out
]]

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

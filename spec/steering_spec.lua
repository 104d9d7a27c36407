-- Flow steering: two workers behind one tap, each flow served by exactly one
-- of them (its owner by hash), incoming and outgoing, IPv4 and IPv6.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local defer = child.deferrer(function(fn) finally(fn) end)

local ROOT = os.getenv("DPDKLUA_ROOT") or "."

-- Every worker: an echo on 7000 that prefixes each line with its worker id,
-- an HTTP responder on 8080, stats as text on 7001; when GO exists, 50
-- connections out to the kernel's echo on PEER:7100, data checked.
local SERVER = [[
local rt = assert(dpdk.runtime{ workers = 2, config = CONFIG })
print("READY") io.stdout:flush()
rt:run(function(GO, PEER, LISTEN)
    local dpdk, tcp = require "dpdk", require "dpdk.tcp"
    local steer = require "spec.helpers.steer_tasks"
    local me = dpdk.worker_id()
    local function serve(port, handler) steer.serve(LISTEN, port, 1024, handler) end
    serve(7000, function(c)
        c:settimeout(30000)
        steer.echo_lines(c)
    end)
    serve(8080, function(c)
        c:settimeout(10000)
        local req = c:receive("*l")
        while true do
            local h = c:receive("*l")
            if not h or h == "" then break end
        end
        local path = req and req:match("^GET (%S+)") or "?"
        local body = "worker " .. me .. " " .. path .. "\n"
        c:send("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body)
        c:close()
    end)
    serve(7001, steer.send_forwarding)
    while not io.open(GO) do dpdk.sleep(0.05) end
    local n, tasks, worst = 50, {}, 0
    for i = 1, n do
        tasks[i] = dpdk.spawn(function()
            local t0 = dpdk.now()
            local c = assert(tcp.connect(PEER, 7100, { timeout = 10000 }))
            local took = dpdk.now() - t0
            if took > worst then worst = took end
            local msg = ("worker %d conn %d %s"):format(me, i, ("z"):rep(i * 37))
            assert(c:send(msg .. "\n"))
            local back = assert(c:receive("*l"))
            assert(back == msg, "echo differs")
            c:close()
        end)
    end
    local ok = 0
    for i = 1, n do
        local good, err = tasks[i]:join()
        if good then ok = ok + 1 else io.stdout:write("ERR ", tostring(err), "\n") end
    end
    io.stdout:write(("OUT %d %d %.3f\n"):format(me, ok, worst)) io.stdout:flush()
    dpdk.sleep(3600)
end, RUN_ARGS)
]]

local CLIENTS = [[
import socket, threading, os, random
IP = "%s"
N = 400
conns = []
for i in range(N):
    s = socket.create_connection((IP, 7000), timeout=30)
    conns.append(s)
owner = [None] * N
errors = []
def talk(i):
    s = conns[i]
    f = s.makefile("rb")
    try:
        for r in range(5):
            payload = ("c%%d r%%d " %% (i, r)) + os.urandom(random.randint(1, 700)).hex()
            s.sendall(payload.encode() + b"\n")
            line = f.readline().decode().rstrip("\n")
            w, _, rest = line.partition(" ")
            if rest != payload:
                errors.append("conn %%d: bad echo" %% i); return
            if owner[i] is None:
                owner[i] = w
            elif owner[i] != w:
                errors.append("conn %%d moved from %%s to %%s" %% (i, owner[i], w)); return
    except Exception as e:
        errors.append("conn %%d: %%r" %% (i, e))
threads = [threading.Thread(target=talk, args=(i,)) for i in range(N)]
for t in threads: t.start()
for t in threads: t.join()
for s in conns: s.close()
print("errors", len(errors), errors[:3])
print("w0", owner.count("w0"), "w1", owner.count("w1"))
]]

local KERNEL_ECHO = [[
import socket, threading
l = socket.socket(socket.AF_INET%s); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("%s", 7100)); l.listen(512)
print("LISTENING", flush=True)
def echo(c):
    f = c.makefile("rb")
    line = f.readline()
    c.sendall(line)
    c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
]]

local function stats(ip)
    local rc, out = net.python(([[
import socket
s = socket.create_connection(("%s", 7001), timeout=10)
print(s.makefile().readline().strip())
]]):format(ip))
    assert(rc == 0, out)
    local t = {}
    for w, o, i, d in out:gmatch("w(%d) out=(%d+) in=(%d+) drops=(%d+)") do
        t[tonumber(w)] = { out = tonumber(o), ["in"] = tonumber(i), drops = tonumber(d) }
    end
    return t, out
end

local function run_case(ifname, net_id, family)
    local v6 = family == 6
    local ip = v6 and ("fd%x::2"):format(net_id) or ("10.%d.0.2"):format(net_id)
    local peer = v6 and ("fd%x::1"):format(net_id) or ("10.%d.0.1"):format(net_id)
    local go = child.tmpfile(".go")
    local device = v6 and {
        addresses = { ("10.%d.0.2/24"):format(net_id), ("fd%x::2/64"):format(net_id) },
        peer_addresses = { ("10.%d.0.1/24"):format(net_id), ("fd%x::1/64"):format(net_id) },
    } or nil
    local args = ("%q, %q, %q"):format(go, peer, v6 and "::" or "*")
    local svc = net.service(ifname, net_id, (SERVER:gsub("RUN_ARGS", function() return args end)),
        { cores = { 0, 1 }, device = device })
    defer(svc.stop)
    local echo = child.start_python(KERNEL_ECHO:format(v6 and "6" or "", peer))
    defer(function() echo:kill(9) end)
    assert.is_true(echo:wait_output("LISTENING"), echo:stderr())

    -- incoming: 400 concurrent python connections, then curl
    local rc, out = net.python(CLIENTS:format(ip), 180)
    assert.are.equal(0, rc, out)
    assert.matches("^errors 0 %[%]\n", out)
    local w0, w1 = out:match("w0 (%d+) w1 (%d+)")
    w0, w1 = tonumber(w0), tonumber(w1)
    assert.are.equal(400, w0 + w1, out)
    assert.is_true(w0 > 100 and w1 > 100, out) -- spread by hash
    local dir = child.tmpdir() .. "/curl-" .. ifname
    child.sh("mkdir -p " .. dir)
    local host = v6 and ("[%s]"):format(ip) or ip
    local lines = {}
    for i = 1, 200 do
        lines[i] = ('url = "http://%s:8080/p%d"\noutput = "%s/r_%d"'):format(host, i, dir, i)
    end
    local list = child.tmpfile(".curl", table.concat(lines, "\n") .. "\n")
    local crc, cout = child.sh(("curl -sS -g -Z --parallel-max 100 --max-time 30 -K %s")
        :format(child.quote(list)))
    assert.are.equal(0, crc, cout)
    local per = { 0, 0 }
    for i = 1, 200 do
        local body = child.read(("%s/r_%d"):format(dir, i))
        local w = body:match("^worker (%d) /p" .. i .. "\n$")
        assert.truthy(w, "curl " .. i .. ": " .. body)
        per[tonumber(w) + 1] = per[tonumber(w) + 1] + 1
    end
    assert.is_true(per[1] > 0 and per[2] > 0)

    -- outgoing: 50 connections from each worker
    io.open(go, "w"):close()
    assert.is_true(svc.proc:wait_output("OUT 0") and svc.proc:wait_output("OUT 1"),
        svc.proc:stdout() .. svc.proc:stderr())
    local outs = svc.proc:stdout()
    for w = 0, 1 do
        local ok, worst = outs:match("OUT " .. w .. " (%d+) ([%d.]+)")
        assert.are.equal("50", ok, outs)
        -- lwIP's first SYN retransmission comes after 3 s: a lost SYN-ACK or
        -- ARP reply would show as a connect that took that long
        assert.is_true(tonumber(worst) < 2.5, "slowest connect " .. worst .. " s")
    end
    local st, text = stats(ip)
    assert.are.equal(0, st[0].drops + st[1].drops, text)
    -- the tap's kernel picks queues: some frames arrive at the other worker
    assert.is_true(st[0].out + st[1].out > 0, text)
    print(("\n  [%s] connections per worker: python w0=%d w1=%d, curl w0=%d w1=%d; %s"):format(
        ifname, w0, w1, per[1], per[2], text))
end

describe("two workers behind one tap", function()
    it("serve 400 concurrent kernel connections and curl, each flow on one worker, "
        .. "and connect out from both workers (IPv4)", function()
        run_case("dls0", 130, 4)
    end)

    it("do the same over IPv6", function()
        run_case("dls1", 131, 6)
    end)
end)

describe("the steering function", function()
    it("matches rte_softrss on known vectors, is symmetric, and predicts the owner", function()
        local rc, out = child.sh("make -s -C " .. child.quote(ROOT) .. " steer-test && "
            .. child.quote(ROOT .. "/build/steer_test"))
        assert.are.equal(0, rc, out)
        assert.matches("steer_test: ok\n", out)
    end)
end)

describe("two workers behind a gateway", function()
    -- as in tcp_stack_spec.lua (net.gateway): the tap's kernel side is a router
    -- namespace that forwards to a far namespace; here both workers connect out
    local GW = { tap = "dls6", router = "dlsgr", far = "dlsgh", veth = { "dlsga", "dlsgb" },
        near4 = "10.137.0.1/24", near6 = "fd89::1/64", far4 = "10.138.0", far6 = "fd8a::" }

    after_each(function() net.gateway_down(GW) end)

    it("reach IPv4 and IPv6 hosts off the local networks from both workers", function()
        local go = child.tmpfile(".go")
        local svc = net.service("dls6", 137, ([[
local rt = assert(dpdk.runtime{ workers = 2, config = CONFIG })
print("READY") io.stdout:flush()
rt:run(function(go)
    local dpdk, tcp = require "dpdk", require "dpdk.tcp"
    while not io.open(go) do dpdk.sleep(0.05) end
    for round = 1, 10 do
        for _, far in ipairs({ "10.138.0.2", "fd8a::2" }) do
            local c, err = tcp.connect(far, 7400, { timeout = 5000 })
            local line = c and c:receive("*l") or err
            io.stdout:write(("RESULT %%d %%s %%s\n"):format(dpdk.worker_id(), far, tostring(line)))
            io.stdout:flush()
            if c then c:close() end
        end
    end
end, %q)
print("DONE") io.stdout:flush()
dpdk.sleep(3600)
]]):format(go), { cores = { 0, 1 }, device = {
            addresses = { "10.137.0.2/24", "fd89::2/64" },
            peer_addresses = child.array(),
            gateway_v4 = "10.137.0.1", gateway_v6 = "fd89::1",
        } })
        defer(svc.stop)
        local server = net.gateway(GW)
        defer(function() server:kill(9) end)
        io.open(go, "w"):close()
        assert.is_true(svc.proc:wait_output("DONE", 60), svc.proc:stdout() .. svc.proc:stderr())
        local out = svc.proc:stdout()
        for w = 0, 1 do
            local _, n4 = out:gsub("RESULT " .. w .. " 10%.138%.0%.2 far host sees 10%.137%.0%.2\n", "")
            local _, n6 = out:gsub("RESULT " .. w .. " fd8a::2 far host sees fd89::2\n", "")
            assert.are.equal(10, n4, out)
            assert.are.equal(10, n6, out)
        end
    end)
end)

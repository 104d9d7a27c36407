-- DPDK telemetry: a running server (DPDKLUA_TELEMETRY=1) answers /dpdklua/*
-- on its telemetry socket with the same figures as its own dpdk.stats(), read
-- by a python client of the socket and by Debian's dpdk-telemetry.py.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local CLIENT = [==[
import json, os, socket, subprocess, sys, time
IP, PID = "%s", %d
prefix = "dpdklua-%%d" %% PID
path = "/var/run/dpdk/%%s/dpdk_telemetry.v2" %% prefix

def telemetry(cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    json.loads(s.recv(1024))  # the greeting: version, pid, max_output_len
    s.send(cmd.encode())
    reply = json.loads(s.recv(1 << 16))
    s.close()
    return reply[cmd.split(",")[0]]

def own(c):  # worker 0's dpdk.stats(), from the server
    return {k[3:]: v for k, v in stats(c).items() if k.startswith("w0.")}

deadline = time.time() + 10
while not os.path.exists(path) and time.time() < deadline: time.sleep(0.05)
held = [socket.create_connection((IP, 7015), timeout=10) for _ in range(3)]
c = held[0]
time.sleep(0.3)  # past the publishing period: every figure below is published
a = own(c)
t = telemetry("/dpdklua/stats")
w0 = telemetry("/dpdklua/stats,0")
conns = telemetry("/dpdklua/conns")
workers = telemetry("/dpdklua/workers")
port = telemetry("/dpdklua/ports,0")
b = own(c)
# the same figures: what dpdk.stats() said before <= telemetry <= after
for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "tcp_in_segs", "tcp_out_segs",
          "tcp_passive_opens", "loops"):
    assert a[k] <= t[k] <= b[k], (k, a[k], t[k], b[k])
    assert t[k] <= w0[k] <= b[k], (k, t[k], w0[k], b[k])
for k in ("tcp_listen", "tcp_established", "tcp_passive_opens"):
    assert a[k] == t[k] == b[k], (k, a[k], t[k], b[k])
print("stats", t["workers"], t["ports"], t["tcp_listen"], t["tcp_established"], w0["worker"], w0["core"])
print("conns", conns["listen"], conns["established"], conns["total"])
print("workers", workers["workers"], workers["core"], workers["tcp_established"], workers["lua_bytes"][0] > 0)
print("port", port["name"], port["mbufs_total"], port["ipackets"] > 0)
# a bad worker index: the command fails, the server goes on
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(path); s.recv(1024)
s.send(b"/dpdklua/stats,7"); print("bad", s.recv(1024).decode()); s.close()
# Debian's client, as a user would run it
r = subprocess.run(["dpdk-telemetry.py", "-f", prefix], input="/dpdklua/conns\n",
                   capture_output=True, text=True, timeout=20)
print("dpdk-telemetry.py", r.returncode, '"established": 3' in r.stdout)
for s in held: s.close()
]==]

describe("DPDK telemetry", function()
    it("answers /dpdklua/* from a running server with the figures dpdk.stats() gives", function()
        local svc = net.stats_service("dlv3", 18, 1, { env = { DPDKLUA_TELEMETRY = "1" } })
        finally(function() svc.stop() end)
        local pid = svc.proc:child_pid()
        local rc, out = net.python(net.PY_STATS .. CLIENT:format(svc.ip, pid))
        assert.are.equal(0, rc, out .. svc.proc:stderr())
        assert.matches("stats 1 1 1 3 0 0\n", out, 1, true)
        assert.matches("conns 1 3 3\n", out, 1, true)
        assert.matches("workers 1 [0] [3] True\n", out, 1, true)
        assert.matches("port net_tap_dlv3 8192 True\n", out, 1, true)
        assert.matches('bad {"/dpdklua/stats":null}\n', out, 1, true)
        assert.matches("dpdk-telemetry.py 0 True\n", out, 1, true)
    end)

    it("opens the socket only when asked: DPDKLUA_TELEMETRY or eal_args without --no-telemetry",
        function()
        local code = [[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 1, config = arg[1] })
local pid = io.open("/proc/self/stat"):read("*l"):match("^%d+")
print("socket", os.execute("test -S /var/run/dpdk/dpdklua-" .. pid .. "/dpdk_telemetry.v2") == 0)
]]
        local quiet = child.config({ cores = { 0 } }) -- the specs' EAL args: --no-telemetry
        local open = child.config({ cores = { 0 }, eal_args = { "--no-huge", "-m", "128", "--no-pci" } })
        local function socket(cfg, env)
            local r = child.run(code, { args = { cfg }, env = env })
            assert.are.equal(0, r.status, r.stderr)
            return r.stdout
        end
        assert.are.equal("socket\tfalse\n", socket(quiet))
        assert.are.equal("socket\ttrue\n", socket(quiet, { DPDKLUA_TELEMETRY = "1" }))
        assert.are.equal("socket\ttrue\n", socket(open))
        assert.are.equal("socket\tfalse\n", socket(open, { DPDKLUA_TELEMETRY = "0" }))
    end)
end)

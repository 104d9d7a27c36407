-- dpdk.stats(): per worker and per port figures, checked against what real
-- kernel peers did through the tap (python sockets), and log lines that name
-- the worker. docs/observability.md documents every field.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local function start(ifname, net_no, workers, device)
    return net.stats_service(ifname, net_no, workers, { device = device })
end

local PARSE = net.PY_STATS

describe("dpdk.stats()", function()
    it("names every word of dl_worker_stats, in order (host/stats.c's list against api.h)",
        function()
        local ffi = require "ffi"
        local C = require "dpdk.cdef"
        local n = 0
        while C.dl_stats_field(n) ~= nil do
            local name = ffi.string(C.dl_stats_field(n))
            assert.are.equal(n * 8, ffi.offsetof("dl_worker_stats", name), name)
            n = n + 1
        end
        assert.are.equal(ffi.sizeof("dl_worker_stats"), n * 8)
    end)

    it("counts packets, bytes, connections by state, Lua memory and mbufs per worker and port",
        function()
        local svc = start("dlv0", 15, 1)
        finally(function() svc.stop() end)
        local rc, out = net.python(PARSE .. ([[
import socket, time
IP = "%s"
held = []
for i in range(3):
    s = socket.create_connection((IP, 7015), timeout=10)
    s.sendall(b"hold\n")
    held.append(s)
c = socket.create_connection((IP, 7015), timeout=10)
c.sendall(b"hello\n")
assert c.recv(100) == b"hello\n"
# a closed one: its pcb leaves through the stack's FIN handshake
x = socket.create_connection((IP, 7015), timeout=10)
x.close()
# the published TCP part lags by at most DL_STATS_PERIOD_MS: the caller's own
# worker takes it afresh, so one call sees all of it
deadline = time.time() + 10
while True:
    st = stats(c)
    if st["w0.tcp_established"] >= 4 or time.time() > deadline: break
    time.sleep(0.05)
for k in ("w0.tcp_listen", "w0.tcp_established", "w0.tcp_passive_opens", "w0.tcp_active_opens"):
    print(k, st[k])
print("rx", st["w0.rx_packets"] > 10, st["w0.rx_bytes"] > 500)
print("tx", st["w0.tx_packets"] >= 8, st["w0.tx_bytes"] > 400)
print("segs", st["w0.tcp_in_segs"] >= 10, st["w0.tcp_out_segs"] >= 6)
print("lua", 3 * 1024 * 1024 < st["w0.lua_bytes"] < 512 * 1024 * 1024)
print("drops", st["w0.rx_dropped"] == st["w0.rx_not_ours"] + st["w0.rx_bad_cksum"] + st["w0.rx_nobuf"],
      st["w0.tx_dropped"] == st["w0.tx_full"] + st["w0.tx_nombuf"] + st["w0.tx_too_big"])
print("published", st["w0.published_us"] > 0)
print("port", st["p0.name"], st["p0.mbufs_total"], st["p0.mbufs_in_use"] + st["p0.mbufs_avail"] == st["p0.mbufs_total"],
      st["p0.mbufs_in_use"] > 0, st["p0.ipackets"] >= st["w0.rx_packets"])
for s in held: s.close()
c.close()
]]):format(svc.ip))
        assert.are.equal(0, rc, out .. svc.proc:stderr())
        assert.matches("w0.tcp_listen 1\n", out, 1, true)
        assert.matches("w0.tcp_established 4\n", out, 1, true)
        assert.matches("w0.tcp_passive_opens 5\n", out, 1, true)
        assert.matches("w0.tcp_active_opens 0\n", out, 1, true)
        assert.matches("rx True True\ntx True True\nsegs True True\nlua True\n", out, 1, true)
        assert.matches("drops True True\npublished True\n", out, 1, true)
        assert.matches("port net_tap_dlv0 8192 True True True\n", out, 1, true)
    end)

    it("counts the busy time of a worker: the turns that moved frames, not the idle ones",
        function()
        local svc = start("dlvb", 28, 1)
        finally(function() svc.stop() end)
        local rc, out = net.python(PARSE .. ([[
import socket, time
IP = "%s"
c = socket.create_connection((IP, 7015), timeout=10)
a = stats(c); ta = time.time()
time.sleep(1)  # the worker polls on, with nothing to do
b = stats(c); tb = time.time()
N = 2000
for i in range(N):
    c.sendall(b"ping\n")
    assert c.recv(100) == b"ping\n"
d = stats(c); td = time.time()
idle, wall_idle = b["w0.busy_ns"] - a["w0.busy_ns"], (tb - ta) * 1e9
busy, wall_busy = d["w0.busy_ns"] - b["w0.busy_ns"], (td - tb) * 1e9
# idle: millions of turns, only the stats requests' few busy ones
print("idle", idle < 0.2 * wall_idle, b["w0.loops"] - a["w0.loops"] > 1000)
# loaded: at least a busy turn per request, never more than the time that passed
print("busy", busy > N * 100, busy <= wall_busy * 1.05)
c.close()
]]):format(svc.ip))
        assert.are.equal(0, rc, out .. svc.proc:stderr())
        assert.matches("idle True True\nbusy True True\n", out, 1, true)
    end)

    it("counts retransmissions while the peer cannot hear, and the frames not for us", function()
        local svc = start("dlv1", 16, 1, -- .3 first: the primary, which stays when the secondary .1 goes
            { peer_addresses = { "10.16.0.3/24", "10.16.0.1/24" } })
        finally(function() svc.stop() end)
        local rc, out = net.python(PARSE .. ([[
import socket, subprocess, time
IP = "%s"
def connect(src):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(20)
    s.connect((IP, 7015))
    return s
c = connect("10.16.0.1")
ctl = connect("10.16.0.3")
c.sendall(b"arm\n")
before = stats(c)  # an exchange with data both ways: the stack has measured the RTT
# 10.16.0.1 goes away: what the stack sends to it now is lost, so it retransmits
subprocess.check_call(["ip", "addr", "del", "10.16.0.1/24", "dev", "dlv1"])
ctl.sendall(b"go\n")
assert ctl.recv(100) == b"sent\n"
time.sleep(0.5)
subprocess.check_call(["ip", "addr", "add", "10.16.0.1/24", "dev", "dlv1"])
got = 0
while got < 200000:  # only a retransmission brings the lost segments
    b = c.recv(65536)
    assert b, "closed after %%d bytes" %% got
    got += len(b)
# a frame for another MAC (the stack's port is promiscuous): dropped, counted
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("dlv1", 0))
s.send(bytes.fromhex("02aabbccddee") + bytes.fromhex("020000000001") + b"\x08\x00" + bytes(46))
s.close()
deadline = time.time() + 10
while True:
    after = stats(c)
    if after["w0.rx_not_ours"] > before["w0.rx_not_ours"] or time.time() > deadline: break
    time.sleep(0.05)
print("retrans", after["w0.tcp_retrans_segs"] > before["w0.tcp_retrans_segs"])
print("not ours", after["w0.rx_not_ours"] > before["w0.rx_not_ours"])
c.close()
]]):format(svc.ip))
        assert.are.equal(0, rc, out .. svc.proc:stderr())
        assert.matches("retrans True\nnot ours True\n", out, 1, true)
    end)

    it("reports every worker, each with its own Lua state's size, and logs name the worker",
        function()
        local svc = start("dlv2", 17, 2)
        finally(function() svc.stop() end)
        local rc, out = net.python(PARSE .. ([[
import socket, time
IP = "%s"
c = socket.create_connection((IP, 7015), timeout=20)
deadline = time.time() + 10
while True:
    st = stats(c)
    # worker 1 publishes its Lua size on its own every 100 ms
    if st.get("w1.lua_bytes", 0) > 0 or time.time() > deadline: break
    time.sleep(0.05)
print("workers", st["w0.worker"], st["w1.worker"], st["w0.core"], st["w1.core"])
print("listen", st["w0.tcp_listen"], st["w1.tcp_listen"])
print("lua", st["w0.lua_bytes"] > 0, st["w1.lua_bytes"] > 0)
c.close()
]]):format(svc.ip))
        assert.are.equal(0, rc, out .. svc.proc:stderr())
        assert.matches("workers 0 1 0 1\nlisten 1 1\nlua True True\n", out, 1, true)
        local err = svc.proc:stderr()
        assert.matches("%d%d:%d%d:%d%d%.%d%d%d %[w0%] %[warn%] lua: listening on worker 0\n", err)
        assert.matches("%d%d:%d%d:%d%d%.%d%d%d %[w1%] %[warn%] lua: listening on worker 1\n", err)
    end)
end)

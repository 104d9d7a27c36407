-- A worker's shared TCP resources against kernel peers through a tap (issue
-- 11): send segments a few non-reading clients must not use up, the
-- max_connections limit (refused with RST, reported in dpdk.stats()), and
-- closed connections that may not linger past linger_timeout_ms.
local net = require "spec.helpers.net"

-- The services' prelude: a task that prints the worker's TCP counters
-- whenever they change, and a line echo.
local PRELUDE = [[
local function report_stats()
    local last
    while true do
        local t = dpdk.stats().workers[1]
        local line = ("STATS connections=%d max=%d refused=%d orphans=%d aborted=%d segments=%d waits=%d")
            :format(t.tcp_connections, t.tcp_max_connections, t.tcp_refused, t.tcp_orphans,
                t.tcp_orphans_aborted, t.tcp_segments, t.tcp_segment_waits)
        if line ~= last then print(line) io.stdout:flush() last = line end
        dpdk.sleep(0.02)
    end
end
-- Answers each connection to l with its first line, then closes it.
local function serve_lines(l)
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            c:settimeout(5000)
            local line = c:receive("*l")
            if line then c:send(line .. "\n") end
            c:close()
        end)
    end
end
]]

-- The last STATS line (report_stats) of a service's output, as a table of numbers.
local function last_stats(out)
    local line
    for l in out:gmatch("STATS [^\n]*") do line = l end
    if not line then return nil end
    local t = {}
    for k, v in line:gmatch("(%w+)=(%d+)") do t[k] = tonumber(v) end
    return t
end

-- Wait (up to `seconds`) until pred(stats) holds for the service's last STATS line.
local function wait_stats(svc, pred, seconds)
    local deadline = os.time() + seconds
    repeat
        local s = last_stats(svc.proc:stdout())
        if s and pred(s) then return s end
        require("spec.helpers.child").sleep(0.05)
    until os.time() > deadline
    return last_stats(svc.proc:stdout())
end

describe("a worker's send segments", function()
    it("stay shared: clients that never read leave room for a ping, and their sends time out", function()
        local svc = net.block_on_service("dlm2", 227, [[
    dpdk.spawn(report_stats)
    local bulk = assert(tcp.listen("*", 7000, { backlog = 64 }))
    local ping = assert(tcp.listen("*", 7001))
    dpdk.spawn(function()
        while true do
            local c = assert(bulk:accept())
            dpdk.spawn(function()
                c:settimeout(2000)
                local chunk = string.rep("b", 256 * 1024)
                local t0 = dpdk.now()
                local ok, err
                repeat ok, err = c:send(chunk) until not ok
                print(("BULK %s %.2f"):format(err, dpdk.now() - t0)) io.stdout:flush()
                c:close()
            end)
        end
    end)
    print("READY") io.stdout:flush()
    serve_lines(ping)
]], { prelude = PRELUDE })
        finally(svc.stop)
        -- 30 clients with a tiny receive buffer that never read: 30 x 1 MiB
        -- queued would need ~21 500 segments of 1460 bytes, the pool has 16 384
        local rc, out = net.python(([[
import socket, time
clients = []
for i in range(30):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("%s", 7000))
    clients.append(s)
time.sleep(1.0)
t0 = time.time()
p = socket.create_connection(("%s", 7001), timeout=4)
p.sendall(b"ping\n")
got = b""
while not got.endswith(b"\n"):
    b = p.recv(100)
    if not b: break
    got += b
print("PING", got.decode().strip(), "%%.2f" %% (time.time() - t0))
time.sleep(3.0)
]]):format(svc.ip, svc.ip), 30)
        assert.are.equal(0, rc, out)
        assert.matches("^PING ping %d", out)
        local t = tonumber(out:match("PING ping ([%d.]+)"))
        assert.is_true(t < 2, out)
        -- every bulk writer's send timed out (2 s) instead of spinning
        local bulk = 0
        for err, secs in svc.proc:stdout():gmatch("BULK (%S+) ([%d.]+)") do
            assert.are.equal("timeout", err)
            assert.is_true(tonumber(secs) < 4, secs)
            bulk = bulk + 1
        end
        assert.are.equal(30, bulk, svc.proc:stdout())
        local s = last_stats(svc.proc:stdout())
        assert.is_true(s.waits > 0, svc.proc:stdout())
    end)
end)

describe("max_connections", function()
    it("refuses the next SYN with RST at once, counts it, and lets clients in again after closes", function()
        local svc = net.block_on_service("dlm0", 225, [[
    dpdk.spawn(report_stats)
    local l = assert(tcp.listen("*", 7000, { backlog = 64 }))
    print("READY") io.stdout:flush()
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            while true do
                local d = c:receiveany(100)
                if not d then break end
                c:send(d)
            end
            c:close()
        end)
    end
]], { prelude = PRELUDE, runtime = "max_connections = 20" })
        finally(svc.stop)
        local rc, out = net.python(([[
import socket, time
def open_one():
    s = socket.create_connection(("%s", 7000), timeout=5)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    return s
held = [open_one() for i in range(20)]
t0 = time.time()
try:
    open_one()
    print("CONNECTED")
except ConnectionRefusedError:
    print("REFUSED %%.2f" %% (time.time() - t0))
except Exception as e:
    print("OTHER", type(e).__name__, e)
for s in held[:5]:
    s.close()
again, deadline = 0, time.time() + 5
while again < 5 and time.time() < deadline:
    try:
        held.append(open_one()); again += 1
    except ConnectionRefusedError:
        time.sleep(0.05)
print("AGAIN", again)
]]):format(svc.ip), 30)
        assert.are.equal(0, rc, out)
        local secs = tonumber(out:match("REFUSED ([%d.]+)"))
        assert.is_truthy(secs, out .. svc.proc:stdout() .. svc.proc:stderr())
        assert.is_true(secs < 1, out)
        assert.matches("AGAIN 5\n", out)
        local s = wait_stats(svc, function(st) return st.refused >= 1 end, 5)
        assert.are.equal(20, s.max)
        assert.is_true(s.refused >= 1)
    end)

    it("is checked when the runtime starts", function()
        local child = require "spec.helpers.child"
        local r = child.run([[
local dpdk = require "dpdk"
print(pcall(dpdk.runtime, { max_connections = 0 }))
print(pcall(dpdk.runtime, { max_connections = 16385 }))
print(pcall(dpdk.runtime, { linger_timeout_ms = 0 }))
]])
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("max_connections must be 1..16384 %(TCP connections per worker%), got 0", r.stdout)
        assert.matches("max_connections must be 1..16384 %(TCP connections per worker%), got 16385", r.stdout)
        assert.matches("linger_timeout_ms must be 1..3600000 %(milliseconds%), got 0", r.stdout)
    end)
end)

describe("a closed connection", function()
    it("is reset after linger_timeout_ms when the peer's window stays shut", function()
        local svc = net.block_on_service("dlm1", 226, [[
    dpdk.spawn(report_stats)
    local l = assert(tcp.listen("*", 7000))
    print("READY") io.stdout:flush()
    local c = assert(l:accept())
    c:settimeout(300)
    c:send(string.rep("z", 2 * 1024 * 1024)) -- more than the peer takes: a timeout
    c:close()
    print("CLOSED") io.stdout:flush()
    dpdk.sleep(3600)
]], { prelude = PRELUDE, runtime = "linger_timeout_ms = 1000" })
        finally(svc.stop)
        -- the peer never reads (zero window) but its kernel keeps answering
        -- the probes: without a bound the orphan would probe for minutes
        local rc, out = net.python(([[
import socket, time, errno
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("%s", 7000))
t0 = time.time()
while time.time() - t0 < 8:
    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if e:
        print("RESET", errno.errorcode.get(e), "%%.2f" %% (time.time() - t0))
        break
    time.sleep(0.05)
else:
    print("NO RESET")
]]):format(svc.ip), 30)
        assert.are.equal(0, rc, out)
        local secs = tonumber(out:match("RESET ECONNRESET ([%d.]+)"))
        assert.is_truthy(secs, out .. svc.proc:stdout() .. svc.proc:stderr())
        -- closed at ~0.3 s, reset 1 s later (lwIP's poll: within 0.4 s more)
        assert.is_true(secs >= 1.2 and secs < 3, out)
        local s = wait_stats(svc, function(st) return st.aborted >= 1 and st.orphans == 0 end, 5)
        assert.are.equal(1, s.aborted, svc.proc:stdout())
        assert.are.equal(0, s.orphans)
        assert.are.equal(0, s.connections, svc.proc:stdout()) -- the listener is in another pool
        assert.matches("orphans=1", svc.proc:stdout())
    end)
end)

describe("unread received data", function()
    it("does not pin the port's buffers: slow readers lose nothing, other connections still work", function()
        local svc = net.block_on_service("dlm3", 228, [[
    local slow = assert(tcp.listen("*", 7000, { backlog = 64 }))
    local echo = assert(tcp.listen("*", 7001, { backlog = 64 }))
    local go = assert(tcp.listen("*", 7002))
    local held = {}
    dpdk.spawn(function()
        while true do held[#held + 1] = assert(slow:accept()) end
    end)
    dpdk.spawn(serve_lines, echo)
    print("READY") io.stdout:flush()
    local g = assert(go:accept())
    g:close()
    print(("UNREAD %d"):format(dpdk.stats().workers[1].tcp_rx_unread)) io.stdout:flush()
    -- now read what the slow connections were sent, and check every byte
    for _, c in ipairs(held) do
        c:settimeout(10000)
        local head = assert(c:receive(4))
        local block = head .. string.rep(string.char(65 + tonumber(head) % 26), 996)
        local data, err = c:receive(1000 * 1048 - 4)
        print(("SLOW %s %s"):format(head, data == string.rep(block, 1048):sub(5) and "intact" or tostring(err)))
        io.stdout:flush()
        c:close()
    end
    print(("COMPACTED %d"):format(dpdk.stats().workers[1].tcp_rx_compacted)) io.stdout:flush()
]], { prelude = PRELUDE, runtime = "mempool_size = 1024, cache_size = 64" })
        finally(svc.stop)
        -- 20 peers send ~1 MB each that the server does not read yet: ~14 400
        -- full segments if it took them all, against a pool of 1 024 mbufs
        local rc, out = net.python(([[
import socket, threading, time
def slow(k):
    s = socket.create_connection(("%s", 7000), timeout=20)
    block = b"%%04d" %% k + bytes([65 + k %% 26]) * 996
    s.sendall(block * 1048)
    s.close()
threads = [threading.Thread(target=slow, args=(k,)) for k in range(20)]
for t in threads: t.start()
time.sleep(1.5)
ok = 0
for i in range(8):
    try:
        e = socket.create_connection(("%s", 7001), timeout=3)
        e.sendall(b"echo %%d\n" %% i)
        if e.recv(100) == b"echo %%d\n" %% i: ok += 1
        e.close()
    except OSError as err:
        print("ECHO FAILED", i, err)
print("ECHO", ok)
socket.create_connection(("%s", 7002), timeout=3).close()
for t in threads: t.join(20)
print("SENT", sum(not t.is_alive() for t in threads))
]]):format(svc.ip, svc.ip, svc.ip), 60)
        assert.are.equal(0, rc, out)
        assert.matches("ECHO 8\n", out)
        assert.matches("SENT 20\n", out)
        assert.is_true(svc.proc:wait_output("COMPACTED", 20), svc.proc:stdout())
        local intact = 0
        for _ in svc.proc:stdout():gmatch("SLOW %d+ intact") do intact = intact + 1 end
        assert.are.equal(20, intact, svc.proc:stdout())
        assert.is_true(tonumber(svc.proc:stdout():match("COMPACTED (%d+)")) > 0)
        -- each connection's window was its 128 KiB grant, not 1 MiB
        local unread = tonumber(svc.proc:stdout():match("UNREAD (%d+)"))
        assert.is_true(unread > 20 * 60000 and unread <= 20 * 128 * 1024, svc.proc:stdout())
    end)
end)

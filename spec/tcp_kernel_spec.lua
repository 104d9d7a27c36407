-- TCP between a dpdklua service and kernel peers through net_tap: curl,
-- python sockets, half-close, resets, refused connects, IPv6, many addresses.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local ECHO = [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7000))
    print("READY") io.stdout:flush()
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            while true do
                local data, err = c:receiveany(65536)
                if not data then break end
                assert(c:send(data))
            end
            c:close()
        end)
    end
end)
]]

-- examples/http.lua, unmodified, on port 8080 of 10.<n>.0.2 (its runtime given
-- the spec's CONFIG)
local function http_service(name, n)
    return net.service(name, n, ([[
arg = { [0] = "http.lua", "8080" }
local real_runtime = dpdk.runtime
dpdk.runtime = function(o) o.config = CONFIG return real_runtime(o) end
dofile(%q)
]]):format((os.getenv("DPDKLUA_ROOT") or ".") .. "/examples/http.lua"),
        { ready = ("http server on port 8080: try curl http://10.%d.0.2:8080/"):format(n) })
end

describe("a dpdklua HTTP server", function()
    it("answers curl, two requests on one keep-alive connection", function()
        local svc = http_service("dltk1", 61)
        finally(svc.stop)
        local rc, out = child.sh(("curl -sS -v --max-time 10 http://%s:8080/a http://%s:8080/b")
            :format(svc.ip, svc.ip))
        assert.are.equal(0, rc, out)
        assert.matches("Hello from dpdklua %(worker 0, core 0%): GET /a\n", out)
        assert.matches("Hello from dpdklua %(worker 0, core 0%): GET /b\n", out)
        assert.matches("Re%-using existing connection", out)
    end)

    it("closes after HTTP/1.0 and after Connection: close, keeps 1.0 with keep-alive", function()
        local svc = http_service("dltk11", 71)
        finally(svc.stop)
        -- each case: the requests sent on one connection, then what came back
        -- until the server closed it (or 1 s of silence: still open)
        local rc, out = net.python(([[
import socket
def talk(*reqs):
    s = socket.create_connection(("%s", 8080), timeout=10)
    for r in reqs:
        s.sendall(r)
    s.settimeout(1)
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return got.decode(), "closed"
            got += b
    except socket.timeout:
        return got.decode(), "open"
body, state = talk(b"GET /ten HTTP/1.0\r\n\r\n")
print(state, "GET /ten" in body, "Connection: close" in body)
body, state = talk(b"GET /a HTTP/1.1\r\nconnection: close\r\n\r\n")
print(state, "GET /a" in body, "Connection: close" in body)
body, state = talk(b"HEAD /k HTTP/1.0\r\nCONNECTION: Keep-Alive\r\n\r\n")
print(state, "HEAD /k" in body)
body, state = talk(b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"GET /q HTTP/1.1\r\n\r\n")
print(state, "POST /p" in body, "GET /q" in body)
body, state = talk(b"nonsense\r\n\r\n")
print(state, repr(body))
]]):format(svc.ip))
        assert.are.equal(0, rc, out)
        assert.are.equal("closed True True\nclosed True True\nopen True\nopen True True\nclosed ''\n", out)
    end)
end)

describe("a dpdklua echo server", function()
    it("echoes what a python client sends", function()
        local svc = net.service("dltk2", 62, ECHO)
        finally(svc.stop)
        local rc, out = net.python(([[
import socket
s = socket.create_connection(("%s", 7000), timeout=10)
for msg in (b"hello\n", b"x" * 3000, b"last"):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += s.recv(65536)
    assert got == msg, (got[:50], msg[:50])
print("ok")
]]):format(svc.ip))
        assert.are.equal(0, rc, out)
        assert.are.equal("ok\n", out)
    end)

    it("moves 64 MiB each way intact (SHA-256 compared)", function()
        local svc = net.service("dltk3", 63, ECHO)
        finally(svc.stop)
        local rc, out = net.python(([[
import hashlib, os, socket, threading
size = 64 * 1024 * 1024
s = socket.create_connection(("%s", 7000), timeout=60)
chunk = os.urandom(1 << 20)
sent = hashlib.sha256()
def writer():
    for i in range(size // len(chunk)):
        block = bytes([i & 255]) + chunk[1:]
        sent.update(block)
        s.sendall(block)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=writer); t.start()
got, n = hashlib.sha256(), 0
while True:
    b = s.recv(1 << 20)
    if not b: break
    got.update(b); n += len(b)
t.join()
print(n == size, sent.hexdigest() == got.hexdigest())
]]):format(svc.ip), 120)
        assert.are.equal(0, rc, out)
        assert.are.equal("True True\n", out)
    end)
end)

describe("TCP streams with a kernel peer", function()
    it("read to EOF after the peer's half-close, then answer", function()
        local svc = net.service("dltk4", 64, [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7001))
    print("READY") io.stdout:flush()
    local c = assert(l:accept())
    local all = assert(c:receive("*a"))
    assert(c:send("got " .. #all .. " bytes\n"))
    c:close()
end)
]])
        finally(svc.stop)
        local rc, out = net.python(([[
import socket
s = socket.create_connection(("%s", 7001), timeout=10)
s.sendall(b"a" * 100000)
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = s.recv(100)
    if not b: break
    reply += b
print(reply.decode().strip())
]]):format(svc.ip))
        assert.are.equal(0, rc, out)
        assert.are.equal("got 100000 bytes\n", out)
    end)

    it("report 'connection reset by peer' when the peer resets", function()
        local svc = net.service("dltk5", 65, [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7002))
    print("READY") io.stdout:flush()
    local c = assert(l:accept())
    local line = c:receive("*l")
    local data, err, partial = c:receive("*l")
    print("RESULT", line, data, err, partial) io.stdout:flush()
end)
]])
        finally(svc.stop)
        local rc, out = net.python(([[
import socket, struct, time
s = socket.create_connection(("%s", 7002), timeout=10)
s.sendall(b"first\npart")
time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
]]):format(svc.ip))
        assert.are.equal(0, rc, out)
        assert.is_true(svc.proc:wait_output("RESULT"), svc.proc:stderr())
        assert.matches("RESULT\tfirst\tnil\tconnection reset by peer\tpart\n", svc.proc:stdout())
    end)

    it("fail to connect to a closed kernel port with 'connection refused'", function()
        local svc = net.service("dltk6", 66, [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
print("READY") io.stdout:flush()
rt:block_on(function()
    print("RESULT", tcp.connect("10.66.0.1", 1)) io.stdout:flush()
end)
]])
        finally(svc.stop)
        assert.is_true(svc.proc:wait_output("RESULT"), svc.proc:stderr())
        assert.matches("RESULT\tnil\tconnection refused\n", svc.proc:stdout())
    end)

    it("connect out to a kernel server and talk both ways", function()
        local svc = net.service("dltk7", 67, [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
print("READY") io.stdout:flush()
rt:block_on(function()
    while not io.open("/tmp/dltk7.ready") do dpdk.sleep(0.05) end
    local c = assert(tcp.connect("10.67.0.1", 7100, { timeout = 5000 }))
    print("RESULT", c:receive("*l"), c:local_addr()) io.stdout:flush()
    assert(c:send("pong"))
    c:close()
end)
]])
        finally(function() svc.stop(); os.remove("/tmp/dltk7.ready") end)
        local rc, out = net.python([[
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.67.0.1", 7100)); l.listen(1)
open("/tmp/dltk7.ready", "w").close()
l.settimeout(10)
c, addr = l.accept()
c.settimeout(10)
c.sendall(b"hello " + addr[0].encode() + b"\n")
print("GOT", c.recv(100).decode())
]])
        assert.are.equal(0, rc, out)
        assert.are.equal("GOT pong\n", out)
        assert.is_true(svc.proc:wait_output("RESULT"))
        assert.matches("RESULT\thello 10.67.0.2\t10.67.0.2\t%d+\n", svc.proc:stdout())
    end)

    it("works over IPv6", function()
        local svc = net.service("dltk8", 68, ECHO:gsub('tcp.listen%("%*", 7000%)', 'tcp.listen("fd68::2", 7000)'),
            { device = { addresses = { "10.68.0.2/24", "fd68::2/64" },
                peer_addresses = { "10.68.0.1/24", "fd68::1/64" } } })
        finally(svc.stop)
        local rc, out = net.python([[
import socket
s = socket.create_connection(("fd68::2", 7000), timeout=10)
s.sendall(b"over six\n")
print(s.recv(100).decode().strip(), s.getpeername()[0])
]])
        assert.are.equal(0, rc, out)
        assert.are.equal("over six fd68::2\n", out)
    end)

    it("serves several addresses of one device", function()
        local svc = net.service("dltk9", 69, [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local ips = { "10.69.0.2", "10.69.0.3", "10.69.0.4" }
    for _, ip in ipairs(ips) do
        local l = assert(tcp.listen(ip, 7000))
        dpdk.spawn(function()
            while true do
                local c = l:accept()
                c:send("this is " .. (c:local_addr()) .. "\n")
                c:close()
            end
        end)
    end
    print("READY") io.stdout:flush()
    dpdk.sleep(3600)
end)
]], { device = { addresses = { "10.69.0.2/24", "10.69.0.3/24", "10.69.0.4/24" } } })
        finally(svc.stop)
        local rc, out = net.python([[
import socket
for ip in ("10.69.0.2", "10.69.0.3", "10.69.0.4"):
    s = socket.create_connection((ip, 7000), timeout=10)
    print(s.recv(100).decode().strip())
]])
        assert.are.equal(0, rc, out)
        assert.are.equal("this is 10.69.0.2\nthis is 10.69.0.3\nthis is 10.69.0.4\n", out)
    end)
    it("serves the last of 128 addresses (64 IPv4, 64 IPv6) on one device", function()
        local addresses = {}
        for i = 0, 63 do addresses[#addresses + 1] = ("10.70.0.%d/24"):format(2 + i) end
        for i = 0, 63 do addresses[#addresses + 1] = ("fd70::%x/64"):format(2 + i) end
        local svc = net.service("dltk10", 70, [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local listeners = { assert(tcp.listen("10.70.0.65", 7000)), assert(tcp.listen("fd70::41", 7000)) }
    print("READY", #rt:addresses()) io.stdout:flush()
    for _, l in ipairs(listeners) do
        local c = assert(l:accept())
        c:send("this is " .. (c:local_addr()) .. "\n")
        c:close()
    end
    dpdk.sleep(3600)
end)
]], { device = { addresses = addresses, peer_addresses = { "10.70.0.1/24", "fd70::1/64" } } })
        finally(svc.stop)
        assert.matches("READY\t128\n", svc.proc:stdout())
        local rc, out = net.python([[
import socket
for ip in ("10.70.0.65", "fd70::41"):
    s = socket.create_connection((ip, 7000), timeout=10)
    print(s.recv(100).decode().strip())
]])
        assert.are.equal(0, rc, out)
        assert.are.equal("this is 10.70.0.65\nthis is fd70::41\n", out)
    end)
end)

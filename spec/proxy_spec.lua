-- examples/proxy.lua driven by real peers: a python client on the kernel side
-- of the tap connects to the proxy (DPDK), which connects by name (an
-- /etc/hosts entry this spec adds and removes) to a python server behind the
-- same tap, and the data is checked both ways.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local MARKER = ("# dlo-test-proxy-%d-%d"):format(os.time(), math.random(1e6))
local UPNAME = MARKER:match("dlo%-test%-proxy%-%d+%-%d+") .. ".internal"
local KUPNAME = MARKER:match("dlo%-test%-proxy%-%d+%-%d+") .. "-loopback.internal"
local PROXY = (os.getenv("DPDKLUA_ROOT") or ".") .. "/examples/proxy.lua"

-- The upstream: BIND is where it listens (the tap's kernel side, or loopback).
local UPSTREAM_CODE = [[
import socket, threading, hashlib
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
BIND; l.listen(16)
def serve(c):
    got = b""
    while True:
        b = c.recv(65536)
        if not b: break
        got += b
    # the answer proves what arrived, and carries data of its own back
    c.sendall(("%d %s\n" % (len(got), hashlib.sha256(got).hexdigest())).encode() + got[::-1])
    c.close()
print("LISTENING %d" % l.getsockname()[1], flush=True)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
]]
local UPSTREAM = UPSTREAM_CODE:gsub("BIND", 'l.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1); '
    .. 'l.bind(("10.212.0.1", 7212))')
-- on the kernel's loopback, on a port the kernel picks
local KERNEL_UPSTREAM = UPSTREAM_CODE:gsub("BIND", 'l.bind(("127.0.0.1", 0))')

-- A python client through the proxy (svc.ip, port): sizes 1 to 300000, the
-- upstream's answer (length, SHA-256, the data reversed) checked byte for byte.
local CLIENT = [[
import socket, hashlib, os
for size in (1, 5000, 300000):
    data = os.urandom(size)
    s = socket.create_connection(("%s", %d), timeout=20)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b: break
        got += b
    s.close()
    head, _, body = got.partition(b"\n")
    assert head.decode() == "%%d %%s" %% (size, hashlib.sha256(data).hexdigest()), head
    assert body == data[::-1], (size, len(body))
    print("ok", size)
]]

describe("examples/proxy.lua", function()
    setup(function()
        child.hosts_add(MARKER, { "10.212.0.1 " .. UPNAME, "127.0.0.1 " .. KUPNAME })
    end)
    teardown(function() child.hosts_remove(MARKER) end)

    it("relays a client through the tap to an upstream given by name, both ways", function()
        local upstream, svc = child.start_python(UPSTREAM), nil
        finally(function() -- one finally per test (busted keeps the last one given)
            upstream:kill(9)
            if svc then svc.stop() end
        end)
        assert(upstream:wait_output("LISTENING"), upstream:stderr())
        svc = net.service("dlo2", 212, ([[
arg = { [0] = "proxy.lua", "8212", %q, "7212" }
local real_runtime = dpdk.runtime
dpdk.runtime = function(o) o.config = CONFIG return real_runtime(o) end
dofile(%q)
]]):format(UPNAME, (os.getenv("DPDKLUA_ROOT") or ".") .. "/examples/proxy.lua"),
            { ready = "proxy on port 8212" })
        local rc, out = net.python(CLIENT:format(svc.ip, 8212))
        assert.are.equal(0, rc, out .. "\nproxy stderr:\n" .. svc.proc:stderr())
        assert.are.equal("ok 1\nok 5000\nok 300000\n", out)
    end)

    it("relays a client on the tap to a kernel upstream on 127.0.0.1 (--upstream=kernel), both ways",
        function()
        local upstream, svc = child.start_python(KERNEL_UPSTREAM), nil
        finally(function()
            upstream:kill(9)
            if svc then svc.stop() end
        end)
        assert(upstream:wait_output("LISTENING "), upstream:stderr())
        local port = upstream:stdout():match("LISTENING (%d+)")
        svc = net.service("dlk1", 221, ([[
arg = { [0] = "proxy.lua", "--upstream=kernel", "8221", %q, %q }
local real_runtime = dpdk.runtime
dpdk.runtime = function(o) o.config = CONFIG return real_runtime(o) end
dofile(%q)
]]):format(KUPNAME, port, PROXY), { ready = "proxy on port 8221" })
        assert.matches("over kernel", svc.proc:stdout())
        local rc, out = net.python(CLIENT:format(svc.ip, 8221))
        assert.are.equal(0, rc, out .. "\nproxy stderr:\n" .. svc.proc:stderr())
        assert.are.equal("ok 1\nok 5000\nok 300000\n", out)
    end)

    it("says how to call it when the upstream kind is unknown", function()
        local r = child.run(("arg = { [0] = 'proxy.lua', '--upstream=udp', '1', 'x', '2' } dofile(%q)")
            :format(PROXY))
        assert.are.equal(2, r.status)
        assert.matches("usage: dpdklua examples/proxy.lua %[%-%-upstream=dpdk|kernel%]", r.stderr)
    end)
end)

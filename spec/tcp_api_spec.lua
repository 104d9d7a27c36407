-- The socket API, one behaviour per test (spec F12–F14), against a kernel
-- echo server on the tap's kernel side.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local NET, IFNAME = 73, "dltapi"

-- Kernel peers on the tap's kernel-side address: port 7300 echoes; port 7301
-- answers "peer=<ip>:<port>" and closes; port 7302 sends 3 MiB then closes;
-- port 7303 accepts and stays silent; port 7304 counts what it gets and
-- prints "SINK EOF <n>" (or "SINK RESET <n>").
local HANDLERS = [[
def whoami(c, addr):
    c.sendall(("peer=%s:%d\n" % addr).encode()); c.close()
def bulk(c, addr):
    c.sendall(b"z" * (3 << 20)); c.close()
def silent(c, addr):
    c.recv(1)
]]

local server

setup(function()
    server = net.kernel_peers("10.73.0.1",
        { [7300] = "echo", [7301] = "whoami", [7302] = "bulk", [7303] = "silent", [7304] = "sink" },
        HANDLERS)
end)

teardown(function()
    if server then server:kill(9) end
end)

-- Run body (inside block_on, with `dpdk`, `tcp`, PEER, SELF) in a fresh
-- dpdklua with the tap; returns its stdout.
local function run(body, opts)
    return (net.run_on_tap(IFNAME, NET, body, opts))
end

describe("tcp.connect", function()
    it("connects to a kernel server and reports both ends", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7301))
print(c:is_connected(), c:receive("*l"), c:local_addr())
print(c:peer_addr())
]])
        local port = out:match("peer=10%.73%.0%.2:(%d+)\t10%.73%.0%.2\t(%d+)\n")
        assert.truthy(port, out)
        assert.matches("\n10%.73%.0%.1\t7301\n$", out)
    end)

    it("times out on an address nobody answers", function()
        local out = run([[
local t0 = dpdk.now()
local c, err = tcp.connect("10.73.0.99", 7300, { timeout = 300 })
print(c, err, dpdk.now() - t0 >= 0.3)
]])
        assert.are.equal("nil\ttimeout\ttrue\n", out)
    end)

    it("resolves names on the blocking pool, and says when one is not found", function()
        local out = run([[print(tcp.connect("dlo-no-such-name.invalid", 80))]])
        assert.are.equal("nil\tname not found: dlo-no-such-name.invalid\n", out)
    end)
end)

describe("tcp.socket", function()
    it("binds a chosen local port before connecting", function()
        local out = run([[
local s = tcp.socket("inet")
assert(s:setoption("tcp-nodelay", true))
assert(s:bind(SELF, 45678))
assert(s:connect(PEER, 7301))
print(s:receive("*l"))
]])
        assert.are.equal("peer=10.73.0.2:45678\n", out)
    end)

    it("refuses to bind an address that is not configured", function()
        local out = run([[
local s = tcp.socket("inet")
print(s:bind("10.73.0.77", 0))
]])
        assert.are.equal("nil\taddress not available\n", out)
    end)
end)

describe("tcp.listen", function()
    it("refuses an address that is not configured", function()
        local out = run([[print(tcp.listen("192.0.2.1", 80))]])
        assert.are.equal("nil\taddress not available: 192.0.2.1 is not an address of this runtime's devices "
            .. "(env.json devices[].addresses)\n", out)
    end)

    it("refuses a port already listened on", function()
        local out = run([[
local l1 = assert(tcp.listen(SELF, 7500))
print(tcp.listen(SELF, 7500))
]])
        assert.are.equal("nil\taddress in use\n", out)
    end)

    it("passes its TTL and nodelay to the connections it accepts", function()
        local out = run([[
local l = assert(tcp.listen(SELF, 7502))
assert(l:setoption("ttl", 33))
assert(l:setoption("tcp-nodelay", true))
os.execute("python3 -c 'import socket; s = socket.create_connection((\"10.73.0.2\", 7502), 5); "
    .. "s.recv(1)' > /dev/null 2>&1 &")
local c = assert(l:accept())
print(l:getoption("ttl"), c:getoption("ttl"), c:getoption("tcp-nodelay"))
c:close()
]])
        assert.are.equal("33\t33\t1\n", out)
    end)

    it("accepts with a timeout", function()
        local out = run([[
local l = assert(tcp.listen(SELF, 7501))
l:settimeout(100)
print(l:accept())
]])
        assert.are.equal("nil\ttimeout\n", out)
    end)
end)

describe("a socket", function()
    it("receives lines, byte counts and everything to EOF", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
assert(c:send({ "one\r\n", "two\n", "12345", "tail" }))
print(c:receive("*l"), c:receive(), c:receive(5))
assert(c:shutdown("send"))
print(c:receive("*a"))
print(c:receive("*l"))
]])
        assert.are.equal("one\ttwo\t12345\ntail\nnil\tclosed\t\n", out)
    end)

    it("returns the partial data with 'closed' when the stream ends early", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
assert(c:send("abc"))
assert(c:shutdown("send"))
print(c:receive(10))
]])
        assert.are.equal("nil\tclosed\tabc\n", out)
    end)

    it("times out a read and keeps working afterwards", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
c:settimeout(100)
local t0 = dpdk.now()
print(c:receive("*l"))
print(dpdk.now() - t0 >= 0.1)
assert(c:send("later\n"))
print(c:receive("*l"))
]])
        assert.are.equal("nil\ttimeout\t\ntrue\nlater\n", out)
    end)

    it("receiveany returns what is there, up to max", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
assert(c:send("0123456789"))
local got, biggest = "", 0
while #got < 10 do
    local part = assert(c:receiveany(4))
    got, biggest = got .. part, math.max(biggest, #part)
end
print(got, biggest <= 4)
]])
        assert.are.equal("0123456789\ttrue\n", out)
    end)

    it("receiveuntil splits a stream on a pattern", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
assert(c:send("a--XYb--XYc"))
local next_part = c:receiveuntil("--XY")
print(next_part(), next_part())
local incl = c:receiveuntil("c", { inclusive = true })
print(incl())
]])
        assert.are.equal("a\tb\nc\n", out)
    end)

    it("receiveuntil with a size hands out bounded chunks, then nil at the boundary", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
assert(c:send("abcdefgh|rest"))
local reader = c:receiveuntil("|")
local parts = {}
while true do
    local chunk, err = reader(3)
    if err then error(err) end
    if not chunk then break end
    parts[#parts + 1] = chunk
end
print(table.concat(parts, ","), c:receive(4))
]])
        assert.are.equal("abc,def,gh\trest\n", out)
    end)

    it("peeks without consuming", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
assert(c:send("peekaboo\n"))
print(c:peek(4), c:peek(4), c:receive("*l"))
]])
        assert.are.equal("peek\tpeek\tpeekaboo\n", out)
    end)

    it("try_read and try_write never wait", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
print(c:try_read())
print(c:try_write("ping"))
assert(c:readable(2000))
print(c:try_read())
]])
        assert.are.equal("nil\tagain\n4\nping\n", out)
    end)

    it("readable waits for data and writable for send space", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
print(c:writable())
print(c:readable(50))
assert(c:send("x"))
print(c:readable(2000), c:receive(1))
]])
        assert.are.equal("true\nnil\ttimeout\ntrue\tx\n", out)
    end)

    it("sets and reads options", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
print(c:getoption("tcp-nodelay"))
assert(c:setoption("tcp-nodelay", true))
assert(c:setoption("ttl", 17))
assert(c:setoption("keepalive", true))
print(c:getoption("tcp-nodelay"), c:getoption("ttl"), c:getoption("keepalive"))
print(c:getoption("sndbuf") > 0, c:getoption("rcvbuf") > 0)
print(c:setoption("nosuch", 1))
]])
        assert.are.equal("0\n1\t17\t1\ntrue\ttrue\nnil\tunsupported option nosuch\n", out)
    end)

    it("lets one task read while another writes (full duplex)", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
local n = 2000
local reader = dpdk.spawn(function()
    local got = 0
    while got < n * 10 do got = got + #assert(c:receive(10)) end
    return got
end)
local writer = dpdk.spawn(function()
    for i = 1, n do assert(c:send(("%09d\n"):format(i))) end
    return n
end)
print(writer:join())
print(reader:join())
]])
        assert.are.equal("true\t2000\ntrue\t20000\n", out)
    end)

    it("keeps a waiting send(table)'s bytes while another socket sends a table", function()
        -- send(table) joins into one buffer per worker; a send that has to wait
        -- moves what is left into its socket's own buffer first
        local out = run([[
local function stream(tag)
    local c = assert(tcp.connect(PEER, 7300))
    local parts = {}
    for i = 1, 200000 do parts[i] = ("%s%018d\n"):format(tag, i) end -- 4 MB
    local want = table.concat(parts)
    local reader = dpdk.spawn(function() return assert(c:receive(#want)) == want end)
    local writer = dpdk.spawn(function() return assert(c:send(parts)) end)
    return reader, writer
end
local ra, wa = stream("a")
local rb, wb = stream("b")
print(wa:join())
print(wb:join())
print(ra:join())
print(rb:join())
]])
        assert.are.equal("true\t4000000\ntrue\t4000000\ntrue\ttrue\ntrue\ttrue\n", out)
    end)

    it("keeps a socket's unread bytes while other sockets read", function()
        -- a read may borrow the worker's receive buffer; the next socket to
        -- borrow it moves what the holder left into the holder's own buffer
        local out = run([[
local a = assert(tcp.connect(PEER, 7300))
local b = assert(tcp.connect(PEER, 7300))
assert(a:send("one\ntwo\nthr"))
print(a:receive(), a:peek(3))       -- "two\nthr" left after the line
assert(b:send("bee\n"))
print(b:receive())                  -- b borrows: a's bytes move to a's own buffer
print(a:setkeepalive())             -- they are still a's
print(a:receive())
local r = dpdk.spawn(function() return a:receive() end) -- "thr", then waits for the rest
dpdk.sleep(0.05)
assert(b:send("bee2\n"))
print(b:receive())
assert(a:send("ee\n"))
print(r:join())
assert(b:send("partial"))
print(b:receive(3))                 -- "tial" left in the borrowed buffer
b = nil
collectgarbage() collectgarbage()   -- its holder gone: the bytes go with it
assert(a:send("last\n"))
print(a:receive(), a:setkeepalive())
]])
        assert.are.equal("one\ttwo\nbee\nnil\tunread data in buffer\ntwo\nbee2\ntrue\tthree\n"
            .. "par\nlast\t1\n", out)
    end)

    it("tells a second concurrent reader it is busy", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
local first = dpdk.spawn(function() return c:receive("*l") end)
dpdk.yield()
print(c:receive("*l"))
assert(c:send("done\n"))
print(first:join())
]])
        assert.are.equal("nil\tsocket busy reading\ntrue\tdone\n", out)
    end)

    it("makes no garbage per round trip once warm (send, receive, timers)", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
c:settimeout(5000) -- every wait also arms (and cancels) a timer
local msg = ("g"):rep(63) .. "\n"
local function trips(n)
    for _ = 1, n do
        assert(c:send(msg))
        assert(c:receive(64) == msg) -- equal strings are interned: no new string
    end
end
trips(2000) -- warm up: JIT traces, buffers, the timer pool
collectgarbage() collectgarbage("stop")
local before = collectgarbage("count")
trips(5000)
local grown = collectgarbage("count") - before
collectgarbage("restart")
print(grown < 16, grown)
]])
        assert.matches("^true\t", out)
    end)

    it("asks for 4 KiB per read while reads are small, and doubles to 64 KiB under a stream", function()
        local out = run([[
local e = assert(tcp.connect(PEER, 7300))
for _ = 1, 100 do
    assert(e:send("ping\n"))
    assert(e:receive() == "ping")
end
local b = assert(tcp.connect(PEER, 7302))
local all = assert(b:receive("*a"))
local RROOM = require("dpdk.socket").SLOTS.RROOM -- the bytes its next read asks for
print(e[RROOM], b[RROOM], #all)
]])
        assert.are.equal("4096\t65536\t3145728\n", out)
    end)

    it("reports its worker's core", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
print(c:core_id() == dpdk.core_id(), c:worker_id())
]])
        assert.are.equal("true\t0\n", out)
    end)

    it("is unusable after close", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7300))
print(c:close())
print(c:send("x"))
print(c:receive())
print(c:is_connected(), c:close())
]])
        assert.are.equal("1\nnil\tclosed\nnil\tclosed\nfalse\tnil\tclosed\n", out)
    end)

    it("is closed (FIN, not RST) when garbage-collected while open", function()
        run([[
local c = assert(tcp.connect(PEER, 7304))
assert(c:send("abc"))
c = nil
collectgarbage() collectgarbage()
dpdk.sleep(0.3)
]])
        assert.is_true(server:wait_output("SINK EOF 3\n"), server:stdout())
    end)

    it("is closed cleanly by rt:shutdown, after what it queued has been sent", function()
        local r = child.run(net.tap_script(IFNAME, NET, [[
local keep = rt:block_on(function()
    local c = assert(tcp.connect(PEER, 7304))
    -- send returns once the last byte is queued: up to a send buffer (~1 MiB)
    -- is still on its way when shutdown starts
    assert(c:send(("s"):rep(4 * 1024 * 1024 + 5)))
    return c
end)
print(rt:shutdown(10))
]], { cores = { 0 } }))
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal("true\n", r.stdout)
        assert.is_true(server:wait_output("SINK EOF 4194309\n"), server:stdout())
    end)

    it("reads 3 MiB sent by the peer before its FIN", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 7302))
local all = assert(c:receive("*a"))
print(#all, all:match("^z+$") ~= nil)
]])
        assert.are.equal("3145728\ttrue\n", out)
    end)

    it("refuses to be used, or freed, on a worker that does not own it", function()
        local r = child.run(net.tap_script(IFNAME, NET, [[
local ffi = require "ffi"
local listener
local addr = rt:block_on(function()
    listener = assert(tcp.listen(SELF, 7600))
    return tonumber(ffi.cast("uintptr_t", listener[require("dpdk.socket").SLOTS.CONN]))
end)
print(pcall(rt.run, rt, function(a)
    if require("dpdk").worker_id() ~= 1 then return end
    local ffi = require "ffi"
    local C = require "dpdk.cdef"
    local smuggled = ffi.cast("dl_conn *", a)
    assert(C.dl_tcp_listen(smuggled, 5) == -C.DL_E_MISUSE)
    local msg = ffi.string(C.dl_errmsg())
    -- garbage-collected here, it is left alone with a warning
    ffi.gc(smuggled, C.dl_tcp_free)
    smuggled = nil
    collectgarbage() collectgarbage()
    error(msg, 0)
end, addr))
]], { workers = 2 }))
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("%[warn%] tcp: a socket was garbage%-collected away from its worker: close: "
            .. "this socket belongs to worker 0 and cannot be used on worker 1; leaked", r.stderr)
        assert.matches("^false\t.*worker 1: listen: this socket belongs to worker 0 and cannot be "
            .. "used on worker 1\n", r.stdout)
    end)
end)

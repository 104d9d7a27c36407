-- Cosocket semantics that OpenResty users rely on (issue 8): sockets closed
-- under a waiting task, receiveuntil forms, timeout meanings, one waiter per
-- direction, shutdown and task-death ownership, and the smaller differences.
-- Each case runs in a fresh dpdklua against python peers on the tap's kernel
-- side.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local NET, IFNAME = 150, "dlc0"

-- Kernel peers: 15000 echo; 15003 accepts and never reads; 15004 counts the
-- bytes of each connection and prints "SINK EOF <n>" at its end; 15010
-- numbers its connections and answers each line with "<number> <line>"
-- ("later": and closes the connection 0.3 s afterwards).
local HANDLERS = [[
def silent(c, addr):
    threading.Event().wait()
import itertools, time
ids = itertools.count(1)
def numbered(c, addr):
    me = next(ids)
    f = c.makefile("rb")
    for line in f:
        line = line.strip().decode()
        c.sendall(("%d %s\n" % (me, line)).encode())
        if line == "later":
            time.sleep(0.3)
            break
    c.close()
]]

local server

setup(function()
    server = net.kernel_peers("10.150.0.1",
        { [15000] = "echo", [15003] = "silent", [15004] = "sink", [15010] = "numbered" }, HANDLERS)
end)

teardown(function()
    if server then server:kill(9) end
end)

-- A child script with `dpdk`, `tcp`, PEER, SELF and `rt` defined, then body.
local function script(body)
    return net.tap_script(IFNAME, NET, body)
end

-- Run body inside block_on; returns stdout (the child must exit 0).
local function run(body)
    return net.run_on_tap(IFNAME, NET, body)
end

-- Yield until fn() is true (bounded: a failure, never a hang).
local UNTIL = [[
local function wait_until(fn)
    for _ = 1, 100000 do
        if fn() then return true end
        dpdk.yield()
    end
    error("condition never became true")
end
]]

describe("a socket closed by another task", function()
    it("wakes a task waiting in receive with nil, 'closed' and the partial data", function()
        local out = run(UNTIL .. [[
local c = assert(tcp.connect(PEER, 15000))
c:settimeout(5000)
assert(c:send("abc"))
local reader = dpdk.spawn(function() return c:receive(10) end)
dpdk.sleep(0.2) -- the reader has "abc" and waits for 7 more bytes
print(c:close())
print(reader:join())
for _ = 1, 5 do dpdk.yield() end
print(c:receive(1))
]])
        assert.are.equal("1\ntrue\tnil\tclosed\tabc\nnil\tclosed\n", out)
    end)

    it("wakes a task waiting in send with nil, 'closed'", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15003))
c:settimeout(5000)
local writer = dpdk.spawn(function() return c:send(("w"):rep(16 * 1024 * 1024)) end)
dpdk.sleep(0.3) -- the peer reads nothing: the writer waits for send space
print(c:close())
print(writer:join())
]])
        assert.are.equal("1\ntrue\tnil\tclosed\n", out)
    end)

    it("wakes every task waiting in accept with nil, 'closed'", function()
        local out = run([[
local l = assert(tcp.listen(SELF, 15100))
local a = dpdk.spawn(function() return l:accept() end)
local b = dpdk.spawn(function() return l:accept() end)
dpdk.sleep(0.1)
print(l:close())
print(a:join())
print(b:join())
]])
        assert.are.equal("1\ntrue\tnil\tclosed\ntrue\tnil\tclosed\n", out)
    end)
end)

describe("receiveuntil", function()
    it("with inclusive and a size ends with the boundary in the last chunk", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
assert(c:send("hello, world! -agentzh\r\n--abcedhb blah blah"))
local reader = c:receiveuntil("\r\n--abcedhb", { inclusive = true })
local parts = {}
while true do
    local data, err = reader(4)
    if not data then parts[#parts + 1] = "<" .. tostring(err) .. ">" break end
    parts[#parts + 1] = "[" .. data .. "]"
end
print(table.concat(parts))
print(c:receive(10))
]])
        assert.are.equal("[hell][o, w][orld][! -a][gent][zh\r\n--abcedhb]<nil>\n blah blah\n", out)
    end)

    it("with a size hands out every byte that cannot start the boundary", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
assert(c:send("data-without-boundary"))
assert(c:shutdown("send"))
local reader = c:receiveuntil("\r\n--abcedhb")
print(reader(8))
print(reader(8))
print(reader(8))
]])
        assert.are.equal("data-wit\nhout-bou\nnil\tclosed\tndary\n", out)
    end)

    it("with a size returns the data before a boundary, then nil, then starts over", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
assert(c:send("hello, world! -agentzh\r\n--abcedhb blah\r\n--abcedhbtail"))
c:settimeout(300)
local reader = c:receiveuntil("\r\n--abcedhb")
local parts = {}
for _ = 1, 12 do
    local data, err = reader(4)
    parts[#parts + 1] = data and "[" .. data .. "]" or "<" .. tostring(err) .. ">"
end
print(table.concat(parts))
]])
        assert.are.equal("[hell][o, w][orld][! -a][gent][zh]<nil>[ bla][h]<nil>[tail]<timeout>\n", out)
    end)
end)

describe("settimeout", function()
    it("takes nil and 0 as 'the default' (tcp.defaults), as OpenResty does", function()
        local out = run([[
tcp.defaults{ read_timeout = 200 }
local c = assert(tcp.connect(PEER, 15000))
c:settimeout(nil)
local t0 = dpdk.now()
print(c:receive(1))
c:settimeout(5000)
c:settimeout(0)
print(c:receive(1))
c:settimeouts(nil, 0, 0)
print(c:receive(1))
print(dpdk.now() - t0 < 3)
print(pcall(c.settimeout, c, -1))
]])
        assert.matches("^nil\ttimeout\t\nnil\ttimeout\t\nnil\ttimeout\t\ntrue\nfalse\t.*bad timeout value", out)
    end)
end)

describe("one waiter per direction", function()
    it("gives each of two tasks in accept one of two connections", function()
        local out = run([[
local l = assert(tcp.listen(SELF, 15101))
l:settimeout(5000)
local function acceptor()
    local c, err = l:accept()
    if not c then return err end
    return (c:receive("*l"))
end
local a, b = dpdk.spawn(acceptor), dpdk.spawn(acceptor)
dpdk.sleep(0.1) -- both wait in accept
os.execute("python3 -c 'import socket, time\n"
    .. "s = [socket.create_connection((\"10.150.0.2\", 15101), 5) for _ in range(2)]\n"
    .. "[x.sendall(b\"hi %d\\n\" % i) for i, x in enumerate(s)]\ntime.sleep(3)' &")
local _, ra = a:join()
local _, rb = b:join()
local got = { ra, rb }
table.sort(got)
print(got[1], got[2])
]])
        assert.are.equal("hi 0\thi 1\n", out)
    end)

    it("tells a second reader (receive, readable) 'socket busy reading' and keeps the first", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
c:settimeout(5000)
local first = dpdk.spawn(function() return c:receive(5) end)
dpdk.sleep(0.1)
print(c:readable())
print(c:receive("*l"))
print(c:receiveany(1))
assert(c:send("hello"))
print(first:join())
]])
        assert.are.equal("nil\tsocket busy reading\nnil\tsocket busy reading\n"
            .. "nil\tsocket busy reading\ntrue\thello\n", out)
    end)

    it("tells a second writer 'socket busy writing'", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15003))
c:settimeout(500)
local first = dpdk.spawn(function() return c:send(("w"):rep(16 * 1024 * 1024)) end)
dpdk.sleep(0.1)
print(c:send("x"))
print(c:writable())
print(first:join())
]])
        assert.are.equal("nil\tsocket busy writing\nnil\tsocket busy writing\ntrue\tnil\ttimeout\n",
            out)
    end)
end)

describe("ownership", function()
    it("rt:shutdown closes every socket, even one whose wrapper was collected", function()
        local r = child.run(script([[
local ffi = require "ffi"
local leaked = rt:block_on(function()
    local c = assert(tcp.connect(PEER, 15004))
    assert(c:send("five5"))
    local conn = c[require("dpdk.socket").SLOTS.CONN] -- the connection outlives its socket object
    c = nil
    collectgarbage() collectgarbage()
    return conn
end)
assert(rt:shutdown(5))
print("SHUT") io.stdout:flush()
os.execute("sleep 3")
leaked = nil
collectgarbage() collectgarbage()
print("END")
]]), { timeout = 60 })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal("SHUT\nEND\n", r.stdout)
        -- the peer saw the FIN while the runtime ran (nothing sends one after it)
        assert.is_true(server:wait_output("SINK EOF 5\n", 5), server:stdout())
        assert.not_matches("garbage%-collected", r.stderr)
    end)

    it("a task that dies with an error closes the sockets it was using at once", function()
        local out = run([[
collectgarbage("stop") -- no help from the GC
local c = assert(tcp.connect(PEER, 15004))
local t = dpdk.spawn(function()
    assert(c:send("sixsix"))
    error("boom")
end)
print(t:join())
print(c:send("x"))
collectgarbage("restart")
]])
        assert.matches("^false\t.*boom.*\nnil\tclosed\n$", out)
        assert.is_true(server:wait_output("SINK EOF 6\n", 5), server:stdout())
    end)
end)

describe("small OpenResty differences", function()
    it("receive('*l') drops every CR of the line", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
assert(c:send("a\rb\r\nnext\n"))
print(c:receive("*l"), c:receive())
]])
        assert.are.equal("ab\tnext\n", out)
    end)

    it("receive('3') reads three bytes", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
assert(c:send("123456"))
print(c:receive("3"), c:receive(3))
]])
        assert.are.equal("123\t456\n", out)
    end)

    it("unknown options give nil, 'unsupported option'; getoption returns numbers", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
print(c:setoption("nosuch", 1))
print(c:getoption("nosuch"))
assert(c:setoption("tcp-nodelay", true))
assert(c:setoption("keepalive", 1))
print(c:getoption("tcp-nodelay"), c:getoption("keepalive"), type(c:getoption("sndbuf")))
print(c:setoption("ttl"))
]])
        assert.are.equal("nil\tunsupported option nosuch\nnil\tunsupported option nosuch\n"
            .. "1\t1\tnumber\nnil\tmissing the \"value\" argument\n", out)
    end)

    it("connect on a closed socket object connects it again; on a connected one closes the old first", function()
        local out = run([[
local c = tcp.socket()
assert(c:connect(PEER, 15000))
assert(c:close())
print(c:connect(PEER, 15004))
assert(c:send("seven77"))
print(c:connect(PEER, 15000))
assert(c:send("back"))
print(c:receive(4))
]])
        assert.are.equal("1\n1\nback\n", out)
        assert.is_true(server:wait_output("SINK EOF 7\n", 5), server:stdout())
    end)

    it("receiveany at EOF returns nil, 'closed', ''", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
assert(c:send("xy"))
assert(c:shutdown("send"))
print(c:receiveany(10))
local n = select("#", c:receiveany(10))
print(n)
print(c:receiveany(10))
]])
        assert.are.equal("xy\n3\nnil\tclosed\n", out)
    end)
end)

describe("the connection pool", function()
    it("hands a kept connection to the next connect (the peer sees one connection)", function()
        local out = run([[
local ids = {}
for i = 1, 4 do
    local c = assert(tcp.connect(PEER, 15010))
    assert(c:send("req" .. i .. "\n"))
    local line = assert(c:receive())
    ids[i] = line:match("^(%d+) req" .. i .. "$")
    io.write(c:getreusedtimes(), " ")
    assert(c:setkeepalive(10000))
    print(c:send("x"))
end
print(ids[1] == ids[2] and ids[2] == ids[3] and ids[3] == ids[4], ids[1] ~= nil)
]])
        assert.are.equal("0 nil\tclosed\n1 nil\tclosed\n2 nil\tclosed\n3 nil\tclosed\ntrue\ttrue\n", out)
    end)

    it("refuses a socket with unread data, and one that is not connected", function()
        local out = run([[
local c = assert(tcp.connect(PEER, 15000))
assert(c:send("abc\n"))
assert(c:peek(2))
print(c:setkeepalive())
local s = tcp.socket()
print(s:setkeepalive())
]])
        assert.are.equal("nil\tunread data in buffer\nnil\tclosed\n", out)
    end)

    it("closes an idle connection at once when the peer closes it, and after its idle timeout", function()
        local out = run([[
local pool = require "dpdk.pool"
local key = PEER .. ":15010"
local c = assert(tcp.connect(PEER, 15010))
assert(c:send("later\n"))
local first = assert(c:receive()):match("^%d+")
assert(c:setkeepalive(0))
print(pool.stats(key))
dpdk.sleep(0.8) -- the peer's FIN comes 0.3 s after its answer
print(pool.stats(key))
c = assert(tcp.connect(PEER, 15010))
assert(c:send("again\n"))
local second = assert(c:receive()):match("^%d+")
print(c:getreusedtimes(), first ~= second)
assert(c:setkeepalive(200))
dpdk.sleep(0.6)
print(pool.stats(key))
]])
        assert.are.equal("1\t1\n0\t0\n0\ttrue\n0\t0\n", out)
    end)

    it("queues connects beyond pool_size in its backlog and refuses beyond it", function()
        local out = run([[
local opts = { pool_size = 1, backlog = 1 }
local a = assert(tcp.connect(PEER, 15010, opts))
assert(a:send("a\n"))
local id = assert(a:receive()):match("^%d+")
local waiter = dpdk.spawn(function()
    local b, err = tcp.connect(PEER, 15010, opts)
    if not b then return err end
    assert(b:send("b\n"))
    return b:getreusedtimes(), (assert(b:receive()):match("^%d+")) == id
end)
dpdk.sleep(0.1)
print(tcp.connect(PEER, 15010, opts))
assert(a:setkeepalive())
print(waiter:join())
local c = tcp.socket()
c:settimeout(200)
print(c:connect(PEER, 15010, opts))
]])
        assert.are.equal("nil\ttoo many waiting connect operations\ntrue\t1\ttrue\nnil\ttimeout\n", out)
    end)
end)

describe("with dpdk.kill", function()
    it("a killed reader leaves the socket free (its bytes kept) and open", function()
        local out = run([[
local keep = assert(tcp.connect(PEER, 15000))
keep:settimeout(3000)
local reader = dpdk.spawn(function() return keep:receive(5) end)
dpdk.sleep(0.1)
print(keep:receive(1))
assert(keep:send("qr"))
dpdk.sleep(0.1)
print(dpdk.kill(reader))
assert(keep:send("stu"))
print(keep:receive(5))
local l = assert(tcp.listen(SELF, 15102))
l:settimeout(20000) -- a failure bound: python starts slowly on a loaded machine
local a = dpdk.spawn(function() local s = l:accept() return s and s:receive() end)
local b = dpdk.spawn(function() local s = l:accept() return s and s:receive() end)
dpdk.sleep(0.05)
print(dpdk.kill(b))
os.execute("python3 -c 'import socket\ns = socket.create_connection((\"10.150.0.2\", 15102), 5)\ns.sendall(b\"one\\n\")' &")
print(a:join())
local t = dpdk.spawn(function() return keep:receive(1) end)
dpdk.sleep(0.05)
print(dpdk.kill(t))
print(keep:send("x"))
]])
        assert.are.equal("nil\tsocket busy reading\ntrue\nqrstu\ntrue\ntrue\tone\ntrue\n1\n", out)
    end)
end)

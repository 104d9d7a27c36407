-- dpdk.ktcp (spec F15): the dpdk.tcp interface over kernel sockets, run by
-- the same cosocket code, against python peers on 127.0.0.1. The runtimes
-- here have no network device: kernel sockets need none.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

-- One python process, one listener per behaviour (kernel-chosen ports,
-- printed as "name=port"): echo, a fixed text then FIN, a sink that never
-- reads (and says "partial" first), a peer that resets after one line, one
-- that reports when its connection ends, and a closed port (refused).
local PEERS = [[
import socket, struct, threading
def listener():
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", 0)); l.listen(64)
    return l
def serve(l, fn):
    def loop():
        while True:
            c, _ = l.accept()
            threading.Thread(target=fn, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return l.getsockname()[1]
def echo(c):
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
def text(c):
    c.sendall(b"one\r\ntwo\nABCDEFpart1--sep--part2--sep--tail")
    c.close()
held = []
def sink(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sendall(b"partial")
    held.append(c) # never reads, never closes
def reset(c):
    f = c.makefile("rb"); f.readline()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
def watch(c):
    got = b""
    while True:
        b = c.recv(65536)
        if not b: break
        got += b
    print("WATCH EOF after %d bytes" % len(got), flush=True)
    c.close()
ports = {}
for name, fn in (("echo", echo), ("text", text), ("sink", sink), ("reset", reset),
                 ("watch", watch)):
    ports[name] = serve(listener(), fn)
gone = socket.socket(); gone.bind(("127.0.0.1", 0)); ports["refused"] = gone.getsockname()[1]
gone.close()
print(" ".join("%s=%d" % kv for kv in sorted(ports.items())), flush=True)
print("LISTENING", flush=True)
threading.Event().wait()
]]

local peers, P

local function run(body, opts)
    opts = opts or {}
    local cfg = child.config({ cores = opts.cores or { 0 } })
    local r = child.run_ok(([[
local dpdk = require "dpdk"
local ktcp = require "dpdk.ktcp"
local P = { echo = %d, text = %d, sink = %d, reset = %d, watch = %d, refused = %d }
local rt = assert(dpdk.runtime{ workers = %d, config = %q })
%s
]]):format(P.echo, P.text, P.sink, P.reset, P.watch, P.refused, opts.workers or 1, cfg,
        opts.raw and body or ("rt:block_on(function()\n" .. body .. "\nend)\nrt:shutdown(5)")),
        { timeout = 60 })
    return r.stdout, r.stderr
end

describe("dpdk.ktcp", function()
    setup(function()
        peers = child.start_python(PEERS)
        assert(peers:wait_output("LISTENING"), peers:stderr())
        P = {}
        for k, v in peers:stdout():gmatch("(%a+)=(%d+)") do P[k] = tonumber(v) end
    end)
    teardown(function() peers:kill(9) end)

    it("echoes strings and tables both ways through a kernel server, 4 MiB intact", function()
        local out = run([[
local c = assert(ktcp.connect("127.0.0.1", P.echo))
print(c, c:is_connected(), c:worker_id(), c:core_id())
print(select(2, c:peer_addr()) == P.echo, (c:local_addr()))
assert(c:send({ "hello", " ", { "nested", "\n" } }))
print(c:receive("*l"))
-- a writer task and this reader at once: full duplex, both bigger than any buffer
local block = {}
for i = 0, 255 do block[#block + 1] = string.char(i):rep(64) end
block = table.concat(block) -- 16 KiB
local writer = dpdk.spawn(function()
    for _ = 1, 256 do assert(c:send(block)) end
    return true
end)
local ok = true
for _ = 1, 256 do
    local got = assert(c:receive(#block))
    ok = ok and got == block
end
print(writer:join(), ok)
assert(c:close())
print(c:is_connected(), c:send("x"))
]])
        assert.are.equal(table.concat({
            "kernel tcp socket\ttrue\t0\t0",
            "true\t127.0.0.1",
            "hello nested",
            "true\ttrue",
            "false\tnil\tclosed",
        }, "\n") .. "\n", out)
    end)

    it("reads every receive form: lines, sizes, any, peek, receiveuntil, *a", function()
        local out = run([[
local c = assert(ktcp.connect("127.0.0.1", P.text))
print(c:receive())            -- "one" (its CR dropped)
print(c:receive("*l"))        -- "two"
print(c:peek(3))              -- "ABC", still there
print(c:receive(3))           -- "ABC"
local any = ""
while #any < 3 do any = any .. assert(c:receiveany(3 - #any)) end
print(any)                    -- "DEF"
local it = c:receiveuntil("--sep--")
print(it())                   -- "part1"
local inc = c:receiveuntil("--sep--", { inclusive = true })
print(inc())                  -- "part2--sep--"
print(c:receive("*a"))        -- "tail" (until the peer's FIN)
print(c:receive())            -- nil closed "" (this read met the EOF)
local c2 = assert(ktcp.connect("127.0.0.1", P.text))
local sized = c2:receiveuntil("--sep--")
assert(c2:receive("*l")) assert(c2:receive("*l"))
local parts = {}
repeat
    local chunk, err = sized(4)
    parts[#parts + 1] = tostring(chunk)
until not chunk
print(table.concat(parts, "|"))
print(c2:receive(100))        -- nil closed, and the rest as partial data
]])
        assert.are.equal(table.concat({
            "one", "two", "ABC", "ABC", "DEF", "part1", "part2--sep--", "tail", "nil\tclosed\t",
            "ABCD|EFpa|rt1|nil",
            "nil\tclosed\tpart2--sep--tail",
        }, "\n") .. "\n", out)
    end)

    it("polls without waiting: try_read, try_write, readable, writable", function()
        local out = run([[
local c = assert(ktcp.connect("127.0.0.1", P.echo))
print(c:try_read())               -- nil again: nothing came yet
print(c:writable(2000))
print(c:try_write("ping"))
print(c:readable(2000))
print(c:try_read())
print(c:try_read())
]])
        assert.are.equal("nil\tagain\ntrue\n4\ntrue\tnil\nping\nnil\tagain\n", out)
    end)

    it("times out reading and writing, keeping the partial data; the socket stays usable",
        function()
        local out = run([[
local c = assert(ktcp.connect("127.0.0.1", P.sink))
c:settimeouts(1000, 300, 300)
print(c:receive("*l"))            -- nil timeout partial
local big = ("z"):rep(1024 * 1024)
local err
for _ = 1, 256 do                 -- the sink never reads: the buffers fill up
    local ok
    ok, err = c:send(big)
    if not ok then break end
end
print(err, c:is_connected())
]])
        assert.are.equal("nil\ttimeout\tpartial\ntimeout\ttrue\n", out)
    end)

    it("says \"connection refused\" and \"connection reset by peer\"", function()
        local out = run([[
print(ktcp.connect("127.0.0.1", P.refused))
local s = ktcp.socket()
print(s:connect("127.0.0.1", P.refused))
local c = assert(ktcp.connect("127.0.0.1", P.reset))
assert(c:send("bye\n"))
print(c:receive())                -- the peer resets after reading the line
print(c:receive())                -- the socket is closed after a fatal error
]])
        assert.are.equal(table.concat({
            "nil\tconnection refused", "nil\tconnection refused",
            "nil\tconnection reset by peer\t", "nil\tclosed",
        }, "\n") .. "\n", out)
    end)

    it("listens and accepts python clients over IPv4 and IPv6, with options", function()
        local svc = child.start([[
local dpdk = require "dpdk"
local ktcp = require "dpdk.ktcp"
local rt = assert(dpdk.runtime{ workers = 1, config = ]] .. ("%q"):format(child.config()) .. [[ })
rt:block_on(function()
    local ports = {}
    for _, ip in ipairs({ "127.0.0.1", "::1" }) do
        local l = assert(ktcp.listen(ip, 0))
        local _, port = l:local_addr()
        ports[#ports + 1] = port
        dpdk.spawn(function()
            while true do
                local c, peer_ip = assert(l:accept())
                dpdk.spawn(function()
                    assert(c:setoption("tcp-nodelay", true))
                    local line = assert(c:receive())
                    local _, lport = c:local_addr()
                    c:send({ line:upper(), " from ", peer_ip, " nodelay=",
                        tostring(c:getoption("tcp-nodelay")), " ", tostring(lport == port), "\n" })
                    c:close()
                end)
            end
        end)
    end
    print(("PORTS %d %d"):format(ports[1], ports[2])) io.stdout:flush()
    dpdk.sleep(1e6)
end)
]])
        finally(function() svc:kill(9) end)
        assert(svc:wait_output("PORTS "), svc:stderr())
        local p4, p6 = svc:stdout():match("PORTS (%d+) (%d+)")
        local rc, out = net.python(([[
import socket
for fam, ip, port in ((socket.AF_INET, "127.0.0.1", %s), (socket.AF_INET6, "::1", %s)):
    s = socket.socket(fam); s.settimeout(20); s.connect((ip, port))
    s.sendall(b"hello\n")
    got = b""
    while not got.endswith(b"\n"):
        b = s.recv(100)
        if not b: break
        got += b
    print(got.decode().strip())
]]):format(p4, p6))
        assert.are.equal(0, rc, out .. svc:stderr())
        assert.are.equal("HELLO from 127.0.0.1 nodelay=1 true\nHELLO from ::1 nodelay=1 true\n",
            out)
    end)

    it("keeps connections in its own pool: setkeepalive and getreusedtimes", function()
        local out = run([[
local c = assert(ktcp.connect("127.0.0.1", P.echo))
assert(c:send("a\n")) assert(c:receive())
print(c:getreusedtimes(), c:setkeepalive())
local pool = require "dpdk.pool"
print(pool.stats("ktcp:127.0.0.1:" .. P.echo), pool.stats("127.0.0.1:" .. P.echo))
local d = assert(ktcp.connect("127.0.0.1", P.echo))
print(d:getreusedtimes())
assert(d:send("b\n"))
print(d:receive())
]])
        assert.are.equal("0\t1\n1\tnil\n1\nb\n", out)
    end)

    it("closes its sockets when the runtime shuts down; epoll is asked only while one waits",
        function()
        local out = run([[
local C = require "dpdk.cdef"
local w, kept
rt:block_on(function()
    w = C.dl_self()
    local c = assert(ktcp.connect("127.0.0.1", P.sink))
    local polls0 = C.dl_ktcp_polls(w)
    c:settimeout(300)
    print(c:receive(100))            -- waits for 300 ms: epoll is asked
    local polls1 = C.dl_ktcp_polls(w)
    print(polls1 > polls0)
    -- a timed-out wait stays armed until the socket is used or closed
    c:close()
    dpdk.sleep(0.05)                 -- the close's wake goes out
    local polls2 = C.dl_ktcp_polls(w)
    dpdk.sleep(0.3)                  -- nothing waits: epoll is not asked
    print(C.dl_ktcp_polls(w) == polls2)
    kept = assert(ktcp.connect("127.0.0.1", P.watch)) -- left open: shutdown closes it
    assert(kept:send("12345"))
    print("SENT")
end)
print(rt:shutdown(5))
]], { raw = true })
        assert.are.equal("nil\ttimeout\tpartial\ntrue\ntrue\nSENT\ntrue\n", out)
        assert.is_true(peers:wait_output("WATCH EOF after 5 bytes", 10), peers:stdout())
    end)

    it("refuses to be used or freed on a worker that does not own it", function()
        local out, err = run([[
print(pcall(ktcp.connect, "127.0.0.1", P.echo))  -- outside the runtime
local addr = rt:block_on(function()
    local ffi = require "ffi"
    KEEP = assert(ktcp.connect("127.0.0.1", P.echo))
    return tonumber(ffi.cast("uintptr_t", KEEP[require("dpdk.socket").SLOTS.CONN]))
end)
print(pcall(rt.run, rt, function(a)
    local dpdk = require "dpdk"
    if dpdk.worker_id() ~= 1 then return end
    local ffi = require "ffi"
    local C = require "dpdk.cdef"
    local smuggled = ffi.cast("dl_kconn *", a)
    assert(C.dl_ktcp_recv(smuggled, ffi.new("char[1]"), 1, 0) == -C.DL_E_MISUSE)
    -- a socket object around it, as a user could build: it raises
    local s = require("dpdk.socket").new(require("dpdk.transport").kernel, smuggled)
    smuggled = nil
    local ok, e = pcall(s.send, s, "x")
    assert(not ok)
    s = nil
    collectgarbage() collectgarbage() -- freed here: left alone with a warning
    error(e, 0)
end, addr))
print(rt:block_on(function() assert(KEEP:send("still mine\n")) return KEEP:receive() end))
]], { raw = true, cores = { 0, 1 }, workers = 2 })
        assert.matches("^false\t[^\n]*kernel tcp socket must be made inside the runtime", out)
        assert.matches("\nfalse\t[^\n]*worker 1: [^\n]*send: this kernel socket belongs to worker 0 "
            .. "and cannot be used on worker 1\n", out)
        assert.matches("\nstill mine\n$", out)
        assert.matches("%[warn%] ktcp: a kernel socket was garbage%-collected away from its worker: "
            .. "close: this kernel socket belongs to worker 0 and cannot be used on worker 1; leaked",
            err)
    end)
end)

-- Every example in examples/ runs, as its header says, against a real client
-- through a tap of its own: each has a recipe below, and an example without
-- one fails this spec (add its recipe when you add an example). The header
-- must say how to run it ("sudo ./dpdklua examples/<name>.lua").
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."

-- Start examples/<name>.lua with args on its own tap (DPDK_ENV_CONFIG picks the
-- config, as a user's env.json would be picked); waits for `ready` on stdout.
local function start(name, ifname, net_no, args, ready)
    local dev = child.tap_device(ifname, net_no)
    local cfg = child.config({ cores = { 0 }, devices = { dev } })
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = child.quote(a) end
    local p = child.start_shell(("env DPDK_ENV_CONFIG=%s DPDKLUA_CONFIG=%s %s %s %s"):format(
        child.quote(cfg), child.quote(cfg), child.quote(child.DPDKLUA),
        child.quote(ROOT .. "/examples/" .. name .. ".lua"), table.concat(quoted, " ")))
    if not p:wait_output(ready, 20) then
        local out, err = p:stdout(), p:stderr()
        p:kill(9)
        error(("examples/%s.lua did not print %q\nstdout:\n%s\nstderr:\n%s"):format(name, ready,
            out, err), 2)
    end
    return p, ("10.%d.0.2"):format(net_no), ("10.%d.0.1"):format(net_no)
end

local RECIPES = {}

function RECIPES.echo()
    local p, ip = start("echo", "dlv4", 19, { "7019" }, "echo server on port 7019")
    finally(function() p:kill() end)
    local rc, out = net.python(([[
import socket
s = socket.create_connection(("%s", 7019), timeout=10)
f = s.makefile("rwb")
for line in (b"hello", b"second line", b"x" * 5000):
    f.write(line + b"\n"); f.flush()
    assert f.readline() == line + b"\n"
print("echoed")
]]):format(ip))
    assert.are.equal(0, rc, out .. p:stderr())
    assert.are.equal("echoed\n", out)
end

function RECIPES.http()
    local p, ip = start("http", "dlv5", 20, { "8020" }, "http server on port 8020")
    finally(function() p:kill() end)
    local rc, out = child.sh(("curl -sS --max-time 10 http://%s:8020/a http://%s:8020/b"):format(ip, ip))
    assert.are.equal(0, rc, out .. p:stderr())
    assert.are.equal("Hello from dpdklua (worker 0, core 0): GET /a\n"
        .. "Hello from dpdklua (worker 0, core 0): GET /b\n", out)
end

function RECIPES.proxy()
    local upstream = child.start_python([[
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
l.bind(("10.21.0.1", 7121)); l.listen(4)
print("LISTENING", flush=True)
while True:
    c, _ = l.accept()
    got = b""
    while not got.endswith(b"\n"):
        got += c.recv(4096)
    c.sendall(b"upstream got " + got)
    c.close()
]])
    local p
    finally(function()
        upstream:kill(9)
        if p then p:kill() end
    end)
    assert(upstream:wait_output("LISTENING"), upstream:stderr())
    local ip
    p, ip = start("proxy", "dlv6", 21, { "8021", "10.21.0.1", "7121" }, "proxy on port 8021")
    local rc, out = net.python(([[
import socket
s = socket.create_connection(("%s", 8021), timeout=10)
s.sendall(b"through the proxy\n")
got = b""
while True:
    b = s.recv(4096)
    if not b: break
    got += b
print(got.decode(), end="")
]]):format(ip))
    assert.are.equal(0, rc, out .. p:stderr())
    assert.are.equal("upstream got through the proxy\n", out)
end

function RECIPES.redis()
    local p, ip = start("redis", "dlv7", 22, { "6022" }, "redis server on port 6022")
    finally(function() p:kill() end)
    local function cli(...)
        local args = { ... }
        for i, a in ipairs(args) do args[i] = child.quote(a) end
        local rc, out = child.sh(("timeout 10 redis-cli -h %s -p 6022 %s"):format(ip,
            table.concat(args, " ")))
        assert.are.equal(0, rc, out .. p:stderr())
        return out
    end
    assert.are.equal("PONG\n", cli("ping"))
    assert.are.equal("hi there\n", cli("echo", "hi there"))
    assert.are.equal("OK\n", cli("set", "k", "v1"))
    assert.are.equal("v1\n", cli("get", "k"))
    assert.are.equal("\n", cli("get", "missing"))
    assert.are.equal("-1\n", cli("ttl", "k"))
    assert.are.equal("-2\n", cli("ttl", "missing"))
    assert.are.equal("OK\n", cli("set", "t", "x", "EX", "100"))
    assert.are.equal("100\n", cli("ttl", "t"))
    assert.are.equal("OK\n", cli("set", "short", "x", "PX", "150"))
    assert.are.equal("1\n", cli("expire", "k", "50"))
    assert.are.equal("50\n", cli("ttl", "k"))
    assert.are.equal("1\n", cli("incr", "n"))
    assert.are.equal("2\n", cli("incr", "n"))
    assert.matches("ERR value is not an integer", cli("incr", "k"))
    assert.are.equal("OK\n", cli("mset", "a", "1", "b", "2"))
    assert.are.equal("1\n2\n\nv1\n", cli("mget", "a", "b", "nothing", "k"))
    assert.are.equal("2\n", cli("del", "a", "b", "nothing"))
    assert.matches("ERR unknown command 'nosuch'", cli("nosuch"))
    assert.matches("ERR wrong number of arguments for 'get' command", cli("get"))
    child.sleep(0.3) -- past the 150 ms
    assert.are.equal("\n", cli("get", "short"))
    assert.are.equal("-2\n", cli("ttl", "short"))
    -- pipelined, as redis-benchmark drives it
    local rc, out = child.sh(("timeout 60 redis-benchmark -h %s -p 6022 -q -n 2000 -P 16 -c 4 "
        .. "-t ping,set,get,incr,mset"):format(ip))
    assert.are.equal(0, rc, out .. p:stderr())
    for _, test in ipairs({ "PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET %(10 keys%)" }) do
        assert.matches(test .. ": [%d.]+ requests per second", out)
    end
    assert.is_nil(out:find("rror"), out)
    assert.is_nil(out:find("WARNING"), out)
    -- the counter the benchmark's INCRs made
    assert.matches("^%d+\n$", cli("get", "counter:__rand_int__"))
end

describe("examples/", function()
    local names = {}
    for file in io.popen("ls " .. child.quote(ROOT .. "/examples")):lines() do
        local name = file:match("^(.+)%.lua$")
        if name then names[#names + 1] = name end
    end
    table.sort(names)

    it("holds the examples this spec knows, at least", function()
        for _, name in ipairs({ "echo", "http", "proxy", "redis" }) do
            assert.truthy(RECIPES[name])
            local found = false
            for _, n in ipairs(names) do found = found or n == name end
            assert.is_true(found, "examples/" .. name .. ".lua is missing")
        end
    end)

    for _, name in ipairs(names) do
        it(name .. ".lua runs as its header says, against a real client", function()
            local recipe = RECIPES[name]
            assert(recipe, ("examples/%s.lua has no recipe in spec/examples_spec.lua: add one "
                .. "that runs it against a real client"):format(name))
            local head = {}
            for line in io.lines(ROOT .. "/examples/" .. name .. ".lua") do
                if not line:match("^%-%-") then break end
                head[#head + 1] = line
            end
            assert.matches("sudo %./dpdklua examples/" .. name:gsub("%p", "%%%0") .. "%.lua",
                table.concat(head, "\n"), nil, false,
                "the header of examples/" .. name .. ".lua must say how to run it")
            recipe()
        end)
    end
end)

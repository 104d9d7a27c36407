-- dpdk.resolve and connecting by name (spec F11): names this spec adds to
-- /etc/hosts (unique to this run, removed afterwards even on failure),
-- resolved by getaddrinfo on the blocking pool and cached per worker.
local child = require "spec.helpers.child"

local NET, IFNAME = 211, "dlo1"
local PEER = "10.211.0.1"
local MARKER = ("# dlo-test-%d-%d"):format(os.time(), math.random(1e6))
local TAG = MARKER:match("dlo%-test%-%d+%-%d+")
local V4, V6, BOTH, GONE, PEERNAME = TAG .. "-v4.internal", TAG .. "-v6.internal",
    TAG .. "-both.internal", TAG .. "-gone.internal", TAG .. "-peer.internal"

local function remove_ours()
    child.hosts_remove(MARKER)
end

local function add_ours()
    child.hosts_add(MARKER, {
        "10.211.7.4 " .. V4,
        "fdd3::7:6 " .. V6,
        "10.211.7.5 " .. BOTH,
        "fdd3::7:5 " .. BOTH,
        "10.211.7.9 " .. GONE,
        PEER .. " " .. PEERNAME,
    })
end

local function run(body, opts)
    opts = opts or {}
    local cfg
    if opts.tap then
        cfg = child.config({ cores = { 0 }, devices = { child.tap_device(IFNAME, NET) } })
    else
        cfg = child.config({ cores = { 0 } })
    end
    local r = child.run_ok(([[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local resolve = require "dpdk.resolve"
local V4, V6, BOTH, GONE, PEERNAME, MARKER = %q, %q, %q, %q, %q, %q
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
%s
end)
]]):format(V4, V6, BOTH, GONE, PEERNAME, MARKER, cfg, body), { timeout = 60 })
    return r.stdout
end

describe("dpdk.resolve", function()
    setup(add_ours)
    teardown(remove_ours)

    it("resolves /etc/hosts names, IPv4 and IPv6, and says when a name is not found",
        function()
        local out = run([[
local function show(name)
    local a, err = dpdk.resolve(name)
    print(a and table.concat(a, " ") or ("nil " .. err))
end
show(V4)
show(V6)
show(BOTH) -- a runtime without IPv6 addresses: IPv4 first
show("dlo-no-such-" .. MARKER:match("%d+") .. ".invalid")
show("10.211.3.3")
show("fdd3::3")
print(pcall(dpdk.resolve, ""))
print(pcall(dpdk.resolve, V4, { ttl = -1 }))
]])
        assert.are.equal(table.concat({
            "10.211.7.4",
            "fdd3::7:6",
            "10.211.7.5 fdd3::7:5",
            "nil name not found: dlo-no-such-" .. MARKER:match("%d+") .. ".invalid",
            "10.211.3.3",
            "fdd3::3",
            "false\tdpdk.resolve: expected a host name or IP address, got an empty string",
            "false\tdpdk.resolve: ttl must be seconds >= 0, got -1",
        }, "\n") .. "\n", out)
    end)

    it("answers from the worker's cache until the TTL passes", function()
        local out = run([[
print(dpdk.resolve(V4)[1], resolve.hits, resolve.misses)
print(dpdk.resolve(V4)[1], resolve.hits, resolve.misses) -- a hit: the pool is not asked
print(dpdk.resolve(GONE, { ttl = 0.3 })[1])
-- the names leave /etc/hosts (in the pool: file I/O)
assert(dpdk.blocking(function(marker, names)
    local kept = {}
    for line in io.lines("/etc/hosts") do
        local ours = line:find(marker, 1, true) and (line:find(names[1], 1, true)
            or line:find(names[2], 1, true))
        if not ours then kept[#kept + 1] = line end
    end
    local f = assert(io.open("/etc/hosts", "w"))
    f:write(table.concat(kept, "\n"), "\n")
    f:close()
end, MARKER, { V4 .. " ", GONE .. " " }))
print(dpdk.resolve(V4, { ttl = 0 }) ~= nil, resolve.hits) -- still cached
local deadline = dpdk.now() + 10
local a, err
repeat -- the short TTL ends; then the pool finds the name gone
    dpdk.sleep(0.05)
    a, err = dpdk.resolve(GONE)
until not a or dpdk.now() > deadline
print(a, err)
resolve.flush()
print(dpdk.resolve(V4))
]])
        assert.are.equal(table.concat({
            "10.211.7.4\t0\t1",
            "10.211.7.4\t1\t1",
            "10.211.7.9",
            "true\t2",
            "nil\tname not found: " .. GONE,
            "nil\tname not found: " .. V4,
        }, "\n") .. "\n", out)
        add_ours() -- the other tests' names back
    end)

    it("lets tcp.connect and sock:connect take a name", function()
        local server = child.start_python([[
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1); l.bind(("10.211.0.1", 7211)); l.listen(8)
print("LISTENING", flush=True)
while True:
    c, addr = l.accept()
    c.sendall(("hello %s\n" % addr[0]).encode())
    c.close()
]])
        finally(function() server:kill(9) end)
        assert(server:wait_output("LISTENING"), server:stderr())
        local out = run([[
local c = assert(tcp.connect(PEERNAME, 7211))
print(c:receive("*l"))
c:close()
local s = tcp.socket()
assert(s:connect(PEERNAME, 7211, { timeout = 5000 }))
print(s:receive("*l"))
s:close()
print(tcp.connect("dlo-nope-" .. MARKER:match("%d+") .. ".invalid", 7211))
]], { tap = true })
        assert.are.equal(table.concat({
            "hello 10.211.0.2",
            "hello 10.211.0.2",
            "nil\tname not found: dlo-nope-" .. MARKER:match("%d+") .. ".invalid",
        }, "\n") .. "\n", out)
    end)
end)

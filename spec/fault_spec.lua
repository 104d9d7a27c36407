-- The fault injector (host/fault.c): a device's "faults" in env.json, or
-- DPDKLUA_FAULTS, make the link drop, duplicate, reorder, corrupt and
-- truncate frames. TCP must deliver every byte in order through it, a damaged
-- frame must be caught by its checksum, and no mbuf may stay behind.
local child = require "spec.helpers.child"
local config = require "dpdk.config"
local net = require "spec.helpers.net"

local FAULTS = { seed = 11, drop = 0.01, duplicate = 0.02, reorder = 0.05, corrupt = 0.005,
    truncate = 0.005 }

-- lwIP is the sender both ways here, and it recovers from loss slowly
-- (docs/reliability.md, "Faulty links"): less loss than with a Linux peer.
local MEMIF_FAULTS = { seed = 12, drop = 0.004, duplicate = 0.02, reorder = 0.05,
    corrupt = 0.002, truncate = 0.002, direction = "rx" }

local function write(text)
    return child.tmpfile(".json", text)
end

-- Lua for a child: mbufs of the runtime's first port's pool in use (the pool
-- name is host/port.c's "dl<seq>_p<port id>").
local POOL = [[
local dpdk = require "dpdk"
local ffi = require "ffi"
pcall(ffi.cdef, [=[
struct rte_mempool *rte_mempool_lookup(const char *name);
unsigned int rte_mempool_in_use_count(const struct rte_mempool *mp);
]=])
local function mbufs_in_use()
    for seq = 0, 8 do
        local mp = ffi.C.rte_mempool_lookup(("dl%d_p0"):format(seq))
        if mp ~= nil then return tonumber(ffi.C.rte_mempool_in_use_count(mp)) end
    end
    error("no mempool dl<seq>_p0")
end
-- Back at the baseline once the traffic is gone (RX rings hold theirs)?
local function settled(base)
    for _ = 1, 100 do
        if mbufs_in_use() <= base then return true end
        dpdk.sleep(0.05)
    end
    return false, mbufs_in_use()
end
local function fault_counts()
    local s = dpdk.stats().workers[1]
    return ("dropped %d duplicated %d reordered %d corrupted %d truncated %d"):format(
        s.fault_dropped, s.fault_duplicated, s.fault_reordered, s.fault_corrupted,
        s.fault_truncated)
end
]]

describe("the fault injector's configuration", function()
    it("reads a device's faults, with defaults for what is left out", function()
        local cfg = assert(config.load(write([[{"dpdk_cores": [0], "devices": [{"vdev": "net_memif_f0",
            "addresses": ["10.232.0.2/24"], "faults": {"drop": 0.25, "direction": "tx"}}]}]])))
        local f = cfg.devices[1].faults
        assert.are.same({ seed = 1, drop = 0.25, duplicate = 0, reorder = 0, reorder_depth = 4,
            corrupt = 0, truncate = 0, direction = "tx" }, f)
        local plain = assert(config.load(write([[{"dpdk_cores": [0], "devices": [{"vdev": "net_memif_f0",
            "addresses": ["10.232.0.2/24"]}]}]])))
        assert.is_nil(plain.devices[1].faults)
    end)

    it("rejects bad faults with an error that names the field", function()
        local cases = {
            { '{"drop": 1.5}', 'devices%[0%]%.faults%.drop: expected a probability 0%.%.1, got 1%.5' },
            { '{"drop": "0.1"}', 'devices%[0%]%.faults%.drop: expected a probability 0%.%.1, got a string' },
            { '{"dorp": 0.1}', 'devices%[0%]%.faults%.dorp: unknown fault "dorp": expected seed, drop' },
            { '{"direction": "up"}', 'faults%.direction: expected a direction "rx", "tx" or "both", got "up"' },
            { '{"reorder_depth": 0}', 'faults%.reorder_depth: expected a depth 1%.%.64, got 0' },
            { '{"seed": -1}', 'faults%.seed: expected an integer seed 0%.%.2%^53, got %-1' },
            { '[0.1]', 'devices%[0%]%.faults: expected an object like' },
        }
        for _, case in ipairs(cases) do
            local cfg, err = config.load(write(([[{"dpdk_cores": [0], "devices": [{"vdev": "net_memif_f0",
                "addresses": ["10.232.0.2/24"], "faults": %s}]}]]):format(case[1])))
            assert.is_nil(cfg, case[1])
            assert.matches(case[2], err)
        end
    end)

    it("rejects a bad DPDKLUA_FAULTS when the runtime starts", function()
        local cfg = child.config({ devices = { {
            vdev = ("net_memif_sf1,role=server,socket=%s/f1.sock,id=0"):format(child.tmpdir()),
            addresses = { "10.232.1.2/24" } } } })
        for text, want in pairs({
            ["drop=2"] = 'DPDKLUA_FAULTS: drop: expected a probability 0..1, got "2"',
            ["drop"] = 'DPDKLUA_FAULTS: "drop": expected key=value, like drop=0.01',
            ["lose=0.1"] = 'DPDKLUA_FAULTS: unknown fault "lose"',
        }) do
            local r = child.run(([[
local rt, err = require("dpdk").runtime{ workers = 1, config = %q }
print(rt and "started" or err)
]]):format(cfg), { env = { DPDKLUA_FAULTS = text } })
            assert.are.equal(0, r.status, r.stderr)
            assert.is_truthy(r.stdout:find(want, 1, true), r.stdout .. r.stderr)
        end
    end)
end)

describe("TCP through a faulty link", function()
    it("moves 4 MiB each way intact with a python peer through a tap", function()
        local svc = net.service("dlf1", 231, POOL .. [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7000))
    local base = mbufs_in_use()
    print("READY") io.stdout:flush()
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            while true do
                local data = c:receiveany(65536)
                if not data then break end
                if data == "STATS\n" then
                    local ok, now = settled(base)
                    data = fault_counts() .. (ok and "; mbufs back" or "; mbufs leaked: "
                        .. (now - base)) .. "\n"
                end
                if not c:send(data) then break end
            end
            c:close()
        end)
    end
end)
]], { device = { faults = FAULTS } })
        finally(svc.stop)
        local rc, out = net.python(([[
import hashlib, os, socket, threading, time
def csum_errors():
    for line in open("/proc/net/snmp"):
        if line.startswith("Tcp:") and "InCsumErrors" not in line:
            return int(line.split()[-1])  # InCsumErrors is the last Tcp field
before = csum_errors()
size = 4 << 20
s = socket.create_connection(("%s", 7000), timeout=30)
data = os.urandom(size)
def writer():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=writer); t.start()
got = bytearray()
while True:
    b = s.recv(1 << 20)
    if not b: break
    got += b
t.join(); s.close()
assert len(got) == size, len(got)
assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), "stream differs"
c = socket.create_connection(("%s", 7000), timeout=30)
c.sendall(b"STATS\n")
print(c.recv(200).decode().strip(), "; kernel checksum errors", csum_errors() - before)
]]):format(svc.ip, svc.ip), 60)
        assert.are.equal(0, rc, out)
        local d, u, r, c, t = out:match(
            "dropped (%d+) duplicated (%d+) reordered (%d+) corrupted (%d+) truncated (%d+)")
        assert.is_truthy(d, out)
        for _, n in ipairs({ d, u, r, c, t }) do assert.is_true(tonumber(n) > 0, out) end
        assert.matches("; mbufs back", out)
        -- frames we corrupted on the way out: the kernel's TCP checksum caught them
        assert.is_true(tonumber(out:match("kernel checksum errors (%d+)")) > 0, out)
    end)

    it("moves 4 MiB each way intact between two dpdklua processes over net_memif", function()
        local sock = ("%s/fm.sock"):format(child.tmpdir())
        local function cfg(role, host)
            return child.config({ cores = { 0, 1 }, devices = { {
                vdev = ("net_memif_%sfm,role=%s,socket=%s,id=0"):format(role:sub(1, 1), role, sock),
                mac = ("02:d2:e8:00:00:%02x"):format(host),
                addresses = { ("10.232.0.%d/24"):format(host) },
                -- rx on each side: every frame meets one injector, not two
                faults = MEMIF_FAULTS } } })
        end
        local server = child.start(POOL .. ([[
local tcp = require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
    local l = assert(tcp.listen("10.232.0.2", 9000))
    local base = mbufs_in_use()
    print("READY") io.stdout:flush()
    local c = assert(l:accept())
    while true do
        local data = c:receiveany(65536)
        if not data then break end
        assert(c:send(data))
    end
    c:close()
    local ok, now = settled(base)
    print(fault_counts(), ok and "mbufs back" or ("mbufs leaked " .. (now - base)))
    io.stdout:flush()
end)
]]):format(cfg("server", 2)))
        finally(function() server:kill(9) end)
        assert(server:wait_output("READY"), server:stderr())
        local r = child.run(POOL .. ([[
local tcp = require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
    local base = mbufs_in_use()
    local c = assert(tcp.connect("10.232.0.2", 9000, { timeout = 10000 }))
    c:settimeout(30000)
    -- a stream no two blocks of which are alike: block i starts with i
    local function block(i) return ("%%08d"):format(i) .. ("x"):rep(65528) end
    local n = 64
    local writer = dpdk.spawn(function()
        for i = 1, n do assert(c:send(block(i))) end
    end)
    local got, want, i = 0, n * 65536, 1
    local pending = ""
    while got < want do
        local data = assert(c:receiveany(65536))
        pending = pending .. data
        got = got + #data
        while #pending >= 65536 do
            assert(pending:sub(1, 65536) == block(i), "block " .. i .. " differs")
            pending, i = pending:sub(65537), i + 1
        end
    end
    assert(writer:join())
    c:close()
    local ok, now = settled(base)
    print("blocks " .. (i - 1), fault_counts(), ok and "mbufs back" or ("mbufs leaked " .. (now - base)))
end)
]]):format(cfg("client", 3)), { timeout = 60 })
        assert.are.equal(0, r.status, r.stdout .. r.stderr .. server:stderr())
        assert.matches("^blocks 64\t", r.stdout)
        assert.matches("mbufs back", r.stdout)
        assert.is_true(server:wait(20) == 0, server:stdout() .. server:stderr())
        assert.matches("mbufs back", server:stdout())
        for _, out in ipairs({ r.stdout, server:stdout() }) do
            local d, u, o, c, t = out:match(
                "dropped (%d+) duplicated (%d+) reordered (%d+) corrupted (%d+) truncated (%d+)")
            assert.is_truthy(d, out)
            assert.is_true(tonumber(d) > 0 and tonumber(u) > 0 and tonumber(o) > 0
                and tonumber(c) > 0 and tonumber(t) > 0, out)
        end
    end)
end)

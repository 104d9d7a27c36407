-- Many dpdklua processes on one config: cores and devices are shared out by
-- their locks, a device's lock is the resource it stands for, and a killed
-- process's place is taken at once.
local child = require "spec.helpers.child"
local ffi = require "ffi"

local defer = child.deferrer(function(fn) finally(fn) end)

local HOLD = [[
local dpdk = require "dpdk"
local rt, err = dpdk.runtime{ workers = 1, config = %q }
if not rt then print("FAILED", err) os.exit(1) end
local st = dpdk.stats()
print("READY core " .. rt:block_on(function() return dpdk.core_id() end) .. " " .. st.ports[1].name
    .. " " .. (st.ports[1].ifname or "")) io.stdout:flush()
rt:block_on(function() while true do dpdk.sleep(0.05) end end)
]]

local function start(cfg, env)
    local p = child.start(HOLD:format(cfg), { env = env })
    defer(function() p:kill(9) end)
    assert.is_true(p:wait_output("READY") or p:exited(), p:stderr())
    return p
end

describe("processes on one config", function()
    it("share out cores and devices; one that finds no core free says who holds them", function()
        local cfg = child.config({ cores = { 0, 1 }, devices = {
            child.tap_device("dls2", 134), child.tap_device("dls3", 135) } })
        -- the first asks for the first tap; the second takes what is left
        local a = start(cfg, { DPDK_DEVICE = "net_tap_dls2" })
        local b = start(cfg)
        assert.matches("READY core 0 net_tap_dls2 dls2\n", a:stdout())
        assert.matches("READY core 1 net_tap_dls3 dls3\n", b:stdout())
        local c = child.run(HOLD:format(cfg))
        assert.matches("^FAILED\tno free core: 1 worker%(s%) wanted, 0 free in dpdk_cores of .*"
            .. "; core 0 is held by pid " .. a:child_pid() .. " %(.*%); core 1 is held by pid "
            .. b:child_pid(), c.stdout)
        -- a third with a core but no device
        local cfg2 = child.config({ cores = { 0, 1 }, devices = {
            child.tap_device("dls2", 134), child.tap_device("dls3", 135) } })
        a:kill(9)
        local d = start(cfg2, { DPDK_DEVICE = "net_tap_dls3" })
        assert.matches("^FAILED\tno free device among the 1 selected in .*; net_tap_dls3 %(tap:dls3%) "
            .. "is held by pid " .. b:child_pid(), d:stdout())
    end)

    it("let a new process take a killed one's place at once (kill -9, no wait)", function()
        local cfg = child.config({ cores = { 0 }, devices = { child.tap_device("dls4", 136) } })
        for round = 1, 3 do
            local a = start(cfg)
            assert.matches("READY core 0", a:stdout())
            local pid = a:child_pid()
            local eal_dir = "/var/run/dpdk/dpdklua-" .. pid
            ffi.C.kill(pid, 9) -- and start the next one while the kernel tears it down
            local b = start(cfg)
            assert.matches("READY core 0 net_tap_dls4 dls4\n", b:stdout(),
                "round " .. round .. ": " .. b:stdout() .. b:stderr())
            -- the runtime directory the killed one left is gone with the first restart
            assert.are_not.equal(0, (child.sh("test -d " .. eal_dir)), "round " .. round)
            b:kill(9)
            a:kill(9)
        end
    end)
end)

describe("memif devices", function()
    it("named net_memif0 in two processes (server and client of one socket) both start; "
        .. "a second server of that socket is refused, naming the holder", function()
        local sock = child.tmpdir() .. "/mp-same.sock"
        local function cfg(role, host, core)
            return child.config({ cores = { core }, devices = { {
                vdev = ("net_memif0,role=%s,socket=%s,id=0"):format(role, sock),
                mac = ("02:d4:88:00:00:%02x"):format(host),
                addresses = { ("10.136.0.%d/24"):format(host) },
            } } })
        end
        local server = start(cfg("server", 2, 0))
        assert.matches("READY core 0 net_memif0", server:stdout(), server:stderr())
        local client = start(cfg("client", 3, 1))
        assert.matches("READY core 1 net_memif0", client:stdout(), client:stderr())
        client:kill(9) -- frees core 1 for the next try
        local again = child.run(HOLD:format(cfg("server", 4, 1)))
        assert.matches("^FAILED\tno free device among the 1 selected in .*; net_memif0 %(memif:"
            .. sock:gsub("%p", "%%%0") .. ":server:0%) is held by pid " .. server:child_pid(),
            again.stdout)
    end)
end)

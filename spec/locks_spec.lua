-- Multi-process isolation: cores and devices are taken with flock, one
-- process each, and freed by the kernel when a holder dies.
local child = require "spec.helpers.child"

local HOLD = [[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = %d, config = %q })
print("READY " .. dpdk.worker_count()) io.stdout:flush()
rt:block_on(function() while true do dpdk.sleep(0.05) end end)
]]

local TRY = [[
local dpdk = require "dpdk"
local rt, err = dpdk.runtime{ workers = %d, config = %q }
if rt then
    print("GOT", rt:block_on(function() return dpdk.core_id() end), dpdk.worker_count())
else
    print("FAILED", err)
end
]]

describe("core locks", function()
    it("give a core to one process at a time and name the holder", function()
        local cfg = child.config({ cores = { 0 } })
        local holder = child.start(HOLD:format(1, cfg))
        finally(function() holder:kill(9) end)
        assert.is_true(holder:wait_output("READY"), holder:stderr())
        local r = child.run(TRY:format(1, cfg))
        assert.matches("^FAILED\tno free core: 1 worker%(s%) wanted, 0 free in dpdk_cores of "
            .. cfg:gsub("%p", "%%%0") .. "; core 0 is held by pid " .. holder:child_pid(),
            r.stdout)
    end)

    it("are freed when the holder is killed with SIGKILL (and its EAL files swept)", function()
        local cfg = child.config({ cores = { 0 } })
        local holder = child.start(HOLD:format(1, cfg))
        finally(function() holder:kill(9) end)
        assert.is_true(holder:wait_output("READY"), holder:stderr())
        assert.matches("^FAILED", child.run(TRY:format(1, cfg)).stdout)
        local eal_dir = "/var/run/dpdk/dpdklua-" .. holder:child_pid()
        assert.are.equal(137, holder:kill(9))
        assert.are.equal(0, (child.sh("test -d " .. eal_dir)), "a killed process leaves its EAL dir")
        local r = child.run(TRY:format(1, cfg))
        assert.are.equal("GOT\t0\t1\n", r.stdout)
        -- the next runtime removed what the killed one could not
        assert.are_not.equal(0, (child.sh("test -d " .. eal_dir)))
    end)

    it("let a second process take the cores the first left free", function()
        local cfg = child.config({ cores = { 0, 1 } })
        local holder = child.start(HOLD:format(1, cfg))
        finally(function() holder:kill(9) end)
        assert.is_true(holder:wait_output("READY 1"), holder:stderr())
        local r = child.run(TRY:format(0, cfg)) -- workers = 0: every free core
        assert.are.equal("GOT\t1\t1\n", r.stdout)
    end)

    it("refuse more workers than free cores", function()
        local cfg = child.config({ cores = { 0, 1 } })
        local r = child.run(TRY:format(3, cfg))
        assert.matches("^FAILED\tno free core: 3 worker%(s%) wanted, 2 free", r.stdout)
    end)
end)

describe("device locks", function()
    it("give a device to one process and tell the next who holds it", function()
        local cfg = child.config({ cores = { 0, 1 }, devices = { child.tap_device("dltlk1", 81) } })
        local holder = child.start(HOLD:format(1, cfg))
        finally(function() holder:kill(9) end)
        assert.is_true(holder:wait_output("READY"), holder:stderr())
        local r = child.run(TRY:format(1, cfg))
        assert.matches("^FAILED\tno free device among the 1 selected in .*; net_tap_dltlk1 %(tap:dltlk1%) is "
            .. "held by pid " .. holder:child_pid(), r.stdout)
    end)

    it("are freed when the holder dies, and the tap goes with it", function()
        local cfg = child.config({ cores = { 0, 1 }, devices = { child.tap_device("dltlk2", 82) } })
        local holder = child.start(HOLD:format(1, cfg))
        finally(function() holder:kill(9) end)
        assert.is_true(holder:wait_output("READY"), holder:stderr())
        assert.is_true(child.link_exists("dltlk2"))
        holder:kill(9)
        -- the kernel removes the tap once the dead process's last reference goes
        assert.is_true(child.wait_until(function() return not child.link_exists("dltlk2") end))
        local r = child.run(TRY:format(1, cfg))
        assert.matches("^GOT\t%d\t1\n$", r.stdout)
    end)
end)

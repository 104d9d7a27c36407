-- Item 7 of issue 11: a task that never yields is reported by the watchdog
-- (worker, how long, the task's name), the recovery too, and SIGTERM ends
-- a process whose worker is stuck instead of being ignored.
local child = require "spec.helpers.child"

local function start(body, workers)
    local cfg = child.config({ cores = { 0, 1 } })
    local code = ([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = %d, config = %q, watchdog_ms = 300 })
%s
]]):format(workers, cfg, body)
    local p = child.start(code)
    finally(function() p:kill(9) end)
    return p
end

local function wait_stderr(p, pattern, timeout)
    return child.wait_until(function()
        return p:stderr():find(pattern) ~= nil or p:exited()
    end, timeout or 20) and p:stderr():find(pattern) ~= nil
end

-- Send sig to the dpdklua process and return its exit status and the
-- seconds it took to end (nil status when it did not end within 15 s).
local function signal(p, sig)
    local pid = p:child_pid()
    assert(pid, "no process to signal")
    local t0 = os.time()
    os.execute("kill -" .. sig .. " " .. pid)
    local rc = p:wait(15)
    return rc, os.time() - t0
end

describe("the watchdog", function()
    it("names a stuck task on worker 0, and SIGTERM ends the process", function()
        local p = start([[
rt:block_on(function()
    dpdk.set_task_name("spinner-0")
    print("READY") io.stdout:flush()
    local x = 0
    while true do x = x + 1 end
end)
]], 1)
        assert(p:wait_output("READY"), p:stderr())
        assert(wait_stderr(p, "worker 0 %(core %d+%): its loop has not turned for [%d.]+ s: "
            .. "task #%d+ %(spinner%-0%) does not yield"), p:stderr())
        local rc, took = signal(p, "TERM")
        assert.are.equal(143, rc) -- 128 + SIGTERM: ended by the signal
        assert(took <= 5, "took " .. took .. " s")
        assert.matches("SIGTERM while worker 0 has been stuck for [%d.]+ s in task #%d+ "
            .. "%(spinner%-0%): exiting without a clean shutdown", p:stderr())
    end)

    it("names a stuck task on worker 1 by where it was defined, and SIGTERM ends rt:run",
        function()
        local p = start([[
rt:run(function()
    local dpdk = require "dpdk"
    if dpdk.worker_id() == 1 then
        local function spin()
            local x = 0
            while true do x = x + 1 end
        end
        dpdk.spawn(spin)
    end
    print("READY") io.stdout:flush()
    dpdk.sleep(3600)
end)
]], 2)
        assert(p:wait_output("READY"), p:stderr())
        -- the task is named after its function: the chunk's file and line 6
        assert(wait_stderr(p, "worker 1 %(core %d+%): its loop has not turned for [%d.]+ s: "
            .. "task #%d+ %([^)]*:6%) does not yield"), p:stderr())
        local rc, took = signal(p, "TERM")
        assert.are.equal(143, rc)
        assert(took <= 5, "took " .. took .. " s")
        assert.matches("SIGTERM while worker 1 has been stuck", p:stderr())
    end)

    it("says when a stuck worker turns again, and stays quiet about a busy one", function()
        local p = start([[
rt:block_on(function()
    for _ = 1, 200 do dpdk.sleep(0.001) end -- a loop that turns: no report
    dpdk.set_task_name("slow-step")
    local t0 = dpdk.now()
    while dpdk.now() - t0 < 1.0 do end -- 1 s without yielding
    dpdk.sleep(0.5)
end)
print("DONE")
]], 1)
        assert(p:wait_output("DONE", 30), p:stderr())
        local err = p:stderr()
        assert.matches("worker 0 %(core %d+%): its loop has not turned for [%d.]+ s: "
            .. "task #%d+ %(slow%-step%) does not yield", err)
        assert.matches("worker 0 %(core %d+%): its loop turns again after [%d.]+ s "
            .. "%(task #%d+ %(slow%-step%)%)", err)
        local _, reports = err:gsub("has not turned", "")
        assert.are.equal(1, reports, err)
    end)

    it("lets a graceful SIGTERM end a healthy process cleanly", function()
        local p = start([[
local ok, err = pcall(rt.block_on, rt, function()
    print("READY") io.stdout:flush()
    dpdk.sleep(3600)
end)
print("block_on:", ok, err)
]], 1)
        assert(p:wait_output("READY"), p:stderr())
        local rc = signal(p, "TERM")
        assert.are.equal(0, rc)
        assert.matches("block_on:\tfalse\tinterrupted", p:stdout())
        assert.is_nil(p:stderr():find("watchdog"), p:stderr())
    end)

    it("checks its option", function()
        local r = child.run([[
local dpdk = require "dpdk"
print(pcall(dpdk.runtime, { watchdog_ms = -1 }))
print(pcall(dpdk.runtime, { watchdog_ms = "x" }))
]])
        assert.matches("watchdog_ms.*non%-negative integer", r.stdout)
        assert.matches("watchdog_ms.*must be a number", r.stdout)
    end)
end)

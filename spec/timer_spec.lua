-- dpdk.timer (issue 8): at, every, premature runs when the worker exits,
-- errors logged not fatal, counts. Device-less runtimes: only the scheduler.
local child = require "spec.helpers.child"

local function run(body, opts)
    opts = opts or {}
    local cfg = child.config({ cores = opts.cores or { 0 } })
    return child.run_ok(([[
local dpdk = require "dpdk"
local timer = dpdk.timer
local rt = assert(dpdk.runtime{ workers = %d, config = %q })
]]):format(opts.workers or 1, cfg) .. body)
end

describe("dpdk.timer.at", function()
    it("runs fn(false, args...) as a task of its own once the delay has passed", function()
        local r = run([[
rt:block_on(function()
    local t0, done = dpdk.now(), dpdk.semaphore.new(0)
    local me = require("dpdk.sched").current_task()
    print(timer.at(0.02, function(premature, a, b)
        local task = require("dpdk.sched").current_task()
        dpdk.sleep(0.001) -- a task: it may wait
        print(premature, a, b, dpdk.now() - t0 >= 0.02, task ~= me)
        done:post()
    end, "x", 42))
    print(timer.pending_count())
    done:wait(10)
    print(timer.pending_count(), timer.running_count())
end)
]])
        assert.are.equal("true\n1\nfalse\tx\t42\ttrue\ttrue\n0\t0\n", r.stdout)
    end)

    it("fires timers in deadline order; delay 0 runs at the next turn", function()
        local r = run([[
local order = {}
rt:block_on(function()
    for _, d in ipairs({ 0.03, 0.01, 0, 0.02 }) do
        timer.at(d, function() order[#order + 1] = d end)
    end
    order[#order + 1] = "armed"
    while #order < 5 do dpdk.sleep(0.005) end
end)
print(table.concat(order, " "))
]])
        assert.are.equal("armed 0 0.01 0.02 0.03\n", r.stdout)
    end)

    it("logs an error in fn and goes on", function()
        local r = run([[
rt:block_on(function()
    local done = dpdk.semaphore.new(0)
    timer.at(0, function() error("timer exploded") end)
    timer.at(0.01, function() done:post() end)
    print(done:wait(10), timer.running_count())
end)
]])
        assert.are.equal("true\t0\n", r.stdout)
        assert.matches("timer callback failed: .*timer exploded", r.stderr)
        assert.matches("stack traceback", r.stderr)
    end)

    it("rejects a bad delay or callback, naming it", function()
        local r = run([[
print(pcall(timer.at, -1, print))
print(pcall(timer.at, "1", print))
print(pcall(timer.at, 1, "print"))
print(pcall(timer.every, 0, print))
]])
        assert.matches("false\t.*dpdk.timer.at: expected a delay in seconds >= 0, got %-1\n"
            .. "false\t.*got 1\nfalse\t.*dpdk.timer.at: expected a function, got string\n"
            .. "false\t.*dpdk.timer.every: expected a delay in seconds > 0, got 0\n", r.stdout)
    end)
end)

describe("dpdk.timer.every", function()
    it("runs fn every interval until the worker exits, then once more, premature", function()
        local r = run([[
local runs = {}
rt:block_on(function()
    print(timer.every(0.005, function(premature, tag) runs[#runs + 1] = tostring(premature) .. tag end, "!"))
    while #runs < 3 do dpdk.sleep(0.001) end
    print(timer.pending_count())
end)
local before = #runs
print(rt:shutdown())
print(#runs == before + 1, runs[1], runs[#runs])
]])
        assert.are.equal("true\n1\ntrue\ntrue\tfalse!\ttrue!\n", r.stdout)
    end)
end)

describe("premature timers", function()
    it("run at rt:shutdown with premature = true, may wait, and cannot arm new timers", function()
        local r = run([[
rt:block_on(function()
    timer.at(100, function(premature, n)
        print("at", premature, n, timer.running_count())
        dpdk.sleep(0.01) -- the loop still runs for them
        print("slept", timer.at(0, print))
    end, 1)
    timer.every(100, function(premature) print("every", premature) end)
    print("pending", timer.pending_count())
end)
print("shutdown", rt:shutdown())
]])
        assert.are.equal(
            "pending\t2\nat\ttrue\t1\t2\nevery\ttrue\nslept\tnil\tprocess exiting\nshutdown\ttrue\n",
            r.stdout)
    end)

    it("run on every worker when its loop ends", function()
        local r = run([[
rt:run(function()
    local dpdk = require "dpdk"
    local id = dpdk.worker_id()
    dpdk.timer.at(100, function(premature)
        io.stdout:write(("worker %d premature %s\n"):format(id, tostring(premature)))
        io.stdout:flush()
    end)
end)
io.stdout:flush()
print(rt:shutdown())
]], { workers = 2, cores = { 0, 1 } })
        assert.matches("worker 0 premature true\n", r.stdout, 1, true)
        assert.matches("worker 1 premature true\n", r.stdout, 1, true)
    end)
end)

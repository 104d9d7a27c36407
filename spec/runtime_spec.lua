-- The runtime: block_on, spawn/join, sleep, yield, errors, run, shutdown.
-- Each test runs in a fresh dpdklua process (one EAL per process) with a
-- device-less config, so only the scheduler and the workers are involved.
local child = require "spec.helpers.child"

local function run(body, opts)
    opts = opts or {}
    local cfg = child.config({ cores = opts.cores or { 0, 1 } })
    local code = ([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = %d, config = %q })
%s
]]):format(opts.workers or 1, cfg, body)
    if opts.expect_failure then return child.run(code, opts) end
    return child.run_ok(code, opts)
end

describe("rt:block_on", function()
    it("returns the function's results and passes its arguments", function()
        local r = run([[
print(rt:block_on(function(a, b) return a + b, "x", nil, true end, 2, 3))
]])
        assert.are.equal("5\tx\tnil\ttrue\n", r.stdout)
    end)

    it("re-raises the function's error with its traceback", function()
        local r = run([[
local ok, err = pcall(rt.block_on, rt, function()
    local function inner() error("kaput") end
    inner()
end)
print(ok, err:match("kaput") ~= nil, err:match("stack traceback") ~= nil)
]])
        assert.are.equal("false\ttrue\ttrue\n", r.stdout)
    end)

    it("runs on worker 0, pinned to its core", function()
        local r = run([[
print(dpdk.worker_id(), dpdk.core_id())
print(rt:block_on(function() return dpdk.worker_id(), dpdk.core_id() end))
]])
        assert.are.equal("nil\tnil\n0\t0\n", r.stdout)
    end)

    it("refuses to nest inside a task", function()
        local r = run([[
local ok, err = pcall(rt.block_on, rt, function()
    return rt:block_on(function() end)
end)
print(ok, err)
]])
        assert.matches("false\t.*cannot be called from inside a task", r.stdout)
    end)

    it("can be called again and resumes tasks left from the previous call", function()
        local r = run([[
local log = {}
rt:block_on(function()
    dpdk.spawn(function() dpdk.sleep(0.05); log[#log + 1] = "late" end)
end)
log[#log + 1] = "between"
rt:block_on(function() dpdk.sleep(0.1) end)
print(table.concat(log, ","))
]])
        assert.are.equal("between,late\n", r.stdout)
    end)
end)

describe("dpdk.spawn", function()
    -- Was "starts tasks in FIFO order at the next scheduling point": dpdk.spawn
    -- now follows ngx.thread.spawn (issue 8), the child runs before spawn returns.
    it("runs each child until it first waits before spawn returns", function()
        local r = run([[
local order = {}
rt:block_on(function()
    for i = 1, 3 do
        dpdk.spawn(function() order[#order + 1] = i; dpdk.yield(); order[#order + 1] = "y" .. i end)
    end
    order[#order + 1] = "parent"
    dpdk.yield()
    order[#order + 1] = "parent again"
end)
print(table.concat(order, ","))
]])
        assert.are.equal("1,2,3,parent,y1,y2,y3,parent again\n", r.stdout)
    end)

    it("returns a handle whose join gives the results", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn(function(x) dpdk.sleep(0.01); return x * 2, "done" end, 21)
    print(h:done())
    print(h:join())
    print(h:done(), h:join())
end)
]])
        assert.are.equal("false\ntrue\t42\tdone\ntrue\ttrue\t42\tdone\n", r.stdout)
    end)

    it("logs an error in a spawned task with its traceback and keeps the worker going", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn(function() error("task exploded") end)
    local ok, err = h:join()
    print(ok, err:match("task exploded") ~= nil)
    dpdk.sleep(0.01)
    print("still running")
end)
]])
        assert.are.equal("false\ttrue\nstill running\n", r.stdout)
        assert.matches("task #%d+ failed: .*task exploded", r.stderr)
        assert.matches("stack traceback", r.stderr)
    end)

    it("lets many joiners wait for one task", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn(function() dpdk.sleep(0.02); return "v" end)
    local got = {}
    local js = {}
    for i = 1, 5 do
        js[i] = dpdk.spawn(function() local _, v = h:join(); got[#got + 1] = v end)
    end
    for i = 1, 5 do js[i]:join() end
    print(#got, got[1], got[5])
end)
]])
        assert.are.equal("5\tv\tv\n", r.stdout)
    end)

    it("must be called from a task", function()
        local r = run([[
print(pcall(dpdk.spawn, function() end))
]])
        assert.matches("false\t.*must be called from a task of the dpdk runtime", r.stdout)
    end)
end)

describe("dpdk.yield", function()
    it("interleaves tasks round-robin", function()
        local r = run([[
local trace = {}
rt:block_on(function()
    local a = dpdk.spawn(function() for i = 1, 3 do trace[#trace+1] = "a" .. i; dpdk.yield() end end)
    local b = dpdk.spawn(function() for i = 1, 3 do trace[#trace+1] = "b" .. i; dpdk.yield() end end)
    a:join(); b:join()
end)
print(table.concat(trace, " "))
]])
        assert.are.equal("a1 b1 a2 b2 a3 b3\n", r.stdout)
    end)

    it("treats a plain coroutine.yield at task level like dpdk.yield", function()
        local r = run([[
local trace = {}
rt:block_on(function()
    local a = dpdk.spawn(function() trace[#trace+1] = "a1"; coroutine.yield(); trace[#trace+1] = "a2" end)
    local b = dpdk.spawn(function() trace[#trace+1] = "b1" end)
    a:join(); b:join()
end)
print(table.concat(trace, " "))
]])
        assert.are.equal("a1 b1 a2\n", r.stdout)
    end)
end)

describe("rt:run", function()
    it("runs a function on every worker, each on its own core", function()
        local r = run([[
local seen = rt:run(function(tag)
    local dpdk = require "dpdk"
    io.stdout:write(("%s worker %d core %d of %d\n"):format(tag, dpdk.worker_id(),
        dpdk.core_id(), dpdk.worker_count()))
    io.stdout:flush()
    return "w0 result"
end, "hello")
print(seen)
]], { workers = 2 })
        assert.matches("hello worker 0 core 0 of 2\n", r.stdout, 1, true)
        assert.matches("hello worker 1 core 1 of 2\n", r.stdout, 1, true)
        assert.matches("w0 result\n$", r.stdout)
    end)

    it("runs a module by name on every worker", function()
        local dir = child.tmpdir()
        local f = assert(io.open(dir .. "/runmod_spec_mod.lua", "w"))
        f:write([[return function(n) local dpdk = require "dpdk"
            io.stdout:write("mod on " .. dpdk.worker_id() .. " n=" .. n .. "\n") io.stdout:flush() end]])
        f:close()
        local r = run(([[
package.path = %q .. "/?.lua;" .. package.path
rt:run("runmod_spec_mod", 7)
]]):format(dir), { workers = 2 })
        assert.truthy(r.stdout:find("mod on 0 n=7", 1, true))
        assert.truthy(r.stdout:find("mod on 1 n=7", 1, true))
    end)

    it("raises an error naming the worker whose copy failed", function()
        local r = run([[
local ok, err = pcall(rt.run, rt, function()
    if require("dpdk").worker_id() == 1 then error("only on one") end
end)
print(ok, err)
]], { workers = 2 })
        assert.matches("false\t.*worker 1: .*only on one", r.stdout)
    end)

    it("refuses a function with upvalues, naming them", function()
        local r = run([[
local captured = 1
print(pcall(rt.run, rt, function() return captured end))
]])
        assert.matches("false\t.*upvalues %(captured%)", r.stdout)
    end)
end)

describe("rt:shutdown", function()
    it("cannot be called from inside a task", function()
        local r = run([[
local ok, err = pcall(rt.block_on, rt, function() rt:shutdown() end)
print(ok, err)
]])
        assert.matches("false\t.*cannot be called from inside a task", r.stdout)
    end)

    it("stops the workers and lets a new runtime start in the same process", function()
        local r = run(([[
print(rt:block_on(function() return "first" end))
print(rt:shutdown(2))
print(pcall(rt.block_on, rt, function() end))
local rt2 = assert(dpdk.runtime{ workers = 2, config = rt_config })
print(rt2:worker_count(), rt2:block_on(function() return "second" end))
print(rt2:shutdown())
local rt3 = assert(dpdk.runtime{ workers = 1, config = rt_config })
print(rt3:block_on(function() return "third" end))
]]):gsub("rt_config", ("%q"):format(child.config({ cores = { 0, 1 } }))), { workers = 2 })
        assert.matches("^first\ntrue\nfalse\t.*has been shut down\n2\tsecond\ntrue\nthird\n$",
            r.stdout)
    end)

    it("reports a timeout when a worker is stuck in a task that never yields", function()
        local r = run([[
rt:run(function()
    local dpdk = require "dpdk"
    if dpdk.worker_id() == 1 then
        dpdk.spawn(function()
            -- after this worker's copy has reported its end: spawn ran this
            -- task up to the first yield, the second lets the report go first
            dpdk.yield()
            dpdk.yield()
            local t = os.time() + 2
            while os.time() < t do end -- never yields
        end)
    end
end)
os.execute("sleep 0.2") -- the spinning has begun
print(rt:shutdown(0.3))
]], { workers = 2 })
        assert.matches("^nil\ttimeout: worker 1 did not stop within 0.15 s", r.stdout)
    end)

    it("allows only one live runtime per process", function()
        local r = run([[
print(dpdk.runtime{ workers = 1 })
]])
        assert.matches("nil\ta runtime is already running in this process: call rt:shutdown%(%) first",
            r.stdout)
    end)
end)

describe("dpdk.runtime options", function()
    it("rejects an unknown option, listing the known ones", function()
        local r = child.run([[
print(pcall(require("dpdk").runtime, { wokers = 1 }))
]])
        assert.matches("unknown option 'wokers' %(known: workers, eal_args", r.stdout)
    end)

    it("rejects a wrongly typed option", function()
        local r = child.run([[
print(pcall(require("dpdk").runtime, { workers = "two" }))
]])
        assert.matches("option 'workers' must be a number, got string", r.stdout)
    end)

    it("rejects a cache_size larger than the mempool allows", function()
        local r = child.run([[
print(pcall(require("dpdk").runtime, { mempool_size = 256, cache_size = 256 }))
]])
        assert.matches("cache_size 256 must be <= 512 and <= mempool_size / 1.5 %(170%)", r.stdout)
    end)

    it("returns nil and a reason when the config cannot be read", function()
        local r = child.run([[
print(require("dpdk").runtime{ config = "/nonexistent/env.json" })
]])
        assert.matches("^nil\t/nonexistent/env.json: ", r.stdout)
    end)
end)

describe("interruption", function()
    it("stops block_on on SIGTERM, shuts down and exits with an error", function()
        local cfg = child.config({ cores = { 0 } })
        local p = child.start(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
print("READY") io.stdout:flush()
rt:block_on(function() while true do dpdk.sleep(0.01) end end)
]]):format(cfg))
        assert.is_true(p:wait_output("READY"))
        child.sleep(0.2)
        local rc = p:kill(15)
        assert.are.equal(1, rc)
        assert.matches("interrupted", p:stderr())
    end)
end)

-- Timers: dpdk.sleep and dpdk.now on the worker loop.
local child = require "spec.helpers.child"

local function run(body)
    local cfg = child.config({ cores = { 0 } })
    local r = child.run(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
]]):format(cfg) .. body)
    assert(r.status == 0, r.stderr)
    return r
end

describe("dpdk.sleep", function()
    it("wakes sleepers in deadline order, not start order", function()
        local r = run([[
local order = {}
rt:block_on(function()
    local hs = {}
    for _, d in ipairs({ 0.05, 0.01, 0.03, 0.02, 0.04 }) do
        hs[#hs + 1] = dpdk.spawn(function() dpdk.sleep(d); order[#order + 1] = d end)
    end
    for _, h in ipairs(hs) do h:join() end
end)
print(table.concat(order, " "))
]])
        assert.are.equal("0.01 0.02 0.03 0.04 0.05\n", r.stdout)
    end)

    it("sleeps at least as long as asked", function()
        local r = run([[
rt:block_on(function()
    for _, d in ipairs({ 0.001, 0.02, 0.1 }) do
        local t0 = dpdk.now()
        dpdk.sleep(d)
        print(dpdk.now() - t0 >= d)
    end
end)
]])
        assert.are.equal("true\ntrue\ntrue\n", r.stdout)
    end)

    it("keeps other tasks running while one sleeps", function()
        local r = run([[
rt:block_on(function()
    local spins = 0
    local sleeper = dpdk.spawn(function() dpdk.sleep(0.05) end)
    local spinner = dpdk.spawn(function()
        while not sleeper:done() do spins = spins + 1; dpdk.yield() end
    end)
    spinner:join()
    print(spins > 10)
end)
]])
        assert.are.equal("true\n", r.stdout)
    end)

    it("with 0 yields and comes back", function()
        local r = run([[
local trace = {}
rt:block_on(function()
    dpdk.spawn(function() trace[#trace + 1] = "other" end)
    dpdk.sleep(0)
    trace[#trace + 1] = "back"
end)
print(table.concat(trace, " "))
]])
        assert.are.equal("other back\n", r.stdout)
    end)

    it("handles ten thousand timers", function()
        local r = run([[
rt:block_on(function()
    local n, hs = 0, {}
    for i = 1, 10000 do
        hs[i] = dpdk.spawn(function() dpdk.sleep((i % 100) / 10000); n = n + 1 end)
    end
    for i = 1, 10000 do hs[i]:join() end
    print(n)
end)
]])
        assert.are.equal("10000\n", r.stdout)
    end)

    it("rejects a negative or non-number duration", function()
        local r = run([[
rt:block_on(function()
    print(pcall(dpdk.sleep, -1))
    print(pcall(dpdk.sleep, "1"))
end)
]])
        assert.matches("false\t.*expected seconds >= 0, got %-1\nfalse\t.*got 1\n", r.stdout)
    end)

    it("must be called from a task", function()
        local r = run([[print(pcall(dpdk.sleep, 0.1))]])
        assert.matches("false\t.*dpdk.sleep must be called from a task", r.stdout)
    end)
end)

describe("dpdk.now", function()
    it("is monotonic with sub-millisecond resolution", function()
        local r = run([[
local a = dpdk.now()
local b = dpdk.now()
local distinct = {}
for i = 1, 1000 do distinct[dpdk.now()] = true end
local n = 0 for _ in pairs(distinct) do n = n + 1 end
print(b >= a, n > 100)
]])
        assert.are.equal("true\ttrue\n", r.stdout)
    end)
end)

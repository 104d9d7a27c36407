-- dpdk.semaphore and dpdk.queue (issue 8): handing resources and values
-- between the tasks of one worker on the scheduler's tokens.
local child = require "spec.helpers.child"

local function run(body)
    local cfg = child.config({ cores = { 0 } })
    return child.run_ok(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
]]):format(cfg) .. body)
end

describe("dpdk.semaphore", function()
    it("takes free resources at once and times out without", function()
        local r = run([[
rt:block_on(function()
    local s = dpdk.semaphore.new(2)
    print(s:count(), s:wait(), s:wait(1), s:count())
    print(s:wait())          -- timeout 0 (the default): never waits
    local t0 = dpdk.now()
    print(s:wait(0.02))
    print(dpdk.now() - t0 >= 0.02, s:count())
end)
]])
        assert.are.equal("2\ttrue\ttrue\t0\nnil\ttimeout\nnil\ttimeout\ntrue\t0\n", r.stdout)
    end)

    it("wakes waiters in FIFO order, one per resource, and counts them negative", function()
        local r = run([[
rt:block_on(function()
    local s = dpdk.semaphore.new()
    local order = {}
    for i = 1, 4 do dpdk.spawn(function() s:wait(10); order[#order + 1] = i end) end
    print(s:count())
    s:post()
    print(s:count(), s:wait())   -- the resource went to waiter 1, not to this late caller
    s:post(2)
    dpdk.sleep(0.01)
    print(table.concat(order, " "), s:count())
    s:post(3)
    dpdk.sleep(0.01)
    print(table.concat(order, " "), s:count())
end)
]])
        assert.are.equal("-4\n-3\tnil\ttimeout\n1 2 3\t-1\n1 2 3 4\t2\n", r.stdout)
    end)

    it("forgets a waiter that timed out", function()
        local r = run([[
rt:block_on(function()
    local s = dpdk.semaphore.new(0)
    local a = dpdk.spawn(function() return s:wait(0.01) end)
    local got
    local b = dpdk.spawn(function() got = { s:wait(10) } end)
    print(a:join())
    print(s:count())
    s:post()
    b:join()
    print(got[1], s:count())
end)
]])
        assert.are.equal("true\tnil\ttimeout\n-1\ntrue\t0\n", r.stdout)
    end)

    it("works from a user coroutine inside a task", function()
        local r = run([[
rt:block_on(function()
    local s = dpdk.semaphore.new(0)
    dpdk.timer.at(0.01, function() s:post() end)
    print(coroutine.wrap(function() return s:wait(10) end)())
end)
]])
        assert.are.equal("true\n", r.stdout)
    end)

    it("rejects bad counts and timeouts, and waiting outside a task", function()
        local r = run([[
print(pcall(dpdk.semaphore.new, -1))
local s = dpdk.semaphore.new(0)
print(pcall(s.post, s, 0))
print(pcall(s.wait, s, -1))
print(pcall(s.wait, s, 1))
print(pcall(s.wait, {}, 1))
]])
        assert.matches("false\t.*expected a count >= 0, got %-1\n"
            .. "false\t.*sema:post: expected a count >= 1, got 0\n"
            .. "false\t.*sema:wait: expected a timeout in seconds >= 0, got %-1\n"
            .. "false\t.*sema:wait must be called from a task[^\n]*\n"
            .. "false\t.*not a semaphore", r.stdout)
    end)

    it("makes no garbage per wait and post once warm", function()
        local r = run([[
rt:block_on(function()
    local ping, pong = dpdk.semaphore.new(0), dpdk.semaphore.new(0)
    local n = 0
    dpdk.spawn(function() while true do ping:wait(10); n = n + 1; pong:post() end end)
    local function rounds(k) for _ = 1, k do ping:post(); pong:wait(10) end end
    rounds(2000)
    collectgarbage() collectgarbage("stop")
    local before = collectgarbage("count")
    rounds(5000)
    local grown = collectgarbage("count") - before
    collectgarbage("restart")
    print(n, grown < 16, grown)
end)
]])
        assert.matches("^7000\ttrue\t", r.stdout)
    end)
end)

describe("dpdk.queue", function()
    it("hands values over in FIFO order, waiting while empty", function()
        local r = run([[
rt:block_on(function()
    local q = dpdk.queue.new(8)
    local got = {}
    local poppers = {}
    for i = 1, 3 do poppers[i] = dpdk.spawn(function() local v = q:pop(); got[#got + 1] = i .. "=" .. tostring(v) end) end
    q:push("a"); q:push(false); q:push({ 1 })
    for i = 1, 3 do poppers[i]:join() end
    print((table.concat(got, " "):gsub("table: 0x%x+", "t")))
    q:push(1); q:push(2)
    print(q:count(), q:pop(), q:pop(), q:pop(0))
    print(q:try_pop())
end)
]])
        assert.are.equal("1=a 2=false 3=t\n2\t1\t2\tnil\ttimeout\nnil\tempty\n", r.stdout)
    end)

    it("makes a pusher wait while the queue is full, in FIFO order", function()
        local r = run([[
rt:block_on(function()
    local q = dpdk.queue.new(2)
    local trace = {}
    print(q:try_push(1), q:try_push(2), q:try_push(3))
    print(q:push(3, 0))
    print(q:push(3, 0.01))
    for i = 3, 5 do
        dpdk.spawn(function() q:push(i); trace[#trace + 1] = "pushed " .. i end)
    end
    local out = {}
    for _ = 1, 5 do out[#out + 1] = q:pop(1) end
    dpdk.yield()
    print(table.concat(out, " "), q:count())
    print(table.concat(trace, ", "))
end)
]])
        assert.are.equal("true\ttrue\tnil\tfull\nnil\ttimeout\nnil\ttimeout\n1 2 3 4 5\t0\n"
            .. "pushed 3, pushed 4, pushed 5\n", r.stdout)
    end)

    it("times a popper out and forgets it", function()
        local r = run([[
rt:block_on(function()
    local q = dpdk.queue.new()
    print(q:pop(0.01))
    local late = dpdk.spawn(function() return q:pop(10) end)
    q:push("v")
    print(late:join())
    print(q:count())
end)
]])
        assert.are.equal("nil\ttimeout\ntrue\tv\n0\n", r.stdout)
    end)

    it("rejects nil values and bad capacities", function()
        local r = run([[
print(pcall(dpdk.queue.new, 0))
print(pcall(dpdk.queue.new, 1.5))
local q = dpdk.queue.new(1)
print(pcall(q.push, q, nil))
]])
        assert.matches("false\t.*expected a capacity >= 1 %(or nil: unbounded%), got 0\n"
            .. "false\t.*got 1.5\nfalse\t.*the value must not be nil", r.stdout)
    end)
end)

-- dpdk.channel: named channels between workers (rte_ring based). Each test
-- runs a 2-worker runtime without devices in a fresh dpdklua. Nothing here
-- waits for time to pass: waits end on conditions, and timeouts are only
-- checked where nothing can arrive.
local child = require "spec.helpers.child"

local function run(body, opts)
    opts = opts or {}
    local cfg = child.config({ cores = { 0, 1 } })
    local code = ([[
local dpdk = require "dpdk"
local C = require "dpdk.cdef"
local rt = assert(dpdk.runtime{ workers = 2, config = %q })
%s
]]):format(cfg, body)
    return child.run_ok(code, opts)
end

describe("dpdk.channel", function()
    it("carries values in order within one worker", function()
        local r = run([[
rt:block_on(function()
    local ch = dpdk.channel("local", 8)
    local values = { 1, "two", false, { t = { 3, 4 }, s = "x" }, 5.5, "" }
    for _, v in ipairs(values) do assert(ch:send(v)) end
    print(ch:count(), ch:capacity())
    for _ = 1, #values do
        local v = ch:receive()
        io.write(type(v) == "table" and (v.s .. v.t[1] .. v.t[2]) or tostring(v), ",")
    end
    print()
    print(ch:count(), dpdk.channel("local") ~= nil, dpdk.channel("local"):count())
end)
]])
        assert.are.equal("6\t8\n1,two,false,x34,5.5,,\n0\ttrue\t0\n", r.stdout)
    end)

    it("is the same channel on every worker, and carries many messages both ways", function()
        local r = run([[
local N = 20000
rt:block_on(function()
    local up, down = dpdk.channel("up", 64), dpdk.channel("down", 64)
    -- worker 1 echoes each message from down to up, in order
    local echo = dpdk.spawn_on(1, function(n)
        local d = require "dpdk"
        local up, down = d.channel("up"), d.channel("down")
        for _ = 1, n do
            local m = down:receive()
            assert(up:send({ seq = m.seq, w = d.worker_id(), pad = m.pad }))
        end
        return "echoed"
    end, N)
    -- worker 1 also sends on its own: a second sender to "up"
    local own = dpdk.spawn_on(1, function(n)
        local d = require "dpdk"
        local up = d.channel("up")
        for i = 1, n do assert(up:send({ own = i })) end
        return "own sent"
    end, N)
    local sender = dpdk.spawn(function()
        for i = 1, N do assert(down:send({ seq = i, pad = ("x"):rep(i % 100) })) end
    end)
    local next_seq, next_own, bad = 1, 1, 0
    for _ = 1, 2 * N do
        local m = up:receive()
        if m.own then
            if m.own ~= next_own then bad = bad + 1 end
            next_own = next_own + 1
        else
            if m.seq ~= next_seq or m.w ~= 1 or #m.pad ~= m.seq % 100 then bad = bad + 1 end
            next_seq = next_seq + 1
        end
    end
    sender:join()
    print(echo:join())
    print(own:join())
    print(next_seq - 1, next_own - 1, bad, up:count(), down:count(),
        tonumber(C.dl_channel_messages_live()))
end)
]], { timeout = 60 })
        assert.are.equal("true\techoed\ntrue\town sent\n20000\t20000\t0\t0\t0\t0\n", r.stdout)
    end)

    it("makes a sender wait while the channel is full; its worker keeps serving", function()
        local r = run([[
rt:block_on(function()
    local data, progress = dpdk.channel("data", 2), dpdk.channel("progress")
    local sender = dpdk.spawn_on(1, function()
        local d = require "dpdk"
        local data, progress = d.channel("data"), d.channel("progress")
        for i = 1, 5 do
            assert(data:send(i))
            progress:send(i)
        end
        return "all sent"
    end)
    -- the first two fit; the third send waits for room
    print(progress:receive(), progress:receive(), data:count())
    -- nothing can arrive while nobody drains "data"
    print(progress:receive(0.05))
    print(sender:done(), data:count())
    -- worker 1 serves other tasks while its sender waits
    print(dpdk.spawn_on(1, function() return "worker 1 serves" end):join())
    -- a send with a timeout on a full channel gives up
    print(data:send(99, 0.01))
    print(data:send(99, 0))
    -- draining lets the sender go on, in order
    local got = {}
    for i = 1, 5 do got[i] = data:receive() end
    print(table.concat(got, ","))
    print(sender:join())
    for _ = 3, 5 do progress:receive() end
    print(data:count(), progress:count())
end)
]])
        assert.are.equal("1\t2\t2\nnil\ttimeout\nfalse\t2\ntrue\tworker 1 serves\n"
            .. "nil\ttimeout\nnil\ttimeout\n1,2,3,4,5\ntrue\tall sent\n0\t0\n", r.stdout)
    end)

    it("makes a sender wait within one worker until a task there drains it", function()
        local r = run([[
rt:block_on(function()
    local ch = dpdk.channel("tiny", 1)
    local trace = {}
    local producer = dpdk.spawn(function()
        for i = 1, 4 do ch:send(i); trace[#trace + 1] = "s" .. i end
    end)
    local consumer = dpdk.spawn(function()
        for _ = 1, 4 do
            local v = ch:receive() -- before #trace: the other task appends meanwhile
            trace[#trace + 1] = "r" .. v
        end
    end)
    producer:join(); consumer:join()
    print(table.concat(trace, " "))
end)
]])
        -- FIFO: every value received once, in order; the producer never ran
        -- more than the capacity (1) ahead of the consumer
        local s, rs, most_ahead = {}, {}, 0
        for kind, n in r.stdout:gmatch("([sr])(%d)") do
            if kind == "s" then s[#s + 1] = tonumber(n) else rs[#rs + 1] = tonumber(n) end
            most_ahead = math.max(most_ahead, #s - #rs)
        end
        assert.are.equal(1, most_ahead, r.stdout)
        assert.are.same({ 1, 2, 3, 4 }, s)
        assert.are.same({ 1, 2, 3, 4 }, rs)
    end)

    it("receive waits only the receiving task, and times out with nil, \"timeout\"", function()
        local r = run([[
rt:block_on(function()
    local ch = dpdk.channel("quiet")
    local ticks = 0
    local ticker = dpdk.spawn(function()
        while ticks < 1e9 do ticks = ticks + 1; dpdk.yield() end
    end)
    print(ch:receive(0))
    local t0 = dpdk.now()
    print(ch:receive(0.05))
    print(dpdk.now() - t0 >= 0.049, ticks > 0)
    -- the timed-out waits left nothing behind: a message goes to the next receive
    assert(ch:send("after"))
    print(ch:receive(0), ch:count())
    -- a waiting receiver on worker 1 gets a message sent later from worker 0
    local h = dpdk.spawn_on(1, function() return require("dpdk").channel("quiet"):receive() end)
    print(h:join(0.01))
    ch:send({ hello = "w1" })
    local ok, v = h:join()
    print(ok, v.hello)
    ticks = 1e9
    ticker:join()
    print(pcall(ch.receive, ch, -1))
end)
]])
        assert.matches("^nil\ttimeout\nnil\ttimeout\ntrue\ttrue\nafter\t0\nfalse\ttimeout\n"
            .. "true\tw1\nfalse\t[^\n]*timeout must be seconds >= 0", r.stdout)
    end)

    it("refuses values that cannot cross, naming the path and the type", function()
        local r = run([[
local ffi = require "ffi"
rt:block_on(function()
    local ch = dpdk.channel("strict")
    local cases = { nil, print, io.stdout, ffi.new("int[1]"), coroutine.create(print),
        setmetatable({}, {}), { a = { b = { print } } }, ch }
    for i = 1, 8 do
        local ok, err = pcall(ch.send, ch, cases[i])
        print(ok, err)
    end
    print(ch:count())
end)
]])
        local lines = {}
        for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(9, #lines, r.stdout)
        assert.matches("^false\t.*ch:send: the value is nil: channels carry non%-nil values",
            lines[1])
        assert.matches("ch:send: the value is a function", lines[2], 1, true)
        assert.matches("ch:send: the value is userdata", lines[3], 1, true)
        assert.matches("ch:send: the value is cdata", lines[4], 1, true)
        assert.matches("ch:send: the value is a coroutine", lines[5], 1, true)
        assert.matches("ch:send: the value is a table with a metatable", lines[6], 1, true)
        assert.matches("ch:send: the value.a.b[1] is a function", lines[7], 1, true)
        assert.matches("ch:send: the value is a dpdk channel: pass its name", lines[8], 1, true)
        assert.are.equal("0", lines[9])
    end)

    it("refuses bad names and capacities, and waiting outside a task", function()
        local r = run([[
print(pcall(dpdk.channel, 42))
print(pcall(dpdk.channel, ""))
print(pcall(dpdk.channel, ("n"):rep(200)))
print(pcall(dpdk.channel, "c", 0))
print(pcall(dpdk.channel, "c", 2^21))
local ch = dpdk.channel("c", 4)
print(pcall(dpdk.channel, "c", 8))
print(dpdk.channel("c", 4):capacity(), dpdk.channel("c"):capacity())
print(ch:receive(0))
print(pcall(ch.receive, ch))
print(pcall(ch.receive))
]])
        local lines = {}
        for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(10, #lines, r.stdout)
        assert.matches("expected a name %(string%), got number", lines[1])
        assert.matches("the name must be 1..127 bytes, got 0", lines[2], 1, true)
        assert.matches("the name must be 1..127 bytes, got 200", lines[3], 1, true)
        assert.matches("capacity must be a positive integer", lines[4], 1, true)
        assert.matches("capacity must be 1..1048576 messages", lines[5], 1, true)
        assert.matches("channel 'c' already exists with capacity 4, not 8", lines[6], 1, true)
        assert.are.equal("4\t4", lines[7])
        assert.are.equal("nil\ttimeout", lines[8])
        assert.matches("ch:receive on an empty channel must be called from a task", lines[9], 1,
            true)
        assert.matches("call it as ch:receive%(...%)", lines[10])
    end)

    it("frees messages still queued when the runtime shuts down", function()
        local body = [[
rt:block_on(function()
    local ch = dpdk.channel("left", 100)
    for i = 1, 30 do ch:send(("m"):rep(i)) end
    dpdk.spawn_on(1, function()
        local ch = require("dpdk").channel("left")
        for i = 1, 20 do ch:send({ i = i }) end
    end):join()
    for _ = 1, 10 do ch:receive() end
    print(ch:count(), C.dl_channel_messages_live())
end)
local ch = dpdk.channel("left")
print(ch:count())
print(rt:shutdown())
print(C.dl_channel_messages_live())
print(pcall(ch.count, ch))
local rt2 = assert(dpdk.runtime{ workers = 1, config = rt_config })
print(dpdk.channel("left"):count(), pcall(ch.count, ch))
rt2:shutdown()
]]
        body = body:gsub("rt_config", ("%q"):format(child.config({ cores = { 0, 1 } })))
        local r = run(body, { env = { DPDKLUA_LOG = "info" } })
        assert.matches("^40\t40LL\n40\ntrue\n0LL\nfalse\t[^\n]*channel 'left' belonged to a "
            .. "runtime that has shut down\n0\tfalse", r.stdout)
        assert.matches("channel 'left': 40 message(s) nobody received, freed", r.stderr, 1, true)
    end)
end)

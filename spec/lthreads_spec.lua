-- Light threads (issue 8): dpdk.spawn runs the child until its first wait,
-- dpdk.kill, dpdk.wait (first to end), task-end hooks, and waits inside
-- coroutines that user code makes inside a task (coroutine.create/wrap).
-- Most tests need no network (a device-less runtime); the socket ones talk
-- to a python peer through the tap dll0 (10.145.0.0/24).
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local function run(body, opts)
    opts = opts or {}
    local cfg = child.config({ cores = { 0 } })
    return child.run_ok(([[
local dpdk = require "dpdk"
local sched = require "dpdk.sched"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
]]):format(cfg) .. body, opts)
end

describe("dpdk.spawn", function()
    it("runs the child until its first wait before it returns", function()
        local r = run([[
local trace = {}
rt:block_on(function()
    local h = dpdk.spawn(function(x)
        trace[#trace + 1] = "child " .. x
        dpdk.sleep(0.01)
        trace[#trace + 1] = "child woke"
    end, "a")
    trace[#trace + 1] = "spawn returned " .. h.state
    h:join()
end)
print(table.concat(trace, ", "))
]])
        assert.are.equal("child a, spawn returned waiting, child woke\n", r.stdout)
    end)

    it("returns a finished handle when the child never waits", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn(function() return 1, 2 end)
    print(h:done(), dpdk.wait(h))
end)
]])
        assert.are.equal("true\ttrue\t1\t2\n", r.stdout)
    end)

    it("nests: a child's own children run before the child goes on", function()
        local r = run([[
local trace = {}
rt:block_on(function()
    dpdk.spawn(function()
        trace[#trace + 1] = "a"
        dpdk.spawn(function() trace[#trace + 1] = "b"; dpdk.yield(); trace[#trace + 1] = "b2" end)
        trace[#trace + 1] = "a2"
    end)
    trace[#trace + 1] = "main"
    dpdk.sleep(0.01)
end)
print(table.concat(trace, " "))
]])
        assert.are.equal("a b a2 main b2\n", r.stdout)
    end)
end)

describe("the scheduler's waiters", function()
    it("keeps every waiter apart when thousands of tokens share their low bits", function()
        -- tokens 1024 apart fall in the same slot of the waiters' table at any
        -- size it grows to for them: most go to its spill; some waiters are
        -- killed, some time out, the rest are woken once each, out of order
        local r = run([[
rt:block_on(function()
    local n, tokens, got, tasks = 3000, {}, {}, {}
    for i = 1, n do
        tokens[i] = sched.token()
        for _ = 1, 1023 do sched.token() end
    end
    for i = 1, n do
        tasks[i] = dpdk.spawn(function()
            local why, arg = sched.wait(tokens[i], i % 7 == 0 and 0.05 or nil)
            got[i] = why .. ":" .. tostring(arg)
        end)
    end
    local parked = 0
    for i = 1, n do if sched.is_waiting(tokens[i]) then parked = parked + 1 end end
    local woken, again = 0, 0
    for i = n, 1, -1 do
        if i % 5 == 0 then
            assert(dpdk.kill(tasks[i]))
        elseif i % 7 ~= 0 then
            if sched.wake(tokens[i], i) then woken = woken + 1 end
            if sched.wake(tokens[i], -i) then again = again + 1 end
        end
    end
    dpdk.sleep(0.2)
    local right = 0
    for i = 1, n do
        local want = i % 5 == 0 and "nil" or i % 7 == 0 and "timeout:nil" or "event:" .. i
        if tostring(got[i]) == want then right = right + 1 end
        if sched.is_waiting(tokens[i]) then right = right - 1 end
    end
    print(parked, woken, again, right)
end)
]])
        -- 600 killed, 343 of the rest time out
        assert.are.equal("3000\t2057\t0\t3000\n", r.stdout)
    end)
end)

describe("dpdk.kill", function()
    it("kills a sleeping child: it never wakes, its timer is gone", function()
        local r = run([[
rt:block_on(function()
    local woke = false
    local h = dpdk.spawn(function() dpdk.sleep(0.05); woke = true end)
    print(dpdk.kill(h))
    print(h.state, h.killed, h:done())
    print(h:join())
    dpdk.sleep(0.1)
    print("woke", woke)
end)
]])
        assert.are.equal("true\ndead\ttrue\ttrue\nfalse\tkilled\nwoke\tfalse\n", r.stdout)
    end)

    it("follows OpenResty's rules on who may kill what, and only once", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn(function() dpdk.sleep(10) end)
    local other = dpdk.spawn(function() print("sibling:", dpdk.kill(h)) end)
    print("again:", h:kill(), select(2, h:kill()))
    local done = dpdk.spawn(function() return 1 end)
    print("ended:", dpdk.kill(done))
    print("ended twice:", dpdk.kill(done))
    print("waited:", dpdk.wait(done))
    local waited = dpdk.spawn(function() return 2 end)
    print(dpdk.wait(waited))
    print("after wait:", dpdk.kill(waited))
    local me_ok, me_err = pcall(dpdk.kill, "nope")
    print(me_ok, me_err:match("task handle") ~= nil)
end)
rt:block_on(function()
    -- the block_on task is no light thread; a timer's task neither
end)
]])
        assert.are.equal(table.concat({
            "sibling:\tnil\tkiller not parent",
            "again:\ttrue\talready waited or killed",
            "ended:\tnil\talready terminated",
            "ended twice:\tnil\talready waited or killed",
            "waited:\tnil\talready waited or killed",
            "true\t2",
            "after wait:\tnil\talready waited or killed",
            "false\ttrue", "" }, "\n"), r.stdout)
    end)

    it("kills a child waiting on a semaphore or in a join, leaving no stale waiter", function()
        local r = run([[
rt:block_on(function()
    local sema = dpdk.semaphore.new(0)
    local got = {}
    local a = dpdk.spawn(function() local ok = sema:wait(5); got[#got + 1] = "a" .. tostring(ok) end)
    local b = dpdk.spawn(function() local ok = sema:wait(5); got[#got + 1] = "b" .. tostring(ok) end)
    print(sema:count())
    print(dpdk.kill(a))
    print(sema:count())
    sema:post(1)
    dpdk.sleep(0.01)
    print(table.concat(got, " "), sema:count())
    -- a joiner that is killed is not woken when the joined task ends
    local long = dpdk.spawn(function() dpdk.sleep(0.02) end)
    local joiner = dpdk.spawn(function() long:join(); print("joiner woke") end)
    local g
    local waiter = dpdk.spawn(function()
        g = dpdk.spawn(function() dpdk.sleep(1) end)
        dpdk.wait(g)
    end)
    print(#long.joiners, #g.joiners)
    dpdk.kill(joiner)
    dpdk.kill(waiter)
    print(#long.joiners, #g.joiners)
    long:join()
    dpdk.sleep(0.01)
    print("done")
end)
]])
        assert.are.equal("-2\ntrue\n-1\nbtrue\t0\n1\t1\n0\t0\ndone\n", r.stdout)
    end)

    it("passes on what a semaphore or queue handed to a task killed before it ran", function()
        local r = run([[
rt:block_on(function()
    local sema = dpdk.semaphore.new(0)
    local got = {}
    local a = dpdk.spawn(function() local ok = sema:wait(5); got[#got + 1] = "a" .. tostring(ok) end)
    local b = dpdk.spawn(function() local ok = sema:wait(5); got[#got + 1] = "b" .. tostring(ok) end)
    sema:post(1)           -- a is woken with the unit ...
    print(dpdk.kill(a))    -- ... and killed before it runs: b gets it
    dpdk.sleep(0.01)
    print(table.concat(got, " "), sema:count())
    local q = dpdk.queue.new(4)
    local p1 = dpdk.spawn(function() local v = q:pop(); got[#got + 1] = "p1 " .. tostring(v) end)
    q:push("v1")
    dpdk.kill(p1)
    print(q:count(), q:pop(0))
end)
]])
        assert.are.equal("true\nbtrue\t0\n1\tv1\n", r.stdout)
    end)

    it("calls the task-end hooks for every end, killed ones too", function()
        local r = run([[
local ends = {}
sched.on_task_end(function(task, ok, err)
    ends[#ends + 1] = ("%s:%s:%s"):format(task.label or "?", tostring(ok), tostring(err):match("[^\n]*"))
end)
rt:block_on(function()
    local function label(l) sched.current_task().label = l end
    local a = dpdk.spawn(function() label("a"); return 1 end)
    local b = dpdk.spawn(function() label("b"); dpdk.yield(); error("bad", 0) end)
    local c = dpdk.spawn(function() label("c"); dpdk.sleep(1) end)
    dpdk.kill(c)
    b:join()
    label("main")
end)
table.sort(ends)
print(table.concat(ends, " "))
]])
        assert.are.equal("a:true:nil b:false:bad c:false:killed main:true:nil\n", r.stdout)
    end)
end)

describe("dpdk.wait", function()
    it("returns the first to end and leaves the others running", function()
        local r = run([[
rt:block_on(function()
    local slow = dpdk.spawn(function() dpdk.sleep(0.05); return "slow" end)
    local fast = dpdk.spawn(function() dpdk.sleep(0.01); return "fast", 1 end)
    print(dpdk.wait(slow, fast))
    print(slow:done())
    print(dpdk.wait(slow))
end)
]])
        assert.are.equal("true\tfast\t1\nfalse\ntrue\tslow\n", r.stdout)
    end)

    it("returns false and the error as raised for a failed thread", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn(function() dpdk.yield(); error({ code = 7 }) end)
    local ok, err = dpdk.wait(h)
    print(ok, type(err), err.code)
    local h2 = dpdk.spawn(function() dpdk.yield(); error("plain", 0) end)
    print(dpdk.wait(h2))
end)
]])
        assert.are.equal("false\ttable\t7\nfalse\tplain\n", r.stdout)
    end)

    it("refuses a thread of another parent and a task that is no light thread", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn(function() dpdk.sleep(0.01) end)
    local other = dpdk.spawn(function()
        print(pcall(dpdk.wait, h))
    end)
    local me = sched.current_task()
    print(select(2, pcall(dpdk.wait)))
    print(select(2, pcall(dpdk.wait, me)))
end)
]])
        assert.matches("false\t.*only the parent task can wait on the thread\n", r.stdout)
        assert.matches("expected at least one task handle", r.stdout, 1, true)
        assert.matches("not a user thread", r.stdout, 1, true)
    end)
end)

describe("waits inside user coroutines", function()
    it("sleep, yield and semaphores inside coroutine.wrap and create reach the scheduler", function()
        local r = run([[
rt:block_on(function()
    local trace = {}
    local other = dpdk.spawn(function()
        for i = 1, 3 do trace[#trace + 1] = "o" .. i; dpdk.yield() end
    end)
    local gen = coroutine.wrap(function(a)
        dpdk.yield()                         -- reaches the scheduler: "other" runs
        local b = coroutine.yield(a + 1)     -- plain yield: back to the caller
        dpdk.sleep(0.005)
        trace[#trace + 1] = "gen " .. b
        return "end"
    end)
    local got = gen(1)
    trace[#trace + 1] = "got " .. got
    local last = gen(5)
    trace[#trace + 1] = last
    local sema = dpdk.semaphore.new(0)
    local co = coroutine.create(function()
        local inner = coroutine.wrap(function() return sema:wait(1) end) -- two levels deep
        return inner()
    end)
    dpdk.timer.at(0.005, function() sema:post() end)
    print(coroutine.resume(co))
    print(coroutine.status(co))
    print(table.concat(trace, " "))
    print(sched.current_task() ~= nil, coroutine.wrap(function() return sched.current_task() end)()
        == sched.current_task())
end)
]])
        assert.are.equal("true\ttrue\ndead\no1 o2 got 2 o3 gen 5 end\ntrue\ttrue\n", r.stdout)
    end)

    it("shows a parked coroutine as normal to other tasks and refuses to resume it", function()
        local r = run([[
rt:block_on(function()
    local co = coroutine.create(function() dpdk.sleep(0.02); return "done" end)
    local h = dpdk.spawn(function() return coroutine.resume(co) end)
    print(coroutine.status(co), coroutine.resume(co))
    print(h:join())
    -- a coroutine left parked by a killed task is dead
    local co2 = coroutine.create(function() dpdk.sleep(5) end)
    local h2 = dpdk.spawn(function() coroutine.resume(co2) end)
    dpdk.kill(h2)
    print(coroutine.status(co2), coroutine.resume(co2))
end)
]])
        assert.are.equal("normal\tfalse\tcannot resume non-suspended coroutine\n"
            .. "true\ttrue\tdone\ndead\tfalse\tcannot resume dead coroutine\n", r.stdout)
    end)

    it("leaves plain coroutines outside tasks as in plain LuaJIT", function()
        local code = [[
local out = {}
local function p(...) local t = { ... } for i = 1, select("#", ...) do t[i] = tostring(t[i]) end
    out[#out + 1] = table.concat(t, " ") end
local co = coroutine.create(function(a, b)
    p("in", a, b, coroutine.status(coroutine.running()), coroutine.isyieldable())
    local c = coroutine.yield(a + b)
    p("c", c)
    error("oops")
end)
p(coroutine.resume(co, 1, 2))
p(coroutine.status(co))
p((select(2, coroutine.resume(co, "x")):gsub("0x%x+", "")))
p(coroutine.status(co), coroutine.resume(co))
local w = coroutine.wrap(function() coroutine.yield(1) error("werr") end)
p(w())
p(pcall(w))
p(pcall(w))
local function caller(f) local r = f() return r end
local w2 = coroutine.wrap(function() error("lvl0", 0) end)
p(pcall(caller, w2))
p(pcall(caller, w2))
p(pcall(coroutine.wrap(function() error({}) end)))
p(coroutine.running(), coroutine.isyieldable())
local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
p(gen(), gen(), gen())
print((table.concat(out, "\n"):gsub("table: 0x%x+", "table"):gsub("thread: 0x%x+", "thread")
    :gsub("[^%s]*/[^%s/]+%.lua:", "F:")))
]]
        local plain = child.run(code) -- before require "dpdk": the stock functions
        assert.are.equal(0, plain.status, plain.stderr)
        assert.matches("F:18: lvl0", plain.stdout, 1, true) -- wrap adds the caller's position
        local patched = child.run('local dpdk = require "dpdk" ' .. code) -- same line numbers
        assert.are.equal(0, patched.status, patched.stderr)
        assert.are.equal(plain.stdout, patched.stdout)
        -- inside a task the same code behaves the same, but for running/isyieldable
        local inside = run('rt:block_on(function()\n' .. code .. '\nend)')
        local function strip(s) return (s:gsub("F:%d+:", "F:")) end
        assert.are.equal(strip(plain.stdout):gsub("\nnil false\n", "\n"),
            (strip(inside.stdout):gsub("\nthread true\n", "\n")))
    end)
end)

describe("light threads and sockets (tap dll0)", function()
    local NET, IFNAME = 145, "dll0"
    -- 14500: waits for "go\n", then sends two lines and closes; 14501: echoes
    local HANDLERS = [[
def lines(c, addr):
    buf = b""
    while not buf.endswith(b"go\n"):
        b = c.recv(100)
        if not b: return
        buf += b
    c.sendall(b"line1\nline2\n"); c.close()
]]
    local server

    setup(function()
        server = net.kernel_peers("10.145.0.1", { [14500] = "lines", [14501] = "echo" }, HANDLERS)
    end)

    teardown(function()
        if server then server:kill(9) end
    end)

    local function run_net(body, after)
        return (net.run_on_tap(IFNAME, NET, body, { cores = { 0 }, after = after }))
    end

    it("reads a socket inside coroutine.wrap: the wait reaches the scheduler", function()
        local out = run_net([[
local s = assert(tcp.connect(PEER, 14500))
s:settimeout(10000)
local reader = coroutine.wrap(function()
    while true do
        local line, err = s:receive("*l")
        coroutine.yield(line or err)
    end
end)
-- the first read waits inside the wrapped coroutine: the thread that sends
-- "go" can only run if that wait parks this task in the scheduler
dpdk.spawn(function() dpdk.sleep(0.01); assert(s:send("go\n")) end)
print(reader(), reader(), reader())
]])
        assert.are.equal("line1\tline2\tclosed\n", out)
    end)

    it("kills a task waiting in receive; the peer's data later wakes nobody", function()
        local out = run_net([[
local s = assert(tcp.connect(PEER, 14501))
s:settimeout(10000)
local h = dpdk.spawn(function()
    local data, err = s:receive(5)
    print("killed task woke", data, err)
end)
print(h.state, dpdk.kill(h), h.state, h.killed)
assert(s:send("ping\n"))      -- the peer echoes: the killed task's token comes back
dpdk.sleep(0.2)
print(s:send("more\n"), h.state)
print(s:close())
]])
        assert.are.equal("waiting\ttrue\tdead\ttrue\n5\tdead\n1\n", out)
    end)

    it("lets a premature timer talk to a peer while rt:shutdown runs it", function()
        local out = run_net([[
dpdk.timer.at(100, function(premature)
    local s = assert(tcp.connect(PEER, 14501))
    s:settimeout(10000)
    assert(s:send("bye\n"))
    print(premature, s:receive())
    s:close()
end)
]], [[print(rt:shutdown())]])
        assert.are.equal("true\tbye\ntrue\n", out)
    end)

    it("lets another task read a socket whose reader was killed (a busy flag held by a "
        .. "dead task counts as free)", function()
        local out = run_net([[
local s = assert(tcp.connect(PEER, 14501))
s:settimeout(10000)
local h = dpdk.spawn(function() s:receive(5) end)
dpdk.kill(h)
assert(s:send("ping\n"))
print(s:receive(5))
]])
        assert.are.equal("ping\n\n", out) -- the echoed line, then print's newline
    end)
end)

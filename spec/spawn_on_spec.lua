-- dpdk.spawn_on: a function (bytecode or module name) runs as a task on
-- another worker, its results and errors come back to the handle's join.
-- Each test runs a 2-worker runtime without devices in a fresh dpdklua.
local child = require "spec.helpers.child"

local function run(body, opts)
    opts = opts or {}
    local cfg = child.config({ cores = { 0, 1 } })
    local code = ([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 2, config = %q })
%s
]]):format(cfg, body)
    return child.run_ok(code, opts)
end

describe("dpdk.spawn_on", function()
    it("runs the function on the target worker and returns its results to join", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn_on(1, function(a, b, t)
        local d = require "dpdk"
        return a + b, d.worker_id(), { sum = t.x[1] + t.x[2], s = "str" }, nil, false
    end, 2, 3, { x = { 10, 20 } })
    local ok, sum, w, t, n, f = h:join()
    print(ok, sum, w, t.sum, t.s, n, f, h:done(), h.worker)
    print(select("#", h:join()))
end)
]])
        assert.are.equal("true\t5\t1\t30\tstr\tnil\tfalse\ttrue\t1\n6\n", r.stdout)
    end)

    it("returns false and the remote error with its traceback and the worker", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn_on(1, function()
        local function deep() error("remote kaput") end
        deep()
    end)
    local ok, err = h:join()
    print(ok, err:match("^worker 1: ") ~= nil, err:match("remote kaput") ~= nil,
        err:match("stack traceback") ~= nil, err:match("in function 'deep'") ~= nil)
    print(dpdk.spawn_on(1, function() return "worker 1 still serves" end):join())
end)
]])
        assert.are.equal("false\ttrue\ttrue\ttrue\ttrue\ntrue\tworker 1 still serves\n",
            r.stdout)
    end)

    it("runs on its own worker, and from worker 1 on worker 0", function()
        local r = run([[
rt:block_on(function()
    print(dpdk.spawn_on(0, function() return require("dpdk").worker_id() end):join())
    print(dpdk.spawn_on(1, function()
        local d = require "dpdk"
        local ok, w = d.spawn_on(0, function() return require("dpdk").worker_id() end):join()
        local ok2, w2 = d.spawn_on(1, function() return require("dpdk").worker_id() end):join()
        return d.worker_id(), ok, w, ok2, w2
    end):join())
end)
]])
        assert.are.equal("true\t0\ntrue\t1\ttrue\t0\ttrue\t1\n", r.stdout)
    end)

    it("runs a module by name", function()
        local dir = child.tmpdir()
        local f = assert(io.open(dir .. "/spawn_on_spec_mod.lua", "w"))
        f:write([[return function(n) return n * 2, require("dpdk").worker_id() end]])
        f:close()
        local r = run(([[
package.path = %q .. "/?.lua;" .. package.path
rt:block_on(function()
    print(dpdk.spawn_on(1, "spawn_on_spec_mod", 21):join())
    print(dpdk.spawn_on(1, "no_such_spawn_on_module"):join())
end)
]]):format(dir))
        assert.matches("^true\t42\t1\nfalse\tworker 1: .*module 'no_such_spawn_on_module' "
            .. "not found", r.stdout)
    end)

    it("refuses a function with upvalues, naming them, and a C function", function()
        local r = run([[
local counter, label = 0, "x"
rt:block_on(function()
    print(pcall(dpdk.spawn_on, 1, function() counter = counter + 1; return label end))
    print(pcall(dpdk.spawn_on, 1, print))
end)
]])
        assert.matches("^false\t[^\n]*uses upvalues %(counter, label%) that cannot cross to other "
            .. "workers: pass them as arguments", r.stdout)
        assert.matches("\nfalse\t[^\n]*a C function cannot be sent to another worker", r.stdout)
    end)

    it("refuses arguments that cannot cross, naming the argument, the path and the type",
        function()
        local r = run([[
local ffi = require "ffi"
rt:block_on(function()
    local f = function() end
    local cases = {
        { f, function() end },
        { f, 1, { a = { b = print } } },
        { f, io.stdout },
        { f, ffi.new("int[1]") },
        { f, 1LL },
        { f, coroutine.create(f) },
        { f, setmetatable({}, {}) },
        { f, { [{}] = 1 } },
    }
    for _, c in ipairs(cases) do
        local ok, err = pcall(dpdk.spawn_on, 1, unpack(c))
        print(ok, err)
    end
end)
]])
        local lines = {}
        for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(8, #lines, r.stdout)
        assert.matches("^false\tdpdk.spawn_on: argument #1 is a function", lines[1])
        assert.matches("argument #2.a.b is a function", lines[2], 1, true)
        assert.matches("argument #1 is userdata", lines[3], 1, true)
        assert.matches("argument #1 is cdata %(convert it", lines[4])
        assert.matches("argument #1 is cdata", lines[5], 1, true)
        assert.matches("argument #1 is a coroutine", lines[6], 1, true)
        assert.matches("argument #1 is a table with a metatable", lines[7], 1, true)
        assert.matches("argument #1 has a key that is table", lines[8], 1, true)
        for i = 1, 7 do
            assert.matches("only nil, booleans, numbers, strings and tables", lines[i], 1, true)
        end
    end)

    it("returns an error when the results cannot cross back", function()
        local r = run([[
rt:block_on(function()
    print(dpdk.spawn_on(1, function() return 1, { f = print } end):join())
end)
]])
        assert.matches("^false\tworker 1: dpdk.spawn_on: result #2.f is a function", r.stdout)
    end)

    it("refuses a worker id that does not exist", function()
        local r = run([[
rt:block_on(function()
    for _, id in ipairs({ 2, -1, 0.5, "1" }) do
        print(pcall(dpdk.spawn_on, id, function() end))
    end
end)
print(pcall(dpdk.spawn_on, 1, function() end))
]])
        local lines = {}
        for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(5, #lines, r.stdout)
        assert.matches("no worker 2: this runtime has workers 0..1", lines[1], 1, true)
        assert.matches("no worker -1: this runtime has workers 0..1", lines[2], 1, true)
        assert.matches("no worker 0.5: ", lines[3], 1, true)
        assert.matches("no worker 1: ", lines[4], 1, true) -- the string "1"
        assert.matches("must be called from a task of the dpdk runtime", lines[5], 1, true)
    end)

    it("join with a timeout returns false, \"timeout\" and can join again", function()
        -- the remote task waits for our go on a channel: no timing involved
        local r = run([[
rt:block_on(function()
    local go = dpdk.channel("go")
    local h = dpdk.spawn_on(1, function()
        local d = require "dpdk"
        return "released by " .. d.channel("go"):receive()
    end)
    print(h:join(0.01))
    print(h:join(0))
    print(h:done())
    go:send("worker 0")
    print(h:join(30))
    print(pcall(h.join, h, -1))
end)
]])
        assert.matches("^false\ttimeout\nfalse\ttimeout\nfalse\ntrue\treleased by worker 0\n"
            .. "false\t[^\n]*timeout must be seconds >= 0", r.stdout)
    end)

    it("lets many tasks join one handle and many handles run at once", function()
        local r = run([[
rt:block_on(function()
    local h = dpdk.spawn_on(1, function() return "shared" end)
    local got = {}
    local js = {}
    for i = 1, 3 do js[i] = dpdk.spawn(function() got[i] = select(2, h:join()) end) end
    for i = 1, 3 do js[i]:join() end
    print(got[1], got[2], got[3])
    -- more at once than a mailbox holds (1024): senders wait for room
    local hs = {}
    for i = 1, 3000 do
        hs[i] = dpdk.spawn_on(i % 2, function(x) return x * x end, i)
    end
    local bad = 0
    for i = 1, 3000 do
        local ok, v = hs[i]:join()
        if not ok or v ~= i * i then bad = bad + 1 end
    end
    print("bad", bad)
end)
]])
        assert.are.equal("shared\tshared\tshared\nbad\t0\n", r.stdout)
    end)

    it("fails a handle whose task never ended with \"runtime stopping\" at shutdown", function()
        local r = run([[
local h
rt:block_on(function()
    local started = dpdk.channel("started")
    h = dpdk.spawn_on(1, function()
        local d = require "dpdk"
        d.channel("started"):send(true)
        d.channel("never"):receive() -- nobody sends
    end)
    started:receive()
end)
print(h:done())
print(rt:shutdown())
print(h:done(), h:join())
]])
        assert.are.equal("false\ntrue\ntrue\tfalse\truntime stopping\n", r.stdout)
    end)
end)

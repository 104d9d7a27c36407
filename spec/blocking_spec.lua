-- dpdk.blocking: jobs on the blocking pool (threads off the workers' cores,
-- each with its own Lua state). Each test runs a fresh dpdklua child. Jobs
-- that must still be running when the test looks wait for a file the test
-- creates, so nothing here depends on how fast the machine is.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local PRELUDE = [[
local dpdk = require "dpdk"
local C = require "dpdk.cdef"
local DIR = %q
local function exists(p) local f = io.open(p) if f then f:close() end return f ~= nil end
local function touch(p) local f = assert(io.open(p, "w")) f:close() end
]]

local function run(body, opts)
    opts = opts or {}
    local dir = child.tmpfile("-blk")
    os.execute("mkdir -p " .. child.quote(dir))
    local cfg = child.config({ cores = { 0 } })
    local code = PRELUDE:format(dir) .. ([[
package.path = DIR .. "/?.lua;" .. package.path
local rt = assert(dpdk.runtime{ workers = 1, config = %q%s })
%s
]]):format(cfg, opts.rt_opts or "", body)
    local r = child.run_ok(code, { timeout = 60 })
    return r.stdout, r.stderr, dir
end

describe("dpdk.blocking", function()
    it("runs file I/O in the pool and returns its results as values", function()
        local out = run([[
rt:block_on(function()
    local path = DIR .. "/data.txt"
    print(dpdk.blocking(function(p, text)
        local f = assert(io.open(p, "w"))
        f:write(text)
        f:close()
        f = assert(io.open(p))
        local back = f:read("*a")
        f:close()
        return #back, back, nil, { lines = select(2, back:gsub("\n", "")) }
    end, path, "one\ntwo\n"))
    local ok, n, back, none, t = dpdk.blocking(function(p)
        local f = assert(io.open(p))
        local s = f:read("*a") f:close()
        return #s, s, nil, { x = 1 }
    end, path)
    print(ok, n, back == "one\ntwo\n", none, t.x)
end)
]])
        assert.matches("^true\t8\tone\ntwo\n\tnil\ttable: 0x%x+\n", out)
        assert.matches("\ntrue\t8\ttrue\tnil\t1\n$", out)
    end)

    it("loads a module by name with the runtime's package.path, and runs off the workers' cores",
        function()
        local out = run([[
local f = assert(io.open(DIR .. "/blk_mod.lua", "w"))
f:write([=[
local ffi = require "ffi"
pcall(ffi.cdef, "int sched_getaffinity(int pid, size_t size, uint8_t *mask);")
return function(tag)
    local mask = ffi.new("uint8_t[128]")
    assert(ffi.C.sched_getaffinity(0, 128, mask) == 0)
    local cpus = {}
    for i = 0, 1023 do
        if bit.band(mask[math.floor(i / 8)], bit.lshift(1, i % 8)) ~= 0 then cpus[#cpus + 1] = i end
    end
    return tag, table.concat(cpus, ","), require("dpdk.cdef").dl_self() == nil
end
]=])
f:close()
rt:block_on(function()
    print(dpdk.core_id(), dpdk.blocking("blk_mod", "hi"))
end)
]])
        local core, tag, cpus, no_worker = out:match("^(%d+)\ttrue\t(%w+)\t([%d,]+)\t(%w+)\n$")
        assert.truthy(core, out)
        assert.are.equal("hi", tag)
        assert.are.equal("true", no_worker) -- not a worker's thread
        for c in cpus:gmatch("%d+") do
            assert.are_not.equal(core, c, "a pool thread may run on the worker's core: " .. out)
        end
    end)

    it("returns errors with the traceback, and refuses upvalues and bad options clearly",
        function()
        local out = run([[
rt:block_on(function()
    local ok, err = dpdk.blocking(function() local t = nil return t.x end)
    print(ok, err:match("attempt to index") ~= nil, err:match("stack traceback") ~= nil)
    print(dpdk.blocking("no_such_module_xyz"))
    local up = 1
    print(pcall(dpdk.blocking, function() return up end))
    print(pcall(dpdk.blocking, function() return io.stdout end))
    print(pcall(dpdk.blocking, { timeout = -1 }, function() end))
    print(pcall(dpdk.blocking, 42))
end)
print(pcall(dpdk.blocking, function() end))
print(pcall(dpdk.runtime, { workers = 1, blocking_threads = 0 }))
]])
        local lines = {}
        for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal("false\ttrue\ttrue", lines[1], out)
        assert.matches("^false\t.*module 'no_such_module_xyz' not found", lines[2])
        assert.matches("the function uses upvalues %(up%)", out)
        assert.matches("false\t.*dpdk.blocking: result #1 is userdata", out)
        assert.matches("false\t.*timeout must be seconds >= 0 or nil, got %-1", out)
        assert.matches("false\t.*expected a module name or a function, got number", out)
        assert.matches("false\t.*dpdk.blocking must be called from a task", out)
        assert.matches("blocking_threads must be 1..256, got 0", out)
    end)

    it("stops waiting after its timeout while the job runs on", function()
        local out = run([[
rt:block_on(function()
    local t0 = dpdk.now()
    print(dpdk.blocking({ timeout = 0.2 }, function(dir)
        local ffi = require "ffi"
        pcall(ffi.cdef, "int usleep(unsigned int usec);")
        local f = assert(io.open(dir .. "/started", "w")) f:close()
        while not io.open(dir .. "/go") do ffi.C.usleep(1000) end
        f = assert(io.open(dir .. "/finished", "w")) f:close()
        return "late"
    end, DIR))
    print(dpdk.now() - t0 >= 0.2, exists(DIR .. "/started"))
    touch(DIR .. "/go")
    while not exists(DIR .. "/finished") do dpdk.sleep(0.01) end
    -- the pool goes on serving after an abandoned job
    print(dpdk.blocking({ timeout = 30 }, function() return "next" end))
end)
print(rt:shutdown(10))
]])
        assert.are.equal("false\ttimeout\ntrue\ttrue\ntrue\tnext\ntrue\n", out)
    end)

    it("queues work beyond blocking_threads until a thread is free", function()
        local out = run([[
rt:block_on(function()
    local function job(dir, name, wait_for)
        local ffi = require "ffi"
        pcall(ffi.cdef, "int usleep(unsigned int usec);")
        local f = assert(io.open(dir .. "/" .. name .. ".started", "w")) f:close()
        if wait_for then
            while not io.open(dir .. "/" .. wait_for) do ffi.C.usleep(1000) end
        end
        return name
    end
    local a = dpdk.spawn(function() return dpdk.blocking(job, DIR, "a", "go") end)
    while not exists(DIR .. "/a.started") do dpdk.sleep(0.01) end
    local b = dpdk.spawn(function() return dpdk.blocking(job, DIR, "b") end)
    for _ = 1, 20 do dpdk.sleep(0.01) end -- b is queued: one thread, busy with a
    local rtp = C.dl_worker_runtime(C.dl_self())
    print(C.dl_blocking_threads(rtp), C.dl_blocking_running(rtp), exists(DIR .. "/b.started"))
    touch(DIR .. "/go")
    print(a:join())
    print(b:join())
end)
]], { rt_opts = ", blocking_threads = 1" })
        assert.are.equal("1\t1\tfalse\ntrue\ttrue\ta\ntrue\ttrue\tb\n", out)
    end)

    it("lets rt:shutdown wait for a running job, and name one that does not finish", function()
        local out, _, dir = run([[
rt:block_on(function()
    dpdk.spawn(function()
        dpdk.blocking(function(dir)
            local ffi = require "ffi"
            pcall(ffi.cdef, "int usleep(unsigned int usec);")
            local f = assert(io.open(dir .. "/short.started", "w")) f:close()
            ffi.C.usleep(300000)
            f = assert(io.open(dir .. "/short.done", "w")) f:close()
        end, DIR)
    end)
    while not exists(DIR .. "/short.started") do dpdk.sleep(0.01) end
end)
print("short", rt:shutdown(10))
print("done after shutdown", exists(DIR .. "/short.done"))
rt = assert(dpdk.runtime{ workers = 1, config = rt.config_path })
rt:block_on(function()
    dpdk.spawn(function()
        dpdk.blocking(function(dir)
            local ffi = require "ffi"
            pcall(ffi.cdef, "int usleep(unsigned int usec);")
            local f = assert(io.open(dir .. "/stuck.started", "w")) f:close()
            while not io.open(dir .. "/release") do ffi.C.usleep(1000) end
        end, DIR)
    end)
    while not exists(DIR .. "/stuck.started") do dpdk.sleep(0.01) end
end)
print("stuck", rt:shutdown(0.4))
print("alive", rt.ptr ~= nil)
touch(DIR .. "/release")
rt = assert(dpdk.runtime{ workers = 1, config = rt.config_path })
print("again", rt:block_on(function() return dpdk.blocking(function() return 7 end) end))
print(rt:shutdown())
]])
        assert.matches("^short\ttrue\ndone after shutdown\ttrue\n", out)
        assert.matches("\nstuck\tnil\ttimeout: 1 blocking job%(s%) did not finish within [%d.]+ s: "
            .. "function at [^\n]+%.lua:%d+ %(their threads run on", out)
        assert.matches("\nalive\tfalse\nagain\ttrue\t7\ntrue\n$", out)
        assert.truthy(dir)
    end)

    it("keeps a TCP echo on the same worker answering while a CPU-heavy job runs", function()
        local dir = child.tmpfile("-blkcpu")
        os.execute("mkdir -p " .. child.quote(dir))
        local svc = net.service("dlo0", 210, ([[
local DIR = %q
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7100))
    dpdk.spawn(function()
        local ok, sum, turns = dpdk.blocking(function(dir)
            local f = assert(io.open(dir .. "/spinning", "w")) f:close()
            local x, turns = 0, 0
            repeat -- pure Lua work that never yields: it would stall a worker
                for i = 1, 1000000 do x = (x + i) %% 1000003 end
                turns = turns + 1
                f = io.open(dir .. "/stop")
            until f
            f:close()
            return x, turns
        end, DIR)
        print("JOB", ok, type(sum), turns >= 1) io.stdout:flush()
    end)
    print("READY") io.stdout:flush()
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            while true do
                local data = c:receiveany(65536)
                if not data then break end
                assert(c:send(data))
            end
            c:close()
        end)
    end
end)
]]):format(dir))
        finally(svc.stop)
        assert.truthy(child.wait_until(function()
            return child.read(dir .. "/spinning") ~= nil and io.open(dir .. "/spinning") ~= nil
        end, 30), "the job did not start")
        local rc, out = net.python(([[
import socket, os
for i in range(20):
    s = socket.create_connection(("%s", 7100), timeout=10)
    msg = ("ping %%d " %% i).encode() * 100
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = s.recv(65536)
        if not d: break
        got += d
    assert got == msg, (i, len(got))
    s.close()
assert not os.path.exists("%s/stop")
print("echoed 20")
open("%s/stop", "w").close()
]]):format(svc.ip, dir, dir))
        assert.are.equal(0, rc, out)
        assert.matches("echoed 20", out)
        assert.truthy(svc.proc:wait_output("JOB\ttrue\tnumber\ttrue", 30), svc.proc:stdout())
    end)
end)

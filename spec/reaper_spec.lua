-- scripts/test.sh ends every process the suite started, however it escaped:
-- a spec that leaves a child in a session of its own (setsid) under a name
-- that says nothing of the spec's files, and a run killed with SIGKILL (no
-- trap runs: the next run ends what it left). A dpdklua server leaked so once
-- and busy-polled a core for 52 minutes. Each case runs test.sh itself on a
-- small spec that leaks a `sleep` (nothing here needs a tap or a core).
local child = require "spec.helpers.child"

local ffi = require "ffi"
local ROOT = os.getenv("DPDKLUA_ROOT") or "."

-- The leak: `sleep 600` renamed (bash's exec -a) to LEAK_NAME, in its own
-- session, its pid written to LEAK_PIDFILE. LEAK_HOLD=1: the spec then waits
-- (to be killed with its run); LEAK_NONE=1: it leaks nothing.
local LEAKY = [[
describe("a spec", function()
    it("leaves a process behind", function()
        if os.getenv("LEAK_NONE") then return end
        assert(os.execute(("setsid bash -c 'exec -a %s sleep 600' < /dev/null > /dev/null 2>&1 & "
            .. "echo $! > %s"):format(os.getenv("LEAK_NAME"), os.getenv("LEAK_PIDFILE"))))
        if os.getenv("LEAK_HOLD") then os.execute("sleep 600") end
    end)
end)
]]

local function alive(pid)
    -- a zombie has ended; the leaked process is nobody's child here, so none stays
    local stat = child.read("/proc/" .. pid .. "/stat")
    return stat ~= "" and not stat:match("^%d+ %(.-%) Z")
end

local function test_sh(spec, env, extra)
    local parts = {}
    for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. child.quote(v) end
    return ("cd %s && env %s bash scripts/test.sh %s"):format(child.quote(ROOT),
        table.concat(parts, " "), child.quote(spec)) .. (extra or "")
end

describe("scripts/test.sh's reaper", function()
    local spec, leaked
    before_each(function()
        spec = child.tmpfile("_leak_spec.lua", LEAKY)
        leaked = {}
    end)
    after_each(function()
        for _, pid in ipairs(leaked) do ffi.C.kill(pid, 9) end -- only if the case failed
    end)

    local function leak_env(tag)
        local name = ("dpdklua-leak-%s-%d-%d"):format(tag, os.time(), math.random(1e9))
        return { LEAK_NAME = name, LEAK_PIDFILE = child.tmpfile(".pid") }
    end

    local function leaked_pid(env)
        local pid = tonumber(child.read(env.LEAK_PIDFILE):match("%d+"))
        assert.is_truthy(pid, "the spec under test did not leak its process")
        leaked[#leaked + 1] = pid
        return pid
    end

    it("ends a child a spec left in its own session under another name", function()
        local env = leak_env("setsid")
        local rc, out = child.sh(test_sh(spec, env))
        assert.are.equal(0, rc, out)
        local pid = leaked_pid(env)
        assert.is_false(alive(pid), "pid " .. pid .. " still runs after its run ended:\n" .. out)
        assert.is_truthy(out:find("a spec left them", 1, true), out)
        assert.is_truthy(out:find(env.LEAK_NAME, 1, true), out) -- and names it
    end)

    it("ends at the next run what a run killed with SIGKILL left", function()
        local env = leak_env("sigkill")
        env.LEAK_HOLD = "1"
        -- in a session of its own (start_shell): its group is the run, not the leak
        local run = child.start_shell(test_sh(spec, env))
        -- the pid file is written when the leak is forked: wait until it leads a
        -- session of its own (setsid has run), or the SIGKILL below would reach it
        local pid
        assert.is_true(child.wait_until(function()
            pid = tonumber(child.read(env.LEAK_PIDFILE):match("%d+"))
            local sid = pid and child.read("/proc/" .. pid .. "/stat"):match("^%d+ %(.-%) %a %d+ %d+ (%d+)")
            return sid ~= nil and tonumber(sid) == pid
        end, 30), run:stdout() .. run:stderr())
        leaked[#leaked + 1] = pid
        ffi.C.kill(-run.pid, 9) -- test.sh, busted and the spec: no trap runs
        assert.is_true(child.wait_until(function() return not alive(run.pid) end, 10))
        assert.is_true(alive(pid), "the SIGKILL case needs the leak to outlive its run")
        local rc, out = child.sh(test_sh(spec, { LEAK_NONE = "1" }))
        assert.are.equal(0, rc, out)
        assert.is_false(alive(pid), "pid " .. pid .. " still runs after the next run:\n" .. out)
        assert.is_truthy(out:find("an earlier run", 1, true), out)
    end)
end)

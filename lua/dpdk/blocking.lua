-- dpdk.blocking — run blocking work on the blocking pool (host/blocking.c).
--
--   local ok, a, b = dpdk.blocking(fn_or_module_name, ...)
--   local ok, a = dpdk.blocking({ timeout = 2 }, fn_or_module_name, ...)
--
-- The pool's threads are off the workers' cores, each with its own Lua state
-- (the runtime's package.path/cpath), so the function crosses as bytecode
-- (no upvalues) or as a module name that returns a function, and arguments
-- and results as dpdk.codec data. The calling task parks on a token that its
-- worker's dl_poll hands back when the job is done; the worker keeps serving
-- its other tasks and its network meanwhile. Returns true, results... or
-- false, err (the job's error with its traceback, "timeout", or why it could
-- not run).
local ffi = require "ffi"
local buffer = require "string.buffer"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local codec = require "dpdk.codec"

local type, error, tostring, pcall, xpcall, unpack, pairs = type, error, tostring, pcall,
    xpcall, unpack, pairs
local traceback = debug.traceback

local M = {}

local WHAT = "dpdk.blocking"
local DL_OK = C.DL_OK

local pdata, plen, pfailed = ffi.new("const char *[1]"), ffi.new("size_t[1]"), ffi.new("int[1]")
local dec = buffer.new()

-- Jobs whose task waits on them, by token: a task killed while it waits
-- lets its job go (sched.on_wait_abandoned), as a timeout does.
local waiting = {}

sched.on_wait_abandoned(function(token)
    local job = waiting[token]
    if job then
        waiting[token] = nil
        C.dl_blocking_release(job)
    end
end)

local function errmsg()
    return ffi.string(C.dl_errmsg())
end

-- What shutdown reports name a job by: the module, or where the function was defined.
local function label_of(target)
    if type(target) == "string" then
        return "module " .. target
    end
    local info = debug.getinfo(target, "S")
    return ("function at %s:%d"):format(info.short_src, info.linedefined)
end

local function encode(target, ...)
    local msg = codec.target(WHAT, target, {})
    msg.args = codec.pack(WHAT, "argument", ...)
    return codec.encode(msg)
end

-- The job's answer: true, results... | false, err; frees the job.
local function collect(job)
    local data, len, failed = pdata[0], plen[0], pfailed[0]
    if failed ~= 0 then
        local err = ffi.string(data, len)
        C.dl_blocking_release(job)
        return false, err
    end
    dec:set(data, len)
    local ok, msg = pcall(dec.decode, dec)
    dec:reset()
    C.dl_blocking_release(job)
    if not ok then
        return false, WHAT .. ": undecodable result: " .. tostring(msg)
    end
    if not msg.ok then
        return false, msg.err
    end
    local r = msg.results
    return true, unpack(r, 1, r.n)
end

local function run(timeout, target, ...)
    sched.current_task(WHAT)
    local ok, encoded = pcall(encode, target, ...)
    if not ok then error(encoded, 3) end
    local token = sched.token()
    local job = C.dl_blocking_submit(encoded, #encoded, label_of(target), token)
    if job == nil then
        return false, errmsg()
    end
    local deadline = timeout and C.dl_now() + timeout
    while true do
        if C.dl_blocking_result(job, pdata, plen, pfailed) == DL_OK then
            return collect(job)
        end
        local remaining
        if deadline then
            remaining = deadline - C.dl_now()
            if remaining <= 0 then
                C.dl_blocking_release(job) -- a running job ends on its own; its result is dropped
                return false, "timeout"
            end
        end
        waiting[token] = job
        sched.wait(token, remaining)
        waiting[token] = nil
    end
end

-- dpdk.blocking([opts,] fn_or_module_name, ...) → true, results... | false, err
-- opts: { timeout = seconds } (how long this task waits; the job itself
-- cannot be interrupted and runs to its end).
function M.blocking(first, ...)
    if type(first) == "table" then
        local timeout = first.timeout
        if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
            error(WHAT .. ": timeout must be seconds >= 0 or nil, got " .. tostring(timeout), 2)
        end
        for k in pairs(first) do
            if k ~= "timeout" then
                error(WHAT .. ": unknown option '" .. tostring(k) .. "' (known: timeout)", 2)
            end
        end
        return run(timeout, ...)
    end
    return run(nil, first, ...)
end

-- The pool's size for the running runtime (nil outside a runtime).
function M.threads()
    local w = C.dl_self()
    if w == nil then return nil end
    return C.dl_blocking_threads(C.dl_worker_runtime(w))
end

-- Pool-thread side ----------------------------------------------------
-- host/blocking.c calls serve(bytes) in a pool thread's own Lua state: it
-- runs the job and returns its encoded answer. It raises only for a bug.

local function answer(ok, ...)
    if not ok then
        return codec.encode({ ok = false, err = tostring((...)) })
    end
    local good, results = pcall(codec.pack, WHAT, "result", ...)
    if not good then
        return codec.encode({ ok = false, err = results })
    end
    return codec.encode({ ok = true, results = results })
end

function M.serve(bytes)
    local ok, msg = pcall(buffer.decode, bytes)
    if not ok or type(msg) ~= "table" then
        return codec.encode({ ok = false, err = WHAT .. ": undecodable job: " .. tostring(msg) })
    end
    local loaded, fn = pcall(codec.load_target, WHAT, msg)
    if not loaded then
        return answer(false, fn)
    end
    local args = msg.args
    return answer(xpcall(fn, traceback, unpack(args, 1, args.n)))
end

return M

-- dpdk.remote — dpdk.spawn_on: run a function as a task on another worker.
--
-- The function travels as bytecode (or a module name) with its arguments,
-- encoded by dpdk.codec, through the target worker's mailbox; the target runs
-- it as a task and posts the results (or the error with its traceback) to the
-- mailbox of the worker that asked. The handle's join parks its task on a
-- sched token that the result message wakes: nothing polls.
local ffi = require "ffi"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local codec = require "dpdk.codec"

local unpack, type, error, tostring, pcall, xpcall, select = unpack, type, error, tostring,
    pcall, xpcall, select
local traceback = debug.traceback

local function pack(...)
    return { n = select("#", ...), ... }
end

local M = {}

local STOPPING = "runtime stopping"

-- This state's handles whose results have not come back: id -> handle.
local pending = {}
local next_id = 0

local Handle = {}
Handle.__index = Handle

local function errmsg()
    return ffi.string(C.dl_errmsg())
end

-- Post an encoded message to worker w; a full mailbox makes the calling task
-- wait for the next turn (the target drains its mailbox every turn). nil, err
-- when nobody will read it (the runtime is stopping, the worker has ended).
local function post(w, encoded)
    while true do
        local rc = C.dl_mail_post(w, encoded, #encoded)
        if rc == C.DL_OK then return true end
        if rc ~= C.DL_AGAIN then
            return nil, errmsg()
        end
        sched.yield()
    end
end

local function settle(h, ok, results)
    h.state = "done"
    h.ok, h.results = ok, results
    pending[h.id] = nil
    local joiners = h.joiners
    if joiners then
        h.joiners = nil
        for i = 1, #joiners do sched.wake(joiners[i]) end
    end
end

-- dpdk.spawn_on(worker_id, fn_or_module_name, ...) → handle
function M.spawn_on(worker_id, target, ...)
    local what = "dpdk.spawn_on"
    sched.current_task(what)
    local me = C.dl_self()
    local rt = C.dl_worker_runtime(me)
    local n = C.dl_runtime_worker_count(rt)
    if type(worker_id) ~= "number" or worker_id ~= math.floor(worker_id) or worker_id < 0
        or worker_id >= n then
        error(("%s: no worker %s: this runtime has workers 0..%d (see dpdk.worker_count())")
            :format(what, tostring(worker_id), n - 1), 2)
    end
    next_id = next_id + 1
    local msg = { op = "spawn", id = next_id, from = C.dl_worker_index(me) }
    local ok, err = pcall(codec.target, what, target, msg)
    if ok then
        ok, err = pcall(codec.pack, what, "argument", ...)
        msg.args = err
    end
    if not ok then error(err, 2) end
    local encoded = codec.encode(msg)
    local h = setmetatable({ id = next_id, worker = worker_id, state = "running" }, Handle)
    pending[next_id] = h
    local posted, err = post(C.dl_runtime_worker(rt, worker_id), encoded)
    if not posted then -- its join tells why, like any other failure
        settle(h, false, err)
    end
    return h
end

function Handle:done()
    return self.state == "done"
end

-- Wait for the remote task: true, results... | false, err. With timeout
-- (seconds), false, "timeout" when it has not ended by then (join again later).
function Handle:join(timeout)
    if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
        error("handle:join: timeout must be seconds >= 0 or nil, got " .. tostring(timeout), 2)
    end
    if self.state ~= "done" then
        sched.current_task("handle:join")
        local token = sched.token()
        local joiners = self.joiners
        if not joiners then
            joiners = {}
            self.joiners = joiners
        end
        joiners[#joiners + 1] = token
        local why = sched.wait(token, timeout)
        if why == "timeout" and self.state ~= "done" then
            for i = #joiners, 1, -1 do
                if joiners[i] == token then table.remove(joiners, i) end
            end
            return false, "timeout"
        end
    end
    if not self.ok then
        return false, self.results
    end
    local r = self.results
    return true, unpack(r, 1, r.n)
end

Handle.__tostring = function(self)
    return ("dpdk remote task %d on worker %d (%s)"):format(self.id, self.worker, self.state)
end

-- Mail ops -------------------------------------------------------------

local function reply(me, msg, ok, results)
    local back = { op = "result", id = msg.id, worker = C.dl_worker_index(me), ok = ok }
    if ok then
        local good, err = pcall(codec.pack, "dpdk.spawn_on", "result",
            unpack(results, 1, results.n))
        if not good then
            back.ok, back.err = false, ("worker %d: %s"):format(back.worker, err)
        else
            back.results = results
        end
    else
        back.err = ("worker %d: %s"):format(back.worker, tostring(results))
    end
    local encoded = codec.encode(back)
    local to = C.dl_runtime_worker(C.dl_worker_runtime(me), msg.from)
    local posted, err = post(to, encoded)
    if not posted then
        C.dl_log_write(C.DL_LOG_WARN, "remote", "cannot return a result to worker "
            .. tostring(msg.from) .. ": " .. tostring(err))
    end
end

-- The target side: runs as its own task on the worker the message reached.
local function run_spawned(msg)
    local me = C.dl_self()
    local ok, fn = pcall(codec.load_target, "dpdk.spawn_on", msg)
    if not ok then
        return reply(me, msg, false, fn)
    end
    local args = msg.args
    local r = pack(xpcall(fn, traceback, unpack(args, 1, args.n)))
    if not r[1] then
        return reply(me, msg, false, r[2])
    end
    reply(me, msg, true, { n = r.n - 1, unpack(r, 2, r.n) })
end

-- Handlers for runtime.mail_reader, keyed by msg.op.
M.mail_ops = {
    spawn = function(msg)
        sched.spawn(run_spawned, msg)
    end,
    result = function(msg)
        local h = pending[msg.id]
        if not h then return end
        if msg.ok then
            settle(h, true, msg.results)
        else
            settle(h, false, msg.err)
        end
    end,
}

-- When this state leaves its runtime, what has not come back never will.
sched.on_detach(function()
    for _, h in pairs(pending) do
        settle(h, false, STOPPING)
    end
    pending = {}
end)

return M

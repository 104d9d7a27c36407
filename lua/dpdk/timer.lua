-- dpdk.timer — OpenResty's ngx.timer on the worker's scheduler.
--
--   dpdk.timer.at(delay, fn, ...)       → true | nil, err   fn(premature, ...) once
--   dpdk.timer.every(interval, fn, ...) → true | nil, err   fn(premature, ...) each interval
--   dpdk.timer.pending_count(), dpdk.timer.running_count()
--
-- Each run of fn is a task of its own (it may sleep, wait and do socket
-- I/O); an error in it is logged and ends only that run. When the worker
-- exits (rt:shutdown, the end of a worker thread) every pending timer runs
-- once more at once with premature = true, and new timers are refused with
-- "process exiting". Timers belong to the worker (Lua state) that made them.
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"

local type, error, tostring, select, unpack, xpcall = type, error, tostring, select, unpack,
    xpcall
local traceback = debug.traceback

local M = {}

-- Pending timer records: { fn, args, interval, handle, seq } in a set, so that
-- an exiting worker can fire them prematurely.
local pending, n_pending = {}, 0
local running = 0

local function log_failure(err)
    C.dl_log_write(C.DL_LOG_ERROR, "timer", "timer callback failed: " .. tostring(err))
end

-- The task body of one run: counts it as running while fn runs.
local function run(rec, premature)
    local args = rec.args
    local ok, err = xpcall(rec.fn, traceback, premature, unpack(args, 1, args.n))
    running = running - 1
    if not ok then log_failure(err) end
end

local function start(rec, premature)
    running = running + 1
    local task = sched.spawn(run, rec, premature)
    task.quiet = true -- run() logs its failure
    return task
end

local arm

-- Called from the loop when a timer is due.
local function fire(rec)
    pending[rec] = nil
    n_pending = n_pending - 1
    rec.handle = nil
    if rec.interval then arm(rec, rec.interval) end -- the next run is due now + interval
    start(rec, false)
end

arm = function(rec, delay)
    rec.handle, rec.seq = sched.call_at(C.dl_now() + delay, fire, rec)
    pending[rec] = true
    n_pending = n_pending + 1
end

local function check(what, delay, fn, zero_ok)
    if type(delay) ~= "number" or delay ~= delay or delay < 0 or (not zero_ok and delay == 0) then
        error(("dpdk.timer.%s: expected a delay in seconds %s, got %s"):format(what,
            zero_ok and ">= 0" or "> 0", tostring(delay)), 3)
    end
    if type(fn) ~= "function" then
        error(("dpdk.timer.%s: expected a function, got %s"):format(what, type(fn)), 3)
    end
end

--- dpdk.timer.at(delay, fn, ...) → true | nil, "process exiting"
function M.at(delay, fn, ...)
    check("at", delay, fn, true)
    if sched.exiting() then return nil, "process exiting" end
    arm({ fn = fn, args = { n = select("#", ...), ... } }, delay)
    return true
end

--- dpdk.timer.every(interval, fn, ...) → true | nil, "process exiting"
-- The next run is armed when one starts, so runs may overlap when fn takes
-- longer than interval (as in OpenResty).
function M.every(interval, fn, ...)
    check("every", interval, fn, false)
    if sched.exiting() then return nil, "process exiting" end
    arm({ fn = fn, args = { n = select("#", ...), ... }, interval = interval }, interval)
    return true
end

--- Timers waiting to fire.
function M.pending_count()
    return n_pending
end

--- Timer callbacks running now (including those waiting inside).
function M.running_count()
    return running
end

-- The worker exits: every pending timer runs once now, premature.
sched.on_exit(function()
    local tasks = {}
    for rec in pairs(pending) do
        sched.cancel(rec.handle, rec.seq)
        rec.handle = nil
        tasks[#tasks + 1] = rec
    end
    pending, n_pending = {}, 0
    -- in the order they were armed
    table.sort(tasks, function(a, b) return a.seq < b.seq end)
    for i = 1, #tasks do tasks[i] = start(tasks[i], true) end
    return tasks
end)

sched.on_detach(function()
    pending, n_pending, running = {}, 0, 0
end)

return M

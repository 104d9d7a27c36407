-- dpdk.sched — the coroutine scheduler of one worker (one per Lua state).
--
-- A task is a coroutine plus its bookkeeping. Tasks wait in one of three
-- ways: on the ready queue (spawned, yielded, woken), on the timer heap
-- (sleep, timeouts), or on a token that C hands back from dl_poll when the
-- event they wait for happens. C never calls Lua: each loop turn asks C for
-- events (dl_poll) and resumes the tasks they name.
local ffi = require "ffi"
local C = require "dpdk.cdef"

local co_create, co_resume, co_running, co_status, co_yield =
    coroutine.create, coroutine.resume, coroutine.running, coroutine.status, coroutine.yield
local traceback = debug.traceback
local select, unpack, type, error, xpcall, setmetatable = select, unpack, type, error, xpcall,
    setmetatable

local EV_WAKE, EV_MAIL, EV_STOP = C.DL_EV_WAKE, C.DL_EV_MAIL, C.DL_EV_STOP
local MAX_EVENTS = 256

local M = {}

-- Passed to coroutine.yield by suspend(): tells the scheduler the task parked
-- itself (on a timer or a token) rather than yielding to be run again.
local PARKED = setmetatable({}, { __tostring = function() return "dpdk.sched.PARKED" end })

local events = ffi.new("dl_event[?]", MAX_EVENTS)

-- Per-state scheduler state; reset when a runtime is attached.
local worker          -- dl_worker* driven by this state, nil when detached
local ready, ready_head, ready_tail = {}, 1, 0
local timers, n_timers, timer_seq = {}, 0, 0 -- binary min-heap of timer records
local by_task = setmetatable({}, { __mode = "k" }) -- coroutine -> task
local waiting = {}    -- token -> task
local next_token = 0
local mail_handler    -- function(data_ptr, len) for DL_EV_MAIL
local stopping = false

local Task = {}
Task.__index = Task

local function log(level, msg)
    C.dl_log_write(level, "sched", msg)
end

-- Queue a task to run; why and arg are what its wait returns.
local function push_ready(task, why, arg)
    ready_tail = ready_tail + 1
    ready[ready_tail] = task
    task.state = "ready"
    task.why, task.arg = why, arg
end

-- Timer heap ------------------------------------------------------------
-- A binary min-heap of timer records; each record knows its index, so a wait
-- that ends by an event removes its timer at once (the heap holds only live
-- timeouts), and records are reused: a timed wait makes no garbage.

local timer_pool, n_pool = {}, 0

local function heap_less(a, b)
    return a.at < b.at or (a.at == b.at and a.seq < b.seq)
end

local function heap_place(t, i)
    timers[i] = t
    t.index = i
end

local function sift_up(i)
    local t = timers[i]
    while i > 1 do
        local p = (i - i % 2) / 2
        local parent = timers[p]
        if heap_less(parent, t) then break end
        heap_place(parent, i)
        i = p
    end
    heap_place(t, i)
end

local function sift_down(i)
    local t = timers[i]
    while true do
        local l = 2 * i
        if l > n_timers then break end
        local c = l
        if l + 1 <= n_timers and heap_less(timers[l + 1], timers[l]) then c = l + 1 end
        if heap_less(t, timers[c]) then break end
        heap_place(timers[c], i)
        i = c
    end
    heap_place(t, i)
end

local function timer_add(at, task)
    local t
    if n_pool > 0 then
        t = timer_pool[n_pool]
        timer_pool[n_pool] = nil
        n_pool = n_pool - 1
    else
        t = {}
    end
    timer_seq = timer_seq + 1
    t.at, t.seq, t.task = at, timer_seq, task
    n_timers = n_timers + 1
    heap_place(t, n_timers)
    sift_up(n_timers)
    return t
end

local function timer_remove(t)
    local i = t.index
    local last = timers[n_timers]
    timers[n_timers] = nil
    n_timers = n_timers - 1
    if i <= n_timers then
        heap_place(last, i)
        sift_down(i)
        sift_up(last.index)
    end
    t.task, t.index = nil, nil
    n_pool = n_pool + 1
    timer_pool[n_pool] = t
end

-- Tasks -----------------------------------------------------------------

-- Functions called as fn(task, ok) when a task ends (returns, fails or is
-- killed), before its joiners run: e.g. dpdk.socket closes the sockets a
-- failed task was using.
local end_hooks = {}
function M.on_task_end(fn)
    for i = 1, #end_hooks do
        if end_hooks[i] == fn then return end
    end
    end_hooks[#end_hooks + 1] = fn
end

local function finish(task, ok, ...)
    task.state = "dead"
    task.ok = ok
    task.results = { n = select("#", ...), ... }
    if not ok and not task.quiet then
        log(C.DL_LOG_ERROR, "task " .. task.name .. " failed: " .. tostring((...)))
    end
    for i = 1, #end_hooks do
        local hok, herr = pcall(end_hooks[i], task, ok)
        if not hok then log(C.DL_LOG_ERROR, "task end hook failed: " .. tostring(herr)) end
    end
    local joiners = task.joiners
    if joiners then
        task.joiners = nil
        for i = 1, #joiners do
            push_ready(joiners[i])
        end
    end
end

local function task_body(task, fn, ...)
    finish(task, xpcall(fn, traceback, ...))
end

local task_count = 0

-- Create a task that starts at the next scheduling point (FIFO).
function M.spawn(fn, ...)
    if type(fn) ~= "function" then
        error("spawn: expected a function, got " .. type(fn), 2)
    end
    task_count = task_count + 1
    local task = setmetatable({ name = "#" .. task_count, state = "new" }, Task)
    task.co = co_create(task_body)
    by_task[task.co] = task
    task.start_args = { n = select("#", ...), ... }
    task.fn = fn
    push_ready(task)
    return task
end

function Task:done()
    return self.state == "dead"
end

-- Wait for the task to end: true, results... or false, error (with traceback).
-- A failure that a joiner collects was still logged when it happened.
function Task:join()
    if self.state ~= "dead" then
        local me = M.current_task("join")
        if me == self then error("a task cannot join itself", 2) end
        local joiners = self.joiners
        if not joiners then
            joiners = {}
            self.joiners = joiners
        end
        joiners[#joiners + 1] = me
        M.suspend()
    end
    local r = self.results
    return self.ok, unpack(r, 1, r.n)
end

Task.__tostring = function(self) return "dpdk task " .. self.name end

function M.current_task(what)
    local co = co_running()
    local task = co and by_task[co]
    if not task then
        error((what or "this") .. " must be called from a task of the dpdk runtime "
            .. "(inside rt:block_on, rt:run or dpdk.spawn)", 3)
    end
    return task
end

-- The task running now, or nil outside the scheduler's tasks. A variable,
-- not coroutine.running(): that call is not compiled, and the socket hot
-- path asks on every call.
local running
function M.running_task()
    return running
end

function M.in_task()
    local co = co_running()
    return co ~= nil and by_task[co] ~= nil
end

-- Park the current task until something wakes it (a timer, a token, a join).
-- Returns what the waker passed.
function M.suspend()
    return co_yield(PARKED)
end

-- Park for `seconds`; wakes with "timeout".
function M.sleep(seconds)
    local task = M.current_task("dpdk.sleep")
    if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
        error("dpdk.sleep: expected seconds >= 0, got " .. tostring(seconds), 2)
    end
    if seconds == 0 then
        push_ready(task)
        return co_yield(PARKED)
    end
    M.wait(nil, seconds)
end

function M.yield()
    local task = M.current_task("dpdk.yield")
    push_ready(task)
    co_yield(PARKED)
end

-- A token for C to hand back in a DL_EV_WAKE event: wakes the current task
-- the next time it waits with M.wait(token, ...).
function M.token()
    next_token = next_token + 1
    if next_token >= 0xffffffff then next_token = 1 end
    return next_token
end

-- Wait for the token (may be nil) and/or a timeout (seconds, may be nil).
-- Returns "event", arg or "timeout".
function M.wait(token, timeout)
    local task = M.current_task("wait")
    if token then
        waiting[token] = task
    end
    if timeout and timeout >= 0 then
        task.timer = timer_add(C.dl_now() + timeout, task)
    end
    task.state = "waiting"
    local why, arg = co_yield(PARKED)
    if token then
        waiting[token] = nil
    end
    local timer = task.timer
    if timer then -- woken before its timeout
        task.timer = nil
        timer_remove(timer)
    end
    return why, arg
end

-- Wake the task waiting on token (used by C events and Lua-side waiters).
function M.wake(token, arg)
    local task = waiting[token]
    if task and task.state == "waiting" then
        waiting[token] = nil
        push_ready(task, "event", arg)
        return true
    end
    return false
end

local function run_timers()
    if n_timers == 0 then return end
    local now = C.dl_now()
    while n_timers > 0 and timers[1].at <= now do
        local t = timers[1]
        local task = t.task
        task.timer = nil
        timer_remove(t)
        if task.state == "waiting" then
            push_ready(task, "timeout")
        end
    end
end

local function resume(task)
    local co = task.co
    local ok, res
    task.state = "running"
    local outer = running -- a task may resume another (a spawn that starts it at once)
    running = task
    local a = task.start_args
    if a then
        task.start_args = nil
        local fn = task.fn
        task.fn = nil
        ok, res = co_resume(co, task, fn, unpack(a, 1, a.n))
    else
        ok, res = co_resume(co, task.why, task.arg)
    end
    running = outer
    if not ok then
        -- task_body catches errors, so this is a scheduler bug or an error in
        -- the error handler itself: report it rather than lose it.
        finish(task, false, traceback(co, tostring(res)))
        return
    end
    if co_status(co) == "dead" then
        by_task[co] = nil
    elseif res ~= PARKED and task.state == "running" then
        push_ready(task) -- a plain coroutine.yield() acts like dpdk.yield()
    end
end

local function run_ready()
    -- Only the tasks queued before this turn: a task that yields runs again
    -- after the next poll, so yielding lets packets and timers through.
    local last = ready_tail
    while ready_head <= last do
        local task = ready[ready_head]
        ready[ready_head] = nil
        ready_head = ready_head + 1
        if task.state == "ready" then
            resume(task)
        end
    end
end

-- One turn of the loop: poll C, dispatch events, fire timers, run tasks.
function M.turn()
    local n = C.dl_poll(worker, events, MAX_EVENTS)
    for i = 0, n - 1 do
        local ev = events[i]
        local kind = ev.kind
        if kind == EV_WAKE then
            M.wake(ev.token, tonumber(ev.arg))
        elseif kind == EV_MAIL then
            if mail_handler then mail_handler() end
        elseif kind == EV_STOP then
            stopping = true
        end
    end
    run_timers()
    run_ready()
end

-- Drive the loop until pred() is true, the runtime stops or, on the main
-- thread, a signal interrupts it.
function M.run_until(pred, interruptible)
    while not pred() do
        if stopping then
            return "stopped"
        end
        if interruptible and C.dl_interrupted() ~= 0 then
            return "interrupted"
        end
        M.turn()
    end
    return "done"
end

-- Bind this state's scheduler to a worker; a new runtime starts afresh.
function M.attach(w, on_mail)
    if worker ~= nil and worker ~= w then
        M.detach() -- leaves the queues empty for the new worker
    end
    worker = w
    mail_handler = on_mail
end

-- Functions run when this state leaves its worker (runtime shutdown, end of
-- a worker thread), while the stack still runs: e.g. closing open sockets.
local detach_hooks = {}
function M.on_detach(fn)
    for i = 1, #detach_hooks do
        if detach_hooks[i] == fn then return end
    end
    detach_hooks[#detach_hooks + 1] = fn
end

function M.detach()
    for i = 1, #detach_hooks do
        local ok, err = pcall(detach_hooks[i])
        if not ok then log(C.DL_LOG_ERROR, "detach hook failed: " .. tostring(err)) end
    end
    worker = nil
    mail_handler = nil
    ready, ready_head, ready_tail = {}, 1, 0
    timers, n_timers = {}, 0
    waiting = {}
    stopping = false
end

return M

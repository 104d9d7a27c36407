-- dpdk.sched — the coroutine scheduler of one worker (one per Lua state).
--
-- A task is a coroutine plus its bookkeeping. Tasks wait in one of three
-- ways: on the ready queue (spawned, yielded, woken), on the timer heap
-- (sleep, timeouts), or on a token that C (or Lua: joins, semaphores,
-- queues) hands back when the event they wait for happens. C never calls
-- Lua: each loop turn asks C for events (dl_poll) and resumes the tasks they
-- name.
--
-- A task's fields that each park and wake touch are array slots of its
-- table (task[ST], ...; "A task's layout" below): task.state and the like
-- still read through the Task metatable, read-only.
--
-- Coroutines that user code creates inside a task may wait too: this module
-- replaces coroutine.resume, wrap and status (see "User coroutines" below).
local ffi = require "ffi"
local C = require "dpdk.cdef"
local table_new = require "table.new"
local band = require("bit").band

local co_create, co_resume, co_running, co_status, co_yield =
    coroutine.create, coroutine.resume, coroutine.running, coroutine.status, coroutine.yield
local traceback = debug.traceback
local select, unpack, type, error, xpcall, pcall, setmetatable, getmetatable, tostring =
    select, unpack, type, error, xpcall, pcall, setmetatable, getmetatable, tostring
local rawget = rawget

local EV_WAKE, EV_MAIL, EV_STOP = C.DL_EV_WAKE, C.DL_EV_MAIL, C.DL_EV_STOP
local EV_STATS = C.DL_EV_STATS
local MAX_EVENTS = 256

local M = {}

-- Passed to coroutine.yield by suspend(): tells the scheduler the task parked
-- itself (on a timer or a token) rather than yielding to be run again.
local PARKED = setmetatable({}, { __tostring = function() return "dpdk.sched.PARKED" end })

local events = ffi.new("dl_event[?]", MAX_EVENTS)

-- Per-state scheduler state; reset when a runtime is attached.
local worker          -- dl_worker* driven by this state, nil when detached
local slot            -- its dl_task_slot: the task running now, for the watchdog
local turn_clock      -- const double *: dl_now at the start of the worker's turn
local ready, ready_head, ready_tail = {}, 1, 0
local lonely = false  -- this turn's run_ready runs one task (M.spin)
local timers, n_timers, timer_seq = {}, 0, 0 -- binary min-heap: tasks and call_at records
-- coroutine -> task: each task's own coroutine (removed when it ends: the
-- value refers to the key, which a weak key alone would keep alive) and the
-- user coroutines a task resumed (collected with them).
local by_co = setmetatable({}, { __mode = "k" })
-- token -> task, in two parts (the waiter functions below, after the task's
-- slots)
local wait_slots, wait_mask, wait_spill, n_spill, n_waiting
local next_token = 0
local mail_handler    -- function(data_ptr, len) for DL_EV_MAIL
local stopping = false

-- A task's layout. What one park/wake cycle touches lives in the array part
-- of the task's table, in these slots: table.new(15, n) colocates the 16
-- array slots (0..15) right after the table's header (LuaJIT's lj_tab.c,
-- newtab), about three cache lines in all, where 14 string keys spread over
-- a 16-node hash part (six lines) plus a separate timer record (three or
-- four more). At 10 000 connections each task is cold when its request
-- comes, so each line is a miss. The task is its own timer heap entry (AT,
-- SEQ, HIDX); dpdk.timer's records (M.call_at) are tables of the same
-- shape with CB and DATA set and no ST. Rarely used fields (name, parent,
-- joiners, joining, results, ok, err, killed, waited, quiet, fn) stay
-- string keys.
-- Task's __index answers the slots' names (task.state, task.id, ...) for
-- code outside this module; they are read-only through those names. A slot
-- that may be nil is read with rawget here: a plain read of a nil slot
-- would call that __index.
local ST = 1      -- state: "new" | "ready" | "running" | "waiting" | "dead"
local WHY = 2     -- what its wait returns: "event" | "timeout" | nil
local ARG = 3     -- the waker's value
local WOKE = 4    -- the token that woke it (until it runs)
local CO = 5      -- its coroutine
local TOKEN = 6   -- the token it waits on
local DL = 7      -- its wait's deadline (dl_now() seconds), nil without one
local DSEQ = 8    -- the timer sequence number of that deadline
local HIDX = 9    -- heap entry: index in the timer heap, nil when not in it
local AT = 10     -- heap entry: key (never later than DL, see the heap)
local SEQ = 11    -- heap entry: sequence number (FIFO among equal keys)
local ID = 12     -- its number
local WHERE = 13  -- its name for the watchdog
local ARGS = 14   -- start arguments until its first run
local CB = 0      -- call_at record: the function
local HOT = 0     -- a waiting task's: the table it reads first when woken, or nil
                  -- (dispatch reads its slots 1, 8 and 15 ahead, and the cdata
                  -- box in slot 1: a socket's connection)
local DATA = 15   -- call_at record: its argument
local NSLOTS = 15 -- table.new(NSLOTS, ...): slots 0..15, colocated
local LADDR = 15  -- its coroutine's lua_State address, nil without peek (below)

-- Before a turn resumes two or more tasks, run_ready reads a byte in each
-- of the eight lines below each one's coroutine stack top (a parked socket
-- reader's frames: wait_at, read_loop and its callers, ~0.5 KiB), so the
-- cache misses of the coming resumes overlap in one loop instead of
-- stalling each resume in turn (at 10 000 connections every task's stack
-- is cold). Lua cannot reach a coroutine's stack, so this reads LuaJIT
-- 2.1's lua_State (GC64: base, top, maxstack, stack at bytes 32-63) through
-- its address (string.format "%p"); checked once below on a live
-- coroutine, and left off when the check fails. The wake's lookahead
-- (look_ahead) reads the lua_State's own lines before that: status (byte
-- 11), base (32) and cframe (80), a field in each line the 96-byte object
-- spans at 16-byte alignment (coroutine.resume checks status and cframe
-- first).
ffi.cdef[[typedef struct { uint8_t pad0[11]; uint8_t status; uint8_t pad1[20]; uint8_t *base;
    uint8_t *top; uint8_t *maxstack; uint8_t *stack; void *openupval; void *env;
    void *cframe; } dl_lstate_peek;]]
local peek_p = ffi.typeof("dl_lstate_peek *")
local function lstate(co)
    return tonumber(string.format("%p", co))
end
local peek = false
if ffi.abi("gc64") and ffi.abi("64bit") and jit and jit.version:match("^LuaJIT 2%.1") then
    local co = co_create(function(a, b, c) co_yield(a, b, c) end)
    co_resume(co, 1, 2, 3)
    local ok, a = pcall(lstate, co) -- a LuaJIT without "%p" leaves it off
    if ok and a then
        local L = ffi.cast(peek_p, a)
        local lo, b, t, hi = L.stack, L.base, L.top, L.maxstack
        peek = lo ~= nil and lo < b and b <= t and t <= hi and hi - lo < 65536
            and L.status == 1 and L.cframe == nil -- LUA_YIELD, no C frame
    end
end
local touched = 0 -- what the reads summed (kept, so the loads are not dropped)

-- The tasks parked on tokens. A waiter sits in wait_slots at its token's low
-- bits, or in wait_spill (by token) when another waiter holds that slot; a
-- slot's task waits on the token asked for only if its [TOKEN] is that token.
-- A table keyed by the tokens themselves spreads its nodes over a hash part
-- whose lines are cold at every wake with many connections; here the slots
-- are an array part (a socket's tokens, made together, fall in neighbouring
-- slots), doubled when the spill passes a sixteenth of it, up to four slots
-- a waiter (tokens that share low bits whatever the size stay in the spill).
local WAIT_SLOTS_FIRST = 1024 -- a power of two, like every size after it
local function reset_waiters(size)
    wait_slots, wait_mask, wait_spill = table_new(size, 0), size - 1, {}
    n_spill, n_waiting = 0, 0
end
reset_waiters(WAIT_SLOTS_FIRST)

local function waiter(token)
    local task = wait_slots[band(token, wait_mask)]
    if task and task[TOKEN] == token then return task end
    return wait_spill[token]
end

local add_waiter
local function grow_waiters()
    local slots, spill, mask = wait_slots, wait_spill, wait_mask
    reset_waiters((mask + 1) * 2)
    for i = 0, mask do
        local task = slots[i]
        if task then add_waiter(task[TOKEN], task) end
    end
    for token, task in pairs(spill) do add_waiter(token, task) end
end

-- task waits on token (its [TOKEN] already set to it).
function add_waiter(token, task)
    local i = band(token, wait_mask)
    local other = wait_slots[i]
    n_waiting = n_waiting + 1
    if not other then
        wait_slots[i] = task
    else
        wait_spill[token] = task
        n_spill = n_spill + 1
        local size = wait_mask + 1
        if n_spill > size / 16 and n_waiting > size / 4 then grow_waiters() end
    end
end

-- task no longer waits on token (nothing if another took its place).
local function remove_waiter(token, task)
    local i = band(token, wait_mask)
    if wait_slots[i] == task then
        wait_slots[i] = nil
        n_waiting = n_waiting - 1
    elseif wait_spill[token] == task then
        wait_spill[token] = nil
        n_spill, n_waiting = n_spill - 1, n_waiting - 1
    end
end

local Task = {}
M.Task = Task
local FIELD = { state = ST, why = WHY, arg = ARG, woke = WOKE, co = CO, token = TOKEN,
    deadline = DL, dseq = DSEQ, id = ID, where = WHERE, start_args = ARGS }
Task.__index = function(task, k)
    local i = FIELD[k]
    if i then return task[i] end
    return Task[k]
end

local function log(level, msg)
    C.dl_log_write(level, "sched", msg)
end

-- Queue a task to run; why and arg are what its wait returns.
local function push_ready(task, why, arg)
    ready_tail = ready_tail + 1
    ready[ready_tail] = task
    task[ST] = "ready"
    task[WHY], task[ARG] = why, arg
end

-- Timer heap ------------------------------------------------------------
-- A binary min-heap of entries keyed by [AT], [SEQ]; each knows its index
-- ([HIDX]). An entry is a task (its own timed waits; [ST] set) or a record
-- that calls record[CB](record[DATA]) from the loop (dpdk.timer); records
-- are reused, and a task's waits make no garbage.
--
-- A task stays in the heap across its waits: a wait that an event ends
-- leaves it there, and the task's next timed wait only writes its deadline
-- ([DL], [DSEQ]) unless that is earlier than its key. So the key is never
-- later than the deadline it stands for; when it comes due, run_timers
-- fires the task if the key is its deadline, moves the key to the deadline
-- if it is later, and drops the entry if the task no longer waits with one.
-- A reader that parks once per message (ping-pong, keep-alive) thus touches
-- the heap about once per timeout period instead of twice per message.

local timer_pool, n_pool = {}, 0

local function heap_less(a, b)
    local aa, ba = a[AT], b[AT]
    return aa < ba or (aa == ba and a[SEQ] < b[SEQ])
end

local function heap_place(t, i)
    timers[i] = t
    t[HIDX] = i
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

-- Put entry t (a task or a record) in the heap with key at, seq.
local function heap_add(t, at, seq)
    t[AT], t[SEQ] = at, seq
    n_timers = n_timers + 1
    heap_place(t, n_timers)
    sift_up(n_timers)
end

local function timer_remove(t)
    local i = rawget(t, HIDX)
    if not i then return end -- already fired or removed
    local last = timers[n_timers]
    timers[n_timers] = nil
    n_timers = n_timers - 1
    if i <= n_timers then
        heap_place(last, i)
        sift_down(i)
        sift_up(last[HIDX])
    end
    t[HIDX] = nil
    if rawget(t, ST) == nil then -- a record: back to the pool
        t[CB], t[DATA] = nil, nil
        n_pool = n_pool + 1
        timer_pool[n_pool] = t
    end
end

-- Call fn(data) from the loop (outside any task) at time `at` (dl_now()
-- seconds); returns a handle for M.cancel. fn must not wait: it may spawn.
function M.call_at(at, fn, data)
    local t
    if n_pool > 0 then
        t = timer_pool[n_pool]
        timer_pool[n_pool] = nil
        n_pool = n_pool - 1
    else
        t = table_new(NSLOTS, 0)
    end
    t[CB], t[DATA] = fn, data
    timer_seq = timer_seq + 1
    heap_add(t, at, timer_seq)
    return t, timer_seq
end

-- Cancel what call_at returned (seq guards against a reused record).
function M.cancel(t, seq)
    if rawget(t, HIDX) and t[SEQ] == seq then timer_remove(t) end
end

-- Task ends -------------------------------------------------------------

-- fn(task, ok, err) for every task that ends: returns, fails, or is killed
-- (then ok is false and err "killed"). Hooks run on the loop, in the ending
-- task or its killer: they must not wait.
local end_hooks, n_end_hooks = {}, 0
function M.on_task_end(fn)
    for i = 1, n_end_hooks do
        if end_hooks[i] == fn then return end
    end
    n_end_hooks = n_end_hooks + 1
    end_hooks[n_end_hooks] = fn
end

-- fn(token, woken, arg) when a task is killed while it waits on a token
-- (woken false) or after a token woke it but before it ran (woken true, arg
-- what the waker passed): a Lua-side waker (semaphore, queue) forgets the
-- waiter, and passes on what it handed over (a unit, a value) that would be
-- lost otherwise.
local abandon_hooks, n_abandon_hooks = {}, 0
function M.on_wait_abandoned(fn)
    for i = 1, n_abandon_hooks do
        if abandon_hooks[i] == fn then return end
    end
    n_abandon_hooks = n_abandon_hooks + 1
    abandon_hooks[n_abandon_hooks] = fn
end

local function abandoned(token, woken, arg)
    for i = 1, n_abandon_hooks do
        local ok, err = pcall(abandon_hooks[i], token, woken, arg)
        if not ok then log(C.DL_LOG_ERROR, "abandoned wait hook failed: " .. tostring(err)) end
    end
end

local function finish(task, ok, ...)
    task[ST] = "dead"
    if rawget(task, HIDX) then -- in the heap since a past wait
        task[DL] = nil
        timer_remove(task)
    end
    task.ok = ok
    task.results = { n = select("#", ...), ... }
    if not ok and not task.quiet and not task.killed then
        log(C.DL_LOG_ERROR, "task " .. task.name .. " failed: " .. tostring((...)))
    end
    for i = 1, n_end_hooks do
        local hok, herr = pcall(end_hooks[i], task, ok, task.err)
        if not hok then log(C.DL_LOG_ERROR, "task end hook failed: " .. tostring(herr)) end
    end
    local joiners = task.joiners
    if joiners then
        task.joiners = nil
        for i = 1, #joiners do
            M.wake(joiners[i], task)
        end
    end
    by_co[task[CO]] = nil
end

-- xpcall's handler: keeps the error as raised (dpdk.wait returns it, as
-- ngx.thread.wait does) and hands on the text with its traceback (join, logs).
local function on_error(e)
    local task = by_co[co_running()]
    if task then task.err = e end
    return traceback(e, 2)
end

local function task_body(task, fn, ...)
    finish(task, xpcall(fn, on_error, ...))
end

local task_count = 0
local forget_joins

-- A task's default name for the watchdog: where its function was defined
-- (one debug.getinfo per function object, not per task of it).
local where_of = setmetatable({}, { __mode = "k" })
local function where(fn)
    local w = where_of[fn]
    if not w then
        local info = debug.getinfo(fn, "S")
        w = info.short_src .. ":" .. info.linedefined
        where_of[fn] = w
    end
    return w
end

local function new_task(fn, ...)
    task_count = task_count + 1
    local task = setmetatable(table_new(NSLOTS, 4), Task)
    task.name = "#" .. task_count
    task[ST], task[ID], task[WHERE] = "new", task_count, where(fn)
    local co = co_create(task_body)
    task[CO] = co
    if peek then task[LADDR] = lstate(co) end
    by_co[co] = task
    task[ARGS] = { n = select("#", ...), ... }
    task.fn = fn
    return task
end

-- The task resume() runs now (see M.running_task); a nested resume (a spawn
-- that starts its child at once) restores the outer one.
local running
local depth = 0 -- resume()s in progress (1: a task the scheduler runs; M.spin)
local function resume(task)
    local co = task[CO]
    local ok, res
    task[ST] = "running"
    local outer = running
    running = task
    depth = depth + 1
    if slot ~= nil then -- the watchdog names this task if it never yields
        slot.id, slot.name = task[ID], task[WHERE]
    end
    local a = rawget(task, ARGS)
    if a then
        task[ARGS] = nil
        local fn = task.fn
        task.fn = nil
        ok, res = co_resume(co, task, fn, unpack(a, 1, a.n))
    else
        local why, arg = rawget(task, WHY), rawget(task, ARG)
        task[WHY], task[ARG] = nil, nil
        ok, res = co_resume(co, why, arg)
    end
    depth = depth - 1
    running = outer
    if slot ~= nil then
        if outer then
            slot.id, slot.name = outer[ID], outer[WHERE]
        else
            slot.id = 0
        end
    end
    if not ok then
        -- task_body catches errors, so this is a scheduler bug or an error in
        -- the error handler itself: report it rather than lose it.
        if task[ST] ~= "dead" then finish(task, false, traceback(co, tostring(res))) end
        return
    end
    if res ~= PARKED and task[ST] == "running" and co_status(co) ~= "dead" then
        push_ready(task) -- a plain coroutine.yield() acts like dpdk.yield()
    end
end

-- Create a task that starts at the next scheduling point (FIFO): what the
-- runtime, the workers and timers use from outside any task.
function M.spawn(fn, ...)
    if type(fn) ~= "function" then
        error("spawn: expected a function, got " .. type(fn), 2)
    end
    local task = new_task(fn, ...)
    push_ready(task)
    return task
end

-- dpdk.spawn: a light thread of the current task, run at once until it first
-- waits (or ends) before this returns, as ngx.thread.spawn does.
function M.start(fn, ...)
    local parent = M.current_task("dpdk.spawn")
    if type(fn) ~= "function" then
        error("dpdk.spawn: expected a function, got " .. type(fn), 2)
    end
    local task = new_task(fn, ...)
    task.parent = parent
    resume(task)
    return task
end

function Task:done()
    return self[ST] == "dead"
end

-- Wait for the task to end: true, results... or false, error (with traceback).
-- Any task may join any task, any number of times; a failure that a joiner
-- collects was still logged when it happened.
function Task:join()
    if self[ST] ~= "dead" then
        local me = M.current_task("join")
        if me == self then error("a task cannot join itself", 2) end
        local joiners = self.joiners
        if not joiners then
            joiners = {}
            self.joiners = joiners
        end
        local token = M.token()
        joiners[#joiners + 1] = token
        me.joining = self
        M.wait(token)
        me.joining = nil
    end
    local r = self.results
    return self.ok, unpack(r, 1, r.n)
end

Task.__tostring = function(self) return "dpdk task " .. self.name end

-- The name the watchdog reports for this task (default: where its function
-- was defined, "file.lua:12").
function Task:set_name(name)
    if type(name) ~= "string" then
        error("task:set_name: expected a string, got " .. type(name), 2)
    end
    self[WHERE] = name
    if running == self and slot ~= nil then slot.name = name end
    return self
end

local function check_handle(t, what, i)
    if getmetatable(t) ~= Task then
        error(("%s: argument #%d must be a task handle from dpdk.spawn, got %s")
            :format(what, i, type(t)), 3)
    end
end

-- Kill a light thread (OpenResty's rules: only its parent may, and only once):
-- true, or nil and "not user thread" | "killer not parent" | "already
-- terminated" | "already waited or killed". It leaves no wait behind (token,
-- timer, ready slot); joiners get false, "killed"; the end hooks run.
function M.kill(target)
    local me = M.current_task("dpdk.kill")
    check_handle(target, "dpdk.kill", 1)
    if not target.parent then return nil, "not user thread" end
    if target.parent ~= me then return nil, "killer not parent" end
    if target[ST] == "dead" then
        if target.waited then return nil, "already waited or killed" end
        target.waited = true
        return nil, "already terminated"
    end
    target.killed, target.waited = true, true
    local token = target[TOKEN]
    if token then
        local parked = waiter(token) == target -- before [TOKEN] goes: waiter reads it
        target[TOKEN] = nil
        forget_joins(target, token)
        if parked then
            remove_waiter(token, target)
            abandoned(token, false)
        end
    end
    if rawget(target, HIDX) then
        target[DL] = nil
        timer_remove(target)
    end
    if target[ST] == "ready" and rawget(target, WHY) == "event" and rawget(target, WOKE) then
        abandoned(target[WOKE], true, target[ARG]) -- handed something it will never take
    end
    target[WHY], target[ARG], target[WOKE] = nil, nil, nil
    target.err = "killed"
    finish(target, false, "killed") -- state "dead": its ready slot is skipped
    return true
end
Task.kill = M.kill

local function drop_token(t, token)
    local joiners = t.joiners
    if joiners then
        for j = #joiners, 1, -1 do
            if joiners[j] == token then table.remove(joiners, j) end
        end
    end
end

-- The task no longer waits for what it joined (it was woken or killed): its
-- token leaves their lists.
forget_joins = function(task, token)
    local j = task.joining
    if not j then return end
    task.joining = nil
    if getmetatable(j) == Task then
        drop_token(j, token)
    else
        for i = 1, #j do drop_token(j[i], token) end
    end
end

local function collect(t)
    t.waited = true
    if not t.ok then return false, t.err end
    local r = t.results
    return true, unpack(r, 1, r.n)
end

-- Wait for the first of the light threads to end (ngx.thread.wait): true,
-- results... | false, err (the error as raised) | nil, "already waited or
-- killed". Only their parent may wait; the others go on running.
function M.wait_any(...)
    local me = M.current_task("dpdk.wait")
    local n = select("#", ...)
    if n == 0 then error("dpdk.wait: expected at least one task handle", 2) end
    for i = 1, n do
        local t = select(i, ...)
        check_handle(t, "dpdk.wait", i)
        if not t.parent then
            error("dpdk.wait: attempt to wait on a task that is not a user thread "
                .. "(made by dpdk.spawn)", 2)
        end
        if t.parent ~= me then
            error("dpdk.wait: only the parent task can wait on the thread", 2)
        end
        if t[ST] == "dead" then
            if not t.waited then return collect(t) end
            if i == n then return nil, "already waited or killed" end
        end
    end
    local token = M.token()
    for i = 1, n do
        local t = select(i, ...)
        if t[ST] ~= "dead" then
            local joiners = t.joiners
            if not joiners then
                joiners = {}
                t.joiners = joiners
            end
            joiners[#joiners + 1] = token
        end
    end
    me.joining = { ... }
    local _, first = M.wait(token)
    forget_joins(me, token)
    return collect(first)
end

function M.current_task(what)
    local co = co_running()
    local task = co and by_co[co]
    if not task then
        error((what or "this") .. " must be called from a task of the dpdk runtime "
            .. "(inside rt:block_on, rt:run or dpdk.spawn)", 3)
    end
    return task
end

-- The task running now, or nil outside the scheduler's tasks: a variable
-- that resume() sets, because coroutine.running() is not compiled and the
-- socket hot path asks on every call.
function M.running_task()
    return running
end

function M.in_task()
    local co = co_running()
    return co ~= nil and by_co[co] ~= nil
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

-- Wait for the token (may be nil) and/or until the time `at` (dl_now()
-- seconds, may be nil). Returns "event", arg or "timeout". The cosockets'
-- waits: their deadline is known, so no clock read here.
local function wait_at(task, token, at, hot)
    task[HOT] = hot
    if token then
        task[TOKEN] = token
        add_waiter(token, task)
    end
    if at then
        timer_seq = timer_seq + 1
        task[DL], task[DSEQ] = at, timer_seq
        local i = rawget(task, HIDX)
        if not i then
            heap_add(task, at, timer_seq)
        elseif at < task[AT] then -- the key may not be later than the deadline
            task[AT], task[SEQ] = at, timer_seq
            sift_up(i)
        end
    end
    task[ST] = "waiting"
    local why, arg = co_yield(PARKED)
    if token then
        remove_waiter(token, task)
        task[TOKEN] = nil
    end
    task[WOKE], task[HOT] = nil, nil
    task[DL] = nil -- its heap entry is dropped or re-used later
    return why, arg
end

-- Wait for the token (may be nil) and/or a timeout (seconds, may be nil).
-- Returns "event", arg or "timeout".
function M.wait(token, timeout)
    local task = M.current_task("wait")
    return wait_at(task, token, timeout and timeout >= 0 and C.dl_now() + timeout or nil)
end

-- The running task waits on token until `at` (dl_now() seconds): "event",
-- arg | "timeout" at once when `at` is not after the start of this turn.
-- hot (may be nil): the table it reads first when woken (a socket), which
-- dispatch reads ahead (HOT above).
function M.wait_until(token, at, hot)
    local task = running
    if turn_clock ~= nil and at <= turn_clock[0] then return "timeout" end
    return wait_at(task, token, at, hot)
end

-- Wake the task waiting on token (used by C events and Lua-side waiters);
-- false when nobody waits on it (any more).
function M.wake(token, arg)
    local task = waiter(token)
    if task and task[ST] == "waiting" then
        remove_waiter(token, task)
        push_ready(task, "event", arg)
        task[WOKE] = token
        return true
    end
    return false
end

-- Whether a task still waits on token (a Lua-side waker's queue may hold
-- tokens whose waiters timed out or were killed).
function M.is_waiting(token)
    local task = waiter(token)
    return task ~= nil and task[ST] == "waiting"
end

local function run_timers()
    if n_timers == 0 then return end
    -- the time the turn began (one clock read per turn, in dl_poll): never
    -- later than dl_now, so a timer never fires before its time
    local now = turn_clock[0]
    while n_timers > 0 and timers[1][AT] <= now do
        local t = timers[1]
        local st = rawget(t, ST)
        if st then -- a task
            local d = st == "waiting" and rawget(t, DL)
            if d and (d ~= t[AT] or t[DSEQ] ~= t[SEQ]) then -- a past wait's key: move it
                t[AT], t[SEQ] = d, t[DSEQ]
                sift_down(1)
            else
                timer_remove(t)
                if d then
                    t[DL] = nil
                    push_ready(t, "timeout")
                end
            end
        else
            local fn, data = t[CB], t[DATA]
            timer_remove(t)
            local ok, err = pcall(fn, data)
            if not ok then log(C.DL_LOG_ERROR, "timer callback failed: " .. tostring(err)) end
        end
    end
end

local function run_ready()
    -- Only the tasks queued before this turn: a task that yields runs again
    -- after the next poll, so yielding lets packets and timers through.
    local last = ready_tail
    lonely = ready_head == last
    if peek and not lonely then -- read each one's stack below its top frame first
        local sum = 0
        for i = ready_head, last do
            local L = ffi.cast(peek_p, ready[i][LADDR])
            local b, lo = L.base, L.stack
            sum = sum + b[0]
            if b - 64 >= lo then sum = sum + b[-64] end
            if b - 128 >= lo then sum = sum + b[-128] end
            if b - 192 >= lo then sum = sum + b[-192] end
            if b - 256 >= lo then sum = sum + b[-256] end
            if b - 320 >= lo then sum = sum + b[-320] end
            if b - 384 >= lo then sum = sum + b[-384] end
            if b - 448 >= lo then sum = sum + b[-448] end
        end
        touched = sum
    end
    while ready_head <= last do
        local task = ready[ready_head]
        ready[ready_head] = nil
        ready_head = ready_head + 1
        if task[ST] == "ready" then
            resume(task)
        end
    end
    -- Drained: the next push goes to slot 1 again, so the queue stays in
    -- the table's array part instead of a new hash key per push.
    if ready_head > ready_tail then ready_head, ready_tail = 1, 0 end
end

-- The events of one dl_poll: wakes queue their tasks. Mail is read by the
-- scheduler's own turn, never inside a task: a task's turn (M.spin) leaves
-- it for the next one (mail_due), and the mailbox holds it until then.
local mail_due = false
-- Before the wakes of a poll with two or more events, each woken task's
-- objects are read ahead: with many connections its waiter slot, its own
-- slots, its coroutine's lua_State, the socket it parked on
-- (sched.wait_until's hot) and that socket's connection box are all cold.
-- One loop per hop, each reading only what the loop before it brought in,
-- so the misses of the whole batch overlap instead of one chain after
-- another (a slot's task is read even if it waits on another token: only a
-- read, harmless). The lua_State read here lets run_ready's reads of the
-- stacks below it start at once.
local ahead = table_new(MAX_EVENTS, 0)
local ahead_l = table_new(MAX_EVENTS, 0) -- the tasks' lua_State addresses (numbers,
                                          -- all n rewritten by the task loop)
local function look_ahead(n)
    local slots, mask = wait_slots, wait_mask
    for i = 0, n - 1 do
        local ev = events[i]
        ahead[i] = ev.kind == EV_WAKE and slots[band(ev.token, mask)] or false
    end
    local sum = 0
    for i = 0, n - 1 do
        local task = ahead[i]
        if task and task[ST] == "waiting" then
            -- its sixteen slots span up to three lines after its header
            if rawget(task, DSEQ) then sum = sum + 1 end
            ahead_l[i] = rawget(task, LADDR) or false
            ahead[i] = rawget(task, HOT) or false
        else
            ahead[i] = false
            ahead_l[i] = false
        end
    end
    for i = 0, n - 1 do
        local a = ahead_l[i]
        if a then -- its coroutine's lua_State: the lines coroutine.resume reads
            local L = ffi.cast(peek_p, a)
            sum = sum + L.status
            if L.base ~= nil then sum = sum + 1 end
            if L.cframe == nil then sum = sum + 1 end
        end
    end
    for i = 0, n - 1 do
        local hot = ahead[i]
        if hot then -- a socket's slots likewise
            if hot[8] then sum = sum + 1 end
            if hot[15] then sum = sum + 1 end
            ahead[i] = hot[1] or false
        end
    end
    for i = 0, n - 1 do
        local first = ahead[i]
        if first then -- a socket's slot 1: its connection's cdata box
            sum = sum + ((type(first) == "cdata" and first ~= nil) and 2 or 1)
            ahead[i] = false
        end
    end
    touched = sum
end

local function dispatch(n)
    if n > 1 then look_ahead(n) end
    for i = 0, n - 1 do
        local ev = events[i]
        local kind = ev.kind
        if kind == EV_WAKE then
            M.wake(ev.token, tonumber(ev.arg))
        elseif kind == EV_MAIL then
            if running then
                mail_due = true
            elseif mail_handler then
                mail_handler()
            end
        elseif kind == EV_STOP then
            stopping = true
        elseif kind == EV_STATS then -- every DL_STATS_PERIOD_MS (dpdk.stats: lua_bytes)
            C.dl_stats_set_lua(worker, collectgarbage("count") * 1024)
        end
    end
end

-- One turn of the loop: poll C, dispatch events, fire timers, run tasks.
function M.turn()
    if mail_due then
        mail_due = false
        if mail_handler then mail_handler() end
    end
    dispatch(C.dl_poll(worker, events, MAX_EVENTS))
    run_timers()
    run_ready()
end

-- A task that would wait for C (its attempt said "again") may instead turn
-- the loop itself, one turn per call, and try again: when it is the only
-- task the scheduler would run, the turn is the scheduler's own (dl_poll
-- and its events; no timer is due, nothing else is ready), minus the yield
-- to the scheduler and the resume back, which LuaJIT compiles neither of
-- (each is a trace exit: ~250 ns a message per side in ping-pong). Returns
-- false, having done nothing, when the task must park instead: another
-- task ready (a wake this turn dispatched, too), a timer due, mail, the
-- stop, or a task that another task is running (dpdk.spawn's child runs
-- until it first waits, then its parent goes on). The caller bounds how
-- many turns it spins before it parks; a wake for a token it does not wait
-- on yet finds no waiter (its next attempt sees what C has). Only in a
-- turn that ran this one task (lonely): where a turn runs many (a server
-- under load) the next turn's poll finds work for them anyway. at: the
-- caller's deadline; once the turn's clock reaches it the caller parks, and
-- its wait ends at once with "timeout", as a parked one's would.
function M.spin(at)
    if not lonely or depth ~= 1 or stopping or mail_due or ready_head <= ready_tail or worker == nil
        or at <= turn_clock[0] or (n_timers > 0 and timers[1][AT] <= turn_clock[0]) then
        return false
    end
    dispatch(C.dl_poll(worker, events, MAX_EVENTS))
    return true
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
    slot = C.dl_worker_task_slot(w)
    turn_clock = C.dl_worker_clock(w)
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

-- Functions run first when a worker exits (M.detach with a budget): each
-- may return a list of tasks (premature timers) that the loop then runs
-- until they end or the budget passes.
local exit_hooks = {}
function M.on_exit(fn)
    for i = 1, #exit_hooks do
        if exit_hooks[i] == fn then return end
    end
    exit_hooks[#exit_hooks + 1] = fn
end

local exiting = false
function M.exiting()
    return exiting
end

local function run_exit_hooks(budget)
    exiting = true
    local tasks = {}
    for i = 1, #exit_hooks do
        local ok, list = pcall(exit_hooks[i])
        if not ok then
            log(C.DL_LOG_ERROR, "exit hook failed: " .. tostring(list))
        elseif list then
            for j = 1, #list do tasks[#tasks + 1] = list[j] end
        end
    end
    if #tasks == 0 then return end
    local deadline = C.dl_now() + budget
    local function all_done()
        for i = 1, #tasks do
            if tasks[i][ST] ~= "dead" then return false end
        end
        return true
    end
    while not all_done() do
        if C.dl_now() >= deadline then
            log(C.DL_LOG_WARN, "tasks started at exit (premature timers) still running after "
                .. budget .. " s: abandoned")
            break
        end
        M.turn()
    end
end

-- Leave the worker: with a budget (seconds) and the worker still driveable,
-- first run the exit hooks' tasks (rt:shutdown, end of a worker thread).
function M.detach(budget)
    if budget and worker ~= nil then
        run_exit_hooks(budget)
    end
    for i = 1, #detach_hooks do
        local ok, err = pcall(detach_hooks[i])
        if not ok then log(C.DL_LOG_ERROR, "detach hook failed: " .. tostring(err)) end
    end
    worker = nil
    slot = nil
    turn_clock = nil
    mail_handler = nil
    ready, ready_head, ready_tail = {}, 1, 0
    for i = 1, n_timers do timers[i][HIDX] = nil end -- no entry is in a heap any more
    timers, n_timers = {}, 0
    reset_waiters(WAIT_SLOTS_FIRST)
    stopping = false
    exiting = false
end

-- User coroutines -------------------------------------------------------
-- A wait inside a coroutine that user code made (coroutine.create/wrap)
-- inside a task must reach the scheduler, as OpenResty's cosockets do
-- (lua-resty-http's body reader is such a coroutine). The waits yield
-- PARKED, which only the scheduler and these wrappers ever see: resume()
-- passes a PARKED yield of the coroutine it resumed up to its own resumer
-- (eventually the task's coroutine, parked in the scheduler) and resumes the
-- inner coroutine with the wake values. Any other yield returns to the
-- resumer as in plain Lua. Outside tasks resume is the plain one.

local parked = setmetatable({}, { __mode = "k" }) -- user coroutine -> task, while parked

local function pass(co, task, ok, a, ...)
    if ok and a == PARKED then
        parked[co] = task
        local why, arg = co_yield(PARKED)
        parked[co] = nil
        return pass(co, task, co_resume(co, why, arg))
    end
    return ok, a, ...
end

local function resume_co(co, ...)
    local running = co_running()
    local task = running and by_co[running]
    local owner = by_co[co]
    if not task then
        if owner and owner[CO] ~= co then by_co[co] = nil end
        return co_resume(co, ...)
    end
    local p = parked[co]
    if p then -- waiting for the scheduler on behalf of a task
        if p[ST] == "dead" then return false, "cannot resume dead coroutine" end
        return false, "cannot resume non-suspended coroutine"
    end
    if owner and owner[CO] == co then -- a task's own coroutine is the scheduler's
        return false, "cannot resume non-suspended coroutine"
    end
    by_co[co] = task
    return pass(co, task, co_resume(co, ...))
end

local function status_co(co)
    local p = parked[co]
    if p then return p[ST] == "dead" and "dead" or "normal" end
    return co_status(co)
end

-- coroutine.wrap raises a resume error with the caller's position (a string)
local function wrap_result(ok, ...)
    if ok then return ... end
    local err = ...
    if type(err) == "string" then error(err, 2) end
    error(err)
end

local function wrap_co(fn)
    if type(fn) ~= "function" then
        error("bad argument #1 to 'wrap' (function expected, got " .. type(fn) .. ")", 2)
    end
    local co = co_create(fn)
    return function(...)
        return wrap_result(resume_co(co, ...))
    end
end

M.resume, M.wrap, M.status = resume_co, wrap_co, status_co

-- Installed when this module loads, once per Lua state (require "dpdk" loads
-- it); see docs/design.md, "User coroutines".
coroutine.resume, coroutine.wrap, coroutine.status = resume_co, wrap_co, status_co

return M

-- dpdk.queue — a bounded FIFO for handing values between the tasks of one
-- worker.
--
--   local q = dpdk.queue.new(capacity)   -- capacity >= 1 (default: unbounded)
--   q:push(v [, timeout_s])  → true | nil, "timeout"   waits while the queue is full
--   q:pop([timeout_s])       → v | nil, "timeout"      waits while it is empty
--   q:try_push(v) / q:try_pop()  never wait (nil, "full" / nil, "empty")
--   q:count() → values queued
--
-- Timeouts: nil waits for ever, 0 never waits. Values may be anything but
-- nil. Waiters are served in FIFO order on the scheduler's tokens: a pop
-- hands its value straight to the first waiting popper, so a task that pops
-- later cannot take it first; a pop from a full queue lets the first waiting
-- pusher's value in at once.
local sched = require "dpdk.sched"

local type, error, tostring, setmetatable, getmetatable, floor, huge = type, error, tostring,
    setmetatable, getmetatable, math.floor, math.huge

local M = {}

local Queue = {}
Queue.__index = Queue

local popper_of = {} -- token -> queue, while a popper waits on that token
local pusher_of = {} -- token -> queue, while a pusher waits on that token

local function new_fifo()
    return { head = 1, tail = 0 }
end

local function fifo_push(f, v)
    local tail = f.tail + 1
    f.tail = tail
    f[tail] = v
end

local function fifo_unshift(f, v)
    local head = f.head - 1
    f.head = head
    f[head] = v
end

local function fifo_pop(f)
    local head = f.head
    if head > f.tail then return nil end
    local v = f[head]
    f[head] = nil
    if head == f.tail then
        f.head, f.tail = 1, 0
    else
        f.head = head + 1
    end
    return v
end

function M.new(capacity)
    if capacity ~= nil and (type(capacity) ~= "number" or capacity < 1
            or (capacity ~= huge and capacity ~= floor(capacity))) then
        error("dpdk.queue.new: expected a capacity >= 1 (or nil: unbounded), got "
            .. tostring(capacity), 2)
    end
    return setmetatable({
        cap = capacity or huge,
        items = new_fifo(), n = 0,
        poppers = new_fifo(), -- tokens
        pushers = new_fifo(), -- tokens
        pushed = {},          -- pusher token -> its value
    }, Queue)
end

local function check(self, what)
    if getmetatable(self) ~= Queue then
        error(what .. ": not a queue (call it with a colon)", 3)
    end
end

local function timeout_arg(t, what)
    if t == nil then return nil end
    if type(t) ~= "number" or t < 0 or t ~= t then
        error(what .. ": expected a timeout in seconds >= 0 (or nil), got " .. tostring(t), 3)
    end
    return t
end

-- Give v to the first live popper; false when none waits.
local function hand_to_popper(self, v)
    local poppers = self.poppers
    while true do
        local token = fifo_pop(poppers)
        if not token then return false end
        if sched.wake(token, v) then return true end
    end
end

local function put(self, v)
    if not hand_to_popper(self, v) then
        fifo_push(self.items, v)
        self.n = self.n + 1
    end
end

-- After a value left a full queue: let the first live pusher's value in.
local function admit_pusher(self)
    local pushers, pushed = self.pushers, self.pushed
    while self.n < self.cap do
        local token = fifo_pop(pushers)
        if not token then return end
        local v = pushed[token]
        if v ~= nil and sched.wake(token, true) then
            pushed[token] = nil
            fifo_push(self.items, v)
            self.n = self.n + 1
        end
    end
end

local function take(self)
    local v = fifo_pop(self.items)
    self.n = self.n - 1
    admit_pusher(self)
    return v
end

--- q:try_push(v) → true | nil, "full"
function Queue:try_push(v)
    check(self, "queue:try_push")
    if v == nil then error("queue:try_push: the value must not be nil", 2) end
    if self.n >= self.cap then return nil, "full" end
    put(self, v)
    return true
end

--- q:push(v [, timeout_s]) → true | nil, "timeout"
function Queue:push(v, timeout)
    check(self, "queue:push")
    if v == nil then error("queue:push: the value must not be nil", 2) end
    timeout = timeout_arg(timeout, "queue:push")
    if self.n < self.cap and self.pushers.head > self.pushers.tail then
        put(self, v)
        return true
    end
    if timeout == 0 then return nil, "timeout" end
    sched.current_task("queue:push")
    local token = sched.token()
    self.pushed[token] = v
    fifo_push(self.pushers, token)
    pusher_of[token] = self
    local why = sched.wait(token, timeout)
    pusher_of[token] = nil
    if why == "event" then return true end
    self.pushed[token] = nil -- admit_pusher skips the token
    return nil, "timeout"
end

--- q:try_pop() → v | nil, "empty"
function Queue:try_pop()
    check(self, "queue:try_pop")
    if self.n == 0 then return nil, "empty" end
    return take(self)
end

--- q:pop([timeout_s]) → v | nil, "timeout"
function Queue:pop(timeout)
    check(self, "queue:pop")
    timeout = timeout_arg(timeout, "queue:pop")
    if self.n > 0 then return take(self) end
    if timeout == 0 then return nil, "timeout" end
    sched.current_task("queue:pop")
    local token = sched.token()
    fifo_push(self.poppers, token)
    popper_of[token] = self
    local why, v = sched.wait(token, timeout)
    popper_of[token] = nil
    if why == "event" then return v end
    return nil, "timeout" -- hand_to_popper skips the token
end

function Queue:count()
    return self.n
end

Queue.__tostring = function(self) return "dpdk queue (" .. self.n .. " queued)" end

-- A waiter was killed: forget it. A value handed to a popper goes to the
-- next popper or back to the front of the queue; a pusher not yet let in
-- takes its value with it.
sched.on_wait_abandoned(function(token, woken, v)
    local self = pusher_of[token]
    if self then
        pusher_of[token] = nil
        self.pushed[token] = nil
        return
    end
    self = popper_of[token]
    if not self then return end
    popper_of[token] = nil
    if woken and not hand_to_popper(self, v) then
        fifo_unshift(self.items, v)
        self.n = self.n + 1
    end
end)

return M

-- dpdk.semaphore — OpenResty's ngx.semaphore between the tasks of one worker.
--
--   local sema = dpdk.semaphore.new(n)   -- n resources (default 0)
--   sema:wait(timeout_s)  → true | nil, "timeout"   (timeout 0, the default: never waits)
--   sema:post(n)          → true   (n default 1)
--   sema:count()          → resources free, or minus the number of waiters
--
-- Built on the scheduler's tokens: a waiter parks on a token of its own;
-- post hands a resource straight to the first waiter (FIFO) and wakes it, so
-- a task that calls wait later cannot take it first. Waiting makes no
-- garbage: the waiter queue is an array of token numbers.
local sched = require "dpdk.sched"

local type, error, tostring, setmetatable, floor = type, error, tostring, setmetatable,
    math.floor

local M = {}

local Sema = {}
Sema.__index = Sema

-- token -> semaphore, while a waiter holds that token (for lost wake-ups)
local sema_of = {}

function M.new(n)
    n = n == nil and 0 or n
    if type(n) ~= "number" or n < 0 or n ~= floor(n) then
        error("dpdk.semaphore.new: expected a count >= 0, got " .. tostring(n), 2)
    end
    return setmetatable({ n = n, q = {}, head = 1, tail = 0 }, Sema)
end

local function check(self, what)
    if getmetatable(self) ~= Sema then
        error(("%s: not a semaphore (call it as sema:%s)"):format(what, what:match("%w+$")), 3)
    end
end

-- Hand one resource to the first live waiter; false when nobody waits.
local function hand_over(self)
    local q = self.q
    while self.head <= self.tail do
        local token = q[self.head]
        q[self.head] = nil
        self.head = self.head + 1
        if token and sched.wake(token, true) then return true end
    end
    self.head, self.tail = 1, 0
    return false
end

--- sema:post(n) → true: n resources, each to a waiter or to the count
function Sema:post(n)
    check(self, "sema:post")
    n = n == nil and 1 or n
    if type(n) ~= "number" or n < 1 or n ~= floor(n) then
        error("sema:post: expected a count >= 1, got " .. tostring(n), 2)
    end
    for _ = 1, n do
        if not hand_over(self) then self.n = self.n + 1 end
    end
    return true
end

--- sema:wait(timeout_s) → true | nil, "timeout"
function Sema:wait(timeout)
    check(self, "sema:wait")
    timeout = timeout == nil and 0 or timeout
    if type(timeout) ~= "number" or timeout < 0 or timeout ~= timeout then
        error("sema:wait: expected a timeout in seconds >= 0, got " .. tostring(timeout), 2)
    end
    if self.n > 0 then
        self.n = self.n - 1
        return true
    end
    if timeout == 0 then return nil, "timeout" end
    sched.current_task("sema:wait")
    local token = sched.token()
    local tail = self.tail + 1
    self.tail = tail
    self.q[tail] = token
    sema_of[token] = self
    local why = sched.wait(token, timeout)
    sema_of[token] = nil
    if why == "event" then return true end
    -- timed out: leave the queue (post skips the hole)
    local q = self.q
    for i = self.head, self.tail do
        if q[i] == token then
            q[i] = false
            break
        end
    end
    return nil, "timeout"
end

--- sema:count() → free resources, or minus the number of waiters
function Sema:count()
    check(self, "sema:count")
    if self.n > 0 then return self.n end
    local waiters, q = 0, self.q
    for i = self.head, self.tail do
        local token = q[i]
        if token and sched.is_waiting(token) then waiters = waiters + 1 end
    end
    return waiters > 0 and -waiters or 0
end

Sema.__tostring = function(self) return "dpdk semaphore (" .. self:count() .. ")" end

-- A waiter was killed: forget it; a resource that post handed it goes on.
sched.on_wait_abandoned(function(token, woken)
    local self = sema_of[token]
    if self then
        sema_of[token] = nil
        if woken then self:post(1) end
    end
end)

return M

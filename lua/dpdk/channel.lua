-- dpdk.channel — named channels between workers (host/channel.c).
--
--   local ch = dpdk.channel("jobs" [, capacity])   -- the same channel on every worker
--   ch:send(v [, timeout])  → true | nil, "timeout"  (a full channel makes the task wait)
--   ch:receive([timeout])   → v    | nil, "timeout"  (an empty one makes the task wait)
--
-- Values cross as dpdk.codec data (booleans, numbers, strings, plain tables;
-- not nil). Only the waiting task parks, on a sched token that its worker's
-- dl_poll hands back when the ring has a message (or room): the worker keeps
-- serving its other tasks and its network meanwhile.
local ffi = require "ffi"
local buffer = require "string.buffer"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local codec = require "dpdk.codec"

local type, error, tostring, setmetatable, getmetatable, pcall = type, error, tostring,
    setmetatable, getmetatable, pcall

local DL_OK, DL_AGAIN = C.DL_OK, C.DL_AGAIN

local M = {}

local Channel = {}
Channel.__index = Channel
Channel.__name = "dpdk channel"

local enc = buffer.new()
local dec = buffer.new()
local pdata, plen = ffi.new("const char *[1]"), ffi.new("size_t[1]")

local function errmsg()
    return ffi.string(C.dl_errmsg())
end

local function runtime_ptr()
    local w = C.dl_self()
    if w ~= nil then
        return C.dl_worker_runtime(w)
    end
    local rt = require("dpdk.runtime").active()
    return rt and rt.ptr
end

-- dpdk.channel(name [, capacity]) → the runtime's channel of that name.
function M.open(name, capacity)
    if type(name) ~= "string" then
        error("dpdk.channel: expected a name (string), got " .. type(name), 2)
    end
    if capacity ~= nil and (type(capacity) ~= "number" or capacity ~= math.floor(capacity)
        or capacity < 1) then
        error("dpdk.channel: capacity must be a positive integer (messages), got "
            .. tostring(capacity), 2)
    end
    local rt = runtime_ptr()
    if not rt then
        error("dpdk.channel: no runtime runs: open channels from a runtime's task (or after "
            .. "dpdk.runtime{})", 2)
    end
    local ptr = C.dl_channel_open(rt, name, capacity or 0)
    if ptr == nil then
        error("dpdk.channel: " .. errmsg(), 2)
    end
    return setmetatable({ ptr = ptr, name = name, gen = C.dl_channel_generation() }, Channel)
end

local function check(ch, what)
    if getmetatable(ch) ~= Channel then
        error(what .. ": call it as ch:" .. what:match("[%w_]+$") .. "(...)", 3)
    end
    if ch.gen ~= C.dl_channel_generation() then
        error(("%s: channel '%s' belonged to a runtime that has shut down")
            :format(what, ch.name), 3)
    end
end

local function check_timeout(what, timeout)
    if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
        error(what .. ": timeout must be seconds >= 0 or nil, got " .. tostring(timeout), 3)
    end
end

-- Park the current task on token until the channel may have changed or the
-- deadline passes; true when it should try again.
local function park(token, deadline)
    local remaining
    if deadline then
        remaining = deadline - C.dl_now()
        if remaining <= 0 then
            C.dl_channel_cancel(token)
            return false
        end
    end
    if sched.wait(token, remaining) == "timeout" then
        C.dl_channel_cancel(token)
        return false
    end
    return true
end

-- ch:send(v [, timeout]) → true | nil, "timeout". v must not be nil.
function Channel:send(v, timeout)
    check(self, "ch:send")
    check_timeout("ch:send", timeout)
    if v == nil then
        error("ch:send: the value is nil: channels carry non-nil values (send e.g. false or "
            .. "{ nil })", 2)
    end
    local t = type(v)
    if t ~= "string" and t ~= "number" and t ~= "boolean" then
        local ok, err = pcall(codec.check, "ch:send", "the value", v, 0)
        if not ok then error(err, 2) end
    end
    enc:reset()
    enc:encode(v)
    local p, n = enc:ref()
    local rc = C.dl_channel_send(self.ptr, p, n, 0)
    if rc == DL_OK then return true end
    if rc ~= DL_AGAIN then error("ch:send: " .. errmsg(), 2) end
    if timeout == 0 then return nil, "timeout" end
    -- full: wait for room; the bytes move out of the shared buffer first
    sched.current_task("ch:send on a full channel")
    local data = enc:tostring()
    local token = sched.token()
    local deadline = timeout and C.dl_now() + timeout
    while true do
        rc = C.dl_channel_send(self.ptr, data, #data, token)
        if rc == DL_OK then return true end
        if rc ~= DL_AGAIN then error("ch:send: " .. errmsg(), 2) end
        if not park(token, deadline) then return nil, "timeout" end
    end
end

local function take()
    dec:set(pdata[0], plen[0])
    local ok, v = pcall(dec.decode, dec)
    dec:reset()
    C.dl_channel_release(pdata[0])
    if not ok then
        error("ch:receive: undecodable message: " .. tostring(v), 3)
    end
    return v
end

-- ch:receive([timeout]) → v | nil, "timeout"
function Channel:receive(timeout)
    check(self, "ch:receive")
    check_timeout("ch:receive", timeout)
    local rc = C.dl_channel_recv(self.ptr, pdata, plen, 0)
    if rc == DL_OK then return take() end
    if rc ~= DL_AGAIN then error("ch:receive: " .. errmsg(), 2) end
    if timeout == 0 then return nil, "timeout" end
    sched.current_task("ch:receive on an empty channel")
    local token = sched.token()
    local deadline = timeout and C.dl_now() + timeout
    while true do
        rc = C.dl_channel_recv(self.ptr, pdata, plen, token)
        if rc == DL_OK then return take() end
        if rc ~= DL_AGAIN then error("ch:receive: " .. errmsg(), 2) end
        if not park(token, deadline) then return nil, "timeout" end
    end
end

-- Messages queued now (a snapshot: other workers may be sending).
function Channel:count()
    check(self, "ch:count")
    return C.dl_channel_count(self.ptr)
end

function Channel:capacity()
    check(self, "ch:capacity")
    return C.dl_channel_capacity(self.ptr)
end

Channel.__tostring = function(self)
    return ("dpdk channel '%s'"):format(self.name)
end

return M

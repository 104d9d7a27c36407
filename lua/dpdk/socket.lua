-- dpdk.socket — the TCP cosocket (what dpdk.tcp and dpdk.ktcp make),
-- OpenResty style, over a transport (dpdk.transport: the worker's lwIP or
-- kernel sockets, the same calls and results) in the lua-resty-core
-- pattern: each call into C passes this task's token and gets bytes, 0 (EOF)
-- or a negated DL_E_* code; on -DL_E_AGAIN C has armed the token, the task
-- parks on it (and its timeout) and makes the same call after the wake: a
-- wait costs two FFI calls. Only C keeps wait state; Lua keeps who is
-- reading, writing or connecting (one task per direction: a second gets
-- "socket busy reading", as in OpenResty).
--
-- This file holds the object, its registry and its small methods; reading
-- and writing are in dpdk.socket_io (received bytes move from the transport
-- into the socket's own string.buffer as a reader asks for them; the
-- patterns of dpdk.framing are found there), connecting and pools in
-- dpdk.socket_connect; listeners in dpdk.listener.
--
-- Ownership: an open socket is closed by close(), setkeepalive(), a fatal
-- error, the GC, the end of its runtime (rt:shutdown, or a worker's end), or
-- at once when the task that last used it dies with an error.
local ffi = require "ffi"
local buffer = require "string.buffer"
local new_tab = require "table.new"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local pool = require "dpdk.pool"
local transport = require "dpdk.transport"

local wait_until, wake, running_task = sched.wait_until, sched.wake, sched.running_task
local ffi_string, ffi_gc = ffi.string, ffi.gc
local type, tostring, error, setmetatable, pairs, next, select = type, tostring, error,
    setmetatable, pairs, next, select
local floor = math.floor
local find = string.find
local err_text, OPTIONS = transport.err_text, transport.OPTIONS

local ip_buf = ffi.new("char[64]")
local int_box = ffi.new("int[1]")

local M = {}
M.err_text = err_text

-- The object's layout. A socket (and a listener) is a table whose fields
-- live in a colocated array part, slots 0..15 right after the table's header
-- (table.new(15, 0): LuaJIT colocates an array of up to 16 slots), and no
-- hash part: 192 bytes (3 or 4 cache lines), where ~16 string keys took a
-- 16-node hash part of 384 bytes apart from the header. At 10 000 connections
-- each request meets its socket cold, so every line counts
-- (docs/performance.md, "10 000 connections, seventh pass"). A slot that has
-- no value holds false, not nil: a nil would send the read on to the
-- metatable's __index. What is rarely used lives in a side table (slot COLD,
-- made on first use): pool keys, bind address, family, reuse count, connect
-- timeout, a listener's waiters. A string key set on the object still works,
-- but moves the array out of line (the table is rehashed).
local SLOTS = {
    T = 0,           -- the transport (dpdk.transport)
    CONN = 1,        -- the connection (cdata, ffi.gc'd) or false
    GEN = 2,         -- bumped when conn is closed or replaced (woken tasks compare it)
    RBUF = 3,        -- its own buffer of received bytes (string.buffer), or false
    RROOM = 4,       -- bytes the next recv asks for (dpdk.socket_io)
    RTOKEN = 5,      -- the token reads wait on
    WTOKEN = 6,      -- the token sends wait on
    READER = 7,      -- the task reading, or false
    WRITER = 8,      -- the task sending, or false
    CONNECTOR = 9,   -- the task connecting, or false
    USER = 10,       -- the task that used it last, or false
    READ_CLOSED = 11,
    WRITE_CLOSED = 12,
    READ_TIMEOUT = 13, -- ms, 0: the default
    SEND_TIMEOUT = 14, -- ms, 0: the default
    COLD = 15,       -- the side table, or false
}
M.SLOTS = SLOTS
local T_, CONN, GEN, RBUF, RROOM, RTOKEN, WTOKEN, READER, WRITER, CONNECTOR, USER, READ_CLOSED,
    WRITE_CLOSED, READ_TIMEOUT, SEND_TIMEOUT, COLD = SLOTS.T, SLOTS.CONN, SLOTS.GEN, SLOTS.RBUF,
    SLOTS.RROOM, SLOTS.RTOKEN, SLOTS.WTOKEN, SLOTS.READER, SLOTS.WRITER, SLOTS.CONNECTOR,
    SLOTS.USER, SLOTS.READ_CLOSED, SLOTS.WRITE_CLOSED, SLOTS.READ_TIMEOUT, SLOTS.SEND_TIMEOUT,
    SLOTS.COLD

-- A fresh object of the layout above on transport T, every slot set.
local function new_object(T, mt)
    local obj = setmetatable(new_tab(15, 0), mt)
    obj[T_], obj[CONN], obj[GEN], obj[RBUF], obj[RROOM], obj[RTOKEN], obj[WTOKEN] =
        T, false, 0, false, 0, 0, 0
    obj[READER], obj[WRITER], obj[CONNECTOR], obj[USER], obj[READ_CLOSED], obj[WRITE_CLOSED] =
        false, false, false, false, false, false
    obj[READ_TIMEOUT], obj[SEND_TIMEOUT], obj[COLD] = 0, 0, false
    return obj
end
M.new_object = new_object

-- obj's side table of rarely used fields, made when first asked for.
local function cold(obj)
    local c = obj[COLD]
    if not c then
        c = {}
        obj[COLD] = c
    end
    return c
end
M.cold = cold

-- What OpenResty's lua_socket_* directives set: used when a socket's own
-- timeout is nil or 0 (seconds here). One set per worker, both transports.
local defaults = {
    connect_timeout = 60, send_timeout = 60, read_timeout = 60,
    keepalive_timeout = 60, pool_size = 30,
}
M.defaults = defaults

-- Registry ----------------------------------------------------------------
-- Every open socket and listener of this Lua state (weak: the GC may still
-- close one), closed when the state leaves its worker; C closes whatever a
-- pending finalizer still holds (dl_worker_drain, dl_ktcp_worker_free), and
-- a finalizer that runs after the runtime is gone frees memory only.
local live = setmetatable({}, { __mode = "k" })
M.live = live

-- Received bytes. A socket whose own buffer is empty when a read begins
-- borrows the worker's buffer (`shared`: one per Lua state, its lines stay in
-- cache) and keeps it until another socket borrows it, which first moves what
-- the holder has not taken into the holder's own buffer (slot RBUF, made
-- then: false until a socket needs one). A reader that takes whole requests
-- leaves it empty, so at 10 000 connections a request's bytes land in warm
-- lines, and a socket has no buffer of its own to touch (nor to keep: 4 KiB
-- of room per idle connection before). Not for a socket reading in large
-- chunks (its rroom has grown), nor a move of more than 4 KiB. The holder is
-- weak: a collected socket's bytes are dropped.
local shared = buffer.new()
local holder = setmetatable({}, { __mode = "v" }) -- [1]: the socket whose bytes are in shared
local SHARED_MAX = 4096

-- obj's own buffer, made when first needed.
local function own_rbuf(obj)
    local own = obj[RBUF]
    if not own then
        own = buffer.new()
        obj[RBUF] = own
    end
    return own
end

-- How many received bytes obj has that nobody took.
function M.unread(obj)
    if holder[1] == obj then return #shared end
    local own = obj[RBUF]
    return own and #own or 0
end

-- The buffer a read of obj (waiting or not) begins with: the shared one when
-- it may borrow it, else its own.
function M.rbuf_for_read(obj)
    local h = holder[1]
    if h == obj then return shared end
    local own = obj[RBUF]
    if (own and #own > 0) or obj[RROOM] > SHARED_MAX then return own_rbuf(obj) end
    local left = #shared
    if left > 0 then
        if left > SHARED_MAX then return own_rbuf(obj) end
        if h then own_rbuf(h):putcdata(shared:ref(), left) end
        shared:reset()
    end
    holder[1] = obj
    return shared
end

-- Drop obj's received bytes (a connection replaced).
function M.rbuf_reset(obj)
    if holder[1] == obj then
        shared:reset()
        holder[1] = nil
    end
    local own = obj[RBUF]
    if own then own:reset() end
end

-- obj (its .T set) now owns conn.
local function attach(obj, conn)
    obj[CONN] = ffi_gc(conn, obj[T_].free)
    obj[GEN] = obj[GEN] + 1
    live[obj] = true
end
M.attach = attach

-- obj's connection counts in pool p (dpdk.pool) until leave_pool; the side
-- table keeps p's key.
local function join_pool(obj, p)
    pool.join(p, obj)
    cold(obj).pool_key = p.key
end
M.join_pool = join_pool

-- obj's connection no longer counts in its pool (closed or kept idle).
local function leave_pool(obj)
    local c = obj[COLD]
    if c and c.pool_key then
        pool.leave(c.pool_key, obj)
        c.pool_key = nil
    end
end
M.leave_pool = leave_pool

-- Close obj's connection now (C wakes the tokens armed on it).
local function release(obj)
    local conn = obj[CONN]
    if conn then
        obj[CONN] = false
        obj[GEN] = obj[GEN] + 1 -- the tasks woken below see it and return "closed"
        obj[READER], obj[WRITER], obj[CONNECTOR] = false, false, false
        live[obj] = nil
        ffi_gc(conn, nil)
        obj[T_].free(conn)
        local c = obj[COLD]
        if c and c.waiters then -- a listener: every acceptor, not only the armed one
            for _, tok in pairs(c.waiters) do wake(tok) end
        end
        leave_pool(obj)
    end
end
M.release = release

sched.on_detach(function()
    pool.clear()
    for obj in pairs(live) do release(obj) end
end)

-- task -> the listener it waits in (so that its end lets another re-arm)
local accepting = setmetatable({}, { __mode = "k" })
M.accepting = accepting

-- The task using a socket when it dies with an error takes the socket with
-- it, at once rather than at the next GC. A task that returns leaves its
-- sockets alone (it may have handed them on), and so does a killed one, as
-- ngx.thread.kill does: its busy flags count as free, others go on.
sched.on_task_end(function(task, ok)
    local l = accepting[task]
    if l then
        accepting[task] = nil
        local waiters = l[COLD].waiters
        waiters[task] = nil
        for _, tok in pairs(waiters) do wake(tok) end
    end
    if not ok and not task.killed then
        for obj in pairs(live) do
            -- a listener other tasks still accept on stays theirs
            local c = obj[COLD]
            if obj[USER] == task and not (c and c.waiters and next(c.waiters)) then
                release(obj)
            end
        end
    end
end)

-- Helpers -------------------------------------------------------------------

-- A flag held by a task that ended (or was killed) is free.
local function busy(holder)
    return holder and holder.state ~= "dead"
end
M.busy = busy

-- seconds from a socket's own timeout in ms (nil/0: the default)
local function seconds(ms, default)
    if ms and ms > 0 then return ms / 1000 end
    return default
end
M.seconds = seconds

-- Park on token until C wakes it or deadline passes: "event" | "timeout".
-- No clock read: the timer heap compares the deadline with the turn's clock.
local function park(token, deadline, sock)
    if not running_task() then
        error("this socket call has to wait: make it from a task (rt:block_on, rt:run or "
            .. "dpdk.spawn)", 4)
    end
    return wait_until(token, deadline, sock)
end
M.park = park

local function timeout_ms(ms, what)
    if ms == nil then return 0 end
    if type(ms) ~= "number" then
        error(what .. ": bad timeout value (expected milliseconds, got " .. type(ms) .. ")", 3)
    end
    ms = floor(ms)
    if ms < 0 or ms >= 2147483648 then error(what .. ": bad timeout value " .. ms, 3) end
    return ms
end
M.timeout_ms = timeout_ms

function M.is_ipv6(host) return find(host, ":", 1, true) ~= nil end

function M.check_port(port, what)
    if type(port) ~= "number" or port ~= floor(port) or port < 0 or port > 65535 then
        error(what .. ": expected a port number 0..65535, got " .. tostring(port), 3)
    end
end

function M.setoption(obj, name, value)
    if name == nil then return nil, 'missing the "option" argument' end
    if value == nil then return nil, 'missing the "value" argument' end
    local opt = OPTIONS[name]
    if not opt then return nil, "unsupported option " .. tostring(name) end
    if type(value) == "boolean" then value = value and 1 or 0 end
    if type(value) ~= "number" then
        error("setoption: option '" .. name .. "' expects a number or a boolean, got "
            .. type(value), 3)
    end
    local conn = obj[CONN]
    if not conn then return nil, "closed" end
    local rc = obj[T_].setopt(conn, opt, value)
    if rc ~= 0 then return nil, err_text(rc, 2) end
    return true
end

function M.getoption(obj, name)
    if name == nil then return nil, 'missing the "option" argument' end
    local opt = OPTIONS[name]
    if not opt then return nil, "unsupported option " .. tostring(name) end
    local conn = obj[CONN]
    if not conn then return nil, "closed" end
    local rc = obj[T_].getopt(conn, opt, int_box)
    if rc ~= 0 then return nil, err_text(rc, 2) end
    return int_box[0]
end

local function addr(obj, peer)
    local conn = obj[CONN]
    if not conn then return nil, "closed" end
    local rc = obj[T_].addr(conn, peer, ip_buf, 64, int_box)
    if rc ~= 0 then return nil, err_text(rc, 2) end
    return ffi_string(ip_buf), int_box[0]
end
M.addr = addr

-- A fresh connection of T (raises as misuse when C refuses: no runtime, no device).
function M.new_conn(T, family, level)
    local conn = T.new(family)
    if conn == nil then error(ffi_string(C.dl_errmsg()), level + 1) end
    return conn
end

-- The socket ------------------------------------------------------------------

local Socket = {}
Socket.__index = Socket
M.Socket = Socket

-- A socket on transport T, owning conn if given. rroom: the bytes its next
-- read asks for (dpdk.socket_io doubles it from 4 KiB up to 64 KiB).
-- rtoken, wtoken: the tokens its reads and its sends wait on, the same for
-- the socket's life (a stable key in the scheduler's table of waiters, not a
-- new one per wait). A wake that comes late (C armed the token for a wait
-- that has since timed out) wakes a later wait of the same direction of the
-- same socket, whose loop just asks C again.
local function new_socket(T, conn)
    local self = new_object(T, Socket)
    self[RROOM], self[RTOKEN], self[WTOKEN] = 4096, sched.token(), sched.token()
    if conn then attach(self, conn) end
    return self
end
M.new = new_socket

-- Give sock (its family set) a fresh, unconnected connection. The cold
-- table's `unused` marks it (connect may take it as it is); without it a
-- connection counts as used (an accepted one).
function M.attach_new(sock, level)
    local c = cold(sock)
    attach(sock, M.new_conn(sock[T_], c.family, level + 1))
    c.unused = true
end

-- A fatal error (anything but a timeout) closes the connection, as in OpenResty.
local function fail(self, rc)
    local text = err_text(rc, 3)
    release(self)
    return text
end
M.fail = fail

--- sock:settimeout(ms): connect, send and read timeouts (nil or 0: the defaults)
function Socket:settimeout(...)
    if select("#", ...) ~= 1 then
        error("settimeout: expecting 1 argument (milliseconds), got " .. select("#", ...), 2)
    end
    local t = timeout_ms((...), "settimeout")
    self[SEND_TIMEOUT], self[READ_TIMEOUT] = t, t
    local c = self[COLD]
    if c or t ~= 0 then cold(self).connect_timeout = t end
end

--- sock:settimeouts(connect_ms, send_ms, read_ms) (each nil or 0: its default)
function Socket:settimeouts(...)
    if select("#", ...) ~= 3 then
        error("settimeouts: expecting 3 arguments (connect, send, read ms), got "
            .. select("#", ...), 2)
    end
    local c, s, r = ...
    c = timeout_ms(c, "settimeouts")
    self[SEND_TIMEOUT] = timeout_ms(s, "settimeouts")
    self[READ_TIMEOUT] = timeout_ms(r, "settimeouts")
    if self[COLD] or c ~= 0 then cold(self).connect_timeout = c end
end

function Socket:setoption(name, value) return M.setoption(self, name, value) end
function Socket:getoption(name) return M.getoption(self, name) end

--- sock:local_addr() → ip, port
function Socket:local_addr() return addr(self, 0) end
--- sock:peer_addr() → ip, port
function Socket:peer_addr() return addr(self, 1) end

--- sock:shutdown("send") → true: sends FIN, reading goes on
function Socket:shutdown(how)
    if how ~= nil and how ~= "send" and how ~= "write" then
        error("shutdown: only \"send\" is supported, got " .. tostring(how), 2)
    end
    local conn = self[CONN]
    if not conn or self[WRITE_CLOSED] then return nil, "closed" end
    if busy(self[WRITER]) then return nil, "socket busy writing" end
    local rc = self[T_].shutdown_send(conn)
    if rc ~= 0 then return nil, fail(self, rc) end
    self[WRITE_CLOSED] = true
    return true
end

--- sock:close() → 1 | nil, "closed". Tasks waiting in this socket wake with nil, "closed".
function Socket:close()
    if not self[CONN] then return nil, "closed" end
    release(self)
    return 1
end

function Socket:is_connected()
    local conn = self[CONN]
    return conn ~= false and self[T_].state(conn) % 2 == 1 -- DL_TCP_CONNECTED
end

--- sock:core_id() → the CPU core of the worker that owns the socket
function Socket:core_id()
    local conn = self[CONN]
    if not conn then return nil, "closed" end
    return self[T_].core(conn)
end

function Socket:worker_id()
    local conn = self[CONN]
    if not conn then return nil, "closed" end
    return self[T_].worker(conn)
end

Socket.__tostring = function(self)
    if not self[CONN] then return self[T_].name .. " socket (closed)" end
    return self[T_].name .. " socket"
end

require("dpdk.socket_io")(Socket, M)
require("dpdk.socket_connect")(Socket, M)

return M

-- dpdk.socket — the TCP cosocket and the listener (what dpdk.tcp makes),
-- OpenResty style, over host/api.h in the lua-resty-core pattern: each call
-- into C passes this task's token and gets bytes, 0 (EOF) or a negated
-- DL_E_* code; on -DL_E_AGAIN the stack has armed the token, the task parks
-- on it (and its timeout) and makes the same call after the wake: a wait
-- costs two FFI calls. Only the stack keeps wait state; Lua keeps who is
-- reading, writing or connecting (one task per direction: a second gets
-- "socket busy reading", as in OpenResty).
--
-- Received bytes move from lwIP's queue into the socket's own string.buffer
-- as the reader asks for them (which reopens the TCP window); patterns are
-- found there with memchr/memmem, and results are cut out of it.
--
-- Ownership: an open socket is closed by close(), setkeepalive(), a fatal
-- error, the GC, the end of its runtime (rt:shutdown, or a worker's end), or
-- at once when the task that last used it dies with an error.
local ffi = require "ffi"
local buffer = require "string.buffer"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local pool = require "dpdk.pool"
local resolve = require "dpdk.resolve"

pcall(ffi.cdef, [[
void *memchr(const void *s, int c, size_t n);
void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);
]])

local E_AGAIN, E_MISUSE, E_CLOSED = C.DL_E_AGAIN, C.DL_E_MISUSE, C.DL_E_CLOSED
local new_token, wait, wake, running_task = sched.token, sched.wait, sched.wake, sched.running_task
local now = C.dl_now
local cast, ffi_string, ffi_gc = ffi.cast, ffi.string, ffi.gc
local type, tostring, tonumber, error, setmetatable, pairs, next = type, tostring, tonumber,
    error, setmetatable, pairs, next
local floor = math.floor
local band = bit.band
local byte, find, gsub, sub = string.byte, string.find, string.gsub, string.sub

local char_ptr = ffi.typeof("const char *")
local u8_ptr = ffi.typeof("const uint8_t *")
local conn_box = ffi.new("dl_conn *[1]")
local ip_buf = ffi.new("char[64]")
local int_box = ffi.new("int[1]")

local RECV_CHUNK = 65536 -- bytes asked from lwIP per call (rbuf keeps the room)

local M = {}

-- What OpenResty's lua_socket_* directives set: used when a socket's own
-- timeout is nil or 0 (seconds here).
local defaults = {
    connect_timeout = 60, send_timeout = 60, read_timeout = 60,
    keepalive_timeout = 60, pool_size = 30,
}
M.defaults = defaults

local ERR_TEXT = {
    [C.DL_E_CLOSED] = "closed",
    [C.DL_E_REFUSED] = "connection refused",
    [C.DL_E_RESET] = "connection reset by peer",
    [C.DL_E_ADDRNOTAVAIL] = "address not available",
    [C.DL_E_ADDRINUSE] = "address in use",
    [C.DL_E_TIMEDOUT] = "connection timed out",
    [C.DL_E_ABORTED] = "connection aborted",
    [C.DL_E_NOMEM] = "no memory",
    [C.DL_E_UNREACH] = "network unreachable",
    [C.DL_E_INVAL] = "invalid argument",
}

-- The text of a negated DL_E_* result; misuse raises with C's reason.
local function err_text(rc, level)
    local code = -rc
    if code == E_MISUSE then error(ffi_string(C.dl_errmsg()), (level or 2) + 1) end
    return ERR_TEXT[code] or "error"
end
M.err_text = err_text

-- Registry ----------------------------------------------------------------
-- Every open socket and listener of this Lua state (weak: the GC may still
-- close one), closed when the state leaves its worker; the stack closes
-- whatever a pending finalizer still holds (dl_worker_drain), and a
-- finalizer that runs after the runtime is gone frees memory only.
local live = setmetatable({}, { __mode = "k" })
M.live = live

local function attach(obj, conn)
    obj.conn = ffi_gc(conn, C.dl_tcp_free)
    obj.gen = (obj.gen or 0) + 1
    live[obj] = true
end

-- Close obj's connection now (C wakes the tokens armed on it).
local function release(obj)
    local conn = obj.conn
    if conn then
        obj.conn = nil
        obj.gen = obj.gen + 1 -- the tasks woken below see it and return "closed"
        obj.reader, obj.writer, obj.connector = nil, nil, nil
        live[obj] = nil
        ffi_gc(conn, nil)
        C.dl_tcp_free(conn)
        if obj.waiters then -- a listener: every acceptor, not only the armed one
            for _, tok in pairs(obj.waiters) do wake(tok) end
        end
        if obj.pool_key then
            pool.leave(obj.pool_key, obj)
            obj.pool_key = nil
        end
    end
end
M.release = release

sched.on_detach(function()
    pool.clear()
    for obj in pairs(live) do release(obj) end
end)

-- task -> the listener it waits in (so that its end lets another re-arm)
local accepting = setmetatable({}, { __mode = "k" })

-- The task using a socket when it dies with an error takes the socket with
-- it, at once rather than at the next GC. A task that returns leaves its
-- sockets alone (it may have handed them on), and so does a killed one, as
-- ngx.thread.kill does: its busy flags count as free, others go on.
sched.on_task_end(function(task, ok)
    local l = accepting[task]
    if l then
        accepting[task] = nil
        l.waiters[task] = nil
        for _, tok in pairs(l.waiters) do wake(tok) end
    end
    if not ok and not task.killed then
        for obj in pairs(live) do
            -- a listener other tasks still accept on stays theirs
            if obj.user == task and not (obj.waiters and next(obj.waiters)) then
                release(obj)
            end
        end
    end
end)

-- Helpers -------------------------------------------------------------------

-- A flag held by a task that ended (or was killed) is free.
local function busy(holder)
    return holder ~= nil and holder.state ~= "dead"
end

-- seconds from a socket's own timeout in ms (nil/0: the default)
local function seconds(ms, default)
    if ms and ms > 0 then return ms / 1000 end
    return default
end

-- Park on token until the stack wakes it or deadline passes: "event" | "timeout".
local function park(token, deadline)
    if not running_task() then
        error("this socket call has to wait: make it from a task (rt:block_on, rt:run or "
            .. "dpdk.spawn)", 4)
    end
    local remaining = deadline - now()
    if remaining <= 0 then return "timeout" end
    return wait(token, remaining)
end

local function timeout_ms(ms, what)
    if ms == nil then return 0 end
    if type(ms) ~= "number" then
        error(what .. ": bad timeout value (expected milliseconds, got " .. type(ms) .. ")", 3)
    end
    ms = floor(ms)
    if ms < 0 or ms >= 2147483648 then error(what .. ": bad timeout value " .. ms, 3) end
    return ms
end

local function is_ipv6(host) return find(host, ":", 1, true) ~= nil end

local function check_port(port, what)
    if type(port) ~= "number" or port ~= floor(port) or port < 0 or port > 65535 then
        error(what .. ": expected a port number 0..65535, got " .. tostring(port), 3)
    end
end

local OPTIONS = {
    keepalive = C.DL_OPT_KEEPALIVE, reuseaddr = C.DL_OPT_REUSEADDR,
    ["tcp-nodelay"] = C.DL_OPT_NODELAY, sndbuf = C.DL_OPT_SNDBUF, rcvbuf = C.DL_OPT_RCVBUF,
    keepintvl = C.DL_OPT_KEEPINTVL, keepcnt = C.DL_OPT_KEEPCNT,
    ttl = C.DL_OPT_TTL, -- ours (IP_TTL)
}

local function setoption(obj, name, value)
    if name == nil then return nil, 'missing the "option" argument' end
    if value == nil then return nil, 'missing the "value" argument' end
    local opt = OPTIONS[name]
    if not opt then return nil, "unsupported option " .. tostring(name) end
    if type(value) == "boolean" then value = value and 1 or 0 end
    if type(value) ~= "number" then
        error("setoption: option '" .. name .. "' expects a number or a boolean, got "
            .. type(value), 3)
    end
    local conn = obj.conn
    if not conn then return nil, "closed" end
    local rc = C.dl_tcp_setopt(conn, opt, value)
    if rc ~= 0 then return nil, err_text(rc, 2) end
    return true
end

local function getoption(obj, name)
    if name == nil then return nil, 'missing the "option" argument' end
    local opt = OPTIONS[name]
    if not opt then return nil, "unsupported option " .. tostring(name) end
    local conn = obj.conn
    if not conn then return nil, "closed" end
    local rc = C.dl_tcp_getopt(conn, opt, int_box)
    if rc ~= 0 then return nil, err_text(rc, 2) end
    return int_box[0]
end

local function addr(obj, peer)
    local conn = obj.conn
    if not conn then return nil, "closed" end
    local rc = C.dl_tcp_addr(conn, peer, ip_buf, 64, int_box)
    if rc ~= 0 then return nil, err_text(rc, 2) end
    return ffi_string(ip_buf), int_box[0]
end

local function new_conn(family, level)
    local conn = C.dl_tcp_new(family)
    if conn == nil then error(ffi_string(C.dl_errmsg()), level + 1) end
    return conn
end

-- The socket ------------------------------------------------------------------

local Socket = {}
Socket.__index = Socket

local function new_socket(conn)
    local self = setmetatable({ rbuf = buffer.new(), reused = 0 }, Socket)
    if conn then attach(self, conn) end
    return self
end
M.new = new_socket

-- Give sock (its .family set) a fresh, unconnected connection.
function M.attach_new(sock, level)
    attach(sock, new_conn(sock.family, level + 1))
    sock.used = false
end

-- A fatal error (anything but a timeout) closes the connection, as in OpenResty.
local function fail(self, rc)
    local text = err_text(rc, 3)
    release(self)
    return text
end

-- What is left in rbuf, handed out as the partial result of a failed read.
local function leftover(self, strip_cr)
    local s = self.rbuf:get()
    if strip_cr and find(s, "\r", 1, true) then s = gsub(s, "\r", "") end
    return s
end

-- The reading loop shared by every receive form: try(self, a1, a2) looks at
-- rbuf and returns true and the result when it has what it needs; otherwise
-- more comes from lwIP, or the task waits. On EOF (after a last try), error
-- or timeout: nil, err, partial (what partial(self, a1, a2) cuts out).
local function read_loop(self, try, a1, a2, partial)
    local conn = self.conn
    if not conn or self.read_closed then return nil, "closed" end
    if busy(self.connector) then return nil, "socket busy connecting" end
    if busy(self.reader) then return nil, "socket busy reading" end
    local task = running_task()
    self.reader, self.user = task, task
    local gen, rbuf, deadline = self.gen, self.rbuf, nil
    while true do
        local done, result = try(self, a1, a2)
        if done then
            self.reader = nil
            return result
        end
        local token = new_token()
        local n = C.dl_tcp_recv(conn, rbuf:reserve(RECV_CHUNK), RECV_CHUNK, token)
        if n > 0 then
            rbuf:commit(n)
        else
            rbuf:commit(0)
            if n == 0 then -- EOF: a last look, then the read half is done
                self.reader = nil
                local final_done, final = try(self, a1, a2, true)
                if final_done then return final end
                self.read_closed = true
                return nil, "closed", partial(self, a1, a2, true)
            elseif n ~= -E_AGAIN then
                self.reader = nil
                local p = partial(self, a1, a2, true)
                return nil, fail(self, n), p
            end
            deadline = deadline or now() + seconds(self.read_timeout, defaults.read_timeout)
            local why = park(token, deadline)
            if self.gen ~= gen then -- closed (or reconnected) by another task meanwhile
                if self.reader == task then self.reader = nil end
                return nil, "closed", partial(self, a1, a2, true)
            end
            if why == "timeout" then
                self.reader = nil
                return nil, "timeout", partial(self, a1, a2, false)
            end
        end
    end
end

local function all_left(self) return self.rbuf:get() end

local function try_line(self)
    local rbuf = self.rbuf
    local p, len = rbuf:ref()
    if len == 0 then return false end
    local nl = C.memchr(p, 10, len)
    if nl == nil then return false end
    local line = rbuf:get(tonumber(cast(char_ptr, nl) - p))
    rbuf:skip(1)
    if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end -- OpenResty drops every CR
    return true, line
end

local function line_left(self) return leftover(self, true) end

local function try_bytes(self, n)
    local rbuf = self.rbuf
    if #rbuf >= n then return true, rbuf:get(n) end
    return false
end

local function try_all(self, _, _, at_eof)
    if at_eof then return true, self.rbuf:get() end
    return false
end

--- sock:receive(pattern) → data | nil, err, partial
-- pattern: "*l" (a line without its LF and CRs, the default), "*a" (until
-- the peer closes), or a size (a number, or a string that looks like one).
function Socket:receive(pattern)
    if pattern == nil then return read_loop(self, try_line, nil, nil, line_left) end
    local size = tonumber(pattern)
    if size then
        size = floor(size)
        if size < 0 then error("receive: bad number argument " .. tostring(pattern), 2) end
        if size == 0 then
            if not self.conn or self.read_closed then return nil, "closed" end
            return ""
        end
        return read_loop(self, try_bytes, size, nil, all_left)
    elseif pattern == "*l" or pattern == "l" then
        return read_loop(self, try_line, nil, nil, line_left)
    elseif pattern == "*a" or pattern == "a" then
        return read_loop(self, try_all, nil, nil, all_left)
    end
    error("receive: bad pattern argument: " .. tostring(pattern)
        .. " (expected \"*l\", \"*a\" or a size)", 2)
end

local function try_any(self, max)
    local rbuf = self.rbuf
    local n = #rbuf
    if n == 0 then return false end
    return true, rbuf:get(n < max and n or max)
end

local function nothing() return "" end

--- sock:receiveany(max) → up to max bytes as soon as any are there | nil, err, ""
function Socket:receiveany(max)
    max = tonumber(max)
    if not max or max < 1 then
        error("receiveany: bad max argument " .. tostring(max) .. " (expected a number >= 1)", 2)
    end
    return read_loop(self, try_any, floor(max), nil, nothing)
end

local function try_peek(self, n, _, at_eof)
    local p, len = self.rbuf:ref()
    if len >= n then return true, ffi_string(p, n) end
    if at_eof and len > 0 then return true, ffi_string(p, len) end
    return false
end

--- sock:peek(n) → the next n bytes, left in place (fewer if the peer closes first)
function Socket:peek(n)
    if type(n) ~= "number" or n < 1 then
        error("peek: expected a byte count >= 1, got " .. tostring(n), 2)
    end
    local data, err = read_loop(self, try_peek, floor(n), nil, nothing)
    if data then return data end
    return nil, err
end

-- receiveuntil ----------------------------------------------------------------
-- Unsized, the iterator returns the data before the pattern (memmem). Sized,
-- it runs OpenResty's DFA (ngx_http_lua_socket_read_until) over rbuf so that
-- the chunks are the same: bytes that cannot start the pattern go out as
-- soon as size of them are there; a partial match is held back in rbuf.

-- OpenResty's recovery edges: rec[state][byte] = the state to go on in.
local function compile(pat)
    local len, rec = #pat, {}
    if len <= 2 then return rec end
    for i = 1, len - 1 do
        local k = 1
        while k <= len - i - 1 and sub(pat, 1, k) == sub(pat, i + 1, i + k) do
            if byte(pat, k + 1) ~= byte(pat, i + k + 1) then
                local state, chr = i + k, byte(pat, k + 1)
                local edges = rec[state] or {}
                rec[state] = edges
                if (edges[chr] or 0) < k + 1 then edges[chr] = k + 1 end
                break
            end
            k = k + 1
        end
    end
    return rec
end

-- Scan len bytes at p from state 0 with at most size bytes out: "match",
-- bytes before the pattern, bytes to consume | "full", n, n | "more", the
-- bytes that went out, 0.
local function scan(p, len, pat, plen, rec, size)
    p = cast(u8_ptr, p)
    local i, state, rest = 0, 0, size
    while i < len do
        local c = p[i]
        if c == byte(pat, state + 1) then
            i, state = i + 1, state + 1
            if state == plen then return "match", i - plen, i end
        elseif state == 0 then
            i = i + 1
            rest = rest - 1
            if rest == 0 then return "full", i, i end
        else
            local edges = rec[state]
            local ns = edges and edges[c]
            if not ns then -- the held bytes go out; c is looked at again from state 0
                if rest <= state then return "full", i, i end
                rest = rest - state
                state = 0
            else
                local pending = state + 1 - ns
                i, state = i + 1, ns
                if rest <= pending then return "full", i - ns, i - ns end
                rest = rest - pending
            end
        end
    end
    return "more", i - state, 0
end

-- The bytes at the end of rbuf that may start pat: held back on a timeout.
local function held(p, len, pat, plen)
    for k = (plen - 1 < len and plen - 1 or len), 1, -1 do
        if ffi_string(p + len - k, k) == sub(pat, 1, k) then return k end
    end
    return 0
end

local function try_until(self, st)
    local rbuf = self.rbuf
    local p, len = rbuf:ref()
    local pat, plen = st.pattern, st.plen
    if st.size == 0 then
        local hit = len >= plen and C.memmem(p, len, pat, plen) or nil
        if hit == nil then return false end
        local off = tonumber(cast(char_ptr, hit) - p)
        if st.inclusive then return true, rbuf:get(off + plen) end
        local data = rbuf:get(off)
        rbuf:skip(plen)
        return true, data
    end
    local how, n, consume = scan(p, len, pat, plen, st.rec, st.size)
    if how == "match" then
        st.ended = true -- the next call returns nil: the boundary
        if st.inclusive then return true, rbuf:get(consume) end
        local data = rbuf:get(n)
        rbuf:skip(plen)
        return true, data
    elseif how == "full" then
        return true, rbuf:get(n)
    end
    return false
end

local function until_left(self, st, _, at_end)
    local rbuf = self.rbuf
    if at_end then return rbuf:get() end -- nothing can be read after: all of it
    local p, len = rbuf:ref()
    local out
    if st.size == 0 then
        out = len - held(p, len, st.pattern, st.plen)
    else
        local _
        _, out = scan(p, len, st.pattern, st.plen, st.rec, 1e300)
    end
    return rbuf:get(out)
end

--- sock:receiveuntil(pattern [, { inclusive = true }]) → iterator
-- iterator() → the data before the next occurrence of pattern (consumed);
-- iterator(size) → at most about size bytes per call, then nil at the boundary.
function Socket:receiveuntil(pattern, opts)
    if type(pattern) ~= "string" or #pattern == 0 then
        error("receiveuntil: expected a non-empty pattern string", 2)
    end
    local st = {
        pattern = pattern, plen = #pattern, rec = compile(pattern), size = 0,
        inclusive = opts and opts.inclusive and true or false,
    }
    return function(size)
        if size ~= nil then
            if type(size) ~= "number" then
                error("receiveuntil iterator: expected a size, got " .. type(size), 2)
            end
            size = floor(size)
            if size < 0 then size = 0 end
        end
        if st.ended then
            st.ended = false
            return nil, nil, nil
        end
        st.size = size or 0
        return read_loop(self, try_until, st, nil, until_left)
    end
end

--- sock:try_read(max) → data | nil, "again" | nil, err — never waits
function Socket:try_read(max)
    max = max or RECV_CHUNK
    local conn = self.conn
    if not conn or self.read_closed then return nil, "closed" end
    if busy(self.reader) then return nil, "socket busy reading" end
    local done, data = try_any(self, max)
    if done then return data end
    local rbuf = self.rbuf
    local n = C.dl_tcp_recv(conn, rbuf:reserve(RECV_CHUNK), RECV_CHUNK, 0)
    rbuf:commit(n > 0 and n or 0)
    if n > 0 then
        local _, got = try_any(self, max)
        return got
    end
    if n == 0 then
        self.read_closed = true
        return nil, "closed"
    end
    if n == -E_AGAIN then return nil, "again" end
    return nil, fail(self, n)
end

--- sock:readable([timeout_ms]) → true once data (or EOF) is there | nil, err
-- A read: while another task reads, "socket busy reading".
local function try_some(self, _, _, at_eof) return #self.rbuf > 0 or at_eof == true, true end

function Socket:readable(ms)
    local conn = self.conn
    if not conn or self.read_closed then return nil, "closed" end
    if ms ~= nil then
        local saved = self.read_timeout
        self.read_timeout = timeout_ms(ms, "readable")
        local ok, err = read_loop(self, try_some, nil, nil, nothing)
        self.read_timeout = saved
        return ok, err
    end
    local ok, err = read_loop(self, try_some, nil, nil, nothing)
    return ok, err
end

-- The send loop: len bytes of data (a Lua string or a pointer: FFI passes a
-- string without copying it); token waits while the send buffer is full.
local function send_loop(self, conn, data, len)
    local gen, deadline, off = self.gen, nil, 0
    while true do
        local token = new_token()
        local n
        if off == 0 then
            n = C.dl_tcp_send(conn, data, len, token)
        else
            n = C.dl_tcp_send(conn, cast(char_ptr, data) + off, len - off, token)
        end
        if n > 0 then
            off = off + n
            if off >= len then return len end
        elseif n == 0 then
            return len -- only send space was asked for (len 0)
        elseif n ~= -E_AGAIN then
            return nil, fail(self, n)
        else
            deadline = deadline or now() + seconds(self.send_timeout, defaults.send_timeout)
            local why = park(token, deadline)
            if self.gen ~= gen then return nil, "closed" end
            if why == "timeout" then return nil, "timeout" end
        end
    end
end

--- sock:writable([timeout_ms]) → true once send space is free | nil, err
function Socket:writable(ms)
    local conn = self.conn
    if not conn or self.write_closed then return nil, "closed" end
    if busy(self.connector) then return nil, "socket busy connecting" end
    if busy(self.writer) then return nil, "socket busy writing" end
    local task = running_task()
    self.writer, self.user = task, task
    local saved = self.send_timeout
    if ms ~= nil then self.send_timeout = timeout_ms(ms, "writable") end
    local ok, err = send_loop(self, conn, nil, 0)
    self.send_timeout = saved
    if self.writer == task then self.writer = nil end
    if not ok then return nil, err end
    return true
end

local function put_all(buf, data, depth)
    for i = 1, #data do
        local v = data[i]
        local t = type(v)
        if t == "string" or t == "number" then
            buf:put(v)
        elseif t == "table" and depth < 16 then
            put_all(buf, v, depth + 1)
        else
            error("send: table element " .. i .. " is a " .. t .. " (expected strings)", 4)
        end
    end
end

-- The bytes to send: a string as it is, a table joined into the socket's own
-- buffer (reused: no garbage; one writer at a time keeps it stable).
local function bytes_of(self, data)
    local t = type(data)
    if t == "string" then return data, #data end
    if t == "number" then data = tostring(data) return data, #data end
    if t == "table" then
        local sbuf = self.sbuf
        if not sbuf then
            sbuf = buffer.new()
            self.sbuf = sbuf
        end
        sbuf:reset()
        put_all(sbuf, data, 1)
        return sbuf:ref()
    end
    error("send: expected a string or a table of strings, got " .. t, 3)
end

--- sock:send(data) → bytes sent | nil, err — data: a string or a (nested) array of strings
function Socket:send(data)
    local conn = self.conn
    if not conn or self.write_closed then return nil, "closed" end
    if busy(self.connector) then return nil, "socket busy connecting" end
    if busy(self.writer) then return nil, "socket busy writing" end
    local str, len = bytes_of(self, data)
    if len == 0 then return 0 end
    local task = running_task()
    self.writer, self.user = task, task
    local n, err = send_loop(self, conn, str, len)
    if self.writer == task then self.writer = nil end
    local _ = str -- referenced until here: C read it
    if not n then return nil, err end
    return n
end

--- sock:try_write(data) → bytes queued (may be fewer than #data) | nil, "again" | nil, err
function Socket:try_write(data)
    local conn = self.conn
    if not conn or self.write_closed then return nil, "closed" end
    if busy(self.writer) then return nil, "socket busy writing" end
    local p, len = bytes_of(self, data)
    if len == 0 then return 0 end
    local n = C.dl_tcp_send(conn, p, len, 0)
    if n > 0 then return n end
    if n == -E_AGAIN then return nil, "again" end
    return nil, fail(self, n)
end

--- sock:settimeout(ms): connect, send and read timeouts (nil or 0: the defaults)
function Socket:settimeout(...)
    if select("#", ...) ~= 1 then
        error("settimeout: expecting 1 argument (milliseconds), got " .. select("#", ...), 2)
    end
    local t = timeout_ms((...), "settimeout")
    self.connect_timeout, self.send_timeout, self.read_timeout = t, t, t
end

--- sock:settimeouts(connect_ms, send_ms, read_ms) (each nil or 0: its default)
function Socket:settimeouts(...)
    if select("#", ...) ~= 3 then
        error("settimeouts: expecting 3 arguments (connect, send, read ms), got "
            .. select("#", ...), 2)
    end
    local c, s, r = ...
    self.connect_timeout = timeout_ms(c, "settimeouts")
    self.send_timeout = timeout_ms(s, "settimeouts")
    self.read_timeout = timeout_ms(r, "settimeouts")
end

function Socket:setoption(name, value) return setoption(self, name, value) end
function Socket:getoption(name) return getoption(self, name) end

--- sock:local_addr() → ip, port
function Socket:local_addr() return addr(self, 0) end
--- sock:peer_addr() → ip, port
function Socket:peer_addr() return addr(self, 1) end

--- sock:shutdown("send") → true: sends FIN, reading goes on
function Socket:shutdown(how)
    if how ~= nil and how ~= "send" and how ~= "write" then
        error("shutdown: only \"send\" is supported, got " .. tostring(how), 2)
    end
    local conn = self.conn
    if not conn or self.write_closed then return nil, "closed" end
    if busy(self.writer) then return nil, "socket busy writing" end
    local rc = C.dl_tcp_shutdown_send(conn)
    if rc ~= 0 then return nil, fail(self, rc) end
    self.write_closed = true
    return true
end

--- sock:close() → 1 | nil, "closed". Tasks waiting in this socket wake with nil, "closed".
function Socket:close()
    if not self.conn then return nil, "closed" end
    release(self)
    return 1
end

function Socket:is_connected()
    local conn = self.conn
    return conn ~= nil and C.dl_tcp_state(conn) % 2 == 1 -- DL_TCP_CONNECTED
end

--- sock:core_id() → the CPU core of the worker that owns the socket
function Socket:core_id()
    local conn = self.conn
    if not conn then return nil, "closed" end
    return C.dl_tcp_core(conn)
end

function Socket:worker_id()
    local conn = self.conn
    if not conn then return nil, "closed" end
    return C.dl_tcp_worker(conn)
end

Socket.__tostring = function(self)
    if not self.conn then return "dpdk tcp socket (closed)" end
    return "dpdk tcp socket"
end

--- sock:bind(ip [, port]) before connect: the local address (and port) it connects from
function Socket:bind(ip, port)
    if type(ip) ~= "string" then error("bind: expected an IP address string, got " .. type(ip), 2) end
    check_port(port or 0, "bind")
    self.bind_ip, self.bind_port = ip, port or 0
    local conn = self.conn
    if not conn then return true end -- applied by connect
    local rc = C.dl_tcp_bind(conn, ip, port or 0)
    if rc ~= 0 then return nil, err_text(rc) end
    return true
end

-- A fresh connection for connect: the socket's own if never used, else new.
local function fresh_conn(self, host)
    local family = is_ipv6(host) and 6 or 4
    if self.conn and not self.used and self.family == family then return true end
    release(self)
    attach(self, new_conn(family, 4))
    self.family, self.used = family, false
    self.rbuf:reset()
    self.read_closed, self.write_closed, self.reused = nil, nil, 0
    if self.bind_ip then
        local rc = C.dl_tcp_bind(self.conn, self.bind_ip, self.bind_port)
        if rc ~= 0 then
            local err = err_text(rc, 3)
            release(self)
            return nil, err
        end
    end
    return true
end

-- Make the TCP connection (no pool): 1 | nil, err.
local function connect_new(self, host, port, deadline)
    local ok, err = fresh_conn(self, host)
    if not ok then return nil, err end
    self.used = true
    local conn, gen = self.conn, self.gen
    while true do
        local token = new_token()
        local rc = C.dl_tcp_connect(conn, host, port, token)
        if rc == 0 then return 1 end
        if rc ~= -E_AGAIN then return nil, fail(self, rc) end
        local why = park(token, deadline)
        if self.gen ~= gen then return nil, "closed" end
        if why == "timeout" then
            release(self)
            return nil, "timeout"
        end
    end
end

--- sock:connect(host, port [, opts]) → 1 | nil, err
-- host: an IP address or a name (dpdk.resolve: the blocking pool, cached per
-- worker; the first address, of the runtime's family first, within the
-- connect timeout).
-- opts: pool (name; default "ip:port"), pool_size, backlog (OpenResty), and
-- timeout (ms, ours: this connect only). A connected socket is closed first;
-- a closed one connects again.
function Socket:connect(host, port, opts)
    if type(host) ~= "string" then
        error("connect: expected a host name or IP address string, got " .. type(host), 2)
    end
    if type(port) == "table" and opts == nil then port, opts = nil, port end
    if port == nil then return nil, "missing the port number" end
    port = tonumber(port)
    if not port or port < 0 or port > 65535 or port ~= floor(port) then
        return nil, "bad port number: " .. tostring(port)
    end
    if busy(self.connector) then return nil, "socket busy connecting" end
    if busy(self.reader) then return nil, "socket busy reading" end
    if busy(self.writer) then return nil, "socket busy writing" end
    local task = running_task()
    self.connector, self.user = task, task
    local t = opts and opts.timeout
    local deadline = now() + (t and seconds(timeout_ms(t, "connect"), 0)
        or seconds(self.connect_timeout, defaults.connect_timeout))
    if not host:match("^[%x:.]+$") then -- a name
        local addrs, rerr = resolve.lookup(host, nil, math.max(0, deadline - now()), "connect")
        if not addrs then
            self.connector = nil
            return nil, rerr
        end
        host = addrs[1]
    end
    local ok, err
    local key = opts and opts.pool
    if key ~= nil and type(key) ~= "string" and type(key) ~= "number" then
        self.connector = nil
        error("connect: bad \"pool\" option type: " .. type(key), 2)
    end
    key = key and tostring(key) or (host .. ":" .. port)
    local spool, perr = pool.get(key, opts, defaults.pool_size)
    if perr then
        self.connector = nil
        error("connect: " .. perr, 2)
    end
    self.key = key
    if self.conn and self.used then release(self) end -- reconnect: the old one goes first
    if spool then
        local conn, reused = pool.take(spool)
        if not conn then
            ok, err = pool.admit(spool, deadline)
            if not ok then
                self.connector = nil
                return nil, err
            end
            conn, reused = pool.take(spool) -- a connection kept meanwhile
        end
        if conn then
            release(self) -- an unused fresh one
            attach(self, conn)
            self.used, self.reused, self.read_closed, self.write_closed = true, reused, nil, nil
            self.rbuf:reset()
            pool.join(spool, self)
            self.connector = nil
            return 1
        end
        pool.join(spool, self)
    end
    ok, err = connect_new(self, host, port, deadline)
    self.connector = nil
    if not ok then
        if self.pool_key then
            pool.leave(self.pool_key, self)
            self.pool_key = nil
        end
        return nil, err
    end
    return 1
end

--- sock:setkeepalive([timeout_ms [, size]]) → 1 | nil, err
-- Puts the connection into this worker's pool for its key (connect's "pool",
-- else "ip:port"); the socket object is closed afterwards. timeout 0 keeps it
-- idle forever; nil: tcp.defaults' keepalive_timeout.
function Socket:setkeepalive(timeout, size)
    if timeout ~= nil and type(timeout) ~= "number" then
        error("setkeepalive: bad timeout argument (number expected, got " .. type(timeout) .. ")", 2)
    end
    if size ~= nil and type(size) ~= "number" then
        error("setkeepalive: bad size argument (number expected, got " .. type(size) .. ")", 2)
    end
    local conn = self.conn
    if not conn or self.read_closed or self.write_closed then return nil, "closed" end
    if busy(self.connector) then return nil, "socket busy connecting" end
    if busy(self.reader) then return nil, "socket busy reading" end
    if busy(self.writer) then return nil, "socket busy writing" end
    if #self.rbuf > 0 then return nil, "unread data in buffer" end
    local state = C.dl_tcp_state(conn)
    if band(state, C.DL_TCP_CONNECTED) == 0 or band(state, C.DL_TCP_FAILED + C.DL_TCP_PEER_CLOSED) ~= 0 then
        release(self)
        return nil, "closed"
    end
    if band(state, C.DL_TCP_UNREAD) ~= 0 then -- bytes came that nobody asked for
        release(self)
        return nil, "connection in dubious state"
    end
    local key = self.pool_key or self.key
    if not key then
        local ip, port = addr(self, 1)
        key = ip and (ip .. ":" .. port)
    end
    local ms = timeout and floor(timeout) or defaults.keepalive_timeout * 1000
    local ok, err = pool.put(key, conn, self.reused, ms, size and floor(size) or defaults.pool_size)
    if not ok then
        if err == "bad size" then error("setkeepalive: bad \"pool_size\" option value: " .. size, 2) end
        release(self)
        return nil, err
    end
    -- ownership: the connection is the pool's now
    live[self] = nil
    self.conn = nil
    self.gen = self.gen + 1
    if self.pool_key then
        pool.leave(self.pool_key, self)
        self.pool_key = nil
    end
    return 1
end

--- sock:getreusedtimes() → how often this connection came from the pool (0: never)
function Socket:getreusedtimes()
    if not self.conn then return nil, "closed" end
    return self.reused
end

-- The listener ----------------------------------------------------------------

local Listener = {}
Listener.__index = Listener

--- listen(ip, port [, { backlog = 511 }]) → listener | nil, err
function M.listen(ip, port, opts)
    if type(ip) ~= "string" then
        error("tcp.listen: expected an IP address string, got " .. type(ip), 2)
    end
    check_port(port, "tcp.listen")
    local backlog = opts and opts.backlog or 511
    local self = setmetatable({ accept_timeout = 0, waiters = {} }, Listener)
    attach(self, new_conn(is_ipv6(ip) and 6 or 4, 2))
    local bind_ip = (ip == "0.0.0.0" or ip == "::") and "*" or ip
    local rc = C.dl_tcp_bind(self.conn, bind_ip, port)
    if rc == 0 then rc = C.dl_tcp_listen(self.conn, backlog) end
    if rc ~= 0 then
        local err = err_text(rc, 2)
        release(self)
        return nil, err
    end
    return self
end

--- listener:accept() → sock, peer_ip, peer_port | nil, err
-- Several tasks may wait in accept: each connection goes to one of them.
-- The stack keeps one armed token per listener, so a waiter that wakes (for
-- a connection, a timeout or its end) wakes the others to try again and one
-- of them re-arms it.
function Listener:accept()
    local conn = self.conn
    if not conn then return nil, "closed" end
    local task = running_task()
    self.user = task
    local gen, waiters, deadline = self.gen, self.waiters, nil
    while true do
        local token = new_token()
        local rc = C.dl_tcp_accept(conn, conn_box, token)
        if rc == 0 then
            local sock = new_socket(conn_box[0])
            sock.used = true
            local ip, port = sock:peer_addr()
            return sock, ip, port
        end
        if rc ~= -E_AGAIN then return nil, err_text(rc) end
        if not deadline then
            local ms = self.accept_timeout
            deadline = ms > 0 and now() + ms / 1000 or 1e300
        end
        if not task then error("accept has to wait: call it from a task", 2) end
        waiters[task], accepting[task] = token, self
        local why = park(token, deadline)
        waiters[task], accepting[task] = nil, nil
        if self.gen ~= gen then return nil, "closed" end
        for _, tok in pairs(waiters) do wake(tok) end
        if why == "timeout" then return nil, "timeout" end
    end
end

--- listener:settimeout(ms): how long accept waits (nil or 0, the default: forever)
function Listener:settimeout(ms)
    self.accept_timeout = timeout_ms(ms, "settimeout")
end

function Listener:setoption(name, value) return setoption(self, name, value) end
function Listener:getoption(name) return getoption(self, name) end
function Listener:local_addr() return addr(self, 0) end

function Listener:close()
    if not self.conn then return nil, "closed" end
    release(self)
    return 1
end

Listener.__tostring = function(self)
    return self.conn and "dpdk tcp listener" or "dpdk tcp listener (closed)"
end

return M

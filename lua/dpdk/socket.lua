-- dpdk.socket — the TCP cosocket (what dpdk.tcp's connect, socket and
-- accept return), OpenResty style.
--
-- Received bytes move from lwIP's queue into the socket's own string.buffer
-- as the reader asks for them (which reopens the TCP window); patterns are
-- found there with memchr/memmem, and results are cut out of it.
local ffi = require "ffi"
local buffer = require "string.buffer"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local conn_util = require "dpdk.conn"

pcall(ffi.cdef, [[
void *memchr(const void *s, int c, size_t n);
void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);
]])

local OK, AGAIN, ERROR = C.DL_OK, C.DL_AGAIN, C.DL_ERROR
local new_token = sched.token
local cast, ffi_string = ffi.cast, ffi.string
local type, tostring, error, setmetatable, select = type, tostring, error, setmetatable, select
local floor = math.floor

local errmsg, raise_misuse, conn_error = conn_util.errmsg, conn_util.raise_misuse,
    conn_util.conn_error
local deadline_of, park = conn_util.deadline_of, conn_util.park
local check_ip, check_port, timeout_arg = conn_util.check_ip, conn_util.check_port,
    conn_util.timeout_arg
local setoption, getoption, addr = conn_util.setoption, conn_util.getoption, conn_util.addr
local release = conn_util.release

local char_ptr = ffi.typeof("const char *")

local DEFAULT_TIMEOUT = 60 -- seconds, as OpenResty's lua_socket_*_timeout

local Socket = {}
Socket.__index = Socket

local M = {}

-- A socket over conn (a dl_conn* of this worker).
function M.new(conn)
    return conn_util.track(setmetatable({
        rbuf = buffer.new(),
        connect_timeout = DEFAULT_TIMEOUT,
        send_timeout = DEFAULT_TIMEOUT,
        read_timeout = DEFAULT_TIMEOUT,
    }, Socket), conn)
end

-- Move what lwIP has buffered into rbuf; returns the bytes moved, or nil, err.
local function fill(self, conn)
    local n = C.dl_tcp_readable(conn)
    if n == 0 then return 0 end
    local rbuf = self.rbuf
    local p = rbuf:reserve(n)
    local got = C.dl_tcp_recv(conn, p, n)
    if got < 0 then
        rbuf:commit(0)
        return nil, raise_misuse(errmsg())
    end
    rbuf:commit(got)
    return tonumber(got)
end

-- Ask C (check: dl_tcp_wait_readable, dl_tcp_wait_writable or
-- dl_tcp_connect_status) until it answers DL_OK, parking on a token between
-- tries; true, or nil and "timeout" or the error.
local function wait_for(check, conn, deadline)
    while true do
        local token = new_token()
        local rc = check(conn, token)
        if rc == OK then return true end
        if rc == ERROR then return nil, raise_misuse(errmsg()) end
        if park(token, deadline) == "timeout" then return nil, "timeout" end
    end
end

-- Until lwIP has data or the stream ended.
local function wait_readable(conn, deadline)
    return wait_for(C.dl_tcp_wait_readable, conn, deadline)
end

-- Until lwIP has send space or the stream failed.
local function wait_writable(conn, deadline)
    return wait_for(C.dl_tcp_wait_writable, conn, deadline)
end

-- The reading loop shared by every receive form: try(self) looks at rbuf and
-- returns true and the result when it has what it needs; otherwise pull more
-- from lwIP, or wait. On EOF/error/timeout: nil, err, the bytes left in rbuf.
local function read_loop(self, try, a1, a2)
    local conn = self.conn
    if not conn then return nil, "closed" end
    if self.reading then return nil, "busy reading" end
    self.reading = true
    local deadline = deadline_of(self.read_timeout)
    while true do
        local done, result = try(self, a1, a2)
        if done then
            self.reading = false
            return result
        end
        local got, err = fill(self, conn)
        if not got then
            self.reading = false
            return nil, err, self.rbuf:get()
        end
        if got == 0 then
            if C.dl_tcp_eof(conn) ~= 0 then
                self.reading = false
                local final_done, final = try(self, a1, a2, true)
                if final_done then return final end
                return nil, conn_error(conn), self.rbuf:get()
            end
            local ok, werr = wait_readable(conn, deadline)
            if not ok then
                self.reading = false
                return nil, werr, self.rbuf:get()
            end
        end
    end
end

local function try_line(self)
    local rbuf = self.rbuf
    local p, len = rbuf:ref()
    if len == 0 then return false end
    local nl = C.memchr(p, 10, len)
    if nl == nil then return false end
    local off = cast(char_ptr, nl) - p
    if off > 0 and p[off - 1] == 13 then
        local line = rbuf:get(off - 1)
        rbuf:skip(2)
        return true, line
    end
    local line = rbuf:get(off)
    rbuf:skip(1)
    return true, line
end

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
-- pattern: "*l" (a line without "\r\n"/"\n", the default), "*a" (until the
-- peer closes; returns "" rather than an error at EOF), or a byte count.
function Socket:receive(pattern)
    pattern = pattern or "*l"
    if type(pattern) == "number" then
        if pattern < 0 or pattern ~= floor(pattern) then
            error("receive: expected a byte count >= 0, got " .. tostring(pattern), 2)
        end
        if pattern == 0 then return self.conn and "" or nil, not self.conn and "closed" or nil end
        return read_loop(self, try_bytes, pattern)
    elseif pattern == "*l" or pattern == "l" then
        return read_loop(self, try_line)
    elseif pattern == "*a" or pattern == "a" then
        return read_loop(self, try_all)
    end
    error("receive: bad pattern " .. tostring(pattern) .. " (expected \"*l\", \"*a\" or a number)", 2)
end

local function try_any(self, max)
    local rbuf = self.rbuf
    local n = #rbuf
    if n == 0 then return false end
    return true, rbuf:get(n < max and n or max)
end

--- sock:receiveany(max) → up to max bytes as soon as any are there | nil, err
function Socket:receiveany(max)
    if type(max) ~= "number" or max < 1 then
        error("receiveany: expected a maximum byte count >= 1, got " .. tostring(max), 2)
    end
    local data, err = read_loop(self, try_any, floor(max))
    if data then return data end
    return nil, err
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
    local data, err = read_loop(self, try_peek, floor(n))
    if data then return data end
    return nil, err
end

local function try_until(self, state)
    local rbuf = self.rbuf
    local p, len = rbuf:ref()
    local pat, plen, size = state.pattern, #state.pattern, state.size
    local hit = len >= plen and C.memmem(p, len, pat, plen) or nil
    if hit ~= nil then
        local off = cast(char_ptr, hit) - p
        if size and off > size then return true, rbuf:get(size) end
        if size and off > 0 then return true, rbuf:get(off) end -- the boundary comes next call
        local data = off > 0 and rbuf:get(off) or ""
        if state.inclusive then
            data = data .. rbuf:get(plen)
        else
            rbuf:skip(plen)
        end
        if size then return true, nil end -- with size: nil marks the boundary
        return true, data
    end
    -- no boundary yet: with a size, hand out what cannot be part of it
    if size and len - plen + 1 >= size then return true, rbuf:get(size) end
    return false
end

--- sock:receiveuntil(pattern [, { inclusive = true }]) → iterator
-- iterator() → the data before the next occurrence of pattern (consumed);
-- iterator(size) → at most size bytes per call, then nil at the boundary.
function Socket:receiveuntil(pattern, opts)
    if type(pattern) ~= "string" or #pattern == 0 then
        error("receiveuntil: expected a non-empty pattern string", 2)
    end
    local state = { pattern = pattern, inclusive = opts and opts.inclusive or false }
    return function(size)
        if size ~= nil and (type(size) ~= "number" or size < 1) then
            error("receiveuntil iterator: expected a size >= 1, got " .. tostring(size), 2)
        end
        state.size = size and floor(size) or nil
        return read_loop(self, try_until, state)
    end
end

--- sock:try_read(max) → data | nil, "again" | nil, err — never waits
function Socket:try_read(max)
    max = max or 65536
    local conn = self.conn
    if not conn then return nil, "closed" end
    local done, data = try_any(self, max)
    if done then return data end
    local got, err = fill(self, conn)
    if not got then return nil, err end
    if got > 0 then return (select(2, try_any(self, max))) end
    if C.dl_tcp_eof(conn) ~= 0 then return nil, conn_error(conn) end
    return nil, "again"
end

--- sock:readable([timeout_ms]) → true once data (or EOF) is there | nil, err
function Socket:readable(timeout_ms)
    local conn = self.conn
    if not conn then return nil, "closed" end
    if #self.rbuf > 0 then return true end
    local t = timeout_arg(timeout_ms, "readable") or self.read_timeout
    return wait_readable(conn, deadline_of(t))
end

--- sock:writable([timeout_ms]) → true once send space is free | nil, err
function Socket:writable(timeout_ms)
    local conn = self.conn
    if not conn then return nil, "closed" end
    local t = timeout_arg(timeout_ms, "writable") or self.send_timeout
    local ok, err = wait_writable(conn, deadline_of(t))
    if not ok then return nil, err end
    if C.dl_tcp_is_connected(conn) == 0 and C.dl_tcp_error(conn) ~= nil then
        return nil, conn_error(conn)
    end
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

--- sock:send(data) → bytes sent | nil, err — data: a string or an array of strings
function Socket:send(data)
    local conn = self.conn
    if not conn then return nil, "closed" end
    if self.writing then return nil, "busy writing" end
    local str, len = bytes_of(self, data)
    local p = cast(char_ptr, str) -- str stays referenced below while C reads it
    self.writing = true
    local deadline = deadline_of(self.send_timeout)
    local off = 0
    while off < len do
        local n = C.dl_tcp_send(conn, p + off, len - off)
        if n < 0 then
            self.writing = false
            return nil, raise_misuse(errmsg())
        end
        off = off + tonumber(n)
        if off < len then
            local ok, err = wait_writable(conn, deadline)
            if not ok then
                self.writing = false
                return nil, err
            end
        end
    end
    self.writing = false
    local _ = str
    return len
end

--- sock:try_write(data) → bytes queued (may be fewer than #data) | nil, "again" | nil, err
function Socket:try_write(data)
    local conn = self.conn
    if not conn then return nil, "closed" end
    if self.writing then return nil, "busy writing" end
    local p, len = bytes_of(self, data)
    local n = C.dl_tcp_send(conn, cast(char_ptr, p), len)
    if n < 0 then return nil, raise_misuse(errmsg()) end
    if n == 0 and len > 0 then return nil, "again" end
    return tonumber(n)
end

--- sock:settimeout(ms): connect, send and read timeouts at once; 0: no timeout
function Socket:settimeout(ms)
    local t = timeout_arg(ms, "settimeout")
    self.connect_timeout, self.send_timeout, self.read_timeout = t, t, t
end

function Socket:settimeouts(connect_ms, send_ms, read_ms)
    self.connect_timeout = timeout_arg(connect_ms, "settimeouts") or self.connect_timeout
    self.send_timeout = timeout_arg(send_ms, "settimeouts") or self.send_timeout
    self.read_timeout = timeout_arg(read_ms, "settimeouts") or self.read_timeout
end

function Socket:setoption(name, value) return setoption(self, name, value, "setoption") end
function Socket:getoption(name) return getoption(self, name, "getoption") end

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
    if not conn then return nil, "closed" end
    if C.dl_tcp_shutdown_send(conn) ~= OK then return nil, raise_misuse(errmsg()) end
    return true
end

--- sock:close() → 1: graceful close (FIN); the socket is unusable afterwards
function Socket:close()
    if not self.conn then return nil, "closed" end
    release(self)
    return 1
end

function Socket:is_connected()
    return self.conn ~= nil and C.dl_tcp_is_connected(self.conn) ~= 0
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

--- sock:bind(ip, port) before connect: the local address and port (0: any)
function Socket:bind(ip, port)
    check_ip(ip, "bind")
    check_port(port or 0, "bind")
    local conn = self.conn
    if not conn then return nil, "closed" end
    if C.dl_tcp_bind(conn, ip, port or 0) ~= OK then return nil, raise_misuse(errmsg()) end
    return true
end

--- sock:connect(ip, port [, { timeout = ms }]) → true | nil, err
function Socket:connect(host, port, opts)
    check_ip(host, "connect")
    check_port(port, "connect")
    local conn = self.conn
    if not conn then return nil, "closed" end
    local t = (opts and timeout_arg(opts.timeout, "connect")) or self.connect_timeout
    local deadline = deadline_of(t)
    local token = new_token()
    local rc = C.dl_tcp_connect(conn, host, port, token)
    if rc == ERROR then return nil, raise_misuse(errmsg()) end
    if rc == AGAIN and park(token, deadline) == "timeout" then return nil, "timeout" end
    return wait_for(C.dl_tcp_connect_status, conn, deadline)
end

return M

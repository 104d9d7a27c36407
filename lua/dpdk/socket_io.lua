-- dpdk.socket_io — a cosocket's reading and writing (the hot path), on
-- whichever transport the socket has (sock.T): receive and its forms (the
-- patterns of dpdk.framing), receiveany, receiveuntil, peek, try_read,
-- readable, send, try_write, writable. dpdk.socket installs these methods on
-- its Socket table (this module returns the installer). Steady state makes
-- no garbage but the results: tokens are numbers, the buffers are the
-- socket's own, and a wait is two calls into C.
local ffi = require "ffi"
local buffer = require "string.buffer"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local framing = require "dpdk.framing"

local E_AGAIN = C.DL_E_AGAIN
local running_task = sched.running_task
local spin = sched.spin
local now = C.dl_now
local cast = ffi.cast
local type, tostring, tonumber, error = type, tostring, tonumber, error
local floor = math.floor
local try_line, line_left, try_bytes, try_all, try_any, try_peek, try_some, try_until,
    until_left, all_left, nothing = framing.try_line, framing.line_left, framing.try_bytes,
    framing.try_all, framing.try_any, framing.try_peek, framing.try_some, framing.try_until,
    framing.until_left, framing.all_left, framing.nothing

local char_ptr = ffi.typeof("const char *")

-- Bytes asked from the transport per call (sock.rroom): a socket starts at
-- 4 KiB (dpdk.socket sets it) and doubles up to RECV_CHUNK each time a read
-- fills all it asked for; rbuf keeps the room. An idle keep-alive connection
-- so holds 4 KiB, not 64 (docs/performance.md, "Memory per idle connection").
-- rbuf:reserve's pointer goes straight into the recv call, never into a
-- local: a local keeps the boxed pointer alive in the loop's trace, which
-- then allocates it on every exit to the scheduler (24 bytes a round trip).
local RECV_CHUNK = 65536

return function(Socket, S)
    local busy, fail, park, seconds, timeout_ms, defaults = S.busy, S.fail, S.park, S.seconds,
        S.timeout_ms, S.defaults

    -- The reading loop shared by every receive form: try(rbuf, a1, a2) looks at
    -- rbuf and returns true and the result when it has what it needs; otherwise
    -- more comes from the transport, or the task waits. On EOF (after a last
    -- try), error or timeout: nil, err, partial (what left(rbuf, a1, a2) cuts out).
    local function read_loop(self, try, a1, a2, left)
        local conn = self.conn
        if not conn or self.read_closed then return nil, "closed" end
        if busy(self.connector) then return nil, "socket busy connecting" end
        if busy(self.reader) then return nil, "socket busy reading" end
        local task = running_task()
        self.reader, self.user = task, task
        local gen, rbuf, recv, deadline = self.gen, self.rbuf, self.T.recv, nil
        local token = self.rtoken
        -- loop turns it may run itself before it parks (sched.spin; the
        -- transport's figure: 64 on dpdk, ~2-4 µs of idle turns, about a
        -- request-response peer's round trip; 0 on kernel sockets)
        local spin_turns = self.T.spin_turns
        local spins = spin_turns
        while true do
            local done, result = try(rbuf, a1, a2)
            if done then
                self.reader = nil
                return result
            end
            local want = self.rroom
            local n = recv(conn, rbuf:reserve(want), want, token)
            if n > 0 then
                rbuf:commit(n)
                if n == want and want < RECV_CHUNK then self.rroom = want * 2 end
            else
                rbuf:commit(0)
                if n == 0 then -- EOF: a last look, then the read half is done
                    self.reader = nil
                    local final_done, final = try(rbuf, a1, a2, true)
                    if final_done then return final end
                    self.read_closed = true
                    return nil, "closed", left(rbuf, a1, a2, true)
                elseif n ~= -E_AGAIN then
                    self.reader = nil
                    local p = left(rbuf, a1, a2, true)
                    return nil, fail(self, n), p
                end
                deadline = deadline or now() + seconds(self.read_timeout, defaults.read_timeout)
                if spins > 0 and spin(deadline) then -- a turn of the loop in this task, then again
                    spins = spins - 1
                else
                    local why = park(token, deadline)
                    spins = spin_turns
                    if why == "timeout" and self.gen == gen then
                        self.reader = nil
                        return nil, "timeout", left(rbuf, a1, a2, false)
                    end
                end
                if self.gen ~= gen then -- closed (or reconnected) by another task meanwhile
                    if self.reader == task then self.reader = nil end
                    return nil, "closed", left(rbuf, a1, a2, true)
                end
            end
        end
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

    --- sock:receiveany(max) → up to max bytes as soon as any are there | nil, err, ""
    function Socket:receiveany(max)
        max = tonumber(max)
        if not max or max < 1 then
            error("receiveany: bad max argument " .. tostring(max) .. " (expected a number >= 1)", 2)
        end
        return read_loop(self, try_any, floor(max), nil, nothing)
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

    --- sock:receiveuntil(pattern [, { inclusive = true }]) → iterator
    -- iterator() → the data before the next occurrence of pattern (consumed);
    -- iterator(size) → at most about size bytes per call, then nil at the boundary.
    function Socket:receiveuntil(pattern, opts)
        if type(pattern) ~= "string" or #pattern == 0 then
            error("receiveuntil: expected a non-empty pattern string", 2)
        end
        local st = {
            pattern = pattern, plen = #pattern, rec = framing.compile(pattern), size = 0,
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
        local rbuf = self.rbuf
        local done, data = try_any(rbuf, max)
        if done then return data end
        local want = self.rroom
        local n = self.T.recv(conn, rbuf:reserve(want), want, 0)
        rbuf:commit(n > 0 and n or 0)
        if n == want and want < RECV_CHUNK then self.rroom = want * 2 end
        if n > 0 then
            local _, got = try_any(rbuf, max)
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
        local gen, deadline, off, send = self.gen, nil, 0, self.T.send
        local token = self.wtoken
        while true do
            local n
            if off == 0 then
                n = send(conn, data, len, token)
            else
                n = send(conn, cast(char_ptr, data) + off, len - off, token)
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
        local n = self.T.send(conn, p, len, 0)
        if n > 0 then return n end
        if n == -E_AGAIN then return nil, "again" end
        return nil, fail(self, n)
    end
end

-- dpdk.socket_io — a cosocket's reading and writing (the hot path), on
-- whichever transport the socket has (its slot T): receive and its forms (the
-- patterns of dpdk.framing), receiveany, receiveuntil, peek, try_read,
-- readable, send, try_write, writable. dpdk.socket installs these methods on
-- its Socket table (this module returns the installer). Steady state makes
-- no garbage but the results: tokens are numbers, the buffers are reused,
-- and a wait is two calls into C.
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

-- Bytes asked from the transport per call (the socket's slot RROOM): a socket starts at
-- 4 KiB (dpdk.socket sets it) and doubles up to RECV_CHUNK each time a read
-- fills all it asked for; rbuf keeps the room. A socket with a buffer of its own
-- (dpdk.socket: reads past 4 KiB, or bytes left when another borrowed the
-- worker's) so keeps 4 KiB, not 64; one that borrows the worker's keeps none.
-- rbuf:reserve's pointer goes straight into the recv call, never into a
-- local: a local keeps the boxed pointer alive in the loop's trace, which
-- then allocates it on every exit to the scheduler (24 bytes a round trip).
local RECV_CHUNK = 65536

return function(Socket, S)
    local busy, fail, park, seconds, timeout_ms, defaults, cold, rbuf_for_read = S.busy, S.fail,
        S.park, S.seconds, S.timeout_ms, S.defaults, S.cold, S.rbuf_for_read
    local F = S.SLOTS
    local T_, CONN, GEN, RROOM, RTOKEN, WTOKEN, READER, WRITER, CONNECTOR, USER,
        READ_CLOSED, WRITE_CLOSED, READ_TIMEOUT, SEND_TIMEOUT = F.T, F.CONN, F.GEN,
        F.RROOM, F.RTOKEN, F.WTOKEN, F.READER, F.WRITER, F.CONNECTOR, F.USER, F.READ_CLOSED,
        F.WRITE_CLOSED, F.READ_TIMEOUT, F.SEND_TIMEOUT

    -- The reading loop shared by every receive form: try(rbuf, a1, a2) looks at
    -- rbuf and returns true and the result when it has what it needs; otherwise
    -- more comes from the transport, or the task waits. On EOF (after a last
    -- try), error or timeout: nil, err, partial (what left(rbuf, a1, a2) cuts out).
    local function read_loop(self, try, a1, a2, left)
        local conn = self[CONN]
        if not conn or self[READ_CLOSED] then return nil, "closed" end
        if busy(self[CONNECTOR]) then return nil, "socket busy connecting" end
        if busy(self[READER]) then return nil, "socket busy reading" end
        local task = running_task() or false
        self[READER], self[USER] = task, task
        local T = self[T_]
        local gen, rbuf, recv, deadline = self[GEN], rbuf_for_read(self), T.recv, nil
        local token = self[RTOKEN]
        -- loop turns it may run itself before it parks (sched.spin; the
        -- transport's figure: 64 on dpdk, ~2-4 µs of idle turns, about a
        -- request-response peer's round trip; 0 on kernel sockets)
        local spin_turns = T.spin_turns
        local spins = spin_turns
        while true do
            local done, result = try(rbuf, a1, a2)
            if done then
                self[READER] = false
                return result
            end
            local want = self[RROOM]
            local n = recv(conn, rbuf:reserve(want), want, token)
            if n > 0 then
                rbuf:commit(n)
                if n == want and want < RECV_CHUNK then self[RROOM] = want * 2 end
            else
                rbuf:commit(0)
                if n == 0 then -- EOF: a last look, then the read half is done
                    self[READER] = false
                    local final_done, final = try(rbuf, a1, a2, true)
                    if final_done then return final end
                    self[READ_CLOSED] = true
                    return nil, "closed", left(rbuf, a1, a2, true)
                elseif n ~= -E_AGAIN then
                    self[READER] = false
                    local p = left(rbuf, a1, a2, true)
                    return nil, fail(self, n), p
                end
                deadline = deadline or now() + seconds(self[READ_TIMEOUT], defaults.read_timeout)
                if spins > 0 and spin(deadline) then -- a turn of the loop in this task, then again
                    spins = spins - 1
                    rbuf = rbuf_for_read(self) -- what the turn ran may have borrowed it (see below)
                else
                    local why = park(token, deadline, self)
                    spins = spin_turns
                    -- others read meanwhile: what this socket had moved to its own
                    -- buffer if another borrowed the shared one; if it had nothing,
                    -- it borrows again
                    rbuf = rbuf_for_read(self)
                    if why == "timeout" and self[GEN] == gen then
                        self[READER] = false
                        return nil, "timeout", left(rbuf, a1, a2, false)
                    end
                end
                if self[GEN] ~= gen then -- closed (or reconnected) by another task meanwhile
                    if self[READER] == task then self[READER] = false end
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
                if not self[CONN] or self[READ_CLOSED] then return nil, "closed" end
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
        local conn = self[CONN]
        if not conn or self[READ_CLOSED] then return nil, "closed" end
        if busy(self[READER]) then return nil, "socket busy reading" end
        local rbuf = rbuf_for_read(self)
        local done, data = try_any(rbuf, max)
        if done then return data end
        local want = self[RROOM]
        local n = self[T_].recv(conn, rbuf:reserve(want), want, 0)
        rbuf:commit(n > 0 and n or 0)
        if n == want and want < RECV_CHUNK then self[RROOM] = want * 2 end
        if n > 0 then
            local _, got = try_any(rbuf, max)
            return got
        end
        if n == 0 then
            self[READ_CLOSED] = true
            return nil, "closed"
        end
        if n == -E_AGAIN then return nil, "again" end
        return nil, fail(self, n)
    end

    --- sock:readable([timeout_ms]) → true once data (or EOF) is there | nil, err
    -- A read: while another task reads, "socket busy reading".
    function Socket:readable(ms)
        local conn = self[CONN]
        if not conn or self[READ_CLOSED] then return nil, "closed" end
        if ms ~= nil then
            local saved = self[READ_TIMEOUT]
            self[READ_TIMEOUT] = timeout_ms(ms, "readable")
            local ok, err = read_loop(self, try_some, nil, nil, nothing)
            self[READ_TIMEOUT] = saved
            return ok, err
        end
        local ok, err = read_loop(self, try_some, nil, nil, nothing)
        return ok, err
    end

    -- The worker's buffer that send(table) joins its pieces into (each Lua
    -- state has its own): the transport copies what it takes, so the buffer is
    -- free again when send returns, and one buffer that stays in cache serves
    -- every socket (at 10 000 connections a socket's own buffer was cold
    -- lines written on every request). Only a send that has to wait moves
    -- what is left into the socket's own buffer (send_loop), as another task
    -- may join into this one meanwhile. Freed after a large send, so that the
    -- worker does not keep its largest reply's memory.
    local joined = buffer.new()
    local JOINED_KEEP = 65536

    -- The send loop: len bytes of data (a Lua string or a pointer: FFI passes a
    -- string without copying it); token waits while the send buffer is full.
    -- volatile: data is in `joined`, to be moved before a wait.
    local function send_loop(self, conn, data, len, volatile)
        local gen, deadline, off, send = self[GEN], nil, 0, self[T_].send
        local token, total = self[WTOKEN], len
        while true do
            local n
            if off == 0 then
                n = send(conn, data, len, token)
            else
                n = send(conn, cast(char_ptr, data) + off, len - off, token)
            end
            if n > 0 then
                off = off + n
                if off >= len then return total end
            elseif n == 0 then
                return total -- only send space was asked for (len 0)
            elseif n ~= -E_AGAIN then
                return nil, fail(self, n)
            else
                if volatile then -- what is left, into the socket's own buffer
                    local c = cold(self)
                    local own = c.sbuf
                    if not own then
                        own = buffer.new()
                        c.sbuf = own
                    end
                    local rest = len - off
                    own:reset()
                    own:putcdata(cast(char_ptr, data) + off, rest)
                    data, len, off, volatile = own:ref(), rest, 0, false
                end
                deadline = deadline or now() + seconds(self[SEND_TIMEOUT], defaults.send_timeout)
                local why = park(token, deadline, self)
                if self[GEN] ~= gen then return nil, "closed" end
                if why == "timeout" then return nil, "timeout" end
            end
        end
    end

    --- sock:writable([timeout_ms]) → true once send space is free | nil, err
    function Socket:writable(ms)
        local conn = self[CONN]
        if not conn or self[WRITE_CLOSED] then return nil, "closed" end
        if busy(self[CONNECTOR]) then return nil, "socket busy connecting" end
        if busy(self[WRITER]) then return nil, "socket busy writing" end
        local task = running_task() or false
        self[WRITER], self[USER] = task, task
        local saved = self[SEND_TIMEOUT]
        if ms ~= nil then self[SEND_TIMEOUT] = timeout_ms(ms, "writable") end
        local ok, err = send_loop(self, conn, nil, 0, false)
        self[SEND_TIMEOUT] = saved
        if self[WRITER] == task then self[WRITER] = false end
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

    -- The bytes to send: a string as it is, a table joined into the worker's
    -- buffer (`joined`, above): data, len, volatile (true: in `joined`).
    local function bytes_of(data)
        local t = type(data)
        if t == "string" then return data, #data, false end
        if t == "number" then data = tostring(data) return data, #data, false end
        if t == "table" then
            joined:reset()
            put_all(joined, data, 1)
            local p, len = joined:ref()
            return p, len, true
        end
        error("send: expected a string or a table of strings, got " .. t, 3)
    end

    --- sock:send(data) → bytes sent | nil, err — data: a string or a (nested) array of strings
    function Socket:send(data)
        local conn = self[CONN]
        if not conn or self[WRITE_CLOSED] then return nil, "closed" end
        if busy(self[CONNECTOR]) then return nil, "socket busy connecting" end
        if busy(self[WRITER]) then return nil, "socket busy writing" end
        local str, len, volatile = bytes_of(data)
        if len == 0 then return 0 end
        local task = running_task() or false
        self[WRITER], self[USER] = task, task
        local n, err = send_loop(self, conn, str, len, volatile)
        if self[WRITER] == task then self[WRITER] = false end
        local _ = str -- referenced until here: C read it
        if volatile and len > JOINED_KEEP then joined:free() end
        if not n then return nil, err end
        return n
    end

    --- sock:try_write(data) → bytes queued (may be fewer than #data) | nil, "again" | nil, err
    function Socket:try_write(data)
        local conn = self[CONN]
        if not conn or self[WRITE_CLOSED] then return nil, "closed" end
        if busy(self[WRITER]) then return nil, "socket busy writing" end
        local p, len, volatile = bytes_of(data)
        if len == 0 then return 0 end
        local n = self[T_].send(conn, p, len, 0)
        if volatile and len > JOINED_KEEP then joined:free() end
        if n > 0 then return n end
        if n == -E_AGAIN then return nil, "again" end
        return nil, fail(self, n)
    end
end

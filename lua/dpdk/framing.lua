-- dpdk.framing — the receive patterns of a cosocket, over the socket's own
-- string.buffer of received bytes (whatever the transport). dpdk.socket's
-- read loop calls a pattern's `try(rbuf, a, b, at_eof)` each time bytes came:
-- it returns true and the result once rbuf holds what it needs, else false.
-- When the read fails (EOF, error, timeout) the pattern's `left(rbuf, a, b,
-- at_end)` cuts out the partial result. Patterns are found with
-- memchr/memmem and results cut out of rbuf: only the result allocates.
local ffi = require "ffi"

pcall(ffi.cdef, [[
void *memchr(const void *s, int c, size_t n);
void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);
]])
local C = ffi.C

local cast, ffi_string = ffi.cast, ffi.string
local tonumber = tonumber
local byte, find, gsub, sub = string.byte, string.find, string.gsub, string.sub

local char_ptr = ffi.typeof("const char *")
local u8_ptr = ffi.typeof("const uint8_t *")

local M = {}

-- What is left, as the partial result of a failed read.
function M.all_left(rbuf) return rbuf:get() end
function M.nothing() return "" end

-- "*l": a line without its LF and every CR (as OpenResty). The usual CR
-- just before the LF is left in rbuf and skipped with it, so a CRLF line is
-- one string; gsub (not compiled, and a second string) only for other CRs.
function M.try_line(rbuf)
    local p, len = rbuf:ref()
    if len == 0 then return false end
    local nl = C.memchr(p, 10, len)
    if nl == nil then return false end
    local n = tonumber(cast(char_ptr, nl) - p)
    local cr = n > 0 and p[n - 1] == 13
    if cr then n = n - 1 end
    local line = rbuf:get(n)
    rbuf:skip(cr and 2 or 1)
    if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
    return true, line
end

function M.line_left(rbuf)
    local s = rbuf:get()
    if find(s, "\r", 1, true) then s = gsub(s, "\r", "") end
    return s
end

-- n: exactly n bytes.
function M.try_bytes(rbuf, n)
    if #rbuf >= n then return true, rbuf:get(n) end
    return false
end

-- "*a": everything until the peer closes.
function M.try_all(rbuf, _, _, at_eof)
    if at_eof then return true, rbuf:get() end
    return false
end

-- receiveany(max): whatever is there, at most max.
function M.try_any(rbuf, max)
    local n = #rbuf
    if n == 0 then return false end
    return true, rbuf:get(n < max and n or max)
end

-- peek(n): the next n bytes, left in place (fewer at EOF).
function M.try_peek(rbuf, n, _, at_eof)
    local p, len = rbuf:ref()
    if len >= n then return true, ffi_string(p, n) end
    if at_eof and len > 0 then return true, ffi_string(p, len) end
    return false
end

-- readable(): any byte, or EOF.
function M.try_some(rbuf, _, _, at_eof) return #rbuf > 0 or at_eof == true, true end

-- receiveuntil ----------------------------------------------------------------
-- Unsized, the iterator returns the data before the pattern (memmem). Sized,
-- it runs OpenResty's DFA (ngx_http_lua_socket_read_until) over rbuf so that
-- the chunks are the same: bytes that cannot start the pattern go out as
-- soon as size of them are there; a partial match is held back in rbuf.

-- OpenResty's recovery edges: rec[state][byte] = the state to go on in.
function M.compile(pat)
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

-- st: { pattern, plen, rec (compile), size (0: unsized), inclusive, ended }
function M.try_until(rbuf, st)
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

function M.until_left(rbuf, st, _, at_end)
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

return M

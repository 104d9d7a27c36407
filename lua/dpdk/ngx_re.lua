-- dpdk.ngx_re — ngx.re.match/find/gmatch/sub/gsub over PCRE2 (Debian's
-- libpcre2-8, through the FFI), with OpenResty's flags, results and errors.
--
-- Flags: a (anchored), D (duplicate names), i, j (JIT), J (JavaScript-ish),
-- m, o (keep the compiled pattern: a per-worker cache), s, u (UTF-8), U (UTF-8,
-- no validity check), x. "d" (DFA matching) is not supported (an error says
-- so). Captures that did not take part in the match are false, named captures
-- are also under their names, as OpenResty's are.
local ffi = require "ffi"
local bit = require "bit"

local band, bor, lshift = bit.band, bit.bor, bit.lshift
local ffi_string, ffi_new, ffi_gc = ffi.string, ffi.new, ffi.gc
local type, tostring, error, sub, byte = type, tostring, error, string.sub, string.byte
local concat = table.concat

ffi.cdef [[
typedef struct pcre2_real_code_8 pcre2_code_8;
typedef struct pcre2_real_match_data_8 pcre2_match_data_8;
pcre2_code_8 *pcre2_compile_8(const unsigned char *pattern, size_t length, uint32_t options,
    int *errorcode, size_t *erroroffset, void *ccontext);
void pcre2_code_free_8(pcre2_code_8 *code);
int pcre2_jit_compile_8(pcre2_code_8 *code, uint32_t options);
int pcre2_pattern_info_8(const pcre2_code_8 *code, uint32_t what, void *where);
pcre2_match_data_8 *pcre2_match_data_create_from_pattern_8(const pcre2_code_8 *code,
    void *gcontext);
void pcre2_match_data_free_8(pcre2_match_data_8 *match_data);
int pcre2_match_8(const pcre2_code_8 *code, const char *subject, size_t length,
    size_t startoffset, uint32_t options, pcre2_match_data_8 *match_data, void *mcontext);
size_t *pcre2_get_ovector_pointer_8(pcre2_match_data_8 *match_data);
int pcre2_get_error_message_8(int errorcode, unsigned char *buffer, size_t bufflen);
]]

local CASELESS, MULTILINE, DOTALL, EXTENDED = 0x8, 0x400, 0x20, 0x80
local UTF, ANCHORED, DUPNAMES, NO_UTF_CHECK = 0x80000, 0x80000000, 0x40, 0x40000000
local JS_COMPAT = bor(0x1, 0x2, 0x200) -- ALLOW_EMPTY_CLASS, ALT_BSUX, MATCH_UNSET_BACKREF
local JIT_COMPLETE = 1
local INFO_CAPTURECOUNT, INFO_NAMECOUNT, INFO_NAMEENTRYSIZE, INFO_NAMETABLE = 4, 17, 18, 19
local ERROR_NOMATCH = -1
local UNSET = ffi.cast("size_t", -1LL) -- PCRE2_UNSET (~0): a group that took no part

local lib
local function pcre2()
    if not lib then
        local ok, l = pcall(ffi.load, "libpcre2-8.so.0")
        if not ok then
            error("ngx.re needs PCRE2 (Debian: apt-get install libpcre2-8-0): " .. tostring(l), 3)
        end
        lib = l
    end
    return lib
end

local M = {}

-- "ijo" → compile options, match options, jit?, once?, dupnames?
local parsed_flags = {}
local function parse_flags(opts)
    local p = parsed_flags[opts]
    if p then return p end
    local copts, mopts, jit, once, dup = 0, 0, false, false, false
    for i = 1, #opts do
        local c = sub(opts, i, i)
        if c == "i" then copts = bor(copts, CASELESS)
        elseif c == "m" then copts = bor(copts, MULTILINE)
        elseif c == "s" then copts = bor(copts, DOTALL)
        elseif c == "x" then copts = bor(copts, EXTENDED)
        elseif c == "u" then copts = bor(copts, UTF)
        elseif c == "U" then copts = bor(copts, UTF) mopts = bor(mopts, NO_UTF_CHECK)
        elseif c == "a" then copts = bor(copts, ANCHORED)
        elseif c == "D" then copts = bor(copts, DUPNAMES) dup = true
        elseif c == "J" then copts = bor(copts, JS_COMPAT)
        elseif c == "j" then jit = true
        elseif c == "o" then once = true
        elseif c == "d" then
            error(('flag "d" (DFA matching) is not supported by dpdklua (flags "%s")'):format(opts), 4)
        else
            error(('unknown flag "%s" (flags "%s")'):format(c, opts), 4)
        end
    end
    p = { copts = copts, mopts = mopts, jit = jit, once = once, dup = dup }
    parsed_flags[opts] = p
    return p
end

local errcode, erroffset = ffi_new("int[1]"), ffi_new("size_t[1]")
local errbuf = ffi_new("unsigned char[256]")
local info_u32 = ffi_new("uint32_t[1]")
local info_ptr = ffi_new("unsigned char *[1]")

local function free_code(c) pcre2().pcre2_code_free_8(c) end
local function free_md(m) pcre2().pcre2_match_data_free_8(m) end

-- The compiled patterns of "o" calls, per worker (a Lua state is a worker).
local cache, cache_n, CACHE_MAX = {}, 0, 1024

-- Compile regex with flags opts: a record { code, md, ncap, names } or nil, err.
local function compile(regex, opts)
    if type(regex) ~= "string" then regex = tostring(regex) end
    opts = opts or ""
    local f = parse_flags(opts)
    local key
    if f.once then
        key = regex .. "\0" .. opts
        local r = cache[key]
        if r then return r end
    end
    local L = pcre2()
    local code = L.pcre2_compile_8(regex, #regex, f.copts, errcode, erroffset, nil)
    if code == nil then
        L.pcre2_get_error_message_8(errcode[0], errbuf, 256)
        return nil, ('pcre2_compile() failed: %s in "%s"'):format(ffi_string(errbuf), regex)
    end
    code = ffi_gc(code, free_code)
    if f.jit then L.pcre2_jit_compile_8(code, JIT_COMPLETE) end -- falls back to the interpreter
    L.pcre2_pattern_info_8(code, INFO_CAPTURECOUNT, info_u32)
    local r = { code = code, ncap = tonumber(info_u32[0]), mopts = f.mopts, dup = f.dup }
    r.md = ffi_gc(L.pcre2_match_data_create_from_pattern_8(code, nil), free_md)
    r.ov = L.pcre2_get_ovector_pointer_8(r.md)
    L.pcre2_pattern_info_8(code, INFO_NAMECOUNT, info_u32)
    local nnames = tonumber(info_u32[0])
    if nnames > 0 then
        L.pcre2_pattern_info_8(code, INFO_NAMEENTRYSIZE, info_u32)
        local size = tonumber(info_u32[0])
        L.pcre2_pattern_info_8(code, INFO_NAMETABLE, info_ptr)
        local t = info_ptr[0]
        local names = {}
        for i = 0, nnames - 1 do
            local e = t + i * size
            names[#names + 1] = { bor(lshift(e[0], 8), e[1]), ffi_string(e + 2) }
        end
        r.names = names
    end
    if key then
        if cache_n >= CACHE_MAX then cache, cache_n = {}, 0 end
        cache[key] = r
        cache_n = cache_n + 1
    end
    return r
end

-- Run r on subj from byte offset pos (0-based): the PCRE2 return code.
local function exec(r, subj, pos)
    return lib.pcre2_match_8(r.code, subj, #subj, pos, r.mopts, r.md, nil)
end

local function exec_error(rc)
    if rc == ERROR_NOMATCH then return nil end
    lib.pcre2_get_error_message_8(rc, errbuf, 256)
    return "pcre2_match() failed: " .. ffi_string(errbuf)
end

-- The captures table of the last match of r in subj (OpenResty's layout).
local function captures(r, subj, rc, res)
    res = res or {}
    local ov = r.ov
    for i = 0, r.ncap do
        if i < rc and ov[2 * i] ~= UNSET then
            res[i] = sub(subj, tonumber(ov[2 * i]) + 1, tonumber(ov[2 * i + 1]))
        else
            res[i] = false
        end
    end
    local names = r.names
    if names then
        for i = 1, #names do
            local n, name = names[i][1], names[i][2]
            local cap = res[n]
            if r.dup then
                if cap then
                    local old = res[name]
                    if old then old[#old + 1] = cap else res[name] = { cap } end
                end
            else
                res[name] = cap
            end
        end
    end
    return res
end

local function start_of(ctx)
    local pos = ctx and ctx.pos
    if not pos or pos <= 0 then return 0 end
    return pos - 1
end

-- ngx.re.match(subject, regex, opts?, ctx?, res?) → captures | nil | nil, err
function M.match(subj, regex, opts, ctx, res)
    subj = tostring(subj)
    local r, err = compile(regex, opts)
    if not r then return nil, err end
    local rc = exec(r, subj, start_of(ctx))
    if rc < 0 then return nil, exec_error(rc) end
    if ctx then ctx.pos = tonumber(r.ov[1]) + 1 end
    return captures(r, subj, rc, res)
end

-- ngx.re.find(subject, regex, opts?, ctx?, nth?) → from, to | nil | nil, nil, err
function M.find(subj, regex, opts, ctx, nth)
    subj = tostring(subj)
    local r, err = compile(regex, opts)
    if not r then return nil, nil, err end
    local rc = exec(r, subj, start_of(ctx))
    if rc < 0 then
        err = exec_error(rc)
        if err then return nil, nil, err end
        return nil
    end
    local ov = r.ov
    if ctx then ctx.pos = tonumber(ov[1]) + 1 end
    if not nth or nth < 0 then nth = 0 end
    if nth > r.ncap then return nil, nil, "nth out of bound" end
    if nth >= rc or ov[2 * nth] == UNSET then return nil, nil end
    return tonumber(ov[2 * nth]) + 1, tonumber(ov[2 * nth + 1])
end

-- ngx.re.gmatch(subject, regex, opts?) → iterator() → captures | nil | nil, err
function M.gmatch(subj, regex, opts)
    subj = tostring(subj)
    local r, err = compile(regex, opts)
    if not r then return nil, err end
    local pos, len = 0, #subj
    return function()
        if not pos then return nil end
        local rc = exec(r, subj, pos)
        if rc < 0 then
            pos = nil
            return nil, exec_error(rc)
        end
        local ov = r.ov
        local to = tonumber(ov[1])
        if to == tonumber(ov[0]) then
            to = to + 1 -- an empty match: the next search starts one byte on
            if to > len then
                local res = captures(r, subj, rc)
                pos = nil
                return res
            end
        end
        pos = to
        return captures(r, subj, rc)
    end
end

-- A replacement template ("$0", "$1", "${1}", "$$") compiled to a list of
-- literal strings and capture numbers; nil, err when it is malformed.
local templates = {}
local function compile_template(repl)
    local t = templates[repl]
    if t then return t end
    t = {}
    local i, n, lit = 1, #repl, {}
    while i <= n do
        local c = byte(repl, i)
        if c == 36 then -- "$"
            local d = sub(repl, i + 1, i + 1)
            if d == "$" then
                lit[#lit + 1] = "$"
                i = i + 2
            else
                local digits, stop = repl:match("^(%d+)()", i + 1)
                if not digits then
                    digits, stop = repl:match("^{(%d+)}()", i + 1)
                end
                if not digits then
                    return nil, "failed to compile the replacement template"
                end
                if #lit > 0 then t[#t + 1] = concat(lit) lit = {} end
                t[#t + 1] = tonumber(digits)
                i = stop
            end
        else
            lit[#lit + 1] = string.char(c)
            i = i + 1
        end
    end
    if #lit > 0 then t[#t + 1] = concat(lit) end
    templates[repl] = t
    return t
end

local function expand(t, r, subj, rc, out)
    local ov = r.ov
    for i = 1, #t do
        local piece = t[i]
        if type(piece) == "number" then
            if piece < rc and ov[2 * piece] ~= UNSET then
                out[#out + 1] = sub(subj, tonumber(ov[2 * piece]) + 1, tonumber(ov[2 * piece + 1]))
            end
        else
            out[#out + 1] = piece
        end
    end
end

local function substitute(subj, regex, replace, opts, global)
    subj = tostring(subj)
    local tmpl, err
    if type(replace) ~= "function" then
        tmpl, err = compile_template(tostring(replace))
        if not tmpl then return nil, nil, err end
    end
    local r
    r, err = compile(regex, opts)
    if not r then return nil, nil, err end
    local len, pos, cp, count = #subj, 0, 0, 0
    local out = {}
    while true do
        local rc = exec(r, subj, pos)
        if rc < 0 then
            err = exec_error(rc)
            if err then return nil, nil, err end
            break
        end
        count = count + 1
        local ov = r.ov
        local from, to = tonumber(ov[0]), tonumber(ov[1])
        if from > cp then out[#out + 1] = sub(subj, cp + 1, from) end
        if tmpl then
            expand(tmpl, r, subj, rc, out)
        else
            out[#out + 1] = tostring(replace(captures(r, subj, rc)))
        end
        cp, pos = to, to
        if to == from then
            pos = pos + 1
            if pos > len then break end
        end
        if not global then break end
    end
    if count == 0 then return subj, 0 end
    if cp < len then out[#out + 1] = sub(subj, cp + 1) end
    return concat(out), count
end

-- ngx.re.sub(subject, regex, replace, opts?) → new, n | nil, nil, err
function M.sub(subj, regex, replace, opts)
    return substitute(subj, regex, replace, opts, false)
end

-- ngx.re.gsub(subject, regex, replace, opts?) → new, n | nil, nil, err
function M.gsub(subj, regex, replace, opts)
    return substitute(subj, regex, replace, opts, true)
end

-- Everything compiled through "o" is dropped (tests, or to free memory).
function M.flush_cache()
    cache, cache_n = {}, 0
end

return M

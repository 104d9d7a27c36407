-- dpdk.ngx — the `ngx` table that OpenResty's client libraries expect
-- (lua-resty-redis, -memcached, -websocket, -lrucache run unmodified on it).
--
--   local ngx = require "dpdk.ngx"   -- also sets the global `ngx`
--   local redis = require "nginx.redis"
--
-- This is the one dpdklua module that writes a global: the libraries read
-- `ngx` as a global. What it provides and where it differs from OpenResty is
-- listed in docs/openresty.md. Request-phase APIs (ngx.var, ngx.req, ngx.say,
-- ngx.exit, ...) do not exist: dpdklua has no HTTP request around the code.
local ffi = require "ffi"
local bit = require "bit"
local dpdk = require "dpdk"
local sched = require "dpdk.sched"
local ngx_socket = require "dpdk.ngx_socket"
local ngx_re = require "dpdk.ngx_re"

local type, tostring, error, select = type, tostring, error, select
local floor, byte, char, format, concat = math.floor, string.byte, string.char, string.format,
    table.concat
local band, bor, lshift, rshift = bit.band, bit.bor, bit.lshift, bit.rshift

-- pcall: another module may have declared the same libc functions
pcall(ffi.cdef, "struct dl_ngx_timespec { long tv_sec; long tv_nsec; };")
pcall(ffi.cdef, "int clock_gettime(int clk_id, struct dl_ngx_timespec *tp);")
pcall(ffi.cdef, "int getpid(void);")

local M = {}

-- Logging ----------------------------------------------------------------

M.STDERR, M.EMERG, M.ALERT, M.CRIT, M.ERR = 0, 1, 2, 3, 4
M.WARN, M.NOTICE, M.INFO, M.DEBUG = 5, 6, 7, 8
M.OK, M.ERROR, M.AGAIN, M.DONE, M.DECLINED = 0, -1, -2, -4, -5

local LOG_LEVEL = { [0] = "error", "error", "error", "error", "error", "warn", "info", "info",
    "debug" }

local function log_piece(v)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" or t == "boolean" or v == nil or v == M.null then
        return v == M.null and "null" or tostring(v)
    end
    local mt = getmetatable(v)
    if mt and mt.__tostring then return tostring(v) end
    error("bad argument to ngx.log: expected a string, number, boolean, nil or ngx.null, got "
        .. t, 3)
end

--- ngx.log(level, ...): the arguments concatenated, through dpdk.log
-- (ngx.STDERR..ngx.ERR → "error", WARN → "warn", NOTICE/INFO → "info", DEBUG → "debug").
function M.log(level, ...)
    local l = type(level) == "number" and LOG_LEVEL[level]
    if not l then
        error("ngx.log: bad log level " .. tostring(level) .. " (ngx.STDERR .. ngx.DEBUG)", 2)
    end
    local n = select("#", ...)
    local parts = { ... }
    for i = 1, n do parts[i] = log_piece(parts[i]) end
    dpdk.log(l, concat(parts, "", 1, n))
end

-- ngx.null: a unique userdata, as OpenResty's (a NULL light userdata there).
M.null = newproxy(true)
getmetatable(M.null).__tostring = function() return "userdata: NULL" end

-- Light threads, timers, sleeping ------------------------------------------

local function spawn(fn, ...)
    if type(fn) ~= "function" then
        error("ngx.thread.spawn: expected a function, got " .. type(fn), 2)
    end
    return dpdk.spawn(fn, ...)
end

-- A join result with OpenResty's shape: the error without the traceback.
local function join_result(ok, ...)
    if ok then return true, ... end
    local err = ...
    if ok == nil then return nil, err end -- e.g. nil, "already waited or killed"
    if type(err) == "string" then err = err:match("^(.-)\nstack traceback:") or err end
    return false, err
end

M.thread = {
    spawn = spawn,
    --- ngx.thread.wait(t1, t2, ...) → true, results… | false, err of the first to end
    wait = function(...)
        return join_result(dpdk.wait(...))
    end,
    --- ngx.thread.kill(t) → 1 | nil, err
    kill = function(t)
        local ok, err = dpdk.kill(t)
        if not ok then return nil, err end
        return 1 -- what lua-nginx-module 0.10.23 returns
    end,
}

M.sleep = dpdk.sleep

--- ngx.timer.at(delay, fn, ...) → 1 | nil, err: fn(premature, ...) runs in its own task
--- ngx.timer.every(interval, fn, ...) → 1 | nil, err
M.timer = {
    at = function(delay, fn, ...)
        local ok, err = dpdk.timer.at(delay, fn, ...)
        if not ok then return nil, err end
        return 1 -- what lua-nginx-module 0.10.23 returns
    end,
    every = function(interval, fn, ...)
        local ok, err = dpdk.timer.every(interval, fn, ...)
        if not ok then return nil, err end
        return 1
    end,
}

-- Time ---------------------------------------------------------------------

local ts = ffi.new("struct dl_ngx_timespec")
local CLOCK_REALTIME = 0

--- ngx.now() → seconds since the epoch, millisecond resolution
function M.now()
    ffi.C.clock_gettime(CLOCK_REALTIME, ts)
    return tonumber(ts.tv_sec) + floor(tonumber(ts.tv_nsec) / 1e6) / 1000
end

--- ngx.time() → whole seconds since the epoch
function M.time()
    ffi.C.clock_gettime(CLOCK_REALTIME, ts)
    return tonumber(ts.tv_sec)
end

-- nginx caches the time per event-loop turn; ours is read at each call.
function M.update_time() end

function M.today() return os.date("%Y-%m-%d") end
function M.localtime() return os.date("%Y-%m-%d %H:%M:%S") end
function M.utctime() return os.date("!%Y-%m-%d %H:%M:%S") end

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
    "Dec" }

--- ngx.http_time(sec) → "Thu, 18 Nov 2010 11:27:35 GMT"
function M.http_time(sec)
    local d = os.date("!*t", sec)
    return format("%s, %02d %s %d %02d:%02d:%02d GMT", DAYS[d.wday], d.day, MONTHS[d.month],
        d.year, d.hour, d.min, d.sec)
end

--- ngx.cookie_time(sec) → "Thu, 18-Nov-10 11:27:35 GMT"
function M.cookie_time(sec)
    local d = os.date("!*t", sec)
    return format("%s, %02d-%s-%02d %02d:%02d:%02d GMT", DAYS[d.wday], d.day, MONTHS[d.month],
        d.year % 100, d.hour, d.min, d.sec)
end

-- Encodings and digests -------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64_chars, b64_values = {}, {}
for i = 1, 64 do
    b64_chars[i - 1] = B64:sub(i, i)
    b64_values[byte(B64, i)] = i - 1
end

--- ngx.encode_base64(str [, no_padding]) → base64 text
function M.encode_base64(s, no_padding)
    if type(s) ~= "string" then
        if s == nil then s = "" else s = tostring(s) end
    end
    local out, n = {}, #s
    for i = 1, n - 2, 3 do
        local a, b, c = byte(s, i, i + 2)
        local v = bor(lshift(a, 16), lshift(b, 8), c)
        out[#out + 1] = b64_chars[rshift(v, 18)] .. b64_chars[band(rshift(v, 12), 63)]
            .. b64_chars[band(rshift(v, 6), 63)] .. b64_chars[band(v, 63)]
    end
    local rest = n % 3
    if rest > 0 then
        local a, b = byte(s, n - rest + 1, n)
        local v = bor(lshift(a, 16), lshift(b or 0, 8))
        local tail = b64_chars[rshift(v, 18)] .. b64_chars[band(rshift(v, 12), 63)]
        if rest == 2 then tail = tail .. b64_chars[band(rshift(v, 6), 63)] end
        if not no_padding then tail = tail .. (rest == 1 and "==" or "=") end
        out[#out + 1] = tail
    end
    return concat(out)
end

--- ngx.decode_base64(str) → bytes | nil when str is not base64
function M.decode_base64(s)
    if type(s) ~= "string" then
        error("ngx.decode_base64: expected a string, got " .. type(s), 2)
    end
    s = s:gsub("=+$", "")
    local n = #s
    if n % 4 == 1 then return nil end
    local out, acc, bits = {}, 0, 0
    for i = 1, n do
        local v = b64_values[byte(s, i)]
        if not v then return nil end
        acc = bor(lshift(band(acc, 0xffff), 6), v)
        bits = bits + 6
        if bits >= 8 then
            bits = bits - 8
            out[#out + 1] = char(band(rshift(acc, bits), 255))
        end
    end
    return concat(out)
end

local crypto, zlib
local function lib(which)
    if which == "crypto" then
        if not crypto then
            pcall(ffi.cdef, [[
            unsigned char *MD5(const unsigned char *d, size_t n, unsigned char *md);
            unsigned char *SHA1(const unsigned char *d, size_t n, unsigned char *md);
            ]])
            local ok, l = pcall(ffi.load, "libcrypto.so.3")
            if not ok then
                error("ngx.md5/sha1 need libcrypto (Debian: apt-get install libssl3): " .. l, 3)
            end
            crypto = l
        end
        return crypto
    end
    if not zlib then
        pcall(ffi.cdef,
            "unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned len);")
        local ok, l = pcall(ffi.load, "libz.so.1")
        if not ok then
            error("ngx.crc32_* need zlib (Debian: apt-get install zlib1g): " .. l, 3)
        end
        zlib = l
    end
    return zlib
end

local digest = ffi.new("unsigned char[20]")

local function hex(s)
    return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end

function M.md5_bin(s)
    s = tostring(s)
    lib("crypto").MD5(s, #s, digest)
    return ffi.string(digest, 16)
end
function M.md5(s) return hex(M.md5_bin(s)) end
function M.sha1_bin(s)
    s = tostring(s)
    lib("crypto").SHA1(s, #s, digest)
    return ffi.string(digest, 20)
end
function M.crc32_long(s)
    s = tostring(s)
    return tonumber(lib("zlib").crc32(0, s, #s))
end
M.crc32_short = M.crc32_long

-- URI escaping as ngx_lua's: all but A-Z a-z 0-9 - . _ ~ ! * ' ( ) become %XX;
-- unescaping turns "+" into a space and leaves malformed escapes as they are.
function M.escape_uri(s)
    s = tostring(s)
    return (s:gsub("[^%w%-%._~!%*'%(%)]", function(c) return format("%%%02X", byte(c)) end))
end

function M.unescape_uri(s)
    s = tostring(s)
    return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- Regular expressions (PCRE2) -------------------------------------------------
M.re = {
    match = ngx_re.match, find = ngx_re.find, gmatch = ngx_re.gmatch,
    sub = ngx_re.sub, gsub = ngx_re.gsub,
}

-- Sockets ----------------------------------------------------------------------

M.socket = {
    tcp = ngx_socket.tcp,
    --- ngx.socket.connect(host, port [, opts]) → a connected cosocket | nil, err
    connect = function(host, port, opts)
        local s = ngx_socket.tcp()
        local ok, err = s:connect(host, port, opts)
        if not ok then return nil, err end
        return s
    end,
    udp = function()
        error("ngx.socket.udp is not supported by dpdklua (TCP only)", 2)
    end,
    stream = ngx_socket.tcp,
}

-- Workers, configuration, phases ---------------------------------------------------

M.worker = {
    id = function() return dpdk.worker_id() end,
    count = function() return dpdk.worker_count() end,
    pid = function() return ffi.C.getpid() end,
    -- true once the runtime is shutting down (where the scheduler knows it)
    exiting = function() return sched.exiting ~= nil and sched.exiting() or false end,
}

M.config = {
    subsystem = "stream", -- TCP services, no HTTP request around the code
    ngx_lua_version = 10023, -- the behaviour matched: Debian 12's lua-nginx-module 0.10.23
    nginx_version = 1022001,
    debug = false,
    is_console = false,
    prefix = function() return "" end,
    nginx_configure = function() return "" end,
}

--- ngx.get_phase() → "timer" in a task (where cosockets work), "init" outside
function M.get_phase()
    if sched.in_task() then return "timer" end
    return "init"
end

-- Shared dictionaries do not exist: workers share no memory.
M.shared = setmetatable({}, {
    __index = function(_, name)
        error(("ngx.shared.%s: shared dictionaries are not available in dpdklua (workers share "
            .. "no memory); use lua-resty-lrucache per worker or dpdk.channel between workers")
            :format(tostring(name)), 2)
    end,
})

ngx = M -- the one global a dpdklua module writes: lua-resty libraries read it

return M

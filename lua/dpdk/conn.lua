-- dpdk.conn — what dpdk.tcp's sockets and listeners share: error texts,
-- argument checks, waiting on a token with a deadline, options, addresses,
-- and the registry of open connections that a worker closes when it stops.
local ffi = require "ffi"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"

local OK = C.DL_OK
local wait = sched.wait
local now = C.dl_now
local ffi_string, ffi_gc = ffi.string, ffi.gc
local type, tostring, error = type, tostring, error
local floor = math.floor

local ip_buf = ffi.new("char[64]")
local int_box = ffi.new("int[1]")

local M = {}

-- Every open socket and listener of this Lua state, closed when the state
-- leaves its worker (rt:shutdown, end of a worker thread).
local live = setmetatable({}, { __mode = "k" })

local function errmsg()
    return ffi_string(C.dl_errmsg())
end

-- C errors that mean misuse rather than a network condition.
local function raise_misuse(msg)
    if msg:find("cannot be used", 1, true) or msg:find("must run inside the runtime", 1, true)
        or msg:find("has no network device", 1, true) then
        error(msg, 3)
    end
    return msg
end

local function conn_error(conn)
    local e = C.dl_tcp_error(conn)
    return e ~= nil and ffi_string(e) or "closed"
end

local function deadline_of(timeout)
    return timeout > 0 and now() + timeout or nil
end

-- Wait on token until C wakes it or the deadline passes.
local function park(token, deadline)
    local remaining
    if deadline then
        remaining = deadline - now()
        if remaining <= 0 then return "timeout" end
    end
    return wait(token, remaining)
end

local function is_ipv6(host)
    return host:find(":", 1, true) ~= nil
end

local function check_ip(host, what)
    if type(host) ~= "string" then
        error(what .. ": expected an IP address string, got " .. type(host), 3)
    end
end

local function check_port(port, what)
    if type(port) ~= "number" or port ~= floor(port) or port < 0 or port > 65535 then
        error(what .. ": expected a port number 0..65535, got " .. tostring(port), 3)
    end
end

local function timeout_arg(ms, what)
    if ms == nil then return nil end
    if type(ms) ~= "number" or ms < 0 then
        error(what .. ": expected a timeout in milliseconds >= 0, got " .. tostring(ms), 3)
    end
    return ms / 1000
end

-- Register obj (a table whose .conn is a dl_conn*) as open: GC closes it.
local function track(obj, conn)
    obj.conn = ffi_gc(conn, C.dl_tcp_free)
    live[obj] = true
    return obj
end

local function release(obj)
    local conn = obj.conn
    if conn then
        obj.conn = nil
        live[obj] = nil
        ffi_gc(conn, nil)
        C.dl_tcp_free(conn)
    end
end

sched.on_detach(function()
    for obj in pairs(live) do release(obj) end
end)

local OPTIONS = {
    ["tcp-nodelay"] = C.DL_OPT_NODELAY, nodelay = C.DL_OPT_NODELAY,
    ttl = C.DL_OPT_TTL, sndbuf = C.DL_OPT_SNDBUF, rcvbuf = C.DL_OPT_RCVBUF,
    keepalive = C.DL_OPT_KEEPALIVE,
}
local BOOLEAN_OPTIONS = { [C.DL_OPT_NODELAY] = true, [C.DL_OPT_KEEPALIVE] = true }

local function setoption(obj, name, value, what)
    local opt = OPTIONS[name]
    if not opt then
        error(what .. ": unknown option '" .. tostring(name)
            .. "' (tcp-nodelay, ttl, sndbuf, rcvbuf, keepalive)", 3)
    end
    if BOOLEAN_OPTIONS[opt] then
        if type(value) == "boolean" then value = value and 1 or 0 end
    end
    if type(value) ~= "number" then
        error(what .. ": option '" .. name .. "' expects a number or a boolean, got " .. type(value), 3)
    end
    local conn = obj.conn
    if not conn then return nil, "closed" end
    if C.dl_tcp_setopt(conn, opt, value) ~= OK then return nil, raise_misuse(errmsg()) end
    return true
end

local function getoption(obj, name, what)
    local opt = OPTIONS[name]
    if not opt then
        error(what .. ": unknown option '" .. tostring(name) .. "'", 3)
    end
    local conn = obj.conn
    if not conn then return nil, "closed" end
    if C.dl_tcp_getopt(conn, opt, int_box) ~= OK then return nil, raise_misuse(errmsg()) end
    local v = int_box[0]
    if BOOLEAN_OPTIONS[opt] then return v ~= 0 end
    return v
end

local function addr(obj, peer)
    local conn = obj.conn
    if not conn then return nil, "closed" end
    if C.dl_tcp_addr(conn, peer, ip_buf, 64, int_box) ~= OK then
        return nil, raise_misuse(errmsg())
    end
    return ffi_string(ip_buf), int_box[0]
end

local function new_conn(family)
    local conn = C.dl_tcp_new(family)
    if conn == nil then error(errmsg(), 3) end
    return conn
end

M.errmsg, M.raise_misuse, M.conn_error = errmsg, raise_misuse, conn_error
M.deadline_of, M.park, M.is_ipv6 = deadline_of, park, is_ipv6
M.check_ip, M.check_port, M.timeout_arg = check_ip, check_port, timeout_arg
M.track, M.release = track, release
M.setoption, M.getoption, M.addr, M.new_conn = setoption, getoption, addr, new_conn

return M

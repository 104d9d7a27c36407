-- dpdk.tcp — TCP cosockets over the worker's private lwIP (OpenResty style).
--
--   local tcp = require "dpdk.tcp"
--   local l = assert(tcp.listen("10.99.0.2", 8080))
--   local c, peer_ip, peer_port = l:accept()
--   local line, err, partial = c:receive("*l")
--
-- A thin layer over host/api.h in the lua-resty-core pattern: C answers
-- DL_OK / DL_AGAIN / DL_ERROR; on DL_AGAIN the coroutine waits for the token
-- it passed (or its timeout) and asks again. Errors are returned as
-- nil, "timeout" | "closed" | "connection reset by peer" | …; misuse (wrong
-- argument types, a socket used on another worker) raises.
--
-- Sockets are dpdk.socket objects; this module makes them (connect, socket,
-- accept) and holds the listeners.
local ffi = require "ffi"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local socket = require "dpdk.socket"
local conn_util = require "dpdk.conn"

local OK, ERROR = C.DL_OK, C.DL_ERROR
local new_token = sched.token
local setmetatable = setmetatable

local raise_misuse, errmsg = conn_util.raise_misuse, conn_util.errmsg
local deadline_of, park, is_ipv6 = conn_util.deadline_of, conn_util.park, conn_util.is_ipv6
local check_ip, check_port, timeout_arg = conn_util.check_ip, conn_util.check_port,
    conn_util.timeout_arg
local setoption, getoption, addr = conn_util.setoption, conn_util.getoption, conn_util.addr
local release, new_conn = conn_util.release, conn_util.new_conn

local conn_box = ffi.new("dl_conn *[1]")

local M = {}

local Listener = {}
Listener.__index = Listener

--- tcp.socket("inet" | "inet6") → an unconnected socket (bind, setoption, connect)
function M.socket(family)
    family = family or "inet"
    if family ~= "inet" and family ~= "inet6" then
        error("tcp.socket: family must be \"inet\" or \"inet6\", got " .. tostring(family), 2)
    end
    return socket.new(new_conn(family == "inet6" and 6 or 4))
end

--- tcp.connect(ip, port [, { timeout = ms, local_ip = ip, local_port = n }]) → sock | nil, err
function M.connect(host, port, opts)
    check_ip(host, "tcp.connect")
    check_port(port, "tcp.connect")
    if not host:match("^[%x:.]+$") then
        return nil, "cannot resolve \"" .. host .. "\": name resolution is not available yet, "
            .. "pass an IP address"
    end
    local sock = socket.new(new_conn(is_ipv6(host) and 6 or 4))
    if opts and (opts.local_ip or opts.local_port) then
        local ok, err = sock:bind(opts.local_ip or "*", opts.local_port or 0)
        if not ok then sock:close() return nil, err end
    end
    local ok, err = sock:connect(host, port, opts)
    if not ok then
        sock:close()
        return nil, err
    end
    return sock
end

-- Listeners -------------------------------------------------------------

--- tcp.listen(ip, port [, { backlog = 511 }]) → listener | nil, err
-- ip must be one of the device's configured addresses, or "*"/"0.0.0.0"/"::".
function M.listen(ip, port, opts)
    check_ip(ip, "tcp.listen")
    check_port(port, "tcp.listen")
    local backlog = opts and opts.backlog or 511
    local conn = new_conn(is_ipv6(ip) and 6 or 4)
    local self = conn_util.track(setmetatable({ accept_timeout = 0 }, Listener), conn)
    local bind_ip = (ip == "0.0.0.0" or ip == "::") and "*" or ip
    if C.dl_tcp_bind(conn, bind_ip, port) ~= OK or C.dl_tcp_listen(conn, backlog) ~= OK then
        local err = raise_misuse(errmsg())
        release(self)
        return nil, err
    end
    return self
end

--- listener:accept() → sock, peer_ip, peer_port | nil, err
function Listener:accept()
    local conn = self.conn
    if not conn then return nil, "closed" end
    local deadline = deadline_of(self.accept_timeout)
    while true do
        local token = new_token()
        local rc = C.dl_tcp_accept(conn, conn_box, token)
        if rc == OK then
            local sock = socket.new(conn_box[0])
            local ip, port = sock:peer_addr()
            return sock, ip, port
        end
        if rc == ERROR then return nil, raise_misuse(errmsg()) end
        if park(token, deadline) == "timeout" then return nil, "timeout" end
        if not self.conn then return nil, "closed" end
    end
end

--- listener:settimeout(ms): how long accept waits (0, the default: forever)
function Listener:settimeout(ms)
    self.accept_timeout = timeout_arg(ms, "settimeout") or 0
end

function Listener:setoption(name, value) return setoption(self, name, value, "setoption") end
function Listener:getoption(name) return getoption(self, name, "getoption") end
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

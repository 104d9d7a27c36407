-- dpdk.ngx_socket — ngx.socket.tcp() for lua-resty libraries: an OpenResty
-- cosocket object over dpdk.tcp.
--
-- OpenResty's object is created unconnected and picks its address family at
-- connect(), keeps settimeout() values given before connect, reconnects when
-- connect() is called again, and goes back to "unconnected" after close() or
-- setkeepalive(). dpdk.tcp sockets are made by connect, so this object holds
-- one (self.sock) while connected and forwards the cosocket calls to it.
-- Timeouts are milliseconds; nil or 0 means the default (60 s), as
-- lua_socket_*_timeout in OpenResty.
local tcp = require "dpdk.tcp"

local type, tostring, error, setmetatable = type, tostring, error, setmetatable

local DEFAULT_MS = 60000

local Sock = {}
Sock.__index = Sock

local M = {}

--- ngx.socket.tcp() → an unconnected cosocket
function M.tcp()
    return setmetatable({ connect_ms = DEFAULT_MS, send_ms = DEFAULT_MS, read_ms = DEFAULT_MS },
        Sock)
end

local function timeout_ms(ms, what)
    if ms == nil then return DEFAULT_MS end
    if type(ms) ~= "number" or ms < 0 then
        error(what .. ": expected a timeout in milliseconds >= 0, got " .. tostring(ms), 3)
    end
    if ms == 0 then return DEFAULT_MS end
    return ms
end

local function apply_timeouts(self)
    local s = self.sock
    if s then s:settimeouts(self.connect_ms, self.send_ms, self.read_ms) end
end

--- sock:settimeout(ms): connect, send and read timeouts (nil or 0: 60 s)
function Sock:settimeout(ms)
    local t = timeout_ms(ms, "settimeout")
    self.connect_ms, self.send_ms, self.read_ms = t, t, t
    apply_timeouts(self)
end

--- sock:settimeouts(connect_ms, send_ms, read_ms)
function Sock:settimeouts(c, s, r)
    self.connect_ms = timeout_ms(c, "settimeouts")
    self.send_ms = timeout_ms(s, "settimeouts")
    self.read_ms = timeout_ms(r, "settimeouts")
    apply_timeouts(self)
end

local POOL_OPTS = { "pool", "pool_size", "backlog" }

--- sock:connect(host, port [, { pool, pool_size, backlog }]) → 1 | nil, err
function Sock:connect(host, port, opts)
    if type(host) ~= "string" then
        error("connect: expected a host string, got " .. type(host), 2)
    end
    if host:sub(1, 5) == "unix:" then
        return nil, "unix domain sockets are not supported by dpdklua"
    end
    port = tonumber(port) -- numeric strings are ports too, as in OpenResty
    if not port then
        error("connect: expected a port number, got " .. tostring(port), 2)
    end
    if opts ~= nil and type(opts) ~= "table" then
        error("connect: expected an options table, got " .. type(opts), 2)
    end
    if self.sock then -- OpenResty closes the current connection first
        self.sock:close()
        self.sock = nil
    end
    local o = { timeout = self.connect_ms }
    if opts then
        for i = 1, #POOL_OPTS do
            local k = POOL_OPTS[i]
            o[k] = opts[k]
        end
    end
    local s, err = tcp.connect(host, port, o)
    if not s then return nil, err end
    self.sock = s
    apply_timeouts(self)
    return 1
end

--- sock:sslhandshake() → nil, err: dpdklua has no TLS
function Sock:sslhandshake()
    return nil, "ssl handshake is not supported by dpdklua"
end

-- OpenResty closes a cosocket on any error but a timeout: later calls get
-- nil, "closed". Busy errors keep the socket and read as OpenResty's.
local BUSY = { ["busy reading"] = "socket busy reading", ["busy writing"] = "socket busy writing",
    ["socket busy reading"] = "socket busy reading", ["socket busy writing"] = "socket busy writing",
    ["socket busy connecting"] = "socket busy connecting" }

local function failed(self, s, err, partial)
    local busy = BUSY[err]
    if busy then return nil, busy end
    if err ~= "timeout" and self.sock == s then
        self.sock = nil
        s:close()
    end
    return nil, err, partial
end

function Sock:send(data)
    local s = self.sock
    if not s then return nil, "closed" end
    local n, err = s:send(data)
    if n then return n end
    return failed(self, s, err)
end

function Sock:receive(pattern)
    local s = self.sock
    if not s then return nil, "closed" end
    -- a numeric string is a byte count, as in OpenResty (lua-resty-memcached
    -- passes the length it parsed from the reply)
    if type(pattern) == "string" then pattern = tonumber(pattern) or pattern end
    if pattern == 0 then return "" end
    local data, err, partial = s:receive(pattern)
    if data then return data end
    return failed(self, s, err, partial or "")
end

function Sock:receiveany(max)
    local s = self.sock
    if not s then return nil, "closed" end
    local data, err, partial = s:receiveany(max)
    if data then return data end
    return failed(self, s, err, partial or "")
end

function Sock:peek(n)
    local s = self.sock
    if not s then return nil, "closed" end
    local data, err = s:peek(n)
    if data then return data end
    return failed(self, s, err)
end

local function closed_iterator() return nil, "closed" end

--- sock:receiveuntil(pattern [, { inclusive = true }]) → iterator
-- iterator([size]) → data | nil, nil, nil at the boundary (with a size) |
-- nil, err, partial
function Sock:receiveuntil(pattern, opts)
    local s = self.sock
    if not s then return closed_iterator end
    local it = s:receiveuntil(pattern, opts)
    return function(size)
        if self.sock ~= s then return nil, "closed" end
        local data, err, partial = it(size)
        if data then return data end
        if not err then return nil, nil, nil end
        return failed(self, s, err, partial or "")
    end
end

function Sock:close()
    local s = self.sock
    if not s then return nil, "closed" end
    self.sock = nil
    return s:close()
end

--- sock:setkeepalive(timeout_ms, size): back to the worker's pool (when
-- dpdk.tcp has pools), after which this object is unconnected again.
function Sock:setkeepalive(timeout, size)
    local s = self.sock
    if not s then return nil, "closed" end
    if not s.setkeepalive then
        return nil, "connection pools are not available in this dpdklua yet"
    end
    local ok, err = s:setkeepalive(timeout, size)
    -- kept, or closed by the failure; with unread data it stays usable (OpenResty)
    if ok or err ~= "unread data in buffer" then self.sock = nil end
    return ok, err
end

--- sock:getreusedtimes() → how many times this connection came from a pool
function Sock:getreusedtimes()
    local s = self.sock
    if not s then return nil, "closed" end
    if not s.getreusedtimes then return 0 end -- no pool: never reused
    return s:getreusedtimes()
end

local OPTIONS = { keepalive = true, ["tcp-nodelay"] = true, sndbuf = true,
    rcvbuf = true }

function Sock:setoption(name, value)
    local s = self.sock
    if not s then return nil, "closed" end
    if not OPTIONS[name] then return nil, "unsupported option " .. tostring(name) end
    return s:setoption(name, value)
end

function Sock:getoption(name)
    local s = self.sock
    if not s then return nil, "closed" end
    return s:getoption(name)
end

function Sock:shutdown(how)
    local s = self.sock
    if not s then return nil, "closed" end
    return s:shutdown(how)
end

--- sock:dpdk_socket() → the dpdk.tcp socket underneath (nil when unconnected)
function Sock:dpdk_socket()
    return self.sock
end

Sock.__tostring = function(self)
    return self.sock and "ngx tcp cosocket (dpdk)" or "ngx tcp cosocket (dpdk, unconnected)"
end

return M

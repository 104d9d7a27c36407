-- dpdk.tcp — TCP cosockets over the worker's private lwIP (OpenResty style).
--
--   local tcp = require "dpdk.tcp"
--   local l = assert(tcp.listen("10.99.0.2", 8080))
--   local c, peer_ip, peer_port = l:accept()
--   local line, err, partial = c:receive("*l")
--
-- A thin façade: sockets and listeners live in dpdk.socket, pools in
-- dpdk.pool. Errors are returned as nil, "timeout" | "closed" |
-- "connection reset by peer" | …; misuse (wrong argument types, a socket
-- used on another worker) raises.
local socket = require "dpdk.socket"

local type, tostring, error, pairs, floor = type, tostring, error, pairs, math.floor

local M = {}

--- tcp.socket("inet" | "inet6") → a socket to bind, set options on and connect
function M.socket(family)
    family = family or "inet"
    if family ~= "inet" and family ~= "inet6" then
        error("tcp.socket: family must be \"inet\" or \"inet6\", got " .. tostring(family), 2)
    end
    local sock = socket.new()
    sock.family = family == "inet6" and 6 or 4
    socket.attach_new(sock, 2)
    return sock
end

--- tcp.connect(host, port [, opts]) → sock | nil, err (host: an IP address or a name)
-- opts: timeout (ms), local_ip, local_port, pool, pool_size, backlog.
function M.connect(host, port, opts)
    if type(host) ~= "string" then
        error("tcp.connect: expected a host name or IP address string, got " .. type(host), 2)
    end
    if type(port) ~= "number" then
        error("tcp.connect: expected a port number, got " .. tostring(port), 2)
    end
    local sock = socket.new()
    if opts and (opts.local_ip or opts.local_port) then
        local ok, err = sock:bind(opts.local_ip or "*", opts.local_port or 0)
        if not ok then return nil, err end
    end
    local ok, err = sock:connect(host, port, opts)
    if not ok then return nil, err end
    return sock
end

--- tcp.listen(ip, port [, { backlog = 511 }]) → listener | nil, err
-- ip must be one of the device's configured addresses, or "*"/"0.0.0.0"/"::".
M.listen = socket.listen

local DEFAULTS = {
    connect_timeout = "ms", send_timeout = "ms", read_timeout = "ms",
    keepalive_timeout = "ms", pool_size = "n",
}

--- tcp.defaults{ connect_timeout, send_timeout, read_timeout, keepalive_timeout
--- (ms), pool_size } — what OpenResty's lua_socket_* directives set (60 s, 30):
--- used where a socket's timeout is nil or 0. Per Lua state (per worker).
--- Returns the current values (ms).
function M.defaults(t)
    local d = socket.defaults
    for k, v in pairs(t or {}) do
        local kind = DEFAULTS[k]
        if not kind then error("tcp.defaults: unknown setting '" .. tostring(k) .. "'", 2) end
        if type(v) ~= "number" or v <= 0 then
            error("tcp.defaults: " .. k .. " must be a number > 0, got " .. tostring(v), 2)
        end
        d[k] = kind == "ms" and v / 1000 or floor(v)
    end
    local out = {}
    for k, kind in pairs(DEFAULTS) do out[k] = kind == "ms" and d[k] * 1000 or d[k] end
    return out
end

return M

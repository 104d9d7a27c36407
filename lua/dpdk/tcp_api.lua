-- dpdk.tcp_api — the module table of dpdk.tcp and dpdk.ktcp, made for one
-- transport (dpdk.transport): the same functions, sockets and listeners over
-- the worker's lwIP or over kernel sockets.
local socket = require "dpdk.socket"
local listener = require "dpdk.listener"

local type, tostring, error, pairs, floor = type, tostring, error, pairs, math.floor

local DEFAULTS = {
    connect_timeout = "ms", send_timeout = "ms", read_timeout = "ms",
    keepalive_timeout = "ms", pool_size = "n",
}

local M = {}

-- The module table for transport T; `name` ("tcp", "ktcp") prefixes its errors.
function M.new(T, name)
    local api = {}

    --- socket("inet" | "inet6") → a socket to bind, set options on and connect
    function api.socket(family)
        family = family or "inet"
        if family ~= "inet" and family ~= "inet6" then
            error(name .. ".socket: family must be \"inet\" or \"inet6\", got "
                .. tostring(family), 2)
        end
        local sock = socket.new(T)
        socket.cold(sock).family = family == "inet6" and 6 or 4
        socket.attach_new(sock, 2)
        return sock
    end

    --- connect(host, port [, opts]) → sock | nil, err (host: an IP address or a name)
    -- opts: timeout (ms), local_ip, local_port, pool, pool_size, backlog.
    function api.connect(host, port, opts)
        if type(host) ~= "string" then
            error(name .. ".connect: expected a host name or IP address string, got "
                .. type(host), 2)
        end
        if type(port) ~= "number" then
            error(name .. ".connect: expected a port number, got " .. tostring(port), 2)
        end
        local sock = socket.new(T)
        if opts and (opts.local_ip or opts.local_port) then
            local ok, err = sock:bind(opts.local_ip or "*", opts.local_port or 0)
            if not ok then return nil, err end
        end
        local ok, err = sock:connect(host, port, opts)
        if not ok then return nil, err end
        return sock
    end

    --- listen(ip, port [, { backlog = 511 }]) → listener | nil, err
    function api.listen(ip, port, opts)
        return listener.listen(T, ip, port, opts, name .. ".listen")
    end

    --- defaults{ connect_timeout, send_timeout, read_timeout, keepalive_timeout
    --- (ms), pool_size } — what OpenResty's lua_socket_* directives set (60 s, 30):
    --- used where a socket's timeout is nil or 0. Per Lua state (per worker),
    --- shared by dpdk.tcp and dpdk.ktcp. Returns the current values (ms).
    function api.defaults(t)
        local d = socket.defaults
        for k, v in pairs(t or {}) do
            local kind = DEFAULTS[k]
            if not kind then
                error(name .. ".defaults: unknown setting '" .. tostring(k) .. "'", 2)
            end
            if type(v) ~= "number" or v <= 0 then
                error(name .. ".defaults: " .. k .. " must be a number > 0, got " .. tostring(v), 2)
            end
            d[k] = kind == "ms" and v / 1000 or floor(v)
        end
        local out = {}
        for k, kind in pairs(DEFAULTS) do out[k] = kind == "ms" and d[k] * 1000 or d[k] end
        return out
    end

    return api
end

return M

-- A TCP proxy: accepts on the DPDK device and relays each connection to an
-- upstream given by name (or IP address), both ways, until either side ends.
--   sudo ./dpdklua examples/proxy.lua [--upstream=dpdk|kernel] LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT
--   e.g. sudo ./dpdklua examples/proxy.lua 8080 backend.internal 80
--        sudo ./dpdklua examples/proxy.lua --upstream=kernel 8080 127.0.0.1 6379
--        curl http://10.99.0.2:8080/            (from the kernel side of the tap)
-- --upstream=dpdk (the default): the upstream is reached through the DPDK
-- stack too (a host behind the device, e.g. the kernel side of the tap).
-- --upstream=kernel: through the kernel's own sockets (dpdk.ktcp), for a
-- server on this machine (127.0.0.1) or one behind the kernel's interfaces.
-- Names are resolved on the blocking pool (/etc/hosts, DNS) and cached.
-- Both kinds of socket have the same methods, so the relay code is the same.
-- DPDKLUA_CONFIG=path picks the env.json (else the usual search order).
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local args, kind = {}, "dpdk"
for _, a in ipairs(arg or {}) do
    local k = a:match("^%-%-upstream=(.*)$")
    if k then kind = k else args[#args + 1] = a end
end
local listen_port = tonumber(args[1])
local up_host, up_port = args[2], tonumber(args[3])
local upstream_tcp = ({ dpdk = tcp, kernel = require "dpdk.ktcp" })[kind]
if not listen_port or not up_host or not up_port or not upstream_tcp then
    io.stderr:write("usage: dpdklua examples/proxy.lua [--upstream=dpdk|kernel] LISTEN_PORT "
        .. "UPSTREAM_HOST UPSTREAM_PORT\n")
    os.exit(2)
end

local CONNECT_MS = 5000 -- the upstream must accept within this
local IDLE_MS = 60000   -- a direction with no data this long ends the connection

local rt = assert(dpdk.runtime{ workers = 1, config = os.getenv("DPDKLUA_CONFIG") })

-- Copy from one socket to the other until `from` ends; then pass the end on
-- (half-close), so that a request/response protocol finishes normally.
local function pump(from, to, what)
    while true do
        local data, err = from:receiveany(65536)
        if not data then
            if err ~= "closed" then dpdk.log("info", "proxy", what, "read:", err) end
            break
        end
        local ok, serr = to:send(data)
        if not ok then
            dpdk.log("info", "proxy", what, "write:", serr)
            from:close() -- the other side is gone: stop reading too
            return
        end
    end
    to:shutdown("send")
end

local function serve(client, peer_ip, peer_port)
    client:settimeouts(CONNECT_MS, IDLE_MS, IDLE_MS)
    local upstream, err = upstream_tcp.connect(up_host, up_port, { timeout = CONNECT_MS })
    if not upstream then
        dpdk.log("warn", "proxy", ("%s:%s: upstream %s:%d (%s): %s"):format(peer_ip, peer_port,
            up_host, up_port, kind, err))
        client:close()
        return
    end
    upstream:settimeouts(CONNECT_MS, IDLE_MS, IDLE_MS)
    -- one light thread per direction: full duplex
    local up = dpdk.spawn(pump, client, upstream, "client->upstream")
    pump(upstream, client, "upstream->client")
    up:join()
    upstream:close()
    client:close()
end

rt:block_on(function()
    local listener = assert(tcp.listen("*", listen_port))
    print(("proxy on port %d -> %s:%d over %s (addresses: %s)"):format(listen_port, up_host,
        up_port, kind, table.concat(rt:addresses(), ", ")))
    io.stdout:flush()
    while true do
        local client, ip, port = listener:accept()
        if client then
            dpdk.spawn(serve, client, ip, port)
        else
            dpdk.log("warn", "proxy", "accept:", ip)
        end
    end
end)

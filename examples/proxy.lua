-- A TCP proxy: accepts on the DPDK device and relays each connection to an
-- upstream given by name (or IP address), both ways, until either side ends.
--   sudo ./dpdklua examples/proxy.lua LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT
--   e.g. sudo ./dpdklua examples/proxy.lua 8080 backend.internal 80
--        curl http://10.99.0.2:8080/            (from the kernel side of the tap)
-- The upstream is reached through the DPDK stack too (a host behind the device,
-- e.g. the kernel side of the tap); its name is resolved on the blocking pool
-- (/etc/hosts, DNS) and cached. Kernel upstreams on 127.0.0.1 need dpdk.ktcp,
-- which is not there yet.
-- DPDKLUA_CONFIG=path picks the env.json (else the usual search order).
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local listen_port = tonumber(arg and arg[1])
local up_host, up_port = arg and arg[2], tonumber(arg and arg[3])
if not listen_port or not up_host or not up_port then
    io.stderr:write("usage: dpdklua examples/proxy.lua LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT\n")
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
    local upstream, err = tcp.connect(up_host, up_port, { timeout = CONNECT_MS })
    if not upstream then
        dpdk.log("warn", "proxy", ("%s:%s: upstream %s:%d: %s"):format(peer_ip, peer_port,
            up_host, up_port, err))
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
    print(("proxy on port %d -> %s:%d (addresses: %s)"):format(listen_port, up_host, up_port,
        table.concat(rt:addresses(), ", ")))
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

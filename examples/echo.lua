-- A TCP echo server: each line a client sends comes back.
--   sudo ./dpdklua examples/echo.lua [port]        (default port 7)
--   nc 10.99.0.2 7                                 (from the kernel side of the tap)
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local port = tonumber(arg and arg[1]) or 7

local rt = assert(dpdk.runtime{ workers = 1 })

local function serve(client)
    client:settimeout(30000)
    while true do
        local line, err = client:receive("*l")
        if not line then
            if err ~= "closed" then dpdk.log("info", "echo client:", err) end
            break
        end
        local ok, serr = client:send(line .. "\n")
        if not ok then dpdk.log("info", "echo send:", serr) break end
    end
    client:close()
end

rt:block_on(function()
    local listener = assert(tcp.listen("*", port))
    print(("echo server on port %d (addresses: %s)"):format(port,
        table.concat(rt:addresses(), ", ")))
    io.stdout:flush()
    while true do
        local client = assert(listener:accept())
        dpdk.spawn(serve, client)
    end
end)

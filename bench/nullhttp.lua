-- A null HTTP server for the load generator's own ceiling: one canned
-- response per request, no parsing (a request fits one segment and the
-- client never pipelines, so each read is one request).
--   dpdklua bench/nullhttp.lua <config> <ip> <port>
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local config, ip, port = arg[1], arg[2], tonumber(arg[3])
local BODY = "Hello from dpdklua (worker 0, core 1): GET /\n"
local RESPONSE = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s")
    :format(#BODY, BODY)

local rt = assert(dpdk.runtime{ workers = 1, config = config })
rt:block_on(function()
    local l = assert(tcp.listen(ip, port, { backlog = 2048 }))
    print("READY") io.stdout:flush()
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            while true do
                local data = c:receiveany(65536)
                if not data then break end
                if data:find("Connection: close", 1, true) then
                    c:send(RESPONSE)
                    break
                end
                if not c:send(RESPONSE) then break end
            end
            c:close()
        end)
    end
end)

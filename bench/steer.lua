-- The steer row's server: bench/nullhttp.lua's canned response, naming the
-- worker that sends it, on <workers> workers (each listens on the port; a
-- connection is served by the worker that owns its flow), and a snapshot line
-- every 0.1 s, from worker 0, of every worker's frames received from the
-- port, frames forwarded out and in, and busy time.
--   dpdklua bench/steer.lua <config> <ip> <port> <workers>
-- prints READY, then lines "snap t=<s> w0=rx,fwd_out,fwd_in,busy_ns w1=..."
-- (busy_ns: dpdk.stats()'s, the wall time of the worker's turns that had work)
local dpdk = require "dpdk"

local config, ip, port, workers = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])

local rt = assert(dpdk.runtime{ workers = workers, config = config })

rt:run(function(ip, port)
    local dpdk = require "dpdk"
    local tcp = require "dpdk.tcp"
    -- names the worker that serves the connection: the steer row's load
    -- keeps only connections worker 1 answers (its flows)
    local BODY = ("Hello from dpdklua (worker %d, core %d): GET /\n"):format(dpdk.worker_id(),
        dpdk.core_id())
    local RESPONSE = ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s")
        :format(#BODY, BODY)

    local l = assert(tcp.listen(ip, port, { backlog = 2048 }))
    dpdk.spawn(function()
        while true do
            local c = assert(l:accept())
            dpdk.spawn(function()
                while true do
                    local data = c:receiveany(65536)
                    if not data then break end
                    if not c:send(RESPONSE) then break end
                end
                c:close()
            end)
        end
    end)
    if dpdk.worker_id() ~= 0 then
        dpdk.sleep(3600)
        return
    end
    dpdk.sleep(0.2) -- every worker listening
    print("READY") io.stdout:flush()
    while true do
        local parts = { ("snap t=%.6f"):format(dpdk.now()) }
        for _, w in ipairs(dpdk.stats().workers) do
            parts[#parts + 1] = ("w%d=%d,%d,%d,%d"):format(w.worker, w.rx_packets, w.forwarded_out,
                w.forwarded_in, w.busy_ns)
        end
        print(table.concat(parts, " ")) io.stdout:flush()
        dpdk.sleep(0.1)
    end
end, ip, port)

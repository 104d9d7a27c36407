-- The steer row's server: bench/nullhttp.lua's canned response, naming the
-- worker that sends it, on <workers> workers (each listens on the port; a
-- connection is served by the worker that owns its flow), and a snapshot line
-- every 0.1 s, from worker 0, of every worker's loop turns, frames received
-- from the port, frames forwarded out and in, its thread's CPU time (ns,
-- /proc/self/task/<tid>/schedstat: time on a CPU, not time waiting for one),
-- its connections and its busy time.
--   dpdklua bench/steer.lua <config> <ip> <port> <workers>
-- prints READY, then lines "snap t=<s> w0=loops,rx,fwd_out,fwd_in,cpu_ns,conns,busy_ns w1=..."
-- (conns: the worker's established connections, i.e. the flows it owns;
-- busy_ns: dpdk.stats()'s, the wall time of its turns that had work)
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

    local function read(path)
        local f = io.open(path)
        if not f then return nil end
        local s = f:read("*a")
        f:close()
        return s
    end

    -- Worker i's thread: worker 0 runs on the process's main thread, the
    -- others are named dpdklua-w<i> (host/worker.c).
    local function thread_ids()
        local ids = {}
        local pid = tonumber(read("/proc/self/stat"):match("^(%d+)")) -- ours, not ls's
        local p = io.popen("ls /proc/" .. pid .. "/task")
        for tid in p:read("*a"):gmatch("%d+") do
            local comm = read("/proc/self/task/" .. tid .. "/comm") or ""
            local w = tonumber(comm:match("^dpdklua%-w(%d+)"))
            if tonumber(tid) == pid then w = 0 end
            if w then ids[w] = tid end
        end
        p:close()
        return ids
    end

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
    dpdk.sleep(0.2) -- every worker's thread named and listening
    local tids = thread_ids()
    print("READY") io.stdout:flush()
    while true do
        local parts = { ("snap t=%.6f"):format(dpdk.now()) }
        for _, w in ipairs(dpdk.stats().workers) do
            local cpu = (read("/proc/self/task/" .. (tids[w.worker] or "?") .. "/schedstat") or "")
                :match("^(%d+)")
            parts[#parts + 1] = ("w%d=%d,%d,%d,%d,%s,%d,%d"):format(w.worker, w.loops, w.rx_packets,
                w.forwarded_out, w.forwarded_in, cpu or "-1", w.tcp_established, w.busy_ns)
        end
        print(table.concat(parts, " ")) io.stdout:flush()
        dpdk.sleep(0.1)
    end
end, ip, port)

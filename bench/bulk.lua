-- Row "bulk": one TCP stream between two dpdklua processes over memif.
--   dpdklua bench/bulk.lua server <config> <ip> <port>
--   dpdklua bench/bulk.lua client <config> <ip> <port> <seconds>
-- The server sends 64 KiB blocks until the client closes; the client counts
-- what it receives for <seconds> and prints gbps=... (bench/run.lua parses it).
local ffi = require "ffi"
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local role, config, ip, port, seconds = arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
local rt = assert(dpdk.runtime{ workers = 1, config = config })
local BLOCK = ("x"):rep(65536)

if role == "server" then
    rt:block_on(function()
        local l = assert(tcp.listen(ip, port))
        print("READY") io.stdout:flush()
        while true do
            local c = assert(l:accept())
            dpdk.spawn(function()
                while c:send(BLOCK) do end
                c:close()
            end)
        end
    end)
    return
end

pcall(ffi.cdef, [[
struct bench_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk_id, struct bench_timespec *tp);
]])
local ts = ffi.new("struct bench_timespec")
local function clock()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

rt:block_on(function()
    local c = assert(tcp.connect(ip, port, { timeout = 10000 }))
    local warm_end = clock() + math.min(0.5, seconds / 4)
    while clock() < warm_end do assert(c:receiveany(1048576)) end
    local bytes, t0 = 0, clock()
    local stop = t0 + seconds
    local t = t0
    while t < stop do
        local data = assert(c:receiveany(1048576))
        bytes = bytes + #data
        t = clock()
    end
    c:close()
    print(("bytes=%d seconds=%.3f gbps=%.3f"):format(bytes, t - t0, bytes * 8 / (t - t0) / 1e9))
end)

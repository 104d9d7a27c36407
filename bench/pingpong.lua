-- Row "pingpong": 64-byte TCP ping-pong between two dpdklua processes.
--   dpdklua bench/pingpong.lua server <config> <ip> <port>
--   dpdklua bench/pingpong.lua client <config> <ip> <port> <round trips>
-- The client prints one line of key=value pairs (bench/run.lua parses it).
local ffi = require "ffi"
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local role, config, ip, port, n = arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
local SIZE = 64

local rt = assert(dpdk.runtime{ workers = 1, config = config })

if role == "server" then
    rt:block_on(function()
        local l = assert(tcp.listen(ip, port))
        print("READY") io.stdout:flush()
        while true do
            local c = assert(l:accept())
            assert(c:setoption("tcp-nodelay", true))
            dpdk.spawn(function()
                while true do
                    local data = c:receive(SIZE)
                    if not data then break end
                    if not c:send(data) then break end
                end
                c:close()
            end)
        end
    end)
    return
end

-- The client times each round trip with the TSC (dl_now reads it at each
-- call, scaled once at start-up), as the raw memif anchor (bench/memif_pp.c)
-- does: clock_gettime costs 64-86 ns a call here against rdtsc's ~24, and
-- about one call's cost lands inside every interval timed.
local clock = require("dpdk.cdef").dl_now

rt:block_on(function()
    local c = assert(tcp.connect(ip, port, { timeout = 10000 }))
    assert(c:setoption("tcp-nodelay", true))
    local msg = ("p"):rep(SIZE)
    local rtt = ffi.new("double[?]", n)
    local warm = math.floor(n / 10)
    for i = -warm, n - 1 do
        local t0 = clock()
        assert(c:send(msg))
        local r = assert(c:receive(SIZE))
        local t1 = clock()
        if i >= 0 then rtt[i] = t1 - t0 end
        assert(#r == SIZE)
    end
    c:close()
    local t = {}
    for i = 0, n - 1 do t[i + 1] = rtt[i] end
    table.sort(t)
    print(("n=%d p50_us=%.3f p99_us=%.3f min_us=%.3f"):format(n, t[math.floor(n / 2) + 1] * 1e6,
        t[math.floor(n * 99 / 100) + 1] * 1e6, t[1] * 1e6))
end)

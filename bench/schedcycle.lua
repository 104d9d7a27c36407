-- The scheduler's cost without the network: one task parks on a token with a
-- 60 s deadline (as a cosocket read does), a second wakes it and yields; ns
-- per wake-and-park cycle (two resumes, two yields, a turn). Not a row of
-- make bench: a tuning aid (docs/performance.md, "Ping-pong, third pass").
--   dpdklua bench/schedcycle.lua [cycles=2000000] [core=1]
local dpdk = require "dpdk"
local sched = require "dpdk.sched"
local C = require "dpdk.cdef"

local n, core = tonumber(arg[1]) or 2000000, tonumber(arg[2]) or 1
local cfg = os.tmpname()
local f = assert(io.open(cfg, "w"))
f:write(('{"dpdk_cores":[%d],"devices":[],"eal_args":["--no-huge","-m","64","--no-pci",'
    .. '"--no-telemetry"]}'):format(core))
f:close()
local rt = assert(dpdk.runtime{ workers = 1, config = cfg })
os.remove(cfg)

rt:block_on(function()
    local token = 0
    local parker = dpdk.spawn(function()
        for _ = 1, n do
            token = sched.token()
            sched.wait_until(token, C.dl_now() + 60)
        end
    end)
    local t0 = C.dl_now()
    local waker = dpdk.spawn(function()
        while parker.state ~= "dead" do
            sched.wake(token)
            dpdk.yield()
        end
    end)
    parker:join()
    waker:join()
    print(("cycles=%d ns_per_cycle=%.1f"):format(n, (C.dl_now() - t0) / n * 1e9))
end)

-- Row "turn": the cost of one idle turn of the loop (dl_poll on a memif
-- port with no traffic, one pending timer), in CPU nanoseconds of the
-- worker's thread per turn; the floor under every latency figure.
--   dpdklua bench/idle.lua <config> <seconds>
local ffi = require "ffi"
local dpdk = require "dpdk"
local C = require "dpdk.cdef"

pcall(ffi.cdef, [[
struct bench_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk_id, struct bench_timespec *tp);
]])
local ts = ffi.new("struct bench_timespec")
local function cpu() -- CLOCK_THREAD_CPUTIME_ID
    ffi.C.clock_gettime(3, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local config, seconds = arg[1], tonumber(arg[2])
local rt = assert(dpdk.runtime{ workers = 1, config = config })
rt:block_on(function()
    local st = ffi.new("dl_worker_stats")
    local w = C.dl_self()
    dpdk.spawn(function() dpdk.sleep(3600) end) -- a pending timer, as a server has
    dpdk.sleep(0.2)
    C.dl_worker_stats_get(w, st)
    local l0, c0 = tonumber(st.loops), cpu()
    dpdk.sleep(seconds)
    C.dl_worker_stats_get(w, st)
    local l1, c1 = tonumber(st.loops), cpu()
    print(("turns=%d cpu_s=%.3f ns_per_turn=%.1f"):format(l1 - l0, c1 - c0,
        (c1 - c0) * 1e9 / (l1 - l0)))
    os.exit(0)
end)

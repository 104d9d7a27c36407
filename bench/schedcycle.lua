-- The scheduler's cost without the network: one task parks on a token with a
-- 60 s deadline (as a cosocket read does), a second wakes it and yields; ns
-- per wake-and-park cycle (two resumes, two yields, a turn). Not a row of
-- make bench: a tuning aid (docs/performance.md, "Ping-pong, third pass").
--   dpdklua bench/schedcycle.lua [cycles=2000000] [core=1]
-- N-tasks mode: N tasks each parked on its own token with a 60 s deadline, a
-- waker waking them in one fixed pseudo-random order, `batch` wakes per turn,
-- each task once per round; ns per cycle (wake, resume, park) for N = 100 and
-- N = 10 000 (at 10 000 each cycle meets a cold task, as the conns row does).
--   dpdklua bench/schedcycle.lua tasks [cycles=2000000] [core=1] [batch=16]
local dpdk = require "dpdk"
local sched = require "dpdk.sched"
local C = require "dpdk.cdef"

local tasks_mode = arg[1] == "tasks"
local a0 = tasks_mode and 1 or 0
local n, core = tonumber(arg[a0 + 1]) or 2000000, tonumber(arg[a0 + 2]) or 1
local batch = tonumber(arg[a0 + 3]) or 16
local cfg = os.tmpname()
local f = assert(io.open(cfg, "w"))
f:write(('{"dpdk_cores":[%d],"devices":[],"eal_args":["--no-huge","-m","64","--no-pci",'
    .. '"--no-telemetry"]}'):format(core))
f:close()
local rt = assert(dpdk.runtime{ workers = 1, config = cfg })
os.remove(cfg)

-- ns per cycle with N parked tasks, `cycles` cycles in all (whole rounds)
local function n_tasks(N, cycles)
    local tokens, perm, stop = {}, {}, false
    for i = 1, N do
        perm[i] = i
        dpdk.spawn(function()
            local token = sched.token()
            tokens[i] = token
            while not stop do sched.wait_until(token, C.dl_now() + 60) end
        end)
    end
    local seed = 12345 -- the same order in every run
    for i = N, 2, -1 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        local j = seed % i + 1
        perm[i], perm[j] = perm[j], perm[i]
    end
    local rounds = math.max(1, math.floor(cycles / N))
    local function round()
        for i = 1, N do
            sched.wake(tokens[perm[i]])
            if i % batch == 0 then dpdk.yield() end
        end
        dpdk.yield()
    end
    round() -- warm-up: every task has parked once with its deadline
    local t0 = C.dl_now()
    for _ = 1, rounds do round() end
    local ns = (C.dl_now() - t0) / (rounds * N) * 1e9
    stop = true
    for i = 1, N do sched.wake(tokens[i]) end
    dpdk.yield()
    return ns
end

rt:block_on(function()
    if tasks_mode then
        for _, N in ipairs{ 100, 10000 } do
            print(("tasks=%d batch=%d cycles=%d ns_per_cycle=%.1f"):format(N, batch, n,
                n_tasks(N, n)))
        end
        return
    end
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

-- dpdk — the runtime API: build a runtime, spawn tasks, sleep, yield, ask
-- where you run. See README.md and spec/runtime_spec.lua for examples.
local ffi = require "ffi"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local runtime = require "dpdk.runtime"
local remote = require "dpdk.remote"
local channel = require "dpdk.channel"
local blocking = require "dpdk.blocking"
local resolve = require "dpdk.resolve"

local M = {
    _VERSION = ffi.string(C.dl_version()),
}

-- dpdk.runtime{ workers, eal_args, mempool_size, cache_size, queue_descriptors,
-- devices, config } → rt, or nil and an error that says what to fix.
M.runtime = runtime.new

-- Run fn(...) as a light thread of the current task on this worker: it runs
-- at once until it first waits (or ends), then dpdk.spawn returns its handle
-- (ngx.thread.spawn's order). handle:join() → true, results... | false, err;
-- handle:kill() / dpdk.kill(handle) → true | nil, err.
M.spawn = sched.start
M.kill = sched.kill
-- dpdk.wait(h1, h2, ...) → the first to end: true, results... | false, err.
M.wait = sched.wait_any
-- dpdk.set_task_name(name): the name the watchdog gives the running task if
-- it stops yielding (default: where its function was defined, "file.lua:12");
-- handle:set_name(name) names another.
function M.set_task_name(name)
    return sched.current_task("dpdk.set_task_name"):set_name(name)
end

-- dpdk.spawn_on(worker_id, fn_or_module_name, ...): run fn(...) as a task on
-- another worker (or this one). fn travels as bytecode (no upvalues), the
-- arguments and results as data (see dpdk.codec). Returns a handle:
-- handle:join([timeout]) → true, results... | false, err.
M.spawn_on = remote.spawn_on

-- dpdk.channel(name [, capacity]) → the runtime's channel of that name (made
-- on first use, the same on every worker): ch:send(v [, timeout]),
-- ch:receive([timeout]). See lua/dpdk/channel.lua.
M.channel = channel.open

-- dpdk.blocking([{ timeout = s },] fn_or_module_name, ...) → true, results... |
-- false, err: run fn(...) on the blocking pool (threads off the workers'
-- cores, each with its own Lua state) while this task waits and the worker
-- keeps polling. See lua/dpdk/blocking.lua.
M.blocking = blocking.blocking

-- dpdk.resolve(name [, opts]) → { "ip", ... } | nil, "name not found: x":
-- getaddrinfo on the blocking pool, cached per worker. See lua/dpdk/resolve.lua.
M.resolve = resolve.resolve

M.sleep = sched.sleep   -- dpdk.sleep(seconds)
M.yield = sched.yield   -- let other tasks and the network run, then continue

M.timer = require "dpdk.timer"         -- timer.at(delay, fn, ...), timer.every(...)
M.semaphore = require "dpdk.semaphore" -- semaphore.new(n): post, wait(timeout), count
M.queue = require "dpdk.queue"         -- queue.new(capacity): push, pop(timeout)

-- Monotonic time in seconds (float, sub-microsecond resolution).
function M.now()
    return C.dl_now()
end

-- Index of the worker this code runs on (0-based), or nil outside a worker.
function M.worker_id()
    local w = C.dl_self()
    if w == nil then return nil end
    return C.dl_worker_index(w)
end

-- The CPU core this worker is pinned to, or nil outside a worker.
function M.core_id()
    local w = C.dl_self()
    if w == nil then return nil end
    return C.dl_worker_core(w)
end

local function current_runtime_ptr()
    local w = C.dl_self()
    if w ~= nil then
        return C.dl_worker_runtime(w)
    end
    local rt = runtime.active()
    return rt and rt.ptr
end

-- Number of workers of the running runtime (0 when there is none).
function M.worker_count()
    local p = current_runtime_ptr()
    return p and C.dl_runtime_worker_count(p) or 0
end

local function mac_text(mac)
    return ("%02x:%02x:%02x:%02x:%02x:%02x"):format(mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
end

-- The names of dl_worker_stats's words, in order (host/stats.c keeps the list).
local STAT_FIELDS = {}
do
    local i = 0
    while C.dl_stats_field(i) ~= nil do
        STAT_FIELDS[i + 1] = ffi.string(C.dl_stats_field(i))
        i = i + 1
    end
end
local stats_buf = ffi.new("dl_worker_stats")
local stats_words = ffi.cast("const uint64_t *", stats_buf)
local port_buf = ffi.new("dl_port_info")

-- dpdk.stats() → { workers = { {worker=0, core=, rx_packets=, ..., tcp_established=,
-- tcp_retrans_segs=, lua_bytes=, ...}, ... }, ports = { {name=, ipackets=,
-- imissed=, mbufs_in_use=, ...}, ... } } (1-based lists; workers[1] is worker
-- 0), nil when no runtime runs. Every field: docs/observability.md.
function M.stats()
    local p = current_runtime_ptr()
    if not p then return nil end
    local self = C.dl_self()
    if self ~= nil then -- this worker's own Lua size, now (the others publish theirs)
        C.dl_stats_set_lua(self, collectgarbage("count") * 1024)
    end
    local out = { workers = {}, ports = {} }
    for i = 0, C.dl_runtime_worker_count(p) - 1 do
        local w = C.dl_runtime_worker(p, i)
        C.dl_worker_stats_get(w, stats_buf)
        local t = { worker = i, core = C.dl_worker_core(w) }
        for k = 1, #STAT_FIELDS do
            t[STAT_FIELDS[k]] = tonumber(stats_words[k - 1])
        end
        out.workers[i + 1] = t
    end
    local info = port_buf
    for i = 0, C.dl_runtime_port_count(p) - 1 do
        if C.dl_runtime_port_info(p, i, info) == C.DL_OK then
            out.ports[i + 1] = {
                port_id = info.port_id, name = ffi.string(info.name),
                ifname = info.ifname[0] ~= 0 and ffi.string(info.ifname) or nil,
                mac = mac_text(info.mac), mtu = info.mtu, queues = info.n_queues,
                ipackets = tonumber(info.ipackets), opackets = tonumber(info.opackets),
                ibytes = tonumber(info.ibytes), obytes = tonumber(info.obytes),
                imissed = tonumber(info.imissed), ierrors = tonumber(info.ierrors),
                oerrors = tonumber(info.oerrors), rx_nombuf = tonumber(info.rx_nombuf),
                mbufs_total = tonumber(info.mbufs_total),
                mbufs_in_use = tonumber(info.mbufs_in_use),
                mbufs_avail = tonumber(info.mbufs_avail),
            }
        end
    end
    return out
end

local LEVELS = { error = C.DL_LOG_ERROR, warn = C.DL_LOG_WARN, info = C.DL_LOG_INFO,
    debug = C.DL_LOG_DEBUG }

-- dpdk.log(level, ...): "error" | "warn" | "info" | "debug", filtered by DPDKLUA_LOG.
function M.log(level, ...)
    local l = LEVELS[level]
    if not l then
        error("dpdk.log: level must be error, warn, info or debug, got " .. tostring(level), 2)
    end
    if C.dl_log_enabled(l, "lua") == 0 then return end
    local n = select("#", ...)
    local parts = { ... }
    for i = 1, n do parts[i] = tostring(parts[i]) end
    C.dl_log_write(l, "lua", table.concat(parts, " ", 1, n))
end

return M

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

-- Counters of the running runtime: { workers = { {rx_packets=…}, … }, ports = { {name=…}, … } }
-- (1-based lists; workers[1] is worker 0). nil when no runtime runs.
function M.stats()
    local p = current_runtime_ptr()
    if not p then return nil end
    local out = { workers = {}, ports = {} }
    local ws = ffi.new("dl_worker_stats")
    for i = 0, C.dl_runtime_worker_count(p) - 1 do
        local w = C.dl_runtime_worker(p, i)
        C.dl_worker_stats_get(w, ws)
        out.workers[i + 1] = {
            worker = i, core = C.dl_worker_core(w),
            rx_packets = tonumber(ws.rx_packets), rx_bytes = tonumber(ws.rx_bytes),
            tx_packets = tonumber(ws.tx_packets), tx_bytes = tonumber(ws.tx_bytes),
            rx_dropped = tonumber(ws.rx_dropped), tx_dropped = tonumber(ws.tx_dropped),
            rx_copied = tonumber(ws.rx_copied),
            loops = tonumber(ws.loops),
            forwarded_out = tonumber(ws.forwarded_out), forwarded_in = tonumber(ws.forwarded_in),
            forward_drops = tonumber(ws.forward_drops),
            tcp = { -- shared TCP resources (docs/design.md)
                connections = tonumber(ws.tcp_connections),
                max_connections = tonumber(ws.tcp_max_connections),
                refused = tonumber(ws.tcp_refused),
                orphans = tonumber(ws.tcp_orphans),
                orphans_aborted = tonumber(ws.tcp_orphans_aborted),
                segments = tonumber(ws.tcp_segments),
                segment_waits = tonumber(ws.tcp_segment_waits),
                rx_compacted = tonumber(ws.tcp_rx_compacted),
                rx_unread = tonumber(ws.tcp_rx_unread),
            },
            syncookies_sent = tonumber(ws.syncookies_sent),
            syncookies_ok = tonumber(ws.syncookies_ok),
            syncookies_bad = tonumber(ws.syncookies_bad),
            fault_dropped = tonumber(ws.fault_dropped),
            fault_duplicated = tonumber(ws.fault_duplicated),
            fault_reordered = tonumber(ws.fault_reordered),
            fault_corrupted = tonumber(ws.fault_corrupted),
            fault_truncated = tonumber(ws.fault_truncated),
        }
    end
    local info = ffi.new("dl_port_info")
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

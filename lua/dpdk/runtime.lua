-- dpdk.runtime — the runtime object: options, block_on, run, shutdown.
--
-- Worker 0 is the thread that calls block_on/run (the interpreter's main
-- thread); workers 1..n-1 run lua/dpdk/worker.lua on their own threads.
-- Work crosses between workers only as messages (string.buffer-encoded,
-- copied through a C mailbox): Lua values never cross Lua states.
local ffi = require "ffi"
local buffer = require "string.buffer"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local codec = require "dpdk.codec"
local remote = require "dpdk.remote"

local unpack = unpack

local M = {}

local Runtime = {}
Runtime.__index = Runtime

local DEFAULTS = {
    workers = 0,
    mempool_size = 8192,
    cache_size = 256,
    queue_descriptors = 128,
    blocking_threads = 4,
    max_connections = C.DL_TCP_MAX_CONNECTIONS,
    linger_timeout_ms = 30000,
    watchdog_ms = 1500,
}

local KNOWN = {
    workers = "number", eal_args = "table", mempool_size = "number", cache_size = "number",
    queue_descriptors = "number", devices = "table", config = "string",
    blocking_threads = "number", max_connections = "number", linger_timeout_ms = "number",
    watchdog_ms = "number",
}

local function errmsg()
    return ffi.string(C.dl_errmsg())
end

local function string_list(name, v)
    if type(v) == "string" then v = { v } end
    for i = 1, #v do
        if type(v[i]) ~= "string" then
            error(("dpdk.runtime: %s[%d] must be a string, got %s"):format(name, i, type(v[i])), 4)
        end
    end
    return v
end

local function check_options(opts)
    for k, v in pairs(opts) do
        local want = KNOWN[k]
        if not want then
            error(("dpdk.runtime: unknown option '%s' (known: workers, eal_args, mempool_size, "
                .. "cache_size, queue_descriptors, devices, config, blocking_threads, max_connections, "
                .. "linger_timeout_ms, watchdog_ms)")
                :format(tostring(k)), 3)
        end
        local ok = type(v) == want or (want == "table" and type(v) == "string")
        if not ok then
            error(("dpdk.runtime: option '%s' must be a %s, got %s"):format(k, want, type(v)), 3)
        end
        if want == "number" and (v ~= math.floor(v) or v < 0) then
            error(("dpdk.runtime: option '%s' must be a non-negative integer, got %s")
                :format(k, tostring(v)), 3)
        end
    end
    local mempool = opts.mempool_size or DEFAULTS.mempool_size
    local cache = opts.cache_size or DEFAULTS.cache_size
    if mempool < 64 then
        error("dpdk.runtime: mempool_size must be at least 64 mbufs, got " .. mempool, 3)
    end
    if cache > 512 or cache * 1.5 > mempool then
        error(("dpdk.runtime: cache_size %d must be <= 512 and <= mempool_size / 1.5 (%d)")
            :format(cache, math.floor(mempool / 1.5)), 3)
    end
    local bt = opts.blocking_threads or DEFAULTS.blocking_threads
    if bt < 1 or bt > 256 then
        error("dpdk.runtime: blocking_threads must be 1..256, got " .. bt, 3)
    end
    local qd = opts.queue_descriptors or DEFAULTS.queue_descriptors
    if qd < 32 or qd > 4096 then
        error("dpdk.runtime: queue_descriptors must be 32..4096, got " .. qd, 3)
    end
    local mc = opts.max_connections or DEFAULTS.max_connections
    if mc < 1 or mc > C.DL_TCP_MAX_CONNECTIONS then
        error(("dpdk.runtime: max_connections must be 1..%d (TCP connections per worker), got %d")
            :format(C.DL_TCP_MAX_CONNECTIONS, mc), 3)
    end
    local linger = opts.linger_timeout_ms or DEFAULTS.linger_timeout_ms
    if linger < 1 or linger > 3600000 then
        error("dpdk.runtime: linger_timeout_ms must be 1..3600000 (milliseconds), got " .. linger, 3)
    end
end

-- The runtime that this process's main state built (at most one at a time).
local active

function M.new(opts)
    opts = opts or {}
    if type(opts) ~= "table" then
        error("dpdk.runtime: expected a table of options, got " .. type(opts), 2)
    end
    if sched.in_task() then
        error("dpdk.runtime: cannot build a runtime from inside a task", 2)
    end
    check_options(opts)
    local o = ffi.new("dl_runtime_opts")
    local anchors = {} -- keeps the Lua strings alive while C reads them
    o.workers = opts.workers or DEFAULTS.workers
    o.mempool_size = opts.mempool_size or DEFAULTS.mempool_size
    o.cache_size = opts.cache_size or DEFAULTS.cache_size
    o.queue_descriptors = opts.queue_descriptors or DEFAULTS.queue_descriptors
    o.blocking_threads = opts.blocking_threads or DEFAULTS.blocking_threads
    o.max_connections = opts.max_connections or DEFAULTS.max_connections
    o.linger_timeout_ms = opts.linger_timeout_ms or DEFAULTS.linger_timeout_ms
    o.watchdog_ms = opts.watchdog_ms or DEFAULTS.watchdog_ms -- 0: off
    o.config_path = opts.config
    if opts.eal_args then
        local list = string_list("eal_args", opts.eal_args)
        anchors.eal = ffi.new("const char *[?]", #list + 1, list)
        o.n_eal_args, o.eal_args = #list, anchors.eal
    end
    if opts.devices then
        local list = string_list("devices", opts.devices)
        anchors.dev = ffi.new("const char *[?]", #list + 1, list)
        o.n_devices, o.devices = #list, anchors.dev
    end
    o.lua_path, o.lua_cpath = package.path, package.cpath
    local ptr = C.dl_runtime_start(o)
    anchors = nil
    if ptr == nil then
        return nil, errmsg()
    end
    local rt = setmetatable({
        ptr = ffi.gc(ptr, function(p) C.dl_runtime_stop(p, 2) end),
        config_path = opts.config or ffi.string(C.dl_config_search()),
        runs = {},
        next_run = 0,
    }, Runtime)
    active = rt
    return rt
end

function M.active()
    return active
end

local function check_alive(rt, what)
    if not rt.ptr then
        error(what .. ": the runtime has been shut down", 3)
    end
    if sched.in_task() then
        error(what .. " cannot be called from inside a task (it drives the loop itself)", 3)
    end
end

function Runtime:worker_count()
    return self.ptr and C.dl_runtime_worker_count(self.ptr) or 0
end

-- A mailbox handler for sched.attach: decodes each message waiting for w
-- (string.buffer-encoded tables); dpdk.spawn_on's ops go to dpdk.remote, the
-- others to handle(msg); a message that does not decode is logged under module.
function M.mail_reader(w, module, handle)
    local dec = buffer.new()
    local pdata, plen = ffi.new("const char *[1]"), ffi.new("size_t[1]")
    return function()
        while C.dl_mail_take(w, pdata, plen) == C.DL_OK do
            dec:set(pdata[0], plen[0])
            local ok, msg = pcall(dec.decode, dec)
            C.dl_mail_release(pdata[0])
            if ok then
                local op = type(msg) == "table" and remote.mail_ops[msg.op]
                if op then
                    op(msg) -- dpdk.spawn_on's messages, the same on every worker
                else
                    handle(msg)
                end
            else
                C.dl_log_write(C.DL_LOG_ERROR, module, "undecodable message: " .. tostring(msg))
            end
        end
    end
end

-- Messages from other workers to worker 0: the ends of rt:run copies.
local function main_mail(rt)
    return M.mail_reader(C.dl_runtime_worker(rt.ptr, 0), "runtime", function(msg)
        local run = msg.op == "done" and rt.runs[msg.id]
        if run then
            run.pending = run.pending - 1
            if not msg.ok then
                run.failures[#run.failures + 1] =
                    ("worker %d: %s"):format(msg.worker, tostring(msg.err))
            end
        end
    end)
end

-- Run pred-driven loop on worker 0 (this thread); returns the loop status.
local function drive(rt, pred)
    local w0 = C.dl_runtime_worker(rt.ptr, 0)
    if C.dl_worker_enter(w0) ~= C.DL_OK then
        error(errmsg(), 3)
    end
    rt.mail = rt.mail or main_mail(rt)
    sched.attach(w0, rt.mail)
    local ok, status = pcall(sched.run_until, pred, true)
    C.dl_worker_leave(w0)
    if not ok then
        error(status, 0)
    end
    if status == "interrupted" then
        error("interrupted", 0)
    end
    return status
end

local function results_of(task)
    local r = task.results
    if not task.ok then
        error(r[1], 0)
    end
    return unpack(r, 1, r.n)
end

-- Run fn(...) as a task on worker 0 and drive the loop until it returns.
-- Returns fn's results; re-raises its error (with the traceback).
function Runtime:block_on(fn, ...)
    check_alive(self, "rt:block_on")
    if type(fn) ~= "function" then
        error("rt:block_on: expected a function, got " .. type(fn), 2)
    end
    local args = { n = select("#", ...), ... }
    local task
    local status = drive(self, function()
        if not task then -- spawned once the scheduler is attached to worker 0
            task = sched.spawn(fn, unpack(args, 1, args.n))
            task.quiet = true -- its error is re-raised here, not logged
        end
        return task.state == "dead"
    end)
    if status ~= "done" then
        error("rt:block_on: the runtime stopped", 2)
    end
    return results_of(task)
end

-- Load what rt:run runs (a message made by codec.target).
function M.load_target(msg)
    return codec.load_target("rt:run", msg)
end

local function encode_target(id, target, ...)
    local msg = codec.target("rt:run", target, { op = "run", id = id })
    msg.args = codec.pack("rt:run", "argument", ...)
    return msg, codec.encode(msg)
end

-- Run target(...) on every worker (each in its own Lua state) and drive
-- worker 0's copy; returns worker 0's results once every copy has ended.
-- A failure on any worker raises an error naming the worker.
function Runtime:run(target, ...)
    check_alive(self, "rt:run")
    self.next_run = self.next_run + 1
    local id = self.next_run
    local ok, msg, encoded = pcall(encode_target, id, target, ...)
    if not ok then error(msg, 2) end
    local n = C.dl_runtime_worker_count(self.ptr)
    local run = { pending = n - 1, failures = {} }
    self.runs[id] = run
    for i = 1, n - 1 do
        local w = C.dl_runtime_worker(self.ptr, i)
        while C.dl_mail_post(w, encoded, #encoded) == C.DL_AGAIN do
            C.dl_log_write(C.DL_LOG_WARN, "runtime", "worker mailbox full; retrying")
        end
    end
    local fn = M.load_target(msg)
    local args = msg.args
    local task
    local status = drive(self, function()
        if not task then
            task = sched.spawn(fn, unpack(args, 1, args.n))
            task.quiet = true
        end
        return task.state == "dead" and run.pending == 0
    end)
    self.runs[id] = nil
    if status ~= "done" then
        error("rt:run: the runtime stopped", 2)
    end
    if task.ok and #run.failures > 0 then -- worker 0's own error comes first
        error("rt:run: " .. table.concat(run.failures, "; "), 2)
    end
    return results_of(task)
end

-- Stop every worker, close ports and release locks. Returns true, or nil and
-- "timeout: ..." when a worker did not stop within timeout seconds (5), or
-- when blocking jobs still ran after the first half of it (the runtime is
-- shut down then; the message names the jobs, whose threads run on).
function Runtime:shutdown(timeout)
    if sched.in_task() then
        error("rt:shutdown() cannot be called from inside a task: call it after block_on or "
            .. "run returns", 2)
    end
    if not self.ptr then
        return true
    end
    timeout = timeout or 5
    if type(timeout) ~= "number" or timeout < 0 then
        error("rt:shutdown: timeout must be seconds >= 0, got " .. tostring(timeout), 2)
    end
    -- worker 0 runs its pending timers once more (premature) and closes its
    -- sockets, letting them finish sending (half the budget); the other
    -- workers do the same when they see the stop
    local half = C.dl_now() + timeout / 2
    local w0 = C.dl_runtime_worker(self.ptr, 0)
    if C.dl_worker_enter(w0) == C.DL_OK then
        local t0 = C.dl_now()
        sched.detach(timeout / 4)
        C.dl_worker_drain(w0, math.max(0, timeout / 2 - (C.dl_now() - t0)))
        C.dl_worker_leave(w0)
    else
        sched.detach()
    end
    -- blocking jobs: what is left of the first half (nobody waits for them
    -- any more); the workers: the second half
    local jobs_err
    if C.dl_blocking_stop(self.ptr, math.max(0, half - C.dl_now())) ~= C.DL_OK then
        jobs_err = errmsg()
    end
    local rc = C.dl_runtime_stop(self.ptr, timeout / 2)
    if rc ~= C.DL_OK then
        return nil, errmsg()
    end
    ffi.gc(self.ptr, nil)
    self.ptr = nil
    if active == self then
        active = nil
    end
    if jobs_err then
        return nil, jobs_err
    end
    return true
end

-- The IP addresses (without prefix) of the devices this runtime runs on.
function Runtime:addresses()
    local cfg = require("dpdk.config").load(self.config_path)
    local out = {}
    if not cfg or not self.ptr then return out end
    local info = ffi.new("dl_port_info")
    for i = 0, C.dl_runtime_port_count(self.ptr) - 1 do
        C.dl_runtime_port_info(self.ptr, i, info)
        local name = ffi.string(info.name)
        for _, dev in ipairs(cfg.devices) do
            local key = dev.pci_address or (dev.vdev and dev.vdev:match("^[^,]+"))
            if key == name then
                for _, a in ipairs(dev.addresses) do out[#out + 1] = a:match("^[^/]+") end
            end
        end
    end
    return out
end

Runtime.__tostring = function(self)
    return ("dpdk runtime (%s)"):format(self.ptr and (self:worker_count() .. " workers") or "shut down")
end

return M

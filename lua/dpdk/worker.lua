-- dpdk.worker — the loop of workers 1..n-1, each on its own thread and Lua
-- state (host/worker.c calls main() once; it returns when the runtime stops).
local buffer = require "string.buffer"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local runtime = require "dpdk.runtime"

local unpack = unpack

local M = {}

local function report(w0, msg)
    local encoded = buffer.encode(msg)
    while C.dl_mail_post(w0, encoded, #encoded) == C.DL_AGAIN do
        sched.yield() -- worker 0's mailbox is full: let it catch up
    end
end

local function run_target(msg, index, w0)
    local ok, err = pcall(function()
        local fn = runtime.load_target(msg)
        local args = msg.args
        local task = sched.spawn(fn, unpack(args, 1, args.n))
        task.quiet = true -- reported to worker 0, which raises it from rt:run
        local ok, res = task:join()
        if not ok then error(res, 0) end
    end)
    if not ok then
        C.dl_log_write(C.DL_LOG_ERROR, "worker", ("worker %d: %s"):format(index, tostring(err)))
    end
    report(w0, { op = "done", id = msg.id, worker = index, ok = ok, err = not ok and err or nil })
end

function M.main()
    local w = C.dl_self()
    assert(w ~= nil, "dpdk.worker.main runs only on a worker thread")
    local index = C.dl_worker_index(w)
    local w0 = C.dl_runtime_worker(C.dl_worker_runtime(w), 0)
    sched.attach(w, runtime.mail_reader(w, "worker", function(msg)
        if msg.op == "run" then
            sched.spawn(run_target, msg, index, w0)
        else
            C.dl_log_write(C.DL_LOG_ERROR, "worker", "unexpected message: " .. tostring(msg.op))
        end
    end))
    sched.run_until(function() return false end)
    -- pending timers run once more (premature; the network has stopped for
    -- this worker), then its sockets are closed
    sched.detach(0.1)
    C.dl_worker_drain(w, -1) -- lets them send what they queued, within the stop budget
end

return M

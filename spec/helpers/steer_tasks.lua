-- What the steering specs' dpdklua workers run, required inside rt:run
-- (whose functions cannot carry upvalues): a listener that gives each
-- connection a task, the line echo that says which worker answered, and the
-- workers' forwarding counters as one line.
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local M = {}

-- Listen on ip:port and run handler(c) in a task of its own per connection.
function M.serve(ip, port, backlog, handler)
    local l = assert(tcp.listen(ip, port, { backlog = backlog }))
    dpdk.spawn(function()
        while true do
            local c = assert(l:accept())
            dpdk.spawn(handler, c)
        end
    end)
end

-- Answer each line with "w<this worker's id> <line>" until the peer closes.
function M.echo_lines(c)
    local me = dpdk.worker_id()
    while true do
        local line = c:receive("*l")
        if not line then break end
        if not c:send("w" .. me .. " " .. line .. "\n") then break end
    end
    c:close()
end

-- "w0 out=<n> in=<n> drops=<n> w1 ...": each worker's forwarded frames.
function M.forwarding()
    local parts = {}
    for _, w in ipairs(dpdk.stats().workers) do
        parts[#parts + 1] = ("w%d out=%d in=%d drops=%d"):format(w.worker, w.forwarded_out,
            w.forwarded_in, w.forward_drops)
    end
    return table.concat(parts, " ")
end

-- Wait (at most `seconds`) until every frame a worker forwarded has been
-- taken by its owner: the counters are live, and the last frames of a test
-- (the closing connections' ACKs) may still be in a worker's ring when the
-- figures are asked for, more so while other processes busy-poll the cores.
function M.settle(seconds)
    local deadline = dpdk.now() + seconds
    repeat
        local out, inn = 0, 0 -- forwarded_out counts what a ring took, drops apart
        for _, w in ipairs(dpdk.stats().workers) do
            out, inn = out + w.forwarded_out, inn + w.forwarded_in
        end
        if out == inn then return true end
        dpdk.sleep(0.01)
    until dpdk.now() >= deadline
    return false
end

-- Answer with forwarding() and close.
function M.send_forwarding(c)
    c:send(M.forwarding() .. "\n")
    c:close()
end

return M

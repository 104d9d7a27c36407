-- kill -9 in the middle of a transfer (issue 11, crashes and restarts): the
-- peer sees the connection end within its timeouts, never a hang, and the
-- killed side starts again at once on the same config (cores, device).
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local function now()
    local p = io.popen("date +%s.%N")
    local t = tonumber(p:read("*l"))
    p:close()
    return t
end

describe("kill -9 mid-transfer", function()
    it("a python peer's read ends by its timeout, and the restarted service serves at once",
        function()
            local STREAM = [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7000))
    print("READY") io.stdout:flush()
    local block = ("z"):rep(65536)
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            while c:send(block) do end
            c:close()
        end)
    end
end)
]]
            local svc = net.service("dlf3", 233, STREAM)
            local restarted, peer
            finally(function() -- one finally: busted keeps only the last one registered
                if peer then peer:kill(9) end
                svc.stop()
                if restarted then restarted.stop() end
            end)
            peer = child.start_python([[
import socket, time
s = socket.create_connection(("10.233.0.2", 7000), timeout=5)
n = 0
while n < (4 << 20):
    n += len(s.recv(1 << 20))
print("READING", flush=True)
t0 = time.monotonic()
try:
    while s.recv(1 << 20):
        pass
    how = "closed"
except OSError as e:
    how = type(e).__name__
print("ENDED %s after %.1f s" % (how, time.monotonic() - t0), flush=True)
deadline = time.monotonic() + 30
while True:
    try:
        c = socket.create_connection(("10.233.0.2", 7000), timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.05)
got = c.recv(65536)
print("RECONNECTED got %d bytes" % len(got), flush=True)
]])
            assert(peer:wait_output("READING", 20), peer:stdout() .. peer:stderr())
            local t0 = now()
            svc.proc:kill(9)
            restarted = net.service("dlf3", 233, STREAM)
            local restart_s = now() - t0
            assert(peer:wait_output("RECONNECTED", 40), peer:stdout() .. peer:stderr())
            local out = peer:stdout()
            -- its read hung on a peer that can no longer answer: the socket's
            -- 5 s timeout ended it (no RST can come from a dead process)
            local how, after = out:match("ENDED (%S+) after ([%d.]+) s")
            assert.is_truthy(how, out)
            assert.is_true(tonumber(after) < 10, out)
            assert.matches("RECONNECTED got %d+ bytes", out)
            assert.is_true(restart_s < 10, "restart took " .. restart_s .. " s")
            print(("\n    kill -9 → restarted service READY in %.2f s; peer: %s"):format(restart_s,
                out:match("ENDED[^\n]*")))
        end)
end)

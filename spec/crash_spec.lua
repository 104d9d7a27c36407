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
            local restarted
            finally(function()
                svc.stop()
                if restarted then restarted.stop() end
            end)
            local peer = child.start_python([[
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
            finally(function() peer:kill(9) end)
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

    it("a dpdklua peer over net_memif sees the end, and the killed side restarts on its core",
        function()
            local sock = ("%s/crash.sock"):format(child.tmpdir())
            local function cfg(role, host)
                return child.config({ cores = { 0, 1 }, devices = { {
                    vdev = ("net_memif_%sk,role=%s,socket=%s,id=0"):format(role:sub(1, 1), role,
                        sock),
                    mac = ("02:d2:e9:00:00:%02x"):format(host),
                    addresses = { ("10.234.0.%d/24"):format(host) } } } })
            end
            local server = child.start(([[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
    local l = assert(tcp.listen("10.234.0.2", 9000))
    print("READY") io.stdout:flush()
    local first = assert(l:accept())
    first:settimeout(3000)
    local block, sent = ("s"):rep(65536), 0
    local t0 = dpdk.now()
    while true do
        local ok, err = first:send(block)
        if not ok then
            print(("ENDED %%s after %%d bytes, %%.1f s"):format(err, sent, dpdk.now() - t0))
            io.stdout:flush()
            break
        end
        sent = sent + #block
        t0 = dpdk.now() -- the time since the last send that went through
    end
    first:close()
    local second = assert(l:accept())
    assert(second:send("hello again\n"))
    second:close()
    print("SERVED AGAIN") io.stdout:flush()
    dpdk.sleep(3600)
end)
]]):format(cfg("server", 2)))
            finally(function() server:kill(9) end)
            assert(server:wait_output("READY"), server:stderr())
            local client_code = ([[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
    local c = assert(tcp.connect("10.234.0.2", 9000, { timeout = 10000 }))
    print("CONNECTED core " .. dpdk.stats().workers[1].core) io.stdout:flush()
    local n = 0
    while true do
        local data = assert(c:receiveany(65536))
        n = n + #data
        if n >= 8388608 and n - #data < 8388608 then print("READING") io.stdout:flush() end
        if data:find("hello again", 1, true) then print("GOT hello again") break end
    end
end)
]]):format(cfg("client", 3))
            local client = child.start(client_code)
            finally(function() client:kill(9) end)
            assert(client:wait_output("READING", 30), client:stdout() .. client:stderr())
            local core = client:stdout():match("CONNECTED core (%d+)")
            local t0 = now()
            client:kill(9)
            local again = child.start(client_code)
            finally(function() again:kill(9) end)
            assert(again:wait_output("CONNECTED", 30), again:stdout() .. again:stderr())
            local restart_s = now() - t0
            assert(again:wait_output("GOT hello again", 30), again:stdout() .. again:stderr()
                .. server:stdout())
            assert.are.equal(core, again:stdout():match("CONNECTED core (%d+)"))
            local out = server:stdout()
            local err, secs = out:match("ENDED (%S+) after %d+ bytes, ([%d.]+) s")
            assert.is_truthy(err, out .. server:stderr())
            assert.is_true(tonumber(secs) < 10, out)
            assert.matches("SERVED AGAIN", out)
            assert.is_true(restart_s < 10, "restart took " .. restart_s .. " s")
            print(("\n    kill -9 → restarted client connected in %.2f s on core %s; server: %s")
                :format(restart_s, core, out:match("ENDED[^\n]*")))
        end)
end)

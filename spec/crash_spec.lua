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

-- Two dpdklua processes over net_memif: a server that streams to whoever
-- connects, and a client that reads. One side gets SIGKILL mid-transfer.
-- 10.36.0.0/24: this test's memif subnet (memif only, no tap).
local MEMIF_SERVER_IP = "10.36.0.2"

-- Streams 64 KiB blocks to every connection (send timeout 3 s) and says how
-- each stream ended, and how long after its last successful send.
local MEMIF_SERVER = [[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
    local l = assert(tcp.listen(%q, 9100))
    print("READY") io.stdout:flush()
    local n = 0
    while true do
        local c = assert(l:accept())
        n = n + 1
        print("ACCEPTED " .. n) io.stdout:flush()
        dpdk.spawn(function()
            c:settimeout(3000)
            local block = ("z"):rep(65536)
            local last = dpdk.now()
            while true do
                local ok, err = c:send(block)
                if not ok then
                    print(("SEND_END %%s after %%.2f s"):format(err, dpdk.now() - last))
                    io.stdout:flush()
                    break
                end
                last = dpdk.now()
            end
            c:close()
        end)
    end
end)
]]

-- Connects (retrying while the memif is not up yet), reads 8 MiB, says
-- READING, then reads until the stream ends (receive timeout 3 s) and says
-- how. Then, as a user restarting after an error would, it builds a new
-- runtime on the same config and must be served again. arg[1] = "once":
-- only that last part (a fresh client).
local MEMIF_CLIENT = [[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local cfg, ip, once = %q, %q, arg[1] == "once"
local function connect()
    local deadline = dpdk.now() + 20
    while true do
        local c, err = tcp.connect(ip, 9100, { timeout = 1000 })
        if c then return c end
        assert(dpdk.now() < deadline, "no connection within 20 s: " .. tostring(err))
        dpdk.sleep(0.05)
    end
end
if not once then
    local rt = assert(dpdk.runtime{ workers = 1, config = cfg })
    rt:block_on(function()
        local c = connect()
        c:settimeout(3000)
        local n, said, last = 0, false, dpdk.now()
        while true do
            local data, err = c:receiveany(1048576)
            if not data then
                print(("READ_END %%s after %%.2f s"):format(err, dpdk.now() - last))
                io.stdout:flush()
                break
            end
            n = n + #data
            last = dpdk.now()
            if n >= 8388608 and not said then
                print("READING") io.stdout:flush()
                said = true
            end
        end
        c:close()
    end)
    assert(rt:shutdown(1))
end
local rt = assert(dpdk.runtime{ workers = 1, config = cfg })
rt:block_on(function()
    local c = connect()
    c:settimeout(5000)
    local n = 0
    while n < 65536 do n = n + #assert(c:receiveany(65536)) end
    print("SERVED " .. n) io.stdout:flush()
    c:close()
end)
assert(rt:shutdown(1))
]]

-- Processes still running in the process groups of these children (each
-- was started with setsid: its group is its wrapper's PID).
local function leftovers(procs)
    local found = {}
    for _, p in ipairs(procs) do
        local rc, out = child.sh("pgrep -a -g " .. p.pid)
        if rc == 0 then found[#found + 1] = out end
    end
    return table.concat(found)
end

describe("kill -9 over net_memif #slow", function() -- too slow for the sanitizer pass (its exit timed out there)
    local function scenario(victim)
        -- a socket of its own per victim: a killed server leaves its file
        local tag = "k9" .. victim
        local sock = ("%s/%s.sock"):format(child.tmpdir(), tag) -- child.memif_configs' path
        local server_cfg, client_cfg = child.memif_configs(tag, 36)
        local server_code = MEMIF_SERVER:format(server_cfg, MEMIF_SERVER_IP)
        local client_code = MEMIF_CLIENT:format(client_cfg, MEMIF_SERVER_IP)
        local procs = {}
        -- one finally (busted keeps only the last one registered): every
        -- child this test started, by its own PID
        finally(function()
            for _, p in ipairs(procs) do p:kill(9) end
        end)
        local function start(code, args)
            local p = child.start(code, { args = args })
            procs[#procs + 1] = p
            return p
        end
        local server = start(server_code)
        assert(server:wait_output("READY"), server:stderr())
        local client = start(client_code)
        assert(client:wait_output("READING", 30), client:stdout() .. client:stderr())

        local t0 = now()
        local restarted, survivor, how, after
        if victim == "server" then
            server:kill(9)
            restarted = start(server_code)
            assert(restarted:wait_output("READY", 20), restarted:stderr())
            local restart_s = now() - t0
            -- the client's read ends by an error within its 3 s timeout, then
            -- its new runtime reaches the new server and is served
            assert(client:wait_output("SERVED", 40), client:stdout() .. client:stderr())
            how, after = client:stdout():match("READ_END (.-) after ([%d.]+) s")
            survivor = client
            print(("\n    server kill -9 → restarted READY in %.2f s; client: %s"):format(restart_s,
                client:stdout():match("READ_END[^\n]*")))
        else
            client:kill(9)
            restarted = start(client_code, { "once" })
            -- the restarted client is served; the server's send to the dead one
            -- ends by an error within its 3 s timeout (a reset from the new
            -- client's stack on the same address, or the timeout)
            assert(restarted:wait_output("SERVED", 40), restarted:stdout() .. restarted:stderr())
            local served_s = now() - t0
            assert(server:wait_output("SEND_END", 20), server:stdout() .. server:stderr())
            how, after = server:stdout():match("SEND_END (.-) after ([%d.]+) s")
            survivor = server
            print(("\n    client kill -9 → restarted client served in %.2f s; server: %s")
                :format(served_s, server:stdout():match("SEND_END[^\n]*")))
        end
        assert.is_truthy(how, survivor:stdout())
        assert.is_truthy(how == "timeout" or how:find("reset", 1, true) or how == "closed",
            survivor:stdout())
        assert.is_true(tonumber(after) < 5, survivor:stdout())
        assert.is_nil(survivor:stderr():find("PANIC", 1, true), survivor:stderr())

        -- the processes still alive end cleanly, then nothing is left behind:
        -- a client ends by itself once SERVED (a SIGTERM in its exit path, with
        -- no loop running, would take the signal's default action), a server
        -- by SIGTERM
        local killed = victim == "server" and server or client
        for _, p in ipairs(procs) do
            if p == killed then
                -- its end was the kill -9
            elseif p == client or p == restarted and victim == "client" then
                local rc = p:wait(10)
                assert(rc == 0, "client exit status " .. tostring(rc) .. "\n" .. p:stderr())
            elseif not p:exited() then
                local rc = p:kill(15)
                assert(rc == 0 or rc == 1, "exit status " .. tostring(rc) .. "\n" .. p:stderr())
            end
        end
        for _, p in ipairs(procs) do p:kill(9) end
        assert(child.wait_until(function() return leftovers(procs) == "" end, 5), leftovers(procs))
        -- a killed memif server leaves its socket file; the restarted one
        -- (or the clean exit) must not leave one behind
        assert.are_not.equal(0, (child.sh("test -e " .. child.quote(sock))), sock .. " left behind")
    end

    it("the server: the client's read ends within its timeout, the restarted server serves it",
        function() scenario("server") end)
    it("the client: the server's send ends within its timeout, the restarted client is served",
        function() scenario("client") end)
end)

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

-- Item 6 of issue 11: a server over net_memif survives memif peers that come
-- and go. Each client process builds and shuts down a runtime many times
-- (each time its memif connects, blasts the server, and leaves while its
-- senders are still sending: rt:shutdown(0)); every other process ends
-- abruptly (_exit) in its last cycle. Before the fix
-- the server died with SIGSEGV inside librte_net_memif (its worker read a
-- ring the EAL interrupt thread had just unmapped) or with an EAL panic (a
-- control socket closed with its callback still registered); see
-- docs/reliability.md for the figures.
local child = require "spec.helpers.child"

-- 10.235.0.0/24: this spec's memif subnet (no tap: memif only); each case
-- its own socket (child.memif_configs)
local SERVER_IP = "10.235.0.2"

local SERVER = [[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
    local l = assert(tcp.listen(%q, 9000, { backlog = 1024 }))
    print("READY") io.stdout:flush()
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            c:settimeout(5000)
            while true do
                local data = c:receiveany(65536)
                if not data then break end
                if data:sub(1, 4) == "PING" then c:send("PONG\n") end
            end
            c:close()
        end)
    end
end)
]]

-- arg: cycles, connections, seconds of traffic per cycle, "abrupt" or not
local CLIENT = [[
local ffi = require "ffi"
ffi.cdef "void _exit(int);"
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local cycles, n, secs, abrupt = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), arg[4]
local blocks = 0
for cycle = 1, cycles do
    local rt = assert(dpdk.runtime{ workers = 1, config = %q })
    rt:block_on(function()
        for _ = 1, n do
            dpdk.spawn(function()
                local c = tcp.connect(%q, 9000, { timeout = 2000 })
                if not c then return end
                local block = ("x"):rep(16384)
                while c:send(block) do blocks = blocks + 1 end
            end)
        end
        dpdk.sleep(secs)
        if abrupt == "abrupt" and cycle == cycles then
            io.stdout:write("blocks ", blocks, "\n") io.stdout:flush()
            ffi.C._exit(0) -- no shutdown: the kernel closes the control socket
        end
    end)
    -- the senders still send: the memif leaves while the server reads its ring
    assert(rt:shutdown(0))
end
print("blocks " .. blocks)
]]

local PING = [[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
print(rt:block_on(function()
    local c = assert(tcp.connect(%q, 9000, { timeout = 5000 }))
    assert(c:send("PING\n"))
    return assert(c:receive("*l"))
end))
]]

describe("a memif server under client churn", function()
    it("survives 160 memif peers connecting, blasting and leaving", function()
        local server_cfg, client_cfg = child.memif_configs("churn", 235)
        local server = child.start(SERVER:format(server_cfg, SERVER_IP),
            { env = { DPDKLUA_LOG = "warn,watchdog=info" } })
        finally(function() server:kill(9) end)
        assert(server:wait_output("READY"), server:stderr())

        local cycles, traffic = 0, 0
        for p = 1, 4 do
            local r = child.run(CLIENT:format(client_cfg, SERVER_IP), {
                args = { 40, 8, 0.03, p % 2 == 1 and "abrupt" or "graceful" }, timeout = 40 })
            -- (a client whose server died may fail too: the server first)
            assert(not server:exited(), ("server died (status %s) during client process %d, "
                .. "after %d to %d memif peers\n%s"):format(tostring(server:wait(1)), p, cycles,
                cycles + 40, server:stderr()))
            -- (the client side died with SIGSEGV here before its runtimes' memif
            -- ports were stopped on the EAL interrupt thread: see below)
            assert(r.status == 0, ("client %d exited %s\n%s"):format(p, tostring(r.status),
                r.stderr))
            cycles = cycles + 40
            traffic = traffic + (tonumber(r.stdout:match("blocks (%d+)")) or 0)
        end
        assert.is_true(traffic > 0, "the clients moved no data")

        -- still serving
        local r = child.run(PING:format(client_cfg, SERVER_IP))
        assert(r.status == 0, r.stderr)
        assert.are.equal("PONG\n", r.stdout)

        -- a clean exit on SIGTERM; the guard waited for the worker at every unmap
        local rc = server:kill(15)
        assert(rc == 0 or rc == 1, "server exit status " .. tostring(rc))
        local err = server:stderr()
        assert.is_nil(err:find("PANIC", 1, true), err)
        local waits = tonumber(err:match("memif guard: (%d+) unmap"))
        assert(waits and waits >= 1, "no unmap waited for the worker:\n" .. err)
    end)

    -- Issue 11, the client side: a client runtime stopped while its memif
    -- handshake was still going on (its runtime lived a few ms) died with
    -- SIGSEGV on the EAL interrupt thread: rte_eth_dev_stop on the main
    -- thread freed the control channel's message queue that the PMD's
    -- handler was sending from (memif_msg_send_from_queue; reported by the
    -- crash reporter as librte_net_memif+0x4175, a write to address 0). By
    -- hand, before the fix: 12 of 30 such processes (20 runtimes each) died.
    it("survives 150 client runtimes stopped during their memif handshake", function()
        local server_cfg, client_cfg = child.memif_configs("handshake", 235)
        local server = child.start(SERVER:format(server_cfg, SERVER_IP))
        finally(function() server:kill(9) end)
        assert(server:wait_output("READY"), server:stderr())
        local SHORT = ([[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local lives = 0
for cycle = 1, 25 do
    local rt = assert(dpdk.runtime{ workers = 1, config = %q })
    lives = lives + 1
    rt:block_on(function()
        for _ = 1, 4 do
            dpdk.spawn(function()
                local c = tcp.connect(%q, 9000, { timeout = 500 })
                if not c then return end
                local block = ("x"):rep(16384)
                while c:send(block) do end
            end)
        end
        local pause = cycle %% 4
        if pause > 1 then dpdk.sleep(pause / 1000) end -- 0, 2 or 3 ms
    end)
    assert(rt:shutdown(0))
end
print("lives " .. lives)
]]):format(client_cfg, SERVER_IP)
        local lives = 0
        for p = 1, 6 do
            local r = child.run(SHORT, { timeout = 60 })
            assert(r.status == 0, ("client process %d (after %d runtimes) exited %s\n%s")
                :format(p, lives, tostring(r.status), r.stderr:sub(-3000)))
            assert.is_nil(r.stderr:find("dpdklua: fatal", 1, true), r.stderr)
            lives = lives + tonumber(r.stdout:match("lives (%d+)"))
        end
        assert.are.equal(150, lives)
        assert(not server:exited(), server:stderr())
        local rc = server:kill(15)
        assert(rc == 0 or rc == 1, "server exit status " .. tostring(rc) .. "\n" .. server:stderr())
    end)
    -- A memif server stopped while a client keeps connecting: the PMD's
    -- close frees the listener socket but leaves its interrupt callback
    -- registered on a live fd, so the EAL interrupt thread called the
    -- handler on freed memory ("Failed to accept connection request on
    -- socket fd -1") and died with SIGSEGV in rte_intr_fd_get once the EAL
    -- unmapped its memory at exit. By hand, before the fix: 10 of 10 such
    -- stops died (exit 139). The server is stopped 0 to 0.8 s after the
    -- client's first memif link came up.
    it("exits normally on SIGTERM while a client keeps connecting, 6 rounds", function()
        local server_cfg, client_cfg = child.memif_configs("stop", 235)
        local server, client
        finally(function() -- (busted keeps one finally: it covers both)
            if client then client:kill(9) end
            if server then server:kill(9) end
        end)
        for round = 1, 6 do
            server = child.start(SERVER:format(server_cfg, SERVER_IP),
                { env = { DPDKLUA_LOG = "warn,port=info" } })
            assert(server:wait_output("READY"), server:stderr())
            client = child.start(CLIENT:format(client_cfg, SERVER_IP),
                { args = { 500, 4, 0.01, "graceful" } })
            assert(child.wait_until(function()
                return server:stderr():find("link up", 1, true) ~= nil
            end, 15), "the client's memif never came up\n" .. server:stderr())
            child.sleep((round - 1) * 0.16)
            local rc = server:kill(15)
            client:kill(9)
            local err = server:stderr()
            assert(rc == 0 or rc == 1, ("round %d: server exit status %s\n%s"):format(round,
                tostring(rc), err:sub(-3000)))
            assert.is_nil(err:find("dpdklua: fatal", 1, true), err:sub(-3000))
            assert.is_nil(err:find("Failed to accept connection request", 1, true),
                err:sub(-3000))
        end
    end)
end)

-- Two dpdklua processes with two workers each, joined by net_memif: both
-- ends steer in software with the same function, so a connection chosen by
-- the client's worker w lands on the server's worker w and nothing is
-- forwarded (but ARP / ND copies).
local child = require "spec.helpers.child"

local defer = child.deferrer(function(fn) finally(fn) end)

-- Both ends call their device net_memif0: the locks tell them apart.
local function configs(tag, net)
    return child.memif_configs(tag, net,
        { names = { server = "net_memif0", client = "net_memif0" }, mac_byte = 0xd3, ipv6 = true })
end

local SERVER = [[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 2, config = CONFIG })
io.stdout:write("READY\n") io.stdout:flush()
rt:run(function()
    local dpdk = require "dpdk"
    local steer = require "spec.helpers.steer_tasks"
    local me = dpdk.worker_id()
    local function bulk(c)
        local n = assert(tonumber(c:receive("*l")))
        local block = {}
        for i = 0, 255 do block[#block + 1] = string.char((i + me) % 256):rep(256) end
        block = table.concat(block) -- 64 KiB
        for _ = 1, n do if not c:send(block) then break end end
        c:close()
    end
    for _, ip in ipairs({ "10.132.0.2", "fd84::2" }) do
        steer.serve(ip, 9000, 2048, steer.echo_lines)
        steer.serve(ip, 9001, 2048, bulk)
        steer.serve(ip, 9002, 2048, steer.send_forwarding)
    end
    dpdk.sleep(3600)
end)
]]

local CLIENT = [[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 2, config = CONFIG })
rt:run(function()
    local dpdk, tcp = require "dpdk", require "dpdk.tcp"
    local me = dpdk.worker_id()
    local out = {}
    -- 1000 connections (500 per worker; every 4th over IPv6), all open at once
    local n, conns, tasks, wrong = 500, {}, {}, 0
    for i = 1, n do
        tasks[i] = dpdk.spawn(function()
            local ip = i % 4 == 0 and "fd84::2" or "10.132.0.2"
            local c = assert(tcp.connect(ip, 9000, { timeout = 20000 }))
            conns[i] = c
            for r = 1, 3 do
                local msg = ("w%d c%d r%d %s"):format(me, i, r, ("x"):rep((i * 7 + r) % 300))
                assert(c:send(msg .. "\n"))
                local back = assert(c:receive("*l"))
                local w, rest = back:match("^w(%d) (.*)$")
                assert(rest == msg, "echo differs")
                if tonumber(w) ~= me then wrong = wrong + 1 end
            end
        end)
    end
    local failures = 0
    for i = 1, n do
        local ok, err = tasks[i]:join()
        if not ok then failures = failures + 1; if failures < 3 then out[#out + 1] = tostring(err) end end
    end
    local open = 0
    for i = 1, n do if conns[i] and conns[i]:is_connected() then open = open + 1 end end
    for i = 1, n do if conns[i] then conns[i]:close() end end
    out[#out + 1] = ("PINGPONG %d open=%d failures=%d served_elsewhere=%d"):format(me, open, failures, wrong)
    -- bulk: 16 MiB to each worker, every byte checked
    local c = assert(tcp.connect("10.132.0.2", 9001, { timeout = 5000 }))
    assert(c:send("256\n"))
    local blocks = {}
    for w = 0, 1 do
        local b = {}
        for i = 0, 255 do b[#b + 1] = string.char((i + w) % 256):rep(256) end
        blocks[w] = table.concat(b)
    end
    local got, bad, from = 0, 0, nil
    while true do
        local data, err = c:receive(65536)
        if not data then assert(err == "closed", err) break end
        if not from then from = data == blocks[0] and 0 or 1 end
        if data ~= blocks[from] then bad = bad + 1 end
        got = got + 1
    end
    out[#out + 1] = ("BULK %d blocks=%d bad=%d from=%s"):format(me, got, bad, tostring(from))
    io.stdout:write(table.concat(out, "\n") .. "\n") io.stdout:flush()
end)
print("CLIENT " .. require("spec.helpers.steer_tasks").forwarding())
rt:block_on(function()
    local c = assert(require("dpdk.tcp").connect("10.132.0.2", 9002, { timeout = 5000 }))
    print("SERVER " .. c:receive("*l"))
end)
]]

describe("two 2-worker dpdklua processes over memif", function()
    it("carry 1000 connections and bulk data, each flow on the same worker at both ends, "
        .. "with nothing forwarded", function()
        local scfg, ccfg = configs("steer", 132)
        local server = child.start(("local CONFIG = %q\n"):format(scfg) .. SERVER)
        defer(function() server:kill(9) end)
        assert.is_true(server:wait_output("READY"), server:stderr())
        -- two cores here: the client runs on the same two, with its own lock directory
        local locks = child.tmpdir() .. "/client-locks"
        child.sh("mkdir -p " .. locks)
        local r = child.run(("local CONFIG = %q\n"):format(ccfg) .. CLIENT,
            { timeout = 180, env = { DPDKLUA_LOCK_DIR = locks } })
        assert.are.equal(0, r.status, r.stdout .. r.stderr .. "\nserver:\n" .. server:stderr())
        local out = r.stdout
        for w = 0, 1 do
            assert.matches("PINGPONG " .. w .. " open=500 failures=0 served_elsewhere=0\n", out)
            assert.matches("BULK " .. w .. " blocks=256 bad=0 from=%d\n", out)
        end
        -- the bulk connection of each client worker was served by the same worker
        assert.matches("BULK 0 blocks=256 bad=0 from=0\n", out)
        assert.matches("BULK 1 blocks=256 bad=0 from=1\n", out)
        local function total(side)
            local line = out:match(side .. " ([^\n]*)")
            assert.truthy(line, out)
            local sum, drops = 0, 0
            for o, d in line:gmatch("out=(%d+) in=%d+ drops=(%d+)") do
                sum, drops = sum + tonumber(o), drops + tonumber(d)
            end
            return sum, drops, line
        end
        local cout, cdrops, cline = total("CLIENT")
        local sout, sdrops, sline = total("SERVER")
        print(("\n  [memif 2x2] client %s; server %s"):format(cline, sline))
        assert.are.equal(0, cdrops + sdrops)
        -- only ARP / neighbour discovery copies cross between workers
        assert.is_true(cout <= 16 and sout <= 16, cline .. " / " .. sline)
    end)
end)

-- Mismatched worker counts over memif. DPDK 22.11's memif server accepts a
-- client with fewer rings than its own queues and leaves the extra queues
-- pointing at ring 0's memory: the server's worker 1 then read (and wrote)
-- the frames of ring 0 too, and frames stormed (~370 000 forwarded in 12 s)
-- while nothing connected. Both ends now open the same number of queue pairs
-- (host/port.c), and a worker polls each queue its index owns.
local MISMATCH_SERVER = [[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = WORKERS, config = CONFIG })
io.stdout:write("READY\n") io.stdout:flush()
rt:run(function()
    local dpdk = require "dpdk"
    local steer = require "spec.helpers.steer_tasks"
    steer.serve("10.105.0.2", 9000, 256, steer.echo_lines)
    steer.serve("fd69::2", 9000, 256, steer.echo_lines)
    steer.serve("10.105.0.2", 9002, 256, function(c)
        steer.settle(5) -- frames still in a ring would count out but not in yet
        local rx = 0
        for _, w in ipairs(dpdk.stats().workers) do rx = rx + w.rx_packets end
        c:send(("%s rx=%d\n"):format(steer.forwarding(), rx))
        c:close()
    end)
    dpdk.sleep(3600)
end)
]]

local MISMATCH_CLIENT = [[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = WORKERS, config = CONFIG })
rt:run(function()
    local dpdk, tcp = require "dpdk", require "dpdk.tcp"
    local me = dpdk.worker_id()
    local n, tasks, served, failures, errs = 40, {}, {}, 0, {}
    for i = 1, n do
        tasks[i] = dpdk.spawn(function()
            local ip = i % 4 == 0 and "fd69::2" or "10.105.0.2"
            local c = assert(tcp.connect(ip, 9000, { timeout = 10000 }))
            for r = 1, 3 do
                local msg = ("w%d c%d r%d %s"):format(me, i, r, ("y"):rep((i * 13 + r) % 1400))
                assert(c:send(msg .. "\n"))
                local back = assert(c:receive("*l"))
                local w, rest = back:match("^w(%d) (.*)$")
                assert(rest == msg, "echo differs")
                served[tonumber(w)] = (served[tonumber(w)] or 0) + 1
            end
            c:close()
        end)
    end
    for i = 1, n do
        local ok, err = tasks[i]:join()
        if not ok then failures = failures + 1; errs[#errs + 1] = tostring(err) end
    end
    io.stdout:write(("ECHO %d failures=%d served0=%d served1=%d %s\n"):format(me, failures,
        served[0] or 0, served[1] or 0, errs[1] or "")) io.stdout:flush()
end)
rt:block_on(function()
    local c = assert(require("dpdk.tcp").connect("10.105.0.2", 9002, { timeout = 5000 }))
    print("SERVER " .. c:receive("*l"))
end)
]]

describe("a 1-worker and a 2-worker dpdklua process over memif", function()
    local function pair(tag, server_workers, client_workers)
        local scfg, ccfg = child.memif_configs(tag, 105,
            { names = { server = "net_memif0", client = "net_memif0" }, mac_byte = 0xd5, ipv6 = true })
        local prefix = function(cfg, w) return ("local CONFIG, WORKERS = %q, %d\n"):format(cfg, w) end
        local server = child.start(prefix(scfg, server_workers) .. MISMATCH_SERVER)
        defer(function() server:kill(9) end)
        assert.is_true(server:wait_output("READY"), server:stderr())
        local locks = child.tmpdir() .. "/" .. tag .. "-client-locks"
        child.sh("mkdir -p " .. locks)
        local r = child.run(prefix(ccfg, client_workers) .. MISMATCH_CLIENT,
            { timeout = 90, env = { DPDKLUA_LOCK_DIR = locks } })
        assert.are.equal(0, r.status, r.stdout .. r.stderr .. "\nserver:\n" .. server:stderr())
        local out = r.stdout
        local s0, s1 = 0, 0
        for w = 0, client_workers - 1 do
            local a, b = out:match("ECHO " .. w .. " failures=0 served0=(%d+) served1=(%d+)")
            assert.truthy(a, out)
            s0, s1 = s0 + tonumber(a), s1 + tonumber(b)
        end
        assert.are.equal(40 * 3 * client_workers, s0 + s1)
        local line = out:match("SERVER ([^\n]*)")
        assert.truthy(line, out)
        local fout, fin, drops = 0, 0, 0
        for o, i, d in line:gmatch("out=(%d+) in=(%d+) drops=(%d+)") do
            fout, fin, drops = fout + tonumber(o), fin + tonumber(i), drops + tonumber(d)
        end
        local rx = tonumber(line:match("rx=(%d+)"))
        print(("\n  [memif %dx%d] served by server worker 0: %d, 1: %d; server %s"):format(
            client_workers, server_workers, s0, s1, line))
        return { s0 = s0, s1 = s1, fout = fout, fin = fin, drops = drops, rx = rx }
    end

    it("connect, echo every byte, and forward each frame at most once "
        .. "(1-worker client, 2-worker server)", function()
        local r = pair("mis12", 2, 1)
        -- the client's flows land on both server workers
        assert.is_true(r.s0 > 0 and r.s1 > 0, ("served %d / %d"):format(r.s0, r.s1))
        assert.are.equal(0, r.drops)
        -- every frame arrives on worker 0's queue: worker 1's flows are forwarded,
        -- once each, never more than the frames the server received
        assert.is_true(r.fout > 0 and r.fout <= r.rx, ("out=%d rx=%d"):format(r.fout, r.rx))
        assert.are.equal(r.fout, r.fin)
        -- 40 connections x 3 round trips: a few hundred frames, not a storm
        assert.is_true(r.rx < 4000, "server received " .. r.rx .. " frames")
    end)

    it("connect and echo with the roles' worker counts swapped "
        .. "(2-worker client, 1-worker server)", function()
        local r = pair("mis21", 1, 2)
        assert.are.equal(0, r.s1) -- one server worker
        assert.are.equal(0, r.fout)
        assert.is_true(r.rx < 8000, "server received " .. r.rx .. " frames")
    end)
end)

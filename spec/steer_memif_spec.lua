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

-- DPDKLUA_PCAP=file: what the port receives and sends, as pcapng that tshark
-- reads. A curl exchange with examples/http.lua through a tap is captured
-- whole: handshake, request, response and both FINs.
local child = require "spec.helpers.child"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."

local function http_server(ifname, net_no, env)
    local cfg = child.config({ cores = { 0 }, devices = { child.tap_device(ifname, net_no) } })
    local envs = { "DPDK_ENV_CONFIG=" .. child.quote(cfg) }
    for k, v in pairs(env) do envs[#envs + 1] = k .. "=" .. child.quote(v) end
    return child.start_shell(("env %s %s %s 8023"):format(table.concat(envs, " "),
        child.quote(child.DPDKLUA), child.quote(ROOT .. "/examples/http.lua")))
end

-- The capture's frames of port 8023 as "src syn ack fin uri code" lines.
local function frames(file)
    local rc, out = child.sh(("tshark -r %s -d tcp.port==8023,http -Y 'tcp.port == 8023' "
        .. "-T fields -E separator=' ' "
        .. "-e ip.src -e tcp.flags.syn -e tcp.flags.ack -e tcp.flags.fin -e http.request.uri "
        .. "-e http.response.code 2>/dev/null"):format(child.quote(file)))
    return rc, out
end

describe("packet capture (DPDKLUA_PCAP)", function()
    it("writes a curl exchange with examples/http.lua as pcapng that tshark reads", function()
        local file = child.tmpfile(".pcapng")
        local p = http_server("dlv8", 23, { DPDKLUA_PCAP = file })
        finally(function() p:kill() end)
        assert(p:wait_output("http server on port 8023"), p:stderr())
        local rc, out = child.sh("curl -sS --max-time 10 http://10.23.0.2:8023/captured")
        assert.are.equal(0, rc, out)
        assert.matches("GET /captured", out)
        -- the server's FIN answers curl's: wait until it is in the file
        local text
        assert.is_true(child.wait_until(function()
            local _, t = frames(file)
            text = t
            return t:find("10.23.0.2 0 1 1", 1, true) ~= nil
                and t:find("10.23.0.1 0 1 1", 1, true) ~= nil
        end, 10), text)
        assert.matches("10.23.0.1 1 0 0  \n", text, 1, true)                -- SYN
        assert.matches("10.23.0.2 1 1 0  \n", text, 1, true)                -- SYN-ACK
        assert.matches("10.23.0.1 0 1 0 /captured \n", text, 1, true)       -- the request
        assert.matches("10.23.0.2 0 1 0  200\n", text, 1, true)             -- the response
        -- each frame names its port and direction
        local _, info = child.sh("tshark -r " .. child.quote(file)
            .. " -Y 'tcp.port == 8023' -T fields -e frame.interface_name"
            .. " -e frame.packet_flags_direction -e ip.src 2>/dev/null | sort -u")
        assert.are.equal("dlv8\t0x00000001\t10.23.0.1\ndlv8\t0x00000002\t10.23.0.2\n", info)
    end)

    it("names the file and the fix when it cannot write the capture", function()
        local cfg = child.config({ cores = { 0 }, devices = { child.tap_device("dlv9", 24) } })
        local r = child.run(("print(require('dpdk').runtime{ workers = 1, config = %q })"):format(cfg),
            { env = { DPDKLUA_PCAP = "/nonexistent-dir/x.pcapng" } })
        assert.are.equal("nil\tDPDKLUA_PCAP=/nonexistent-dir/x.pcapng: cannot create the capture "
            .. "file: No such file or directory\n", r.stdout, r.stderr)
    end)

    it("counts the frames it wrote in dpdk.stats()", function()
        local file = child.tmpfile(".pcapng")
        local cfg = child.config({ cores = { 0 }, devices = { child.tap_device("dlv9", 24) } })
        local r = child.run(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
local log = os.tmpname()
os.execute("ping -c 2 -i 0.2 -W 2 10.24.0.2 > " .. log .. " 2>&1 &")
local s
rt:block_on(function()
    local deadline = dpdk.now() + 10
    repeat -- until ping has its two answers and says so
        dpdk.sleep(0.05)
        s = dpdk.stats().workers[1]
    until io.open(log):read("*a"):find("2 received") or dpdk.now() > deadline
end)
os.remove(log)
print(s.pcap_packets == s.rx_packets + s.tx_packets, s.pcap_drops)
assert(rt:shutdown())
]]):format(cfg), { env = { DPDKLUA_PCAP = file } })
        assert.are.equal("true\t0\n", r.stdout, r.stderr)
        local rc, out = child.sh("tshark -r " .. child.quote(file) .. " -Y icmp -T fields -e icmp.type 2>/dev/null")
        assert.are.equal(0, rc, out)
        assert.matches("8\n0\n8\n0\n", out, 1, true)
    end)
end)

-- The stack itself: one isolated lwIP copy per worker, jumbo frames, and
-- destinations reached through the configured gateways.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."
-- The build under test (scripts/test.sh: DPDKLUA=./dpdklua-asan → make SAN=asan).
local MAKE = "make -s -C " .. child.quote(ROOT) .. (child.SAN and (" SAN=" .. child.SAN) or "")
local RING_LINK = MAKE .. " ring-link && " .. child.quote(child.BUILD .. "/stack/ring_link")

describe("the per-worker lwIP copies", function()
    it("export nothing but their function table (make check-stack)", function()
        local rc, out = child.sh(MAKE .. " check-stack")
        assert.are.equal(0, rc, out)
    end)

    it("share no state: two workers listen on the same address and port", function()
        local cfg = child.config({ cores = { 0, 1 }, devices = { child.tap_device("dltiso", 121) } })
        local r = child.run(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 2, config = %q })
rt:run(function()
    local dpdk, tcp = require "dpdk", require "dpdk.tcp"
    local l, err = tcp.listen("10.121.0.2", 7000)
    io.stdout:write(("worker %%d: %%s\n"):format(dpdk.worker_id(), l and "listening" or err))
    io.stdout:flush()
    -- in one shared lwIP the second listen would fail with "address in use"
    local again, err2 = tcp.listen("10.121.0.2", 7000)
    io.stdout:write(("worker %%d again: %%s\n"):format(dpdk.worker_id(), tostring(err2)))
    io.stdout:flush()
end)
]]):format(cfg))
        assert.are.equal(0, r.status, r.stderr)
        assert.truthy(r.stdout:find("worker 0: listening\n", 1, true), r.stdout)
        assert.truthy(r.stdout:find("worker 1: listening\n", 1, true), r.stdout)
        assert.truthy(r.stdout:find("worker 0 again: address in use\n", 1, true), r.stdout)
        assert.truthy(r.stdout:find("worker 1 again: address in use\n", 1, true), r.stdout)
    end)
end)

describe("the device MTU", function()
    it("sets the MSS the stack announces", function()
        local svc = net.service("dltmss", 122, [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7000))
    print("READY") io.stdout:flush()
    local c = assert(l:accept())
    local data = assert(c:receive(1024 * 1024))
    assert(c:send(#data .. "\n"))
    dpdk.sleep(3600)
end)
]], { device = { mtu = 1280 } })
        finally(svc.stop)
        local _, link = child.sh("ip -o link show dev dltmss")
        assert.matches("mtu 1280", link) -- the tap's kernel side follows the port
        -- give the kernel side a larger MTU: only our MSS can keep segments small
        child.sh("ip link set dev dltmss mtu 1500")
        local rc, out = net.python(([[
import socket
s = socket.create_connection(("%s", 7000), timeout=20)
s.sendall(b"m" * (1024 * 1024))
reply = s.recv(100).decode().strip()
print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) <= 1240, reply)
]]):format(svc.ip))
        assert.are.equal(0, rc, out)
        assert.are.equal("True 1048576\n", out)
    end)

    it("of 9001 carries 9 KB frames between two stack copies over net_ring", function()
        -- the runtime's vdevs here stop at 1504; stack/tests/ring_link.c drives two
        -- copies back to back over net_ring, which takes a jumbo MTU
        local rc, out = child.sh(RING_LINK)
        assert.are.equal(0, rc, out)
        assert.matches("IPv4 10.88.0.2: 33554432 bytes sent, 33554432 received, hash OK, "
            .. "%d+ ms, %d+ frames to the receiver, avg 9%d%d%d B, max 9015 B\n", out)
        assert.matches("IPv6 fd88::2: 33554432 bytes sent, 33554432 received, hash OK", out)
        assert.matches("pool: 4096 of 4096 mbufs back after shutdown\nring_link: ok\n", out)
    end)

    it("of 1500 with every frame split in two mbufs carries the same bytes", function()
        local rc, out = child.sh((RING_LINK:gsub("&& ", "&& MTU=1500 SPLIT=1 ")))
        assert.are.equal(0, rc, out)
        assert.matches("IPv4 10.88.0.2: 33554432 bytes sent, 33554432 received, hash OK, "
            .. "%d+ ms, %d+ frames to the receiver, avg 15%d%d B, max 1514 B\n", out)
        assert.matches("split frames: [1-9]%d*\n", out)
        assert.matches("ring_link: ok\n", out)
    end)

    it("expires TIME-WAIT in timer order: a FIN that restarts a pcb's 2 MSL moves it behind newer ones", function()
        -- stack/patches/86-timewait-timer-order.patch expires the TIME-WAIT list
        -- from its tail and stops at the first pcb to keep; ring_link's
        -- timewait scenario runs two copies on a clock it moves itself
        local rc, out = child.sh(RING_LINK .. " timewait")
        assert.are.equal(0, rc, out)
        assert.matches("timewait: B expired at its 2 MSL with A still kept, then A at its own\n", out)
        assert.matches("pool: 4096 of 4096 mbufs back after shutdown\nring_link: ok\n", out)
    end)

    it("holds out-of-order data up to the window: one lost segment of a 900 KiB burst is the one resent", function()
        -- a cap of 192 KiB below a 1 MiB window dropped what came past it and
        -- withdrew its SACK: 377 segments resent for one loss (fault_spec's tap
        -- cases stalled on the Linux sender's backed-off RTO)
        local rc, out = child.sh((RING_LINK:gsub("&& ", "&& MTU=1500 ")) .. " ooseq")
        assert.are.equal(0, rc, out)
        assert.matches("ooseq: 921600 bytes after one lost segment: 1460 bytes resent, 1 segments\n", out)
        assert.matches("pool: 4096 of 4096 mbufs back after shutdown\nring_link: ok\n", out)
    end)

    it("sends a connection's data while lwIP's own output holds the TX queue above 512 frames", function()
        -- the dirty list stopped at 512 queued frames; the fast timer's delayed
        -- ACKs (and other output of lwIP's own) kept the load generator's queue
        -- above that at 10 000 connections, and requests that missed the
        -- timer's burst waited seconds, past the server's read timeout
        local rc, out = child.sh((RING_LINK:gsub("&& ", "&& MTU=1500 ")) .. " starve")
        assert.are.equal(0, rc, out)
        assert.matches("starve: the probe's 100 bytes: 100 arrived after %d cycles of 5 ms", out)
        assert.matches("pool: 4096 of 4096 mbufs back after shutdown\nring_link: ok\n", out)
    end)

    it("sends a delayed ACK its full TX queue refused at a later tick: the peer does not retransmit", function()
        -- lwIP's fast timer cleared a delayed ACK's flags even when the netif
        -- refused the frame (ERR_MEM: the TX queue holds its share of the
        -- pool), so the ACK was never sent and the peer waited for its RTO
        -- (stack/patches/89-fasttmr-ack-retry.patch); before: 1 segment
        -- retransmitted
        local rc, out = child.sh(RING_LINK .. " ackretry")
        assert.are.equal(0, rc, out)
        assert.matches("ackretry: a delayed ACK refused %d+ times by a full TX queue: the peer "
            .. "retransmitted 0 segments\n", out)
        assert.matches("pool1: 64 of 64 mbufs back after shutdown\nring_link: ok\n", out)
    end)

    it("is refused with what works when the device cannot take it", function()
        local dev = child.tap_device("dltjmb", 123, { mtu = 9001 })
        local cfg = child.config({ cores = { 0 }, devices = { dev } })
        local r = child.run(("print(require('dpdk').runtime{ workers = 1, config = %q })"):format(cfg))
        assert.matches("^nil\tport net_tap_dltjmb: the device does not take mtu 9001: .*; set "
            .. "\"mtu\" in the config to what it supports %(1504 works%)\n$", r.stdout)
    end)
end)

describe("a gateway", function()
    -- the tap's kernel side is a router namespace that forwards to a far one
    -- (net.gateway)
    local GW = { tap = "dltgw", router = "dlgwr", far = "dlgwh", veth = { "dlgwa", "dlgwb" },
        near4 = "10.201.0.1/24", near6 = "fd01::1/64", far4 = "10.202.0", far6 = "fd02::" }

    after_each(function() net.gateway_down(GW) end)

    it("carries IPv4 and IPv6 connections to hosts off the local networks", function()
        local go = child.tmpfile(".go")
        local svc = net.service("dltgw", 201, ([[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
print("READY") io.stdout:flush()
rt:block_on(function()
    while not io.open(%q) do dpdk.sleep(0.05) end
    for _, far in ipairs({ "10.202.0.2", "fd02::2" }) do
        local c, err = tcp.connect(far, 7400, { timeout = 5000 })
        if not c then print("RESULT", far, err) else
            print("RESULT", far, c:receive("*l")) io.stdout:flush()
            c:close()
        end
    end
end)
]]):format(go), { device = {
            addresses = { "10.201.0.2/24", "fd01::2/64" },
            peer_addresses = child.array(),
            gateway_v4 = "10.201.0.1", gateway_v6 = "fd01::1",
        } })
        local server
        -- one finally: busted keeps only the last one a test registers
        finally(function()
            svc.stop()
            if server then server:kill(9) end
        end)
        server = net.gateway(GW)
        io.open(go, "w"):close()
        assert.is_true(svc.proc:wait_output("RESULT\tfd02::2"), svc.proc:stderr())
        local out = svc.proc:stdout()
        assert.truthy(out:find("RESULT\t10.202.0.2\tfar host sees 10.201.0.2\n", 1, true), out)
        assert.truthy(out:find("RESULT\tfd02::2\tfar host sees fd01::2\n", 1, true), out)
    end)
end)

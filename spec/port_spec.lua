-- Ports: a net_tap device comes up with its kernel side configured, its
-- worker counts what the kernel sends and what the stack answers, and the
-- tap goes away at shutdown.
local child = require "spec.helpers.child"

describe("a net_tap port", function()
    it("puts peer_addresses on the kernel side and counts packets both ways", function()
        local dev = child.tap_device("dltp1", 91)
        dev.addresses = { "10.91.0.2/24", "fd91::2/64" }
        dev.peer_addresses = { "10.91.0.1/24", "fd91::1/64" }
        local cfg = child.config({ cores = { 0 }, devices = { dev } })
        local r = child.run(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
local p = dpdk.stats().ports[1]
print("port", p.name, p.ifname, p.mac, p.queues, p.mtu)
io.stdout:write(io.popen("ip -o addr show dev dltp1"):read("*a"))
-- the kernel pings .2: an ARP request and three echo requests come in, an
-- ARP reply and three echo replies (98 bytes each) go out
local ping_log = os.tmpname()
os.execute("ping -c 3 -i 0.2 -W 2 10.91.0.2 > " .. ping_log .. " 2>&1 &")
rt:block_on(function()
    local deadline = dpdk.now() + 5
    while dpdk.stats().workers[1].tx_packets < 4 and dpdk.now() < deadline do dpdk.sleep(0.05) end
    dpdk.sleep(0.5) -- ping prints its summary after its last reply
end)
io.stdout:write(io.open(ping_log):read("*a"))
os.remove(ping_log)
local s = dpdk.stats()
local w, pt = s.workers[1], s.ports[1]
print("rx", w.rx_packets >= 4, pt.ipackets >= 4, w.rx_bytes >= 42 + 3 * 98)
print("tx", w.tx_packets >= 4, pt.opackets >= 4, w.tx_bytes >= 42 + 3 * 98, w.tx_dropped, w.rx_dropped)
assert(rt:shutdown())
-- the kernel unregisters the tap once its last user (a ping's neighbour
-- entry, say) lets go: wait for that, up to 5 s
local gone
for _ = 1, 100 do
    gone = os.execute("ip link show dev dltp1 > /dev/null 2>&1") ~= 0
    if gone then break end
    os.execute("sleep 0.05")
end
print("after", gone)
]]):format(cfg))
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("port\tnet_tap_dltp1\tdltp1\t02:d1:5b:00:00:02\t1\t1500\n", r.stdout, 1, true)
        assert.matches("inet 10.91.0.1/24", r.stdout, 1, true)
        assert.matches("inet6 fd91::1/64", r.stdout, 1, true)
        assert.matches("rx\ttrue\ttrue\ttrue\n", r.stdout, 1, true)
        assert.matches("tx\ttrue\ttrue\ttrue\t0\t0\n", r.stdout, 1, true)
        assert.matches("3 packets transmitted, 3 received", r.stdout, 1, true)
        assert.matches("after\ttrue\n", r.stdout, 1, true)
    end)

    it("gives every worker its own queue on the port", function()
        local cfg = child.config({ cores = { 0, 1 }, devices = { child.tap_device("dltp2", 92) } })
        local r = child.run(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 2, config = %q })
local s = dpdk.stats()
print(s.ports[1].queues, #s.workers)
]]):format(cfg))
        assert.are.equal("2\t2\n", r.stdout, r.stderr)
    end)

    it("refuses an MTU below what the TCP stack takes", function()
        local cfg = child.config({ cores = { 0 }, devices = { child.tap_device("dltp4", 94, { mtu = 500 }) } })
        local r = child.run(("print(require('dpdk').runtime{ workers = 1, config = %q })"):format(cfg))
        assert.are.equal("nil\tport net_tap_dltp4: mtu 500 is below 576, the smallest the TCP "
            .. "stack takes; raise \"mtu\" in the config\n", r.stdout)
    end)

    it("fails with the device, the step and the reason on a bad vdev", function()
        local dev = child.tap_device("dltp3", 93)
        dev.vdev = "net_nosuchpmd0,x=1"
        dev.peer_addresses = nil
        local cfg = child.config({ cores = { 0 }, devices = { dev } })
        local r = child.run(([[
print(require("dpdk").runtime{ workers = 1, config = %q })
]]):format(cfg))
        assert.matches("^nil\tdevice net_nosuchpmd0: cannot create vdev \"net_nosuchpmd0,x=1\"",
            r.stdout)
    end)
end)

describe("a PCI device", function()
    it("that no DPDK driver holds fails with how to bind it", function()
        local cfg = child.config({ cores = { 0 },
            eal_args = { "--no-huge", "-m", "128", "--no-telemetry" },
            devices = { { pci_address = "0000:7f:1f.7", addresses = { "10.124.0.2/24" } } } })
        local r = child.run(([[
print(require("dpdk").runtime{ workers = 1, config = %q })
]]):format(cfg))
        assert.matches("^nil\tdevice 0000:7f:1f.7: probe failed: .*; bind it to vfio%-pci with "
            .. "dpdk%-devbind.py %-%-bind=vfio%-pci 0000:7f:1f.7", r.stdout)
    end)
end)

describe("the EAL", function()
    it("explains a failed init without hugepages", function()
        local cfg = child.config({ cores = { 0 }, eal_args = { "--no-pci", "--no-telemetry" } })
        local r = child.run(([[
print(require("dpdk").runtime{ workers = 1, config = %q })
]]):format(cfg))
        if child.read("/proc/meminfo"):match("HugePages_Total:%s+0\n") then
            assert.matches("^nil\trte_eal_init failed: .*no hugepages are reserved: add "
                .. "\"%-%-no%-huge\"", r.stdout)
        else
            pending("this machine has hugepages")
        end
    end)

    it("names a --file-prefix that another process holds, and the fix", function()
        local prefix = "dlu-spec-" .. os.time()
        local cfg = child.config({ cores = { 0, 1 }, eal_args = { "--no-huge", "-m", "128",
            "--no-pci", "--no-telemetry", "--file-prefix=" .. prefix } })
        local holder = child.start(([[
local rt = assert(require("dpdk").runtime{ workers = 1, config = %q })
print("READY") io.stdout:flush()
local ffi = require "ffi"
ffi.cdef "int usleep(unsigned int usec);"
for _ = 1, 600 do ffi.C.usleep(100000) end]]):format(cfg))
        finally(function() holder:kill(9) end)
        assert.truthy(holder:wait_output("READY", 20), holder:stderr())
        local r = child.run(([[
print(require("dpdk").runtime{ workers = 1, config = %q })
]]):format(cfg))
        local escaped = prefix:gsub("%-", "%%-")
        assert.matches("^nil\trte_eal_init failed: [^;]*; check the EAL messages above; with "
            .. "%-%-file%-prefix=" .. escaped .. ", another DPDK process using the same prefix "
            .. "holds its files: drop %-%-file%-prefix from eal_args", r.stdout)
    end)

    it("is reused by a later runtime with the same arguments, refused with others", function()
        local cfg = child.config({ cores = { 0 } })
        local r = child.run(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
assert(rt:shutdown())
local rt2 = assert(dpdk.runtime{ workers = 1, config = %q })
assert(rt2:shutdown())
print(dpdk.runtime{ workers = 1, config = %q, eal_args = { "--log-level=debug" } })
]]):format(cfg, cfg, cfg))
        assert.matches("^nil\tthe EAL is already initialised in this process with other arguments",
            r.stdout)
    end)
end)

-- scripts/dpdk/setup.sh (spec F21): detect, verify and dev run for real on
-- this machine; dpdk-bind, unbind, hugepages and wizard run against a fake
-- sysfs/procfs tree (spec/helpers/fake_sys.sh) inside a network namespace of
-- their own (unshare -n), so they never touch this machine's NICs: the tree
-- stands for the devices, the namespace for the kernel's addresses and routes.
local child = require "spec.helpers.child"
local config = require "dpdk.config"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."
local SETUP = ROOT .. "/scripts/dpdk/setup.sh"
local FAKE = ROOT .. "/spec/helpers/fake_sys.sh"
local q = child.quote

-- Run setup.sh with args (a string of shell words); rc, output.
local function setup(args, env)
    return child.sh((env or "") .. " bash " .. q(SETUP) .. " " .. args)
end

-- A fresh fake tree; returns its directory. The default one is built once
-- and copied (one process instead of dozens).
local template
local function fake_tree(ifaces)
    local dir = child.tmpfile(".root")
    if not ifaces and template then
        local rc, out = child.sh(("cp -a %s %s"):format(q(template), q(dir)))
        assert(rc == 0, out)
        return dir
    end
    local rc, out = child.sh(("mkdir -p %s && . %s && fake_tree %s %s"):format(q(dir), q(FAKE),
        q(dir), ifaces or ""))
    assert(rc == 0, out)
    if not ifaces then
        template = child.tmpfile(".template")
        assert(child.sh(("cp -a %s %s"):format(q(dir), q(template))) == 0)
    end
    return dir
end

-- Run a bash script in a network namespace of its own with the fake NICs'
-- kernel side (fake_net); S is setup.sh with --root F. rc, output.
local function in_netns(dir, script)
    local file = child.tmpfile(".sh", ("set -e\n. %s\nF=%s\nS() { bash %s --root \"$F\" \"$@\"; }\nfake_net\n%s")
        :format(q(FAKE), q(dir), q(SETUP), script))
    return child.sh("unshare -n bash " .. q(file))
end

local function file(path)
    return child.read(path):gsub("\n$", "")
end

local PCI0, PCI1 = "0000:00:1f.0", "0000:00:1e.0"
local function dev_dir(dir, pci)
    return dir .. "/sys/devices/pci0000:00/" .. pci
end

describe("setup.sh", function()
    it("explains itself and each command with --help", function()
        local rc, out = setup("--help")
        assert.are.equal(0, rc)
        for _, cmd in ipairs({ "detect", "hugepages", "dpdk-bind", "unbind", "wizard", "verify",
            "dev" }) do
            assert.truthy(out:find("setup.sh " .. cmd, 1, true), "usage lacks " .. cmd)
            local crc, cout = setup(cmd .. " --help")
            assert.are.equal(0, crc, cmd .. " --help: " .. cout)
            assert.matches("^usage: setup.sh " .. cmd:gsub("%-", "%%-"), cout)
        end
        local brc, bout = setup("frobnicate")
        assert.are.equal(2, brc)
        assert.matches("unknown command 'frobnicate'", bout, 1, true)
    end)

    describe("detect", function()
        it("describes this machine: its default-route NIC, hugepages, IOVA mode, DPDK", function()
            local rc, out = setup("detect")
            assert.are.equal(0, rc, out)
            local _, route = child.sh("ip -o -4 route show default | awk '{for (i=1;i<NF;i++) if ($i==\"dev\") print $(i+1)}' | head -n1")
            local ifc = route:match("%S+")
            if ifc then
                local line = out:match("\n(" .. ifc:gsub("%p", "%%%0") .. " [^\n]*)")
                assert.truthy(line, "no line for " .. ifc .. " in:\n" .. out)
                assert.truthy(line:find("[default route: never bound]", 1, true), line)
                local mac = file("/sys/class/net/" .. ifc .. "/address")
                assert.truthy(line:find(mac, 1, true), line)
            end
            assert.matches("== Hugepages", out, 1, true)
            assert.matches("IOVA mode DPDK will pick: [VP]A\n  why: %S", out)
            local _, version = child.sh("pkg-config --modversion libdpdk")
            assert.truthy(out:find("version: " .. version:match("%S+"), 1, true), out)
            assert.matches("network PMDs: .*tap.*", out)
            assert.matches("suggested dpdk_cores: %[", out)
        end)

        it("reads PCI address, driver, NUMA node, MAC, addresses and routes from the tree", function()
            local dir = fake_tree()
            local rc, out = in_netns(dir, "S detect")
            assert.are.equal(0, rc, out)
            local l0 = out:match("\n(dlu0 [^\n]*)")
            local l1 = out:match("\n(dlu1 [^\n]*)")
            assert.matches("^dlu0%s+0000:00:1f%.0%s+ixgbe%s+0%s+up%s+02:10:10:00:00:02%s+1500%s+"
                .. "10%.10%.0%.2/24 fdb5::2/64", l0)
            assert.falsy(l0:find("never bound", 1, true))
            assert.truthy(l1:find("[default route: never bound]", 1, true), l1)
            assert.matches("2048kB%s+reserved 0", out)
            assert.matches("IOMMU: none", out, 1, true)
            assert.matches("online: 0 1 2 3", out, 1, true)
            assert.matches("suggested dpdk_cores: [1,2,3]", out, 1, true)
        end)
    end)

    describe("verify", function()
        it("passes the embedded default config, naming core 0 as a warning only", function()
            local rc, out = setup("verify --config '<built-in>'")
            assert.are.equal(0, rc, out)
            assert.matches("verify: <built-in>", out, 1, true)
            assert.matches("ok: devices[0] vdev net_tap0 (a tap named dl0)", out, 1, true)
            assert.matches("ok: no hugepages needed (--no-huge)", out, 1, true)
            assert.matches("verify: 0 problem(s)", out, 1, true)
        end)

        it("checks the file dpdklua itself would read (the same search order)", function()
            local dir = child.tmpfile(".cwd")
            assert(child.sh("mkdir -p " .. q(dir)) == 0)
            local cmd = "cd " .. q(dir) .. " && env -u DPDK_ENV_CONFIG "
            local _, expected = child.sh(cmd .. q(child.DPDKLUA)
                .. " -e 'io.write(require(\"dpdk.config\").search())'")
            local rc, out = child.sh(cmd .. "bash " .. q(SETUP) .. " verify")
            assert.matches("^verify: " .. expected:gsub("%p", "%%%0") .. "\n", out)
            if expected == "<built-in>" then assert.are.equal(0, rc, out) end
        end)

        it("names each problem of a broken config with its fix and exits 1", function()
            local path = child.tmpfile(".json", [[
{"dpdk_cores": [0, 200], "eal_args": ["--no-pci", "--no-huge", "--in-memory"],
 "devices": [
  {"pci_address": "0000:99:00.0", "mac": "03:00:00:00:00:01",
   "addresses": ["10.11.0.0/24", "10.11.0.5/24"], "gateway_v4": "10.12.0.1"},
  {"vdev": "net_tap_dlu9,iface=dlu9", "addresses": ["10.11.0.5/24", "127.0.0.2/8"]},
  {"vdev": "net_memif0,socket=/nonexistent/dlu/m.sock", "addresses": ["10.11.1.2/24"]}
 ]}]])
            local rc, out = setup("verify --config " .. q(path))
            assert.are.equal(1, rc, out)
            for _, problem in ipairs({
                "problem: devices[0].pci_address 0000:99:00.0: no such PCI device",
                "problem: devices[2].vdev net_memif0,socket=/nonexistent/dlu/m.sock: the memif "
                    .. "socket's directory /nonexistent/dlu does not exist",
                "problem: eal_args has --no-pci but devices name PCI addresses",
                "problem: eal_args has both --no-huge and --in-memory",
                "problem: dpdk_cores: core 0 is the kernel's",
                "problem: dpdk_cores: core 200 does not exist",
                "problem: devices[0].addresses 10.11.0.0/24 is the network address of 10.11.0.0/24",
                "problem: devices[0].gateway_v4 10.12.0.1 is outside the device's subnets "
                    .. "(10.11.0.0/24)",
                "problem: devices[0].mac 03:00:00:00:00:01 is not a unicast MAC",
                "problem: devices[1].addresses 10.11.0.5/24 is used twice (also "
                    .. "devices[0].addresses 10.11.0.5/24)",
                "problem: devices[1].addresses 127.0.0.2/8 is not a unicast host address",
                "verify: 11 problem(s)",
            }) do
                assert.truthy(out:find(problem, 1, true), "missing «" .. problem .. "» in:\n" .. out)
            end
            -- each problem is followed by its fix
            local problems, fixes = 0, 0
            for _ in out:gmatch("\nproblem: ") do problems = problems + 1 end
            for _ in out:gmatch("\nproblem: [^\n]*\n  fix: %S") do fixes = fixes + 1 end
            assert.are.equal(11, problems, out)
            assert.are.equal(problems, fixes, out)
        end)

        it("names an address the kernel already has on one of its interfaces", function()
            local _, addr = child.sh("ip -o -4 addr show scope global | awk '{print $2, $4; exit}'")
            local ifc, cidr = addr:match("(%S+) (%S+)")
            if not ifc then return end
            local path = child.config({ cores = { 1 }, devices = {
                { vdev = "net_tap_dlu8,iface=dlu8", addresses = { cidr } } } })
            local rc, out = setup("verify --config " .. q(path))
            assert.are.equal(1, rc, out)
            assert.truthy(out:find(("problem: devices[0].addresses %s is also on the kernel "
                .. "interface %s"):format(cidr, ifc), 1, true), out)
        end)

        it("reports a config the parser rejects with the parser's own message", function()
            local path = child.tmpfile(".json", '{"dpdk_cores": [1], "devices": [{"vdev": "x"}]}')
            local rc, out = setup("verify --config " .. q(path))
            assert.are.equal(1, rc, out)
            assert.truthy(out:find("problem: " .. path .. ": devices[0].vdev: expected a DPDK "
                .. "network vdev", 1, true), out)
        end)
    end)

    describe("dpdk-bind and unbind (fake sysfs tree)", function()
        it("records the kernel's settings, binds through driver_override and writes env.json", function()
            local dir = fake_tree()
            local rc, out = in_netns(dir, "S dpdk-bind dlu0 --cores 1,2")
            assert.are.equal(0, rc, out)
            assert.matches("bound 0000:00:1f.0 (dlu0) to vfio-pci", out, 1, true)
            -- the writes dpdk-devbind.py makes: override, unbind from the old driver, probe
            assert.are.equal("vfio-pci", file(dev_dir(dir, PCI0) .. "/driver_override"))
            assert.are.equal(PCI0, file(dir .. "/sys/bus/pci/drivers/ixgbe/unbind"))
            assert.are.equal(PCI0, file(dir .. "/sys/bus/pci/drivers_probe"))
            -- no IOMMU in the tree: vfio-pci's no-IOMMU mode goes on
            assert.are.equal("Y", file(dir .. "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode"))
            assert.matches("IOVA PA", out, 1, true)
            -- the other NIC is untouched
            assert.are.equal("(null)", file(dev_dir(dir, PCI1) .. "/driver_override"))

            local env = dir .. "/etc/dpdk/env.json"
            local cfg = assert(config.load(env))
            assert.are.same({ 1, 2 }, cfg.cores)
            assert.are.same({
                pci_address = PCI0, original_name = "dlu0", mac = "02:10:10:00:00:02", mtu = 1500,
                role = "dpdk", addresses = { "10.10.0.2/24", "fdb5::2/64" },
                gateway_v4 = "10.10.0.1", gateway_v6 = "fdb5::1", peer_addresses = {},
            }, cfg.devices[1])
            local text = child.read(env)
            assert.matches('"kernel_driver": "ixgbe"', text, 1, true)
            assert.matches('"numa_node": 0', text, 1, true)
        end)

        it("updates the device's entry on a second bind instead of adding one", function()
            local dir = fake_tree()
            local rc, out = in_netns(dir, "S dpdk-bind dlu0 --cores 1\n"
                .. "S dpdk-bind 0000:00:1f.0 --address 10.10.0.7/24")
            assert.are.equal(0, rc, out)
            local cfg = assert(config.load(dir .. "/etc/dpdk/env.json"))
            assert.are.equal(1, #cfg.devices)
            assert.are.same({ "10.10.0.7/24" }, cfg.devices[1].addresses)
            assert.are.same({ 1 }, cfg.cores)
        end)

        it("refuses the interface with the default route, by name or PCI address, touching nothing", function()
            local dir = fake_tree()
            local rc, out = in_netns(dir, "S dpdk-bind dlu1 || echo rc=$?\n"
                .. "S dpdk-bind 0000:00:1e.0 || echo rc=$?")
            assert.are.equal(0, rc, out)
            local _, n = out:gsub("refusing to bind dlu1 %(0000:00:1e%.0%): it carries the default "
                .. "route %(default via 10%.10%.1%.1 dev dlu1%)", "")
            assert.are.equal(2, n, out)
            assert.matches("rc=1\n.*rc=1", out)
            assert.matches("Bind a second NIC", out, 1, true)
            assert.are.equal("(null)", file(dev_dir(dir, PCI1) .. "/driver_override"))
            assert.are.equal("", file(dir .. "/sys/bus/pci/drivers/ixgbe/unbind"))
            assert.are.equal("", file(dir .. "/sys/bus/pci/drivers_probe"))
            assert.are.equal("N", file(dir .. "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode"))
            assert.are.equal("", child.read(dir .. "/etc/dpdk/env.json"))
        end)

        it("refuses the interface that carries an SSH session", function()
            local dir = fake_tree()
            local rc, out = in_netns(dir,
                "SSH_CONNECTION='10.10.0.99 52000 10.10.0.2 22' S dpdk-bind dlu0 || echo rc=$?")
            assert.are.equal(0, rc, out)
            assert.matches("refusing to bind dlu0 (0000:00:1f.0): it carries an SSH session "
                .. "(from 10.10.0.99 to 10.10.0.2:22)", out, 1, true)
            assert.matches("rc=1", out, 1, true)
            assert.are.equal("(null)", file(dev_dir(dir, PCI0) .. "/driver_override"))
        end)

        it("refuses this machine's own default-route interface (real routes, fake tree)", function()
            local _, route = child.sh("ip -o -4 route show default | awk '{for (i=1;i<NF;i++) if ($i==\"dev\") print $(i+1)}' | head -n1")
            local ifc = route:match("%S+")
            if not ifc then return end -- no default route here: nothing to refuse
            -- the tree has a NIC of that name, so that only the route check stops it
            local dir = fake_tree(ifc .. " dlu1")
            local rc, out = setup("--root " .. q(dir) .. " dpdk-bind " .. q(ifc))
            assert.are.equal(1, rc, out)
            assert.matches("refusing to bind " .. ifc .. " (0000:00:1f.0): it carries the default "
                .. "route", out, 1, true)
            assert.are.equal("(null)", file(dev_dir(dir, PCI0) .. "/driver_override"))
        end)

        it("needs an address when the NIC has none, before binding", function()
            local dir = fake_tree()
            local rc, out = in_netns(dir, "ip addr flush dev dlu0\nS dpdk-bind dlu0 || echo rc=$?")
            assert.are.equal(0, rc, out)
            assert.matches("dlu0 has no global address to record", out, 1, true)
            assert.matches("--address 10.0.0.2/24", out, 1, true)
            assert.are.equal("(null)", file(dev_dir(dir, PCI0) .. "/driver_override"))
        end)

        it("verify passes once the kernel has bound it and hugepages are there; unbind undoes it", function()
            local dir = fake_tree()
            local rc, out = in_netns(dir, [[
S dpdk-bind dlu0 --cores 1,2
fake_kernel_bind "$F" 0000:00:1f.0 vfio-pci dlu0
echo '--- verify without hugepages'
S verify || echo rc=$?
S hugepages 64
echo 'nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0' >> "$F/proc/mounts"
echo '--- verify'
S verify
echo '--- unbind'
S unbind 0000:00:1f.0
]])
            assert.are.equal(0, rc, out)
            local before, after = out:match("%-%-%- verify without hugepages\n(.*)%-%-%- verify\n(.*)")
            assert.matches("problem: no hugepages are reserved", before, 1, true)
            assert.matches("rc=1", before, 1, true)
            assert.are.equal("64", file(dir .. "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"))
            assert.matches("ok: devices[0] 0000:00:1f.0 bound to vfio-pci", after, 1, true)
            assert.matches("ok: 64 hugepages reserved, hugetlbfs mounted", after, 1, true)
            assert.matches("IOVA mode will be PA: vfio-pci runs in no-IOMMU mode", after, 1, true)
            assert.matches("verify: 0 problem(s), 0 warning(s)", after, 1, true)
            -- unbind: released from vfio-pci, override cleared, given to the recorded driver
            assert.matches("unbound 0000:00:1f.0 from vfio-pci (for ixgbe)", out, 1, true)
            assert.are.equal(PCI0, file(dir .. "/sys/bus/pci/drivers/vfio-pci/unbind"))
            assert.are.equal("", file(dev_dir(dir, PCI0) .. "/driver_override"))
            assert.are.equal(PCI0, file(dir .. "/sys/bus/pci/drivers/ixgbe/bind"))
            local cfg = assert(config.load(dir .. "/etc/dpdk/env.json"))
            assert.are.equal("kernel", cfg.devices[1].role)
            assert.are.equal("dlu0", cfg.devices[1].original_name)
        end)

        it("unbind refuses a device that is not on a DPDK driver", function()
            local dir = fake_tree()
            local rc, out = setup("--root " .. q(dir) .. " unbind " .. PCI0)
            assert.are.equal(1, rc, out)
            assert.matches("0000:00:1f.0 is not bound to a DPDK driver (it has 'ixgbe')", out, 1, true)
            assert.are.equal("", file(dir .. "/sys/bus/pci/drivers/ixgbe/unbind"))
        end)

        it("wizard --yes runs hugepages, dpdk-bind and verify without asking", function()
            local dir = fake_tree()
            local rc, out = in_netns(dir,
                "S wizard --yes --interface dlu0 --hugepages 32 --cores 2,3 < /dev/null || echo rc=$?")
            assert.are.equal(0, rc, out)
            assert.matches("== 1/4 this machine", out, 1, true)
            assert.matches("hugepages: 32 of 2M reserved", out, 1, true)
            assert.matches("bound 0000:00:1f.0 (dlu0) to vfio-pci", out, 1, true)
            -- the tree has no kernel behind it: verify sees the device still on ixgbe
            assert.matches("problem: devices[0].pci_address 0000:00:1f.0 is bound to 'ixgbe'", out, 1, true)
            local cfg = assert(config.load(dir .. "/etc/dpdk/env.json"))
            assert.are.same({ 2, 3 }, cfg.cores)
        end)
    end)

    describe("dev", function()
        it("writes a tap config that a runtime serves on, reachable from the kernel side", function()
            local path = child.tmpfile(".json")
            local rc, out = setup(("dev --iface dlu3 --address 10.13.0.2/24 --peer 10.13.0.1/24 "
                .. "--cores 0 --output %s"):format(q(path)))
            assert.are.equal(0, rc, out)
            local cfg = assert(config.load(path))
            assert.are.same({ "--no-huge", "-m", "128", "--no-pci", "--no-telemetry" }, cfg.eal_args)
            assert.are.equal("net_tap0,iface=dlu3", cfg.devices[1].vdev)
            local vrc, vout = setup("verify --config " .. q(path))
            assert.are.equal(0, vrc, vout)
            local p = child.start([[
local dpdk, tcp = require "dpdk", require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1 })
rt:block_on(function()
    local l = assert(tcp.listen("10.13.0.2", 7))
    print("READY") io.stdout:flush()
    local c = l:accept()
    local line = c:receive("*l")
    c:send("dev config: " .. line .. "\n")
    c:close()
end)]], { env = { DPDK_ENV_CONFIG = path } })
            finally(function() p:kill(9) end)
            assert.truthy(p:wait_output("READY", 20), p:stderr())
            local crc, reply = child.sh("python3 -c 'import socket; s = socket.create_connection("
                .. "(\"10.13.0.2\", 7), 10); s.sendall(b\"hello\\n\"); print(s.makefile().readline(), end=\"\")'")
            assert.are.equal(0, crc, reply)
            assert.are.equal("dev config: hello\n", reply)
        end)

        it("writes a memif config and will not overwrite a file without --force", function()
            local path = child.tmpfile(".json")
            local sock = child.tmpfile(".sock")
            local rc, out = setup(("dev --memif --role client --socket %s --output %s")
                :format(q(sock), q(path)))
            assert.are.equal(0, rc, out)
            local cfg = assert(config.load(path))
            assert.are.equal(("net_memif0,role=client,socket=%s,id=0"):format(sock), cfg.devices[1].vdev)
            assert.are.same({ "10.98.0.3/24" }, cfg.devices[1].addresses)
            local rc2, out2 = setup(("dev --output %s"):format(q(path)))
            assert.are.equal(1, rc2)
            assert.matches("exists: --force overwrites it", out2, 1, true)
            assert.are.same(cfg, assert(config.load(path)))
        end)
    end)

    describe("templates/env.example.json", function()
        local TEMPLATE = ROOT .. "/scripts/dpdk/templates/env.example.json"

        it("is valid for dpdklua's own parser", function()
            local cfg = assert(config.load(TEMPLATE))
            assert.are.equal(3, #cfg.devices)
        end)

        it("documents every field the parser reads and setup.sh writes", function()
            local text = child.read(TEMPLATE)
            local doc_start, doc_end = text:find('"_doc": %b{}')
            assert.truthy(doc_start)
            local doc = text:sub(doc_start, doc_end)
            local fields = { version = true, platform = true, generated_at = true }
            -- every field config.c reads (so a new one fails here until documented)
            for name in child.read(ROOT .. "/host/config.c"):gmatch('optional_field%(%w+, "([%w_]+)"%)') do
                fields[name] = true
            end
            -- and every one setup.sh writes
            for name in child.read(SETUP):gmatch('for key in %(([^)]*)%)') do
                for f in name:gmatch('"([%w_]+)"') do fields[f] = true end
            end
            fields.numa_node = true
            assert.truthy(fields.peer_addresses and fields.kernel_driver and fields.dpdk_cores)
            for name in pairs(fields) do
                assert.truthy(doc:find('"' .. name .. '": "', 1, true), "_doc lacks " .. name)
                assert.truthy(text:find('"' .. name .. '": ', doc_end, true),
                    "no example of " .. name)
            end
        end)
    end)
end)

-- env.json (spec F5) and where it is found (F6): require "dpdk.config".
--
--   local cfg, err = config.load(path)  -- nil path: the search order
--   config.search()                     -- the path the search order picks
--
-- Every rejected file gives one error that names the file, the field as a
-- JSON path and what was expected.
local ffi = require "ffi"
local config = require "dpdk.config"

-- Each on its own: another spec may have declared some of them already.
for _, decl in ipairs({
    "int setenv(const char *name, const char *value, int overwrite);",
    "int unsetenv(const char *name);",
    "int chdir(const char *path);",
    "char *getcwd(char *buf, size_t size);",
    "int mkdir(const char *path, unsigned int mode);",
    "int rmdir(const char *path);",
    "int inet_pton(int af, const char *src, void *dst);",
    "const char *inet_ntop(int af, const void *src, char *dst, unsigned int size);",
}) do
    pcall(ffi.cdef, decl)
end
local C = ffi.C
local AF_INET6 = 10

local REPO_DEFAULT = "config/dpdk-env.json"
local TEMPLATE = "scripts/dpdk/templates/env.example.json"

local temp_files, temp_dirs = {}, {}

local function write_file(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    temp_files[#temp_files + 1] = path
    return path
end

local function temp_file(text)
    return write_file(os.tmpname(), text)
end

local function temp_dir()
    local path = os.tmpname()
    os.remove(path)
    assert(C.mkdir(path, tonumber("700", 8)) == 0, "mkdir " .. path)
    temp_dirs[#temp_dirs + 1] = path
    return path
end

local function make_dir(path)
    assert(C.mkdir(path, tonumber("700", 8)) == 0, "mkdir " .. path)
    temp_dirs[#temp_dirs + 1] = path
    return path
end

local function remove_temps()
    for i = #temp_files, 1, -1 do
        os.remove(temp_files[i])
        temp_files[i] = nil
    end
    for i = #temp_dirs, 1, -1 do
        C.rmdir(temp_dirs[i])
        temp_dirs[i] = nil
    end
end

local function load_json(text)
    local path = temp_file(text)
    local cfg, err = config.load(path)
    return cfg, err, path
end

local function assert_loads(text)
    local cfg, err = load_json(text)
    assert.is_nil(err)
    assert.is_table(cfg)
    return cfg
end

-- The file is rejected with "<its path>: " .. message.
local function assert_rejects(text, message)
    local cfg, err, path = load_json(text)
    assert.is_nil(cfg)
    assert.are.equal(path .. ": " .. message, err)
end

local function json_list(items)
    local quoted = {}
    for i, item in ipairs(items) do
        quoted[i] = type(item) == "string" and ('"' .. item .. '"') or tostring(item)
    end
    return "[" .. table.concat(quoted, ", ") .. "]"
end

-- Device bodies (the text between an object's braces) inside a valid top level.
local function with_devices(...)
    local devices = {}
    for i, body in ipairs({ ... }) do
        devices[i] = "{" .. body .. "}"
    end
    return '{"dpdk_cores": [0], "devices": [' .. table.concat(devices, ", ") .. "]}"
end

local TAP = '"vdev": "net_tap0,iface=dl0", "addresses": ["10.0.0.2/24"]'
local PCI = '"pci_address": "0000:28:00.0", "addresses": ["10.0.0.2/24"]'

local function device_of(text)
    return assert_loads(text).devices[1]
end

local function tap_with(fields)
    return with_devices(TAP .. ", " .. fields)
end

local function addresses_of(list)
    return device_of(with_devices('"vdev": "net_tap0", "addresses": ' .. json_list(list)))
        .addresses
end

local function ntop6(text)
    local bytes = ffi.new("uint8_t[16]")
    assert(C.inet_pton(AF_INET6, text, bytes) == 1, text)
    local out = ffi.new("char[64]")
    return ffi.string(C.inet_ntop(AF_INET6, bytes, out, 64))
end

describe("dpdk.config", function()
    after_each(remove_temps)

    describe("reading a file", function()
        it("names the file and the reason when it cannot be read", function()
            local cfg, err = config.load("/nonexistent/dpdklua/env.json")
            assert.is_nil(cfg)
            assert.are.equal(
                "/nonexistent/dpdklua/env.json: cannot read: No such file or directory", err)
        end)

        it("rejects a directory", function()
            local dir = temp_dir()
            local cfg, err = config.load(dir)
            assert.is_nil(cfg)
            assert.are.equal(dir .. ": cannot read: Is a directory", err)
        end)

        it("rejects an empty file", function()
            assert_rejects("", "empty file, expected a JSON object")
        end)

        it("treats a file of only whitespace as empty", function()
            assert_rejects(" \n\t\n", "empty file, expected a JSON object")
        end)

        it("names the line near invalid JSON", function()
            assert_rejects('{\n  "dpdk_cores": [0],\n  "devices": [,]\n}',
                "not valid JSON near line 3")
        end)

        it("rejects text after the JSON object", function()
            assert_rejects('{"dpdk_cores": [0]}\n\n}', "not valid JSON near line 3")
        end)

        it("rejects a top level that is not an object", function()
            assert_rejects("[0, 1]", "top level: expected a JSON object, got an array")
        end)

        it("returns the path it read", function()
            local cfg, _, path = load_json('{"dpdk_cores": [0]}')
            assert.are.equal(path, cfg.path)
        end)

        it("raises an error for a path that is not a string", function()
            assert.has_error(function() config.load(42) end,
                "config.load: path must be a string or nil, got number")
        end)
    end)

    describe("dpdk_cores", function()
        it("is required", function()
            assert_rejects('{"devices": []}', "dpdk_cores: missing; expected a non-empty array of "
                .. "core numbers like [0, 1] (the cores dpdklua may run workers on)")
        end)

        it("treats null as missing", function()
            assert_rejects('{"dpdk_cores": null}', "dpdk_cores: missing; expected a non-empty "
                .. "array of core numbers like [0, 1] (the cores dpdklua may run workers on)")
        end)

        it("must be an array", function()
            assert_rejects('{"dpdk_cores": 1}', "dpdk_cores: expected an array, got a number")
        end)

        it("must not be empty", function()
            assert_rejects('{"dpdk_cores": []}',
                "dpdk_cores: expected at least one core number, like [0, 1]")
        end)

        it("holds integers", function()
            assert_rejects('{"dpdk_cores": [0, "1"]}',
                "dpdk_cores[1]: expected an integer, got a string")
            assert_rejects('{"dpdk_cores": [0, 1.5]}',
                "dpdk_cores[1]: expected a core number 0..255, got 1.5")
        end)

        it("holds core numbers 0..255", function()
            assert_rejects('{"dpdk_cores": [-1]}',
                "dpdk_cores[0]: expected a core number 0..255, got -1")
            assert_rejects('{"dpdk_cores": [1, 256]}',
                "dpdk_cores[1]: expected a core number 0..255, got 256")
        end)

        it("names a core listed twice", function()
            assert_rejects('{"dpdk_cores": [0, 2, 0]}',
                "dpdk_cores[2]: expected each core once, got core 0 twice")
        end)

        it("keeps the cores in the order given", function()
            assert.are.same({ 3, 0, 255 }, assert_loads('{"dpdk_cores": [3, 0, 255]}').cores)
        end)
    end)

    describe("devices", function()
        it("are optional", function()
            assert.are.same({}, assert_loads('{"dpdk_cores": [0]}').devices)
            assert.are.same({}, assert_loads('{"dpdk_cores": [0], "devices": null}').devices)
        end)

        it("must be an array", function()
            assert_rejects('{"dpdk_cores": [0], "devices": {}}',
                "devices: expected an array, got an object")
        end)

        it("are at most 16", function()
            local bodies = {}
            for i = 0, 16 do
                bodies[#bodies + 1] = ('"vdev": "net_tap%d", "addresses": ["10.0.%d.2/24"]')
                    :format(i, i)
            end
            assert.are.equal(16, #assert_loads(with_devices(unpack(bodies, 1, 16))).devices)
            assert_rejects(with_devices(unpack(bodies)), "devices: expected at most 16 devices, got 17")
        end)

        it("are objects", function()
            assert_rejects('{"dpdk_cores": [0], "devices": ["eth0"]}',
                "devices[0]: expected an object, got a string")
        end)

        it("get defaults for what they leave out", function()
            assert.are.same({
                vdev = "net_tap0,iface=dl0",
                role = "dpdk",
                mtu = 1500,
                addresses = { "10.0.0.2/24" },
                peer_addresses = {},
            }, device_of(with_devices(TAP)))
        end)

        it("treat null as an absent optional field", function()
            assert.are.same({
                vdev = "net_tap0,iface=dl0",
                role = "dpdk",
                mtu = 1500,
                addresses = { "10.0.0.2/24" },
                peer_addresses = {},
            }, device_of(tap_with('"mac": null, "mtu": null, "role": null, "gateway_v4": null, '
                .. '"gateway_v6": null, "original_name": null, "peer_addresses": null')))
        end)

        it("come back with every field", function()
            assert.are.same({
                pci_address = "0000:28:00.0",
                original_name = "enp40s0",
                mac = "02:04:3d:ba:a3:2f",
                mtu = 9001,
                role = "dpdk",
                gateway_v4 = "172.31.0.1",
                gateway_v6 = "2406:da18:e99:5d00::1",
                addresses = { "172.31.1.40/20", "2406:da18:e99:5d00::10/64" },
                peer_addresses = {},
            }, device_of(with_devices('"pci_address": "0000:28:00.0", "original_name": "enp40s0", '
                .. '"mac": "02:04:3D:BA:A3:2F", "mtu": 9001, "role": "dpdk", '
                .. '"gateway_v4": "172.31.0.1", "gateway_v6": "2406:DA18:E99:5D00:0:0:0:1", '
                .. '"addresses": ["172.31.1.40/20", "2406:da18:e99:5d00::10/64"]')))
        end)

        describe("role", function()
            it("is dpdk or kernel", function()
                assert.are.equal("dpdk", device_of(tap_with('"role": "dpdk"')).role)
                assert.are.equal("kernel", device_of(tap_with('"role": "kernel"')).role)
            end)

            it("rejects any other role", function()
                assert_rejects(tap_with('"role": "Kernel"'),
                    'devices[0].role: expected a role "dpdk" or "kernel", got "Kernel"')
                assert_rejects(tap_with('"role": 1'),
                    'devices[0].role: expected a role "dpdk" or "kernel", got a number')
            end)

            it("lets a kernel device leave out pci_address, vdev and addresses", function()
                assert.are.same({
                    role = "kernel",
                    original_name = "ens5",
                    mtu = 1500,
                    addresses = {},
                    peer_addresses = {},
                }, device_of(with_devices('"role": "kernel", "original_name": "ens5"')))
            end)
        end)

        describe("pci_address and vdev", function()
            it("needs one of them on a dpdk device", function()
                assert_rejects(with_devices('"addresses": ["10.0.0.2/24"]'),
                    'devices[0]: expected "pci_address" (like "0000:28:00.0") or "vdev" '
                    .. '(like "net_tap0,iface=dl0") for a device with role "dpdk"')
            end)

            it("rejects both on one device", function()
                assert_rejects(with_devices(PCI .. ', "vdev": "net_tap0"'),
                    'devices[0]: expected either "pci_address" or "vdev", got both')
            end)

            it("takes a PCI address as domain:bus:device.function in hex", function()
                local dev = device_of(with_devices(
                    '"pci_address": "0000:AF:1f.7", "addresses": ["10.0.0.2/24"]'))
                assert.are.equal("0000:AF:1f.7", dev.pci_address)
                assert.is_nil(dev.vdev)
            end)

            it("rejects a malformed PCI address", function()
                for _, bad in ipairs({ "28:00.0", "0000:28:00.8", "0000:zz:00.0", "0000:28:00.0 ",
                    "" }) do
                    assert_rejects(with_devices('"pci_address": "' .. bad
                        .. '", "addresses": ["10.0.0.2/24"]'),
                        'devices[0].pci_address: expected a PCI address like "0000:28:00.0", got "'
                        .. bad .. '"')
                end
                assert_rejects(with_devices('"pci_address": 40, "addresses": ["10.0.0.2/24"]'),
                    'devices[0].pci_address: expected a PCI address like "0000:28:00.0", got a '
                    .. "number")
            end)

            it("takes a vdev with its arguments", function()
                local dev = device_of(with_devices(
                    '"vdev": "net_memif0,role=server,socket=/run/memif.sock", '
                    .. '"addresses": ["10.0.0.2/24"]'))
                assert.are.equal("net_memif0,role=server,socket=/run/memif.sock", dev.vdev)
                assert.is_nil(dev.pci_address)
            end)

            it("rejects a vdev that is not a DPDK network device", function()
                for _, bad in ipairs({ "tap0", "", "net_", "net_,iface=x" }) do
                    assert_rejects(with_devices('"vdev": "' .. bad .. '", "addresses": ["10.0.0.2/24"]'),
                        'devices[0].vdev: expected a DPDK network vdev like "net_tap0,iface=dl0" '
                        .. '(starting with "net_"), got "' .. bad .. '"')
                end
                assert_rejects(with_devices('"vdev": ["net_tap0"], "addresses": ["10.0.0.2/24"]'),
                    "devices[0].vdev: expected a string, got an array")
            end)

            it("rejects a vdev too long for its buffer", function()
                local long = "net_tap0,iface=" .. ("x"):rep(241)
                assert.are.equal(256, #long)
                assert_rejects(with_devices('"vdev": "' .. long .. '", "addresses": ["10.0.0.2/24"]'),
                    "devices[0].vdev: expected at most 255 characters, got 256")
                assert.are.equal(long:sub(1, 255), device_of(with_devices('"vdev": "'
                    .. long:sub(1, 255) .. '", "addresses": ["10.0.0.2/24"]')).vdev)
            end)

            it("rejects the same device twice", function()
                assert_rejects(with_devices(PCI, PCI), 'devices[1].pci_address: expected each '
                    .. 'device once, got "0000:28:00.0" again (also devices[0])')
                assert_rejects(with_devices(TAP, '"vdev": "net_tap0,iface=other", '
                    .. '"addresses": ["10.1.0.2/24"]'), 'devices[1].vdev: expected each device '
                    .. 'once, got "net_tap0" again (also devices[0])')
            end)
        end)

        describe("mac", function()
            it("comes back in lowercase", function()
                assert.are.equal("02:ab:cd:ef:00:01",
                    device_of(tap_with('"mac": "02:AB:cd:EF:00:01"')).mac)
            end)

            it("rejects anything but six colon-separated hex pairs", function()
                for _, bad in ipairs({ "zz", "02:00:00:00:00", "02-00-00-00-00-01",
                    "02:00:00:00:00:001", "2:00:00:00:00:01", "02:00:00:00:00:0g" }) do
                    assert_rejects(tap_with('"mac": "' .. bad .. '"'), "devices[0].mac: expected "
                        .. 'a MAC address like "02:00:00:00:00:01", got "' .. bad .. '"')
                end
                assert_rejects(tap_with('"mac": 2'), "devices[0].mac: expected a MAC address like "
                    .. '"02:00:00:00:00:01", got a number')
            end)
        end)

        describe("mtu", function()
            it("is 1500 when absent", function()
                assert.are.equal(1500, device_of(with_devices(TAP)).mtu)
            end)

            it("takes 68..9600, jumbo frames included", function()
                assert.are.equal(68, device_of(tap_with('"mtu": 68')).mtu)
                assert.are.equal(9001, device_of(tap_with('"mtu": 9001')).mtu)
                assert.are.equal(9600, device_of(tap_with('"mtu": 9600')).mtu)
            end)

            it("rejects values outside 68..9600 and fractions", function()
                for _, bad in ipairs({ "67", "9601", "0", "-1500", "1500.5" }) do
                    assert_rejects(tap_with('"mtu": ' .. bad),
                        "devices[0].mtu: expected an MTU 68..9600, got " .. bad)
                end
            end)

            it("rejects a string", function()
                assert_rejects(tap_with('"mtu": "1500"'),
                    "devices[0].mtu: expected an integer, got a string")
            end)
        end)

        describe("original_name", function()
            it("takes up to 63 characters", function()
                local name = ("n"):rep(63)
                assert.are.equal(name, device_of(tap_with('"original_name": "' .. name .. '"'))
                    .original_name)
                assert_rejects(tap_with('"original_name": "' .. name .. 'n"'),
                    "devices[0].original_name: expected at most 63 characters, got 64")
            end)

            it("must be a string", function()
                assert_rejects(tap_with('"original_name": false'),
                    "devices[0].original_name: expected a string, got a boolean")
            end)

            it("is nil when empty", function()
                assert.is_nil(device_of(tap_with('"original_name": ""')).original_name)
            end)
        end)

        describe("gateways", function()
            it("take an IPv4 and an IPv6 address", function()
                local dev = device_of(tap_with('"gateway_v4": "10.0.0.1", "gateway_v6": "fd00::1"'))
                assert.are.equal("10.0.0.1", dev.gateway_v4)
                assert.are.equal("fd00::1", dev.gateway_v6)
            end)

            it("reject a gateway_v4 that is not an IPv4 address", function()
                for _, bad in ipairs({ "10.0.0.256", "fd00::1", "10.0.0.1/24", "" }) do
                    assert_rejects(tap_with('"gateway_v4": "' .. bad .. '"'), "devices[0]."
                        .. 'gateway_v4: expected an IPv4 address like "10.0.0.1", got "' .. bad .. '"')
                end
                assert_rejects(tap_with('"gateway_v4": true'), "devices[0].gateway_v4: expected "
                    .. 'an IPv4 address like "10.0.0.1", got a boolean')
            end)

            it("reject a gateway_v6 that is not an IPv6 address", function()
                for _, bad in ipairs({ "10.0.0.1", "fd00:::1", "fd00::1/64", "" }) do
                    assert_rejects(tap_with('"gateway_v6": "' .. bad .. '"'), "devices[0]."
                        .. 'gateway_v6: expected an IPv6 address like "fd00::1", got "' .. bad .. '"')
                end
            end)
        end)
    end)

    describe("addresses", function()
        it("take IPv4 and IPv6 addresses with their prefix lengths", function()
            assert.are.same({ "10.0.0.2/24", "0.0.0.0/0", "192.168.1.1/32", "fd00::2/64", "::/0",
                "2001:db8::1/128" }, addresses_of({ "10.0.0.2/24", "0.0.0.0/0", "192.168.1.1/32",
                "fd00::2/64", "::/0", "2001:db8::1/128" }))
        end)

        it("are required on a dpdk device", function()
            local message = 'devices[0].addresses: expected at least one address like '
                .. '"10.0.0.2/24" for a device with role "dpdk"'
            assert_rejects(with_devices('"vdev": "net_tap0"'), message)
            assert_rejects(with_devices('"vdev": "net_tap0", "addresses": []'), message)
        end)

        it("must be an array of strings", function()
            assert_rejects(with_devices('"vdev": "net_tap0", "addresses": "10.0.0.2/24"'),
                "devices[0].addresses: expected an array, got a string")
            assert_rejects(with_devices('"vdev": "net_tap0", "addresses": [167772162]'),
                'devices[0].addresses[0]: expected a string like "10.0.0.2/24", got a number')
        end)

        it("name the device and the address in errors", function()
            assert_rejects(with_devices(TAP, '"vdev": "net_tap1", "addresses": ["10.1.0.1/24", '
                .. '"10.1.0.2/24", "fd01::1/64", "10.1.0.x/24"]'), "devices[1].addresses[3]: "
                .. 'expected an address with a prefix length like "10.0.0.2/24" or "fd00::2/64", '
                .. 'got "10.1.0.x/24"')
        end)

        it("need a prefix length", function()
            assert_rejects(with_devices('"vdev": "net_tap0", "addresses": ["10.0.0.2"]'),
                "devices[0].addresses[0]: expected a prefix length 0..32 after the IPv4 address, "
                .. 'like "10.0.0.2/24", got "10.0.0.2"')
            assert_rejects(with_devices('"vdev": "net_tap0", "addresses": ["fd00::2"]'),
                "devices[0].addresses[0]: expected a prefix length 0..128 after the IPv6 address, "
                .. 'like "fd00::2/64", got "fd00::2"')
        end)

        it("reject a prefix length out of range or not a number", function()
            for _, bad in ipairs({ "10.0.0.2/33", "10.0.0.2/", "10.0.0.2/2a", "10.0.0.2/ 24",
                "10.0.0.2/-1", "10.0.0.2/0024" }) do
                assert_rejects(with_devices('"vdev": "net_tap0", "addresses": ["' .. bad .. '"]'),
                    "devices[0].addresses[0]: expected a prefix length 0..32 after the IPv4 "
                    .. 'address, like "10.0.0.2/24", got "' .. bad .. '"')
            end
            assert_rejects(with_devices('"vdev": "net_tap0", "addresses": ["fd00::2/129"]'),
                "devices[0].addresses[0]: expected a prefix length 0..128 after the IPv6 address, "
                .. 'like "fd00::2/64", got "fd00::2/129"')
        end)

        it("reject text that is not an address", function()
            for _, bad in ipairs({ "", "/24", "10.0.0/24", "example.com/24", "fd00:::2/64",
                "10.0.0.2/24/24" }) do
                assert_rejects(with_devices('"vdev": "net_tap0", "addresses": ["' .. bad .. '"]'),
                    "devices[0].addresses[0]: expected an address with a prefix length like "
                    .. '"10.0.0.2/24" or "fd00::2/64", got "' .. bad .. '"')
            end
        end)

        it("are at most 128 per device", function()
            local list = {}
            for i = 1, 129 do
                list[i] = ("10.0.%d.%d/16"):format(math.floor(i / 256), i % 256)
            end
            local accepted = { unpack(list, 1, 128) }
            assert.are.same(accepted, addresses_of(accepted))
            assert_rejects(with_devices('"vdev": "net_tap0", "addresses": ' .. json_list(list)),
                "devices[0].addresses: expected at most 128 addresses, got 129")
        end)

        it("come back as RFC 5952 text", function()
            local cases = {
                { "FD00:0:0:0:0:0:0:2/64", "fd00::2/64" },
                { "2001:0db8:0000:0000:0001:0000:0000:0001/64", "2001:db8::1:0:0:1/64" },
                { "1:0:0:2:0:0:0:3/64", "1:0:0:2::3/64" },
                { "2001:db8:0:1:1:1:1:1/64", "2001:db8:0:1:1:1:1:1/64" },
                { "0:0:0:0:0:0:0:1/128", "::1/128" },
                { "1:0:0:0:0:0:0:0/16", "1::/16" },
                { "::ffff:10.0.0.1/128", "::ffff:10.0.0.1/128" },
            }
            for _, case in ipairs(cases) do
                assert.are.same({ case[2] }, addresses_of({ case[1] }))
            end
        end)

        it("come back as inet_ntop writes them", function()
            local texts = { "2001:db8::1", "::", "::1", "1::", "2001:db8:0:0:1:0:0:1",
                "2001:0db8:0000:0000:0000:ff00:0042:8329", "fe80::1:0:0:0", "1:0:2:0:3:0:4:0",
                "0:0:0:0:0:1:0:0", "::ffff:192.0.2.128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "0:1:0:0:1:0:0:0" }
            local list = {}
            for i, text in ipairs(texts) do
                list[i] = text .. "/64"
            end
            local rendered = addresses_of(list)
            for i, text in ipairs(texts) do
                assert.are.equal(ntop6(text) .. "/64", rendered[i])
            end
        end)
    end)

    describe("peer_addresses", function()
        it("go on the kernel side of a net_tap device", function()
            local dev = device_of(tap_with('"peer_addresses": ["10.0.0.1/24", "fd00:0::1/64"]'))
            assert.are.same({ "10.0.0.1/24", "fd00::1/64" }, dev.peer_addresses)
        end)

        it("are validated like addresses", function()
            assert_rejects(tap_with('"peer_addresses": ["10.0.0.1/24", "10.0.0.3"]'),
                "devices[0].peer_addresses[1]: expected a prefix length 0..32 after the IPv4 "
                .. 'address, like "10.0.0.2/24", got "10.0.0.3"')
            assert_rejects(tap_with('"peer_addresses": "10.0.0.1/24"'),
                "devices[0].peer_addresses: expected an array, got a string")
        end)

        it("are only for net_tap devices", function()
            local only = 'devices[0].peer_addresses: peer_addresses is only for net_tap devices '
                .. '("vdev": "net_tap0,..."), not for this '
            assert_rejects(with_devices(PCI .. ', "peer_addresses": ["10.0.0.1/24"]'),
                only .. "PCI device 0000:28:00.0")
            assert_rejects(with_devices('"vdev": "net_memif0,role=server", "addresses": '
                .. '["10.0.0.2/24"], "peer_addresses": []'), only .. 'vdev "net_memif0"')
            assert_rejects(with_devices('"role": "kernel", "peer_addresses": ["10.0.0.1/24"]'),
                only .. "device without a vdev")
        end)
    end)

    describe("eal_args", function()
        it("are optional", function()
            assert.are.same({}, assert_loads('{"dpdk_cores": [0]}').eal_args)
        end)

        it("come back in the order given", function()
            assert.are.same({ "--no-huge", "-m", "128" },
                assert_loads('{"dpdk_cores": [0], "eal_args": ["--no-huge", "-m", "128"]}')
                .eal_args)
        end)

        it("must be an array of strings", function()
            assert_rejects('{"dpdk_cores": [0], "eal_args": "--no-huge"}',
                "eal_args: expected an array, got a string")
            assert_rejects('{"dpdk_cores": [0], "eal_args": ["-m", 128]}',
                "eal_args[1]: expected a string, got a number")
        end)

        it("are at most 64", function()
            local args = {}
            for i = 1, 65 do
                args[i] = "--arg" .. i
            end
            local accepted = { unpack(args, 1, 64) }
            assert.are.same(accepted, assert_loads('{"dpdk_cores": [0], "eal_args": '
                .. json_list(accepted) .. "}").eal_args)
            assert_rejects('{"dpdk_cores": [0], "eal_args": ' .. json_list(args) .. "}",
                "eal_args: expected at most 64 arguments, got 65")
        end)

        it("are at most 255 characters each", function()
            local arg = "--file-prefix=" .. ("p"):rep(241)
            assert.are.equal(255, #arg)
            assert.are.same({ arg }, assert_loads('{"dpdk_cores": [0], "eal_args": ["' .. arg
                .. '"]}').eal_args)
            assert_rejects('{"dpdk_cores": [0], "eal_args": ["-m", "' .. arg .. 'p"]}',
                "eal_args[1]: expected at most 255 characters, got 256")
        end)
    end)

    describe("NUL characters", function()
        -- cJSON's strings end at a NUL: "net_tap0\u0000evil" would be read as "net_tap0".
        local function nul_message(field, got)
            return field .. ": expected a string without \\u0000 (a NUL character ends it "
                .. 'early), got "' .. got .. '\\u0000..."'
        end

        it("are rejected inside a field's string, naming the field", function()
            assert_rejects(with_devices('"vdev": "net_tap0\\u0000evil", "addresses": '
                .. '["10.0.0.2/24"]'), nul_message("devices[0].vdev", "net_tap0"))
            assert_rejects(tap_with('"addresses": ["10.0.0.2/24", "10.0.0.3/24\\u0000"]'),
                nul_message("devices[0].addresses[1]", "10.0.0.3/24"))
            assert_rejects('{"dpdk_cores": [0], "eal_args": ["--no-huge", "-m\\u0000", "64"]}',
                nul_message("eal_args[1]", "-m"))
        end)

        it("are rejected in fields dpdklua ignores and in keys", function()
            assert_rejects('{"dpdk_cores": [0], "comment": {"note": ["ok", "a\\u0000b"]}}',
                nul_message("comment.note[1]", "a"))
            assert_rejects('{"dpdk_cores\\u0000x": [0]}', 'top level: expected keys without '
                .. '\\u0000 (a NUL character ends them early), got "dpdk_cores\\u0000..."')
            assert_rejects(with_devices(TAP .. ', "mac\\u0000": "02:00:00:00:00:01"'),
                'devices[0]: expected keys without \\u0000 (a NUL character ends them early), '
                .. 'got "mac\\u0000..."')
        end)

        it("are rejected as raw bytes too", function()
            assert_rejects(with_devices('"vdev": "net_tap0\0evil", "addresses": ["10.0.0.2/24"]'),
                nul_message("devices[0].vdev", "net_tap0"))
        end)

        it("leave other escapes alone, an escaped backslash before u0000 included", function()
            local dev = device_of(tap_with('"original_name": "eth\\u0030\\\\u0000"'))
            assert.are.equal("eth0\\u0000", dev.original_name)
        end)
    end)

    describe("fields for people and other tools", function()
        it("are ignored: version, platform, generated_at and unknown fields", function()
            local cfg = assert_loads('{"version": 1, "platform": "aws", "generated_at": '
                .. '"2025-01-15T08:30:00Z", "comment": {"any": ["thing"]}, "dpdk_cores": [0], '
                .. '"devices": [{' .. TAP .. ', "speed": "100G", "numa_node": 0}]}')
            assert.are.same({ 0 }, cfg.cores)
            assert.are.equal("net_tap0,iface=dl0", cfg.devices[1].vdev)
            assert.is_nil(cfg.version)
            assert.is_nil(cfg.devices[1].speed)
        end)

        it("except one that looks like a misspelt known field: that names the field it meant", function()
            assert_rejects('{"dpdk_cores": [0], "devcies": []}', 'devcies: not a field dpdklua knows; '
                .. 'did you mean "devices"? (unknown fields are ignored, but this one looks misspelt)')
            assert_rejects('{"dpdk_cores": [0], "EAL-args": []}', 'EAL-args: not a field dpdklua knows; '
                .. 'did you mean "eal_args"? (unknown fields are ignored, but this one looks misspelt)')
            assert_rejects(tap_with('"gatway_v4": "10.0.0.1"'),
                'devices[0].gatway_v4: not a field dpdklua knows; did you mean "gateway_v4"?'
                .. ' (unknown fields are ignored, but this one looks misspelt)')
            assert_rejects(tap_with('"Faults": {}'), 'devices[0].Faults: not a field dpdklua knows; '
                .. 'did you mean "faults"? (unknown fields are ignored, but this one looks misspelt)')
        end)
    end)

    describe("the shipped configs", function()
        it("config/dpdk-env.json is one net_tap device without hugepages", function()
            assert.are.same({
                path = REPO_DEFAULT,
                cores = { 0, 1 },
                eal_args = { "--no-huge", "-m", "128", "--no-pci", "--no-telemetry" },
                devices = { {
                    vdev = "net_tap0,iface=dl0",
                    mac = "02:d1:00:00:00:02",
                    addresses = { "10.99.0.2/24", "fd99::2/64" },
                    peer_addresses = { "10.99.0.1/24", "fd99::1/64" },
                    mtu = 1500,
                    role = "dpdk",
                } },
            }, assert(config.load(REPO_DEFAULT)))
        end)

        it("the template describes a PCI device on EC2 and its kernel neighbour", function()
            local cfg = assert(config.load(TEMPLATE))
            assert.are.same({ 1, 2, 3, 4 }, cfg.cores)
            assert.are.equal(3, #cfg.devices)
            local dev = cfg.devices[1]
            assert.are.equal("0000:28:00.0", dev.pci_address)
            assert.are.equal("02:04:3d:ba:a3:2f", dev.mac)
            assert.are.equal(9001, dev.mtu)
            assert.are.equal("dpdk", dev.role)
            assert.are.equal("enp40s0", dev.original_name)
            assert.are.equal("172.31.0.1", dev.gateway_v4)
            assert.are.equal("2406:da18:e99:5d00::1", dev.gateway_v6)
            assert.are.equal("172.31.1.40/20", dev.addresses[1])
            assert.are.equal("2406:da18:e99:5d00::10/64", dev.addresses[4])
            assert.are.equal("kernel", cfg.devices[2].role)
            assert.are.equal("net_tap0,iface=dl0", cfg.devices[3].vdev)
            assert.are.same({ "10.99.0.1/24", "fd99::1/64" }, cfg.devices[3].peer_addresses)
            assert.is_true(#cfg.eal_args > 0)
        end)
    end)

    describe("the search order", function()
        local ENV = "DPDK_ENV_CONFIG"
        local saved_env, saved_cwd

        local function set_env(value)
            if value then
                assert(C.setenv(ENV, value, 1) == 0)
            else
                assert(C.unsetenv(ENV) == 0)
            end
        end

        local function cwd()
            local buf = ffi.new("char[4096]")
            assert(C.getcwd(buf, 4096) ~= nil)
            return ffi.string(buf)
        end

        local function chdir(path)
            assert(C.chdir(path) == 0, "chdir " .. path)
        end

        before_each(function()
            saved_env = os.getenv(ENV)
            saved_cwd = cwd()
            set_env(nil)
        end)

        after_each(function()
            chdir(saved_cwd)
            set_env(saved_env)
        end)

        it("starts with DPDK_ENV_CONFIG", function()
            local path = temp_file('{"dpdk_cores": [7]}')
            set_env(path)
            assert.are.equal(path, config.search())
            local cfg = assert(config.load())
            assert.are.equal(path, cfg.path)
            assert.are.same({ 7 }, cfg.cores)
        end)

        it("keeps to DPDK_ENV_CONFIG when its file is missing, and says so", function()
            local path = os.tmpname()
            os.remove(path)
            set_env(path)
            assert.are.equal(path, config.search())
            local cfg, err = config.load()
            assert.is_nil(cfg)
            assert.are.equal(path .. ": cannot read: No such file or directory (set by "
                .. "DPDK_ENV_CONFIG)", err)
        end)

        it("skips an empty DPDK_ENV_CONFIG", function()
            set_env("")
            assert.are.equal("./config/dpdk-env.json", config.search())
        end)

        it("lets an explicit path beat DPDK_ENV_CONFIG", function()
            set_env("/nonexistent/env.json")
            local path = temp_file('{"dpdk_cores": [3]}')
            assert.are.same({ 3 }, assert(config.load(path)).cores)
        end)

        it("then takes ./config/dpdk-env.json from the working directory", function()
            assert.are.equal("./config/dpdk-env.json", config.search())
            local dir = temp_dir()
            make_dir(dir .. "/config")
            write_file(dir .. "/config/dpdk-env.json", '{"dpdk_cores": [5]}')
            chdir(dir)
            assert.are.equal("./config/dpdk-env.json", config.search())
            local cfg = assert(config.load())
            assert.are.equal("./config/dpdk-env.json", cfg.path)
            assert.are.same({ 5 }, cfg.cores)
        end)

        it("then /etc/dpdk/env.json, and last the built-in default", function()
            local shipped = assert(config.load(REPO_DEFAULT))
            chdir(temp_dir())
            local system = io.open("/etc/dpdk/env.json")
            if system then
                system:close()
                assert.are.equal("/etc/dpdk/env.json", config.search())
                return
            end
            assert.are.equal("<built-in>", config.search())
            local builtin = assert(config.load())
            assert.are.equal("<built-in>", builtin.path)
            shipped.path = "<built-in>"
            assert.are.same(shipped, builtin)
        end)

        it("rejects an empty explicit path", function()
            local cfg, err = config.load("")
            assert.is_nil(cfg)
            assert.matches("^config path is empty", err)
        end)
    end)
end)

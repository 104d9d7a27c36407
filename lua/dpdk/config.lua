-- dpdk.config: env.json as a plain Lua table.
--
-- Parsing and validation live in C (host/config.c), so that Lua and the
-- runtime see one set of rules and one set of error texts; this module only
-- turns the C struct into a table with addresses written back as text.
local bit = require "bit"
local ffi = require "ffi"
require "dpdk.cdef"

local C = ffi.C
local format = string.format
local concat = table.concat

local config = {}

-- "" in a fixed char array means the field was absent.
local function text_or_nil(chars)
    local text = ffi.string(chars)
    if text == "" then
        return nil
    end
    return text
end

local function ipv4_text(bytes)
    return format("%d.%d.%d.%d", bytes[0], bytes[1], bytes[2], bytes[3])
end

local function hex_words(words, first, last)
    local out = {}
    for i = first, last do
        out[#out + 1] = format("%x", words[i])
    end
    return concat(out, ":")
end

-- RFC 5952: lowercase, no leading zeros, the longest run (first on a tie) of
-- two or more zero words as "::", IPv4-mapped addresses as ::ffff:a.b.c.d.
local function ipv6_text(bytes)
    local words = {}
    for i = 1, 8 do
        words[i] = bytes[2 * i - 2] * 256 + bytes[2 * i - 1]
    end
    if words[1] == 0 and words[2] == 0 and words[3] == 0 and words[4] == 0 and words[5] == 0
        and words[6] == 0xffff then
        return "::ffff:" .. ipv4_text(bytes + 12)
    end

    local best_start, best_len = 0, 0
    local i = 1
    while i <= 8 do
        if words[i] == 0 then
            local run_end = i
            while run_end <= 8 and words[run_end] == 0 do
                run_end = run_end + 1
            end
            if run_end - i > best_len then
                best_start, best_len = i, run_end - i
            end
            i = run_end
        else
            i = i + 1
        end
    end
    if best_len < 2 then
        return hex_words(words, 1, 8)
    end
    return hex_words(words, 1, best_start - 1) .. "::"
            .. hex_words(words, best_start + best_len, 8)
end

local function mac_text(bytes)
    return format("%02x:%02x:%02x:%02x:%02x:%02x",
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5])
end

local function cidr_list(cidrs, count)
    local out = {}
    for i = 0, count - 1 do
        local cidr = cidrs[i]
        local addr = cidr.family == 4 and ipv4_text(cidr.addr) or ipv6_text(cidr.addr)
        out[#out + 1] = addr .. "/" .. cidr.prefix
    end
    return out
end

-- A device's "faults" (the fault injector), nil when absent.
local function faults_table(f)
    if f.enabled == 0 then return nil end
    local rx, tx = bit.band(f.direction, C.DL_FAULT_RX) ~= 0, bit.band(f.direction, C.DL_FAULT_TX) ~= 0
    return {
        seed = f.seed, drop = f.drop, duplicate = f.duplicate, reorder = f.reorder,
        reorder_depth = f.reorder_depth, corrupt = f.corrupt, truncate = f.truncate,
        direction = rx and tx and "both" or rx and "rx" or "tx",
    }
end

local function device_table(dev)
    return {
        pci_address = text_or_nil(dev.pci_address),
        vdev = text_or_nil(dev.vdev),
        original_name = text_or_nil(dev.original_name),
        mac = dev.has_mac ~= 0 and mac_text(dev.mac) or nil,
        mtu = dev.mtu,
        role = dev.role == C.DL_ROLE_KERNEL and "kernel" or "dpdk",
        gateway_v4 = dev.has_gateway_v4 ~= 0 and ipv4_text(dev.gateway_v4) or nil,
        gateway_v6 = dev.has_gateway_v6 ~= 0 and ipv6_text(dev.gateway_v6) or nil,
        addresses = cidr_list(dev.addresses, dev.n_addresses),
        peer_addresses = cidr_list(dev.peer_addresses, dev.n_peer_addresses),
        faults = faults_table(dev.faults),
    }
end

local function config_table(cfg)
    local cores, devices, eal_args = {}, {}, {}
    for i = 0, cfg.n_cores - 1 do
        cores[#cores + 1] = cfg.cores[i]
    end
    for i = 0, cfg.n_devices - 1 do
        devices[#devices + 1] = device_table(cfg.devices[i])
    end
    for i = 0, cfg.n_eal_args - 1 do
        eal_args[#eal_args + 1] = ffi.string(cfg.eal_args[i])
    end
    return {
        path = ffi.string(cfg.path),
        cores = cores,
        devices = devices,
        eal_args = eal_args,
    }
end

-- path nil: the search order (DPDK_ENV_CONFIG, ./config/dpdk-env.json,
-- /etc/dpdk/env.json, the built-in default). Returns the table, or nil, err.
function config.load(path)
    if path ~= nil and type(path) ~= "string" then
        error("config.load: path must be a string or nil, got " .. type(path), 2)
    end
    local cfg = C.dl_config_load(path)
    if cfg == nil then
        return nil, ffi.string(C.dl_errmsg())
    end
    -- Free before re-raising: the struct is ~100 KB and not under the GC.
    local ok, result = pcall(config_table, cfg)
    C.dl_config_free(cfg)
    if not ok then
        error(result, 0)
    end
    return result
end

-- Parse env.json text (origin names it in errors, default "<string>"):
-- the table as config.load returns it, or nil, err.
function config.parse(text, origin)
    if type(text) ~= "string" then
        error("config.parse: text must be a string, got " .. type(text), 2)
    end
    if origin ~= nil and type(origin) ~= "string" then
        error("config.parse: origin must be a string or nil, got " .. type(origin), 2)
    end
    local cfg = C.dl_config_parse(text, #text, origin)
    if cfg == nil then
        return nil, ffi.string(C.dl_errmsg())
    end
    local ok, result = pcall(config_table, cfg)
    C.dl_config_free(cfg)
    if not ok then
        error(result, 0)
    end
    return result
end

-- The embedded default config's JSON text (what "<built-in>" stands for).
function config.default_text()
    return ffi.string(C.dl_config_default())
end

-- The path the search order picks now ("<built-in>" when no file is found).
function config.search()
    return ffi.string(C.dl_config_search())
end

return config

-- dpdk.resolve — host names to addresses (spec F11).
--
--   dpdk.resolve(name [, { ttl = 30, timeout = 10 }]) → { "ip", ... } | nil, err
--
-- getaddrinfo (/etc/hosts, then the system resolver as nsswitch.conf says)
-- runs on the blocking pool (dpdk.getaddrinfo), never on a worker. Addresses
-- come back with the family the runtime has addresses for first (both or
-- neither: IPv4 first). Each worker caches answers for ttl seconds (getaddrinfo
-- reports no TTL; 0: do not cache this one) in a small table; failures are not
-- cached. An IP address is its own answer. err: "name not found: <name>", or
-- "cannot resolve <name>: <why>", or "timeout".
local C = require "dpdk.cdef"
local blocking = require "dpdk.blocking"

local type, error, tostring = type, error, tostring

local M = {}

M.DEFAULT_TTL = 30
M.DEFAULT_TIMEOUT = 10
local MAX_ENTRIES = 256

local cache, n_cache = {}, 0 -- name -> { addrs = {...}, expires = t }
M.hits, M.misses = 0, 0

local function is_ip(s)
    return s:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or (s:find(":", 1, true) ~= nil
        and s:match("^[%x:.]+$") ~= nil)
end
M.is_ip = is_ip

-- The runtime's address families first, in the resolver's order otherwise.
local function order(addrs)
    local w = C.dl_self()
    local fam = w ~= nil and C.dl_runtime_families(C.dl_worker_runtime(w)) or 0
    if fam ~= 2 then return addrs end -- IPv4 only, both or none: v4 first already
    local out = {}
    for i = 1, #addrs do
        if addrs[i]:find(":", 1, true) then out[#out + 1] = addrs[i] end
    end
    for i = 1, #addrs do
        if not addrs[i]:find(":", 1, true) then out[#out + 1] = addrs[i] end
    end
    return out
end

local function copy(t)
    local out = {}
    for i = 1, #t do out[i] = t[i] end
    return out
end

local function check_opts(what, opts)
    if opts == nil then return nil, nil end
    if type(opts) ~= "table" then
        error(what .. ": options must be a table, got " .. type(opts), 3)
    end
    local ttl, timeout = opts.ttl, opts.timeout
    if ttl ~= nil and (type(ttl) ~= "number" or ttl ~= ttl or ttl < 0) then
        error(what .. ": ttl must be seconds >= 0, got " .. tostring(ttl), 3)
    end
    if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
        error(what .. ": timeout must be seconds >= 0, got " .. tostring(timeout), 3)
    end
    return ttl, timeout
end

-- The cached or fresh list (shared: do not modify) | nil, err. ttl and
-- timeout: seconds (nil: the defaults).
function M.lookup(name, ttl, timeout, what)
    if type(name) ~= "string" or name == "" then
        error(what .. ": expected a host name or IP address, got "
            .. (type(name) == "string" and "an empty string" or type(name)), 3)
    end
    ttl, timeout = ttl or M.DEFAULT_TTL, timeout or M.DEFAULT_TIMEOUT
    if is_ip(name) then return { name } end
    local now = C.dl_now()
    local e = cache[name]
    if e and e.expires > now then
        M.hits = M.hits + 1
        return e.addrs
    end
    M.misses = M.misses + 1
    local ok, addrs, err = blocking.blocking({ timeout = timeout }, "dpdk.getaddrinfo", name)
    if not ok then
        return nil, addrs == "timeout" and "timeout" or ("cannot resolve " .. name .. ": "
            .. tostring(addrs))
    end
    if not addrs then return nil, err end
    addrs = order(addrs)
    if ttl > 0 then
        if not cache[name] then
            if n_cache >= MAX_ENTRIES then cache, n_cache = {}, 0 end -- small: start over
            n_cache = n_cache + 1
        end
        cache[name] = { addrs = addrs, expires = C.dl_now() + ttl }
    end
    return addrs
end

-- dpdk.resolve(name [, opts]) → a fresh list of addresses | nil, err
function M.resolve(name, opts)
    local ttl, timeout = check_opts("dpdk.resolve", opts)
    local addrs, err = M.lookup(name, ttl, timeout, "dpdk.resolve")
    if not addrs then return nil, err end
    return copy(addrs)
end

-- Forget every cached answer of this worker.
function M.flush()
    cache, n_cache = {}, 0
end

return M

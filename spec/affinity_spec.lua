-- CPU affinity: each worker runs pinned to one core of dpdk_cores.
local child = require "spec.helpers.child"

local CPUSET = [[
local ffi = require "ffi"
pcall(ffi.cdef, "int sched_getaffinity(int pid, size_t size, uint8_t *mask);")
local function cpus()
    local mask = ffi.new("uint8_t[128]")
    assert(ffi.C.sched_getaffinity(0, 128, mask) == 0)
    local list = {}
    for c = 0, 1023 do
        if bit.band(mask[c / 8], bit.lshift(1, c % 8)) ~= 0 then list[#list + 1] = c end
    end
    return table.concat(list, ",")
end
]]

describe("worker affinity", function()
    it("pins every worker thread to exactly its own core", function()
        local cfg = child.config({ cores = { 0, 1 } })
        local r = child.run(CPUSET .. ([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 2, config = CONFIG })
rt:run(function(cpuset_code)
    local dpdk = require "dpdk"
    local cpus = loadstring(cpuset_code .. " return cpus")()
    io.stdout:write("worker " .. dpdk.worker_id() .. " core " .. dpdk.core_id()
        .. " cpus " .. cpus() .. "\n")
    io.stdout:flush()
end, CPUSET)
]]):gsub("CONFIG", ("%q"):format(cfg)):gsub("CPUSET", ("%q"):format(CPUSET):gsub("%%", "%%%%")))
        assert.are.equal(0, r.status, r.stderr)
        assert.truthy(r.stdout:find("worker 0 core 0 cpus 0\n", 1, true), r.stdout)
        assert.truthy(r.stdout:find("worker 1 core 1 cpus 1\n", 1, true), r.stdout)
    end)

    it("gives the main thread its own affinity back after block_on", function()
        local cfg = child.config({ cores = { 1 } })
        local r = child.run(CPUSET .. ([[
local dpdk = require "dpdk"
local before = cpus()
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
local inside = rt:block_on(function() return cpus() end)
print(inside, cpus() == before)
]]):format(cfg))
        assert.are.equal("1\ttrue\n", r.stdout, r.stderr)
    end)

    it("skips a configured core that this process may not use", function()
        local cfg = child.config({ cores = { 0 } })
        -- taskset limits the child to CPU 1, so core 0 is not usable
        local _, out = child.sh("taskset -c 1 " .. child.quote(child.DPDKLUA) .. " -e "
            .. child.quote(("print(select(2, require('dpdk').runtime{ workers = 1, config = %q }))")
                :format(cfg)))
        assert.matches("core 0 is not in this process.s CPU set", out)
    end)
end)

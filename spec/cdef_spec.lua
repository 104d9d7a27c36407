-- host/api.h is the one FFI surface; lua/dpdk/cdef.lua mirrors it.
local ffi = require "ffi"
local child = require "spec.helpers.child"

local function read(path)
    local f = assert(io.open(path))
    local s = f:read("*a")
    f:close()
    return s
end

describe("lua/dpdk/cdef.lua", function()
    it("is what scripts/gen-cdef.sh makes of host/api.h (run `make cdef` after editing api.h)", function()
        local root = os.getenv("DPDKLUA_ROOT") or "."
        local generated = child.tmpfile(".lua")
        local rc, out = child.sh("bash " .. child.quote(root .. "/scripts/gen-cdef.sh") .. " "
            .. child.quote(generated) .. " && cmp " .. child.quote(root .. "/lua/dpdk/cdef.lua")
            .. " " .. child.quote(generated))
        assert.are.equal(0, rc, out)
    end)

    it("declares only functions that the dpdklua executable exports", function()
        local C = require "dpdk.cdef"
        local text = read((os.getenv("DPDKLUA_ROOT") or ".") .. "/host/api.h")
        local block = text:match("/%* DL_FFI_BEGIN %*/(.-)/%* DL_FFI_END %*/")
        local names = {}
        for name in block:gsub("/%*.-%*/", ""):gmatch("[%w_%*]+%s+%**([%a_][%w_]*)%s*%b()%s*;") do
            names[#names + 1] = name
        end
        assert.is_true(#names > 20, "found too few declarations: " .. #names)
        for _, name in ipairs(names) do
            local ok, f = pcall(function() return C[name] end)
            assert(ok and f ~= nil, name .. " is declared in api.h but not exported: " .. tostring(f))
        end
    end)

    it("agrees with C on the sizes of the shared structs", function()
        require "dpdk.cdef"
        -- dl_config is the largest: any drift in the arrays shows here
        assert.are.equal(16, ffi.sizeof("dl_event"))
        assert.is_true(ffi.sizeof("dl_config") > 16 * ffi.sizeof("dl_device_config"))
        assert.are.equal(24, ffi.sizeof("dl_cidr"))
    end)
end)

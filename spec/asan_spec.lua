-- The sanitizer pass itself (make asan; DPDKLUA=./dpdklua-asan bash scripts/test.sh):
-- a report in any process fails the run, even when the spec around it passes.
-- Runs only on a sanitizer build (skipped on ./dpdklua).
local child = require "spec.helpers.child"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."

describe("scripts/test.sh on a sanitizer build", function()
    if child.SAN ~= "asan" then
        pending("runs with DPDKLUA=./dpdklua-asan (make asan)")
        return
    end

    it("fails the run on a report from a child whose failure the spec ignores", function()
        -- The child reads 64 bytes of a 4-byte heap buffer inside dl_config_parse.
        local spec = child.tmpfile("_spec.lua", ([[
local child = require "spec.helpers.child"
it("ignores its child's exit status", function()
    child.run(%q)
end)
]]):format([[
local ffi = require "ffi"
require "dpdk.cdef"
pcall(ffi.cdef, "void *malloc(size_t);")
local p = ffi.C.malloc(4)
ffi.fill(p, 4, 32)
ffi.C.dl_config_parse(p, 64, "overflow")
]]))
        local rc, out = child.sh("DPDKLUA=" .. child.quote(child.DPDKLUA) .. " bash "
            .. child.quote(ROOT .. "/scripts/test.sh") .. " " .. child.quote(spec))
        assert.are_not.equal(0, rc, out)
        assert.matches("busted: 1 passed, 0 failed", out, 1, true)
        assert.matches("ERROR: AddressSanitizer: heap%-buffer%-overflow", out)
        assert.matches("in dl_config_parse", out, 1, true)
        assert.matches("sanitizer: 1 report(s)", out, 1, true)
    end)
end)

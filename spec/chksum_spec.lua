-- The stack's software checksum (stack/chksum.h, lwIP's LWIP_CHKSUM): both
-- ends of a memif test are ours, so a wrong sum could agree with itself; this
-- checks it against RFC 1071's definition (stack/tests/chksum_test.c).
local child = require "spec.helpers.child"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."

describe("the software Internet checksum", function()
    it("equals RFC 1071's sum for every length and offset", function()
        local rc, out = child.sh("make -s -C " .. child.quote(ROOT) .. " chksum-test && "
            .. child.quote(ROOT .. "/build/stack/chksum_test"))
        assert.are.equal(0, rc, out)
        assert.matches("chksum_test: ok\n", out)
    end)
end)

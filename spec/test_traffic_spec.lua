-- The suite's traffic never leaves this machine: while it runs
-- (scripts/test.sh → scripts/test-routes.sh), a test address whose tap is gone
-- is unreachable here instead of following the default route out.
local net = require "spec.helpers.net"

describe("test traffic", function()
    it("to a test address with no tap fails at once with 'no route to host', v4 and v6", function()
        -- 10.238.0.0/16 and fdee::/16 carry no tap in any spec
        local rc, out = net.python([[
import errno, socket, time
for family, addr in ((socket.AF_INET, "10.238.0.1"), (socket.AF_INET6, "fdee::1")):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    t = time.monotonic()
    try:
        s.connect((addr, 80))
        print(addr, "connected")
    except OSError as e:
        print(addr, errno.errorcode.get(e.errno, e.errno), "fast" if time.monotonic() - t < 1 else "slow")
]])
        assert.are.equal(0, rc, out)
        assert.are.equal("10.238.0.1 EHOSTUNREACH fast\nfdee::1 EHOSTUNREACH fast\n", out)
    end)
end)

describe("a spec started by hand, outside scripts/test.sh", function()
    local child = require "spec.helpers.child"

    it("refuses to make a tap while the test routes are missing, and names the fix", function()
        -- a namespace of its own: no routes at all, as a machine where no suite runs
        local ns = "dlrt" .. child.tmpdir():match("([^/]+)$")
        assert.are.equal(0, (child.sh("ip netns add " .. ns)))
        finally(function() child.sh("ip netns del " .. ns) end)
        local script = child.tmpfile(".lua", [[
package.path = "./?.lua;" .. package.path
local child = require "spec.helpers.child"
local ok, err = pcall(child.tap_device, "dlrtx", 238)
print(ok, err)
]])
        local function try(env)
            return child.sh(("ip netns exec %s env -u DPDKLUA_TEST_RUN %s %s %s"):format(ns, env or "",
                child.quote(child.DPDKLUA), child.quote(script)))
        end
        -- started by hand: not marked as a scripts/test.sh run's process
        local rc, out = try()
        assert.are.equal(0, rc, out)
        assert.matches("^false\t.*test prefixes have no unreachable route.*run specs through "
            .. "`bash scripts/test.sh <spec>`", out)
        rc, out = child.sh(("ip netns exec %s bash scripts/test-routes.sh check"):format(ns))
        assert.are_not.equal(0, rc, out)
        -- inside a scripts/test.sh run the missing routes are added and the tap is made
        rc, out = try("DPDKLUA_TEST_RUN=1.1")
        assert.are.equal(0, rc, out)
        assert.matches("^true\ttable: ", out)
        rc, out = child.sh(("ip netns exec %s bash scripts/test-routes.sh check"):format(ns))
        assert.are.equal(0, rc, out)
    end)
end)

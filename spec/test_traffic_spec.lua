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

-- dpdk.ngx itself: the global it sets, what it refuses clearly, and the
-- pieces the conformance spec cannot compare with nginx.
describe("dpdk.ngx", function()
    local ngx = require "dpdk.ngx"

    it("sets the global ngx and returns the same table", function()
        assert.are.equal(ngx, _G.ngx)
        assert.are.equal(ngx, require "dpdk.ngx")
    end)

    it("names the cause when a program reaches for ngx.shared", function()
        assert.has_error(function() return ngx.shared.cache end,
            "ngx.shared.cache: shared dictionaries are not available in dpdklua (workers share "
            .. "no memory); use lua-resty-lrucache per worker or dpdk.channel between workers")
    end)

    it("refuses UDP and TLS with a clear message", function()
        assert.has_error(function() ngx.socket.udp() end,
            "ngx.socket.udp is not supported by dpdklua (TCP only)")
        assert.are.same({ nil, "ssl handshake is not supported by dpdklua" },
            { ngx.socket.tcp():sslhandshake() })
    end)

    it("refuses unix sockets and the DFA flag by name", function()
        assert.are.same({ nil, "unix domain sockets are not supported by dpdklua" },
            { ngx.socket.tcp():connect("unix:/tmp/x.sock") })
        assert.has_error(function() ngx.re.match("a", "a", "d") end,
            'flag "d" (DFA matching) is not supported by dpdklua (flags "d")')
    end)

    it("keeps compiled 'o' patterns per worker and reuses them", function()
        local a = ngx.re.match("x1", [[\d]], "o")
        local b = ngx.re.match("y2", [[\d]], "o")
        assert.are.same({ [0] = "1" }, a)
        assert.are.same({ [0] = "2" }, b)
    end)
end)

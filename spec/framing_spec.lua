-- dpdk.framing's "*l" over a receive buffer, byte by byte as OpenResty's:
-- the LF ends a line, every CR in it is dropped (the usual one before the LF
-- is cut in place, other CRs by gsub), a line split across reads waits for
-- its LF, and a failed read's partial line loses its CRs too.
local buffer = require "string.buffer"
local framing = require "dpdk.framing"

local function lines(...)
    local rbuf, out = buffer.new(), {}
    for i = 1, select("#", ...) do
        rbuf:put((select(i, ...)))
        while true do
            local done, line = framing.try_line(rbuf)
            if not done then break end
            out[#out + 1] = line
        end
    end
    return out, framing.line_left(rbuf)
end

describe("framing *l", function()
    it("cuts CRLF and LF lines, with their CRs dropped", function()
        local out, left = lines("GET / HTTP/1.1\r\nHost: a\r\n\r\nplain\nx\r\ry\r\n\r\r\n\n")
        assert.same({ "GET / HTTP/1.1", "Host: a", "", "plain", "xy", "", "" }, out)
        assert.equal("", left)
    end)

    it("waits for the LF of a line split across reads, also between CR and LF", function()
        local out, left = lines("Hea", "der: v\r", "\nnext\r", "\r\nrest\r")
        assert.same({ "Header: v", "next" }, out)
        assert.equal("rest", left) -- the partial result loses its CR
    end)

    it("leaves what follows the line in the buffer", function()
        local rbuf = buffer.new()
        rbuf:put("a\r\nbody")
        assert.same({ true, "a" }, { framing.try_line(rbuf) })
        assert.equal("body", rbuf:tostring())
    end)
end)

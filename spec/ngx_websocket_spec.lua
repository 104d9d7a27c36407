-- Debian's lua-resty-websocket client (package lua-nginx-websocket, module
-- nginx.websocket.client), unmodified, on dpdk.ngx against python's
-- websockets (Debian's python3-websockets) echo server on the tap's kernel side.
local resty = require "spec.helpers.resty"

local function echo(ip) return resty.websocket_echo(ip, 8765) end

describe("lua-resty-websocket's client on dpdk.ngx", function()
    it("has text, binary and large frames echoed, answers a ping, closes", function()
        local lines = resty.run("dln7", 177, echo, [[
local client = require "nginx.websocket.client"
local wb = assert(client:new{ timeout = 5000, max_payload_len = 1048576 })
out("connect", wb:connect("ws://" .. PEER .. ":8765/echo"))
out("text", wb:send_text("hello, websocket"))
out("recv", wb:recv_frame())
local bin = "\0\1\2\255\254" .. ("\128"):rep(100)
wb:send_binary(bin)
local data, typ = wb:recv_frame()
out("binary", typ, data == bin, #data)
local big = {}
for i = 1, 100000 do big[i] = string.char(i % 256) end
big = table.concat(big)
wb:send_binary(big)
data, typ = wb:recv_frame()
out("big", typ, data == big, #data)
out("ping", wb:send_ping("are you there"))
out("pong", wb:recv_frame())
out("close", wb:send_close(1000, "bye"))
data, typ = wb:recv_frame()
out("closed", typ)
wb:close()
]])
        assert.are.same({
            "connect\t1", "text\t22\tnil", "recv\thello, websocket\ttext\tnil",
            "binary\tbinary\ttrue\t105", "big\tbinary\ttrue\t100000", "ping\t19\tnil",
            "pong\tare you there\tpong\tnil", "close\t11\tnil", "closed\tclose", "DONE",
        }, lines)
    end)
end)

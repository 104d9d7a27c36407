-- docs/reliability.md's table "Bad inputs and the errors users see" is what
-- users really get: every row's case runs here (a config child, and a service
-- on a tap with a python peer) and prints what it got; the row's text must be
-- in it (`<...>` in the table stands for a path or value that varies). Every
-- case run here has its row, so the table cannot go stale in either direction.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

-- Both children print each case's results as one "CASE\t<id>\t<values>" line.
local CASE = [[
local function case(id, ...)
    local got = {}
    for i = 1, select("#", ...) do got[i] = tostring((select(i, ...))) end
    print(("CASE\t%s\t%s"):format(id, table.concat(got, "\t")))
    io.stdout:flush()
end
]]

-- Without EAL: env.json, runtime options, cores, calls outside the runtime.
local CONFIG_CASES = CASE .. [[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local function file(text)
    local p = os.tmpname()
    local f = assert(io.open(p, "w")) f:write(text) f:close()
    return p
end
local function runtime(json, opts)
    opts = opts or { workers = 1 }
    opts.config = file(json)
    return dpdk.runtime(opts)
end
local EAL = '"eal_args": ["--no-huge", "-m", "128", "--no-pci"]'
case("config-missing", dpdk.runtime{ workers = 1, config = "/nonexistent/env.json" })
case("config-json", runtime('{ "dpdk_cores": [0], "devices": [ }'))
case("config-misspelt", runtime('{ "dpdk_cores": [0], "devcies": [] }'))
case("config-cidr", runtime('{ "dpdk_cores": [0], "devices": [{ "vdev": "net_tap_x", "addresses": ["10.57.0.2"] }] }'))
case("config-nul", runtime('{ "dpdk_cores": [0], "devices": [{ "vdev": "net_tap0\\u0000evil" }] }'))
case("config-no-cores", runtime('{ "dpdk_cores": [], "devices": [] }'))
case("option-unknown", pcall(dpdk.runtime, { workrs = 1 }))
case("option-type", pcall(dpdk.runtime, { workers = "two" }))
case("cores-taken", runtime('{ "dpdk_cores": [0, 1], ' .. EAL .. ' }', { workers = 3 }))
case("core-absent", runtime('{ "dpdk_cores": [255], ' .. EAL .. ' }'))
case("outside-task", pcall(dpdk.sleep, 0.1))
case("outside-runtime", pcall(tcp.connect, "10.57.0.1", 80))
]]

-- On a tap: addresses, ports, peers that refuse, reset or never read, misuse.
local TAP_CASES = CASE .. [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    case("listen-unconfigured", tcp.listen("10.57.0.9", 7000))
    local l = assert(tcp.listen("*", 7000))
    case("listen-in-use", tcp.listen("*", 7000))
    case("listen-port", pcall(tcp.listen, "*", 70000))
    case("listen-ip", pcall(tcp.listen, "10.57.0", 7000))
    case("connect-refused", tcp.connect("10.57.0.1", 1))
    case("connect-silent", tcp.connect("10.57.0.77", 80, { timeout = 300 }))
    case("connect-no-route", tcp.connect("10.99.0.1", 80))
    case("connect-self", tcp.connect("10.57.0.2", 7000))
    local s = tcp.socket()
    case("send-unconnected", s:send("x"))
    case("receive-pattern", pcall(s.receive, s, "*x"))
    case("settimeout-value", pcall(s.settimeout, s, -5))
    s:close()
    case("send-closed", s:send("x"))
    case("close-twice", s:close())
    print("READY") io.stdout:flush()
    local c = assert(l:accept())          -- the python peer resets this one
    case("receive-reset", c:receive("*l"))
    c = assert(l:accept())                -- and never reads from this one
    c:settimeout(500)
    case("send-unread", c:send(string.rep("x", 64 * 1024 * 1024)))
    c:close()
    print("DONE") io.stdout:flush()
end)
]]

local PEER = [[
import socket, struct, time
r = socket.create_connection(("10.57.0.2", 7000), timeout=10)
r.sendall(b"partial")
time.sleep(0.2)
r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
r.close()                                   # RST
q = socket.socket()
q.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
q.settimeout(10)
q.connect(("10.57.0.2", 7000))
time.sleep(3)                               # the server's send times out meanwhile
q.close()
print("peer done")
]]

-- The table's rows: id → the text users see.
local function documented()
    local f = assert(io.open("docs/reliability.md"))
    local doc = f:read("*a")
    f:close()
    local section = doc:match("\n## Bad inputs and the errors users see\n(.-)\n## ") or
        doc:match("\n## Bad inputs and the errors users see\n(.*)$")
    assert(section, "docs/reliability.md has no section \"Bad inputs and the errors users see\"")
    local rows = {}
    for id, text in section:gmatch("\n| `([%w-]+)` |[^|\n]*| `([^`\n]+)` |") do rows[id] = text end
    return rows
end

local function results(out, into)
    for id, text in out:gmatch("CASE\t([%w-]+)\t([^\n]*)") do into[id] = text end
end

-- The row's text, its `<...>` parts standing for anything, found in order.
local function shows(got, text)
    local at = 1
    for piece in (text .. "<>"):gmatch("(.-)<[^>]*>") do
        if piece ~= "" then
            local s, e = got:find(piece, at, true)
            if not s then return false end
            at = e + 1
        end
    end
    return true
end

describe("docs/reliability.md's table of bad inputs", function()
    it("shows what each case really prints, and has a row for every case", function()
        local got = {}
        local r = child.run(CONFIG_CASES)
        assert.are.equal(0, r.status, r.stdout .. r.stderr)
        results(r.stdout, got)

        local svc = net.service("dla2", 57, TAP_CASES)
        finally(svc.stop)
        local rc, out = net.python(PEER, 60)
        assert.are.equal(0, rc, out)
        assert.is_true(svc.proc:wait_output("DONE", 20), svc.proc:stdout() .. svc.proc:stderr())
        results(svc.proc:stdout(), got)

        local rows = documented()
        for id, text in pairs(got) do
            assert.is_truthy(rows[id], "no row for case " .. id .. " (it prints: " .. text .. ")")
            assert.is_true(shows(text, rows[id]), ("case %s prints\n  %s\nthe table says\n  %s")
                :format(id, text, rows[id]))
        end
        for id in pairs(rows) do
            assert.is_truthy(got[id], "the table's row " .. id .. " has no case in this spec")
        end
    end)
end)

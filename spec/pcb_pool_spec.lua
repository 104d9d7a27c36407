-- The worker's whole pcb pool in use (issue 11, item 4, at its true size):
-- with max_connections at its default the limit is the pool itself
-- (DL_TCP_MAX_CONNECTIONS per worker). The next SYN must be refused with RST
-- at once, not dropped, and service must come back as soon as some
-- connections close. Tagged #slow: that many connections through a tap take
-- ~20 s, too long for the sanitizer pass.
local net = require "spec.helpers.net"
local POOL = require("dpdk.cdef").DL_TCP_MAX_CONNECTIONS

-- Accepts and holds every connection until its peer closes; prints the
-- worker's counters whenever they change.
local HOLD = [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7200, { backlog = 255 }))
    dpdk.spawn(function()
        local last
        while true do
            local t = dpdk.stats().workers[1]
            local line = ("STATS connections=%d max=%d refused=%d")
                :format(t.tcp_connections, t.tcp_max_connections, t.tcp_refused)
            if line ~= last then print(line) io.stdout:flush() last = line end
            dpdk.sleep(0.05)
        end
    end)
    print("READY") io.stdout:flush()
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            c:settimeout(600000)
            c:receive("*a")
            c:close()
        end)
    end
end)
]]

local CLIENT = [[
import resource, socket, time
IP, POOL = "%s", %d
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
n = max(hard, POOL + 1000)  # root may raise the hard limit too
resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
held = []
t0 = time.monotonic()
for i in range(POOL):
    held.append(socket.create_connection((IP, 7200), timeout=5))
print("held %%d in %%.1f s" %% (POOL, time.monotonic() - t0), flush=True)
time.sleep(0.2)  # the server's last accepts
t0 = time.monotonic()
try:
    socket.create_connection((IP, 7200), timeout=5)
    print("next connected")
except ConnectionRefusedError:
    print("next refused in %%.3f s" %% (time.monotonic() - t0))
except OSError as e:
    print("next failed: %%s after %%.3f s" %% (e, time.monotonic() - t0))
for s in held[:10]:
    s.close()
t0 = time.monotonic()
while True:
    try:
        s = socket.create_connection((IP, 7200), timeout=5); break
    except ConnectionRefusedError:
        if time.monotonic() - t0 > 10: raise
        time.sleep(0.05)
print("served again after %%.3f s" %% (time.monotonic() - t0))
s.close()
for s in held[10:]:
    s.close()
]]

describe("a worker whose whole pcb pool is in use #slow", function()
    it("refuses the next SYN with RST at once and serves again after some close", function()
        local svc = net.service("dle3", 29, HOLD)
        finally(svc.stop)
        local rc, out = net.python(CLIENT:format(svc.ip, POOL), 120)
        assert.are.equal(0, rc, out .. svc.proc:stderr())
        assert.matches("held " .. POOL .. " in", out)
        local took = tonumber(out:match("next refused in ([%d.]+) s"))
        assert.is_truthy(took, out)
        -- a dropped SYN would be resent after 1 s
        assert.is_true(took < 1, out)
        assert.matches("served again after", out)
        local full, refused
        for c, m, r in svc.proc:stdout():gmatch("STATS connections=(%d+) max=(%d+) refused=(%d+)") do
            if tonumber(c) == POOL and tonumber(m) == POOL then full = true end
            refused = tonumber(r)
        end
        assert.is_true(full, svc.proc:stdout())
        assert.is_true(refused >= 1, svc.proc:stdout())
    end)
end)

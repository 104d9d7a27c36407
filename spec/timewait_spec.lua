-- A client that reuses its port pair while our side is in TIME_WAIT (issue 11):
-- the server closes first (HTTP's Connection: close), so its pcb sits in
-- TIME_WAIT for 2 MSL. lwIP answered a new SYN on that 4-tuple with an ACK,
-- and the client stalled in connect until its timeout. Now a SYN whose
-- sequence number is past the old connection's (RFC 6191, as Linux does) ends
-- the TIME_WAIT and is accepted (stack/patches/40-timewait-reuse.patch);
-- an old duplicate SYN still gets the old answer.
local child = require "spec.helpers.child"
local net = require "spec.helpers.net"

-- Answers one line with "served <n> from <peer port>", then closes first.
-- "STATS" answers the worker's counter instead.
local CLOSE_FIRST = [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7100))
    print("READY") io.stdout:flush()
    local n = 0
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            local line = c:receive("*l")
            if line == "STATS" then
                c:send(("reused %d\n"):format(dpdk.stats().workers[1].tcp_timewait_reused))
            elseif line then
                n = n + 1
                local _, port = c:peer_addr()
                c:send(("served %d from %d\n"):format(n, port))
            end
            c:close()
        end)
    end
end)
]]

-- From one fixed local port: request, read to EOF (the server closed first),
-- close, and connect again at once; every round must be served.
local REUSE = [[
import errno, socket, time
IP, PEER, PORT, ROUNDS = "%s", "%s", 40123, 6

def once(port, timeout):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((PEER, port))
    s.settimeout(timeout)
    t0 = time.monotonic()
    while True:  # our own side of the last round may still wait for its FIN's ACK
        try:
            s.connect((IP, 7100)); break
        except OSError as e:
            if e.errno != errno.EADDRNOTAVAIL or time.monotonic() - t0 > 2: raise
            time.sleep(0.005)
    took = time.monotonic() - t0
    return s, took

for i in range(ROUNDS):
    try:
        s, took = once(PORT, 3)
    except OSError as e:
        print("round %%d: connect failed: %%s" %% (i, e)); break
    s.sendall(b"GET\n")
    got = b""
    while True:
        b = s.recv(100)
        if not b: break
        got += b
    s.close()
    print("round %%d: connected in %%.3f s, %%s" %% (i, took, got.decode().strip()))

s, _ = once(0, 3)
s.sendall(b"STATS\n")
print(s.recv(100).decode().strip())
s.close()
]]

describe("a server-side TIME_WAIT", function()
    it("accepts a client that reuses its port pair at once", function()
        local svc = net.service("dle0", 25, CLOSE_FIRST)
        finally(svc.stop)
        local rc, out = net.python(REUSE:format(svc.ip, svc.peer_ip), 60)
        assert.are.equal(0, rc, out)
        local rounds = 0
        for i, took, n, port in out:gmatch("round (%d+): connected in ([%d.]+) s, served (%d+) from (%d+)") do
            rounds = rounds + 1
            assert.are.equal(tonumber(i) + 1, tonumber(n), out)
            assert.are.equal("40123", port, out)
            -- before the fix: answered with an ACK, connect timed out (3 s)
            assert.is_true(tonumber(took) < 1, out)
        end
        assert.are.equal(6, rounds, out)
        -- the first round found no TIME_WAIT; the other five each ended one
        local reused = tonumber(out:match("reused (%d+)"))
        assert.are.equal(5, reused, out)
    end)
end)

-- A SYN flood from an address that never answers (issue 11, item 3): before
-- SYN cookies, 5 000 spoofed SYNs filled the listener's backlog with half-open
-- connections for 20 s and kept real clients out. Now a listener whose backlog
-- is full answers statelessly (stack/patches/10-syncookies.patch), and a kernel
-- client gets in at once while the flood goes on, over IPv4 and IPv6.
local net = require "spec.helpers.net"

local ECHO = [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
rt:block_on(function()
    local l = assert(tcp.listen("*", 7000))
    print("READY") io.stdout:flush()
    while true do
        local c = assert(l:accept())
        dpdk.spawn(function()
            while true do
                local data = c:receiveany(65536)
                if not data then break end
                if data == "STATS\n" then
                    local s = dpdk.stats().workers[1]
                    data = ("cookies sent %d ok %d\n"):format(s.syncookies_sent, s.syncookies_ok)
                end
                if not c:send(data) then break end
            end
            c:close()
        end)
    end
end)
]]

-- Raw SYNs from 10.230.0.77 (nobody: ARP for it goes unanswered) written to
-- the tap's kernel side, which hands them to the dpdklua port; then a real
-- client connects and echoes while the flood goes on.
local CSUM = [[
import random, socket, struct, threading, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def tcp_syn(sport, seq, pseudo):
    opts = struct.pack("!BBH", 2, 4, 1460)
    tcp = struct.pack("!HHIIBBHHH", sport, 7000, seq, 0, (5 + len(opts) // 4) << 4, 0x02, 64240, 0, 0) + opts
    return tcp[:16] + struct.pack("!H", csum(pseudo(len(tcp)) + tcp)) + tcp[18:]
]]

local SYN4 = CSUM .. [[
IFACE, DST, DMAC = "dlf0", "10.230.0.2", bytes.fromhex("02d1e6000002")
SRC, SMAC = "10.230.0.77", bytes.fromhex("020000000077")
src, dst = socket.inet_aton(SRC), socket.inet_aton(DST)
def syn(sport, seq):
    tcp = tcp_syn(sport, seq, lambda n: src + dst + struct.pack("!BBH", 0, 6, n))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return DMAC + SMAC + b"\x08\x00" + ip + tcp
]]

-- The same over IPv6 from fd1b::77 (neighbour discovery for it goes unanswered).
local SYN6 = CSUM .. [[
IFACE, DST, DMAC = "dle2", "fd1b::2", bytes.fromhex("02d11b000002")
SRC, SMAC = "fd1b::77", bytes.fromhex("020000000077")
src, dst = socket.inet_pton(socket.AF_INET6, SRC), socket.inet_pton(socket.AF_INET6, DST)
def syn(sport, seq):
    tcp = tcp_syn(sport, seq, lambda n: src + dst + struct.pack("!IxxxB", n, 6))
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src, dst)
    return DMAC + SMAC + b"\x86\xdd" + ip + tcp
]]

local FLOOD = [[
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((IFACE, 0))
frames = [syn(1024 + i, random.getrandbits(32)) for i in range(20000)]

def echo(s, n):
    msg = bytes(random.getrandbits(8) for _ in range(n))
    s.sendall(msg)
    got = b""
    while len(got) < n:
        b = s.recv(65536)
        assert b, "connection closed"
        got += b
    assert got == msg

# an established connection from before the flood
old = socket.create_connection((DST, 7000), timeout=10)
echo(old, 1000)

sent = 0
for f in frames[:5000]:
    raw.send(f); sent += 1
stop = False
def keep_flooding():  # ~2 000 SYN/s for as long as the client needs
    global sent
    i = 5000
    while not stop and i < len(frames):
        for f in frames[i:i + 20]:
            raw.send(f)
        i += 20; sent += 20
        time.sleep(0.01)
t = threading.Thread(target=keep_flooding); t.start()
try:
    time.sleep(0.2)
    t0 = time.monotonic()
    c = socket.create_connection((DST, 7000), timeout=5)
    took = time.monotonic() - t0
    echo(c, 100000)
    echo(old, 100000)
    c.sendall(b"STATS\n")
    stats = c.recv(100).decode().strip()
    c.close(); old.close()
finally:
    stop = True; t.join()
print("connected in %.3f s after %d SYNs; %s" % (took, sent, stats))
]]

-- The flood's figures, checked the same way for both families.
local function check(out)
    local took, sent, cookies, ok = out:match(
        "connected in ([%d.]+) s after (%d+) SYNs; cookies sent (%d+) ok (%d+)")
    assert.is_truthy(took, out)
    -- without cookies the client waited for half-open connections to expire
    -- (20 s); its first SYN is answered now (a retransmission would be at 1 s)
    assert.is_true(tonumber(took) < 3, out)
    assert.is_true(tonumber(sent) >= 5000, out)
    assert.is_true(tonumber(cookies) > 0, out)
    assert.is_true(tonumber(ok) >= 1, out)
end

describe("a listener under a SYN flood", function()
    it("lets a real client in at once and keeps established connections", function()
        local svc = net.service("dlf0", 230, ECHO)
        finally(svc.stop)
        local rc, out = net.python(SYN4 .. FLOOD, 60)
        assert.are.equal(0, rc, out)
        check(out)
    end)

    it("does the same over IPv6", function()
        local svc = net.service("dle2", 27, (ECHO:gsub('tcp.listen%("%*", 7000%)', 'tcp.listen("fd1b::2", 7000)')),
            { device = { addresses = { "10.27.0.2/24", "fd1b::2/64" },
                peer_addresses = { "10.27.0.1/24", "fd1b::1/64" } } })
        finally(svc.stop)
        local rc, out = net.python(SYN6 .. FLOOD, 60)
        assert.are.equal(0, rc, out)
        check(out)
    end)
end)

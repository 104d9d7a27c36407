-- Abuse from the wire (issue 11, "Exhaustion and abuse"): garbage frames of
-- every layer (random bytes, broken IPv4/IPv6/TCP headers, bad TCP options,
-- IPv6 extension-header chains, ICMP, forged segments on a live connection)
-- and 2 000 idle half-sent requests (slowloris). Established connections keep
-- their bytes, a new client is served at once, and the port's mbufs return to
-- their baseline: nothing the stack parses may crash it, leak or stall it.
local net = require "spec.helpers.net"

-- A line echo; "STATS" answers with the port's mbufs in use and the open
-- connections. A request line that never ends holds its task for 60 s.
local ECHO = [[
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
local function serve(c)
    c:settimeout(60000)
    while true do
        local line = c:receive("*l")
        if not line then break end
        if line == "STATS" then
            local s = dpdk.stats()
            line = ("mbufs %d conns %d"):format(s.ports[1].mbufs_in_use, s.workers[1].tcp_connections)
        end
        if not c:send(line .. "\n") then break end
    end
    c:close()
end
rt:block_on(function()
    local l4, l6 = assert(tcp.listen("*", 7000)), assert(tcp.listen("::", 7000))
    dpdk.spawn(function()
        while true do dpdk.spawn(serve, (assert(l6:accept()))) end
    end)
    print("READY") io.stdout:flush()
    while true do dpdk.spawn(serve, (assert(l4:accept()))) end
end)
]]

local function service(ifname, netno)
    return net.service(ifname, netno, ECHO, { device = {
        addresses = { ("10.%d.0.2/24"):format(netno), ("fd%x::2/64"):format(netno) },
        peer_addresses = { ("10.%d.0.1/24"):format(netno), ("fd%x::1/64"):format(netno) },
    } })
end

-- Python side shared by both tests: a line client with a checked echo.
local CLIENT = [[
import os, random, resource, socket, struct, time
def line(s, text):
    s.sendall(text.encode() + b"\n")
    got = b""
    while not got.endswith(b"\n"):
        b = s.recv(65536)
        assert b, "connection closed by the server"
        got += b
    return got[:-1].decode()
def echo(s, n):
    msg = os.urandom(n).hex()
    assert line(s, msg) == msg, "echo differs"
def stats(addr):
    s = socket.create_connection(addr, timeout=10)
    m, c = line(s, "STATS").split()[1::2]
    s.close()
    return int(m), int(c)
]]

local GARBAGE = CLIENT .. [[
IFACE, DST4, DST6 = "dla0", "10.55.0.2", "fd37::2"
DMAC, SMAC = bytes.fromhex("02d137000002"), bytes.fromhex("020000000055")
SRC4, SRC6 = socket.inet_aton("10.55.0.1"), socket.inet_pton(socket.AF_INET6, "fd37::1")
D4, D6 = socket.inet_aton(DST4), socket.inet_pton(socket.AF_INET6, DST6)
rnd = random.Random(55)
def rb(n): return bytes(rnd.getrandbits(8) for _ in range(n))

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def tcp_seg(src, dst, sport, dport, seq, ack, flags, opts=b"", payload=b"", doff=None, v6=False):
    if len(opts) % 4: opts += b"\1" * (4 - len(opts) % 4)
    off = doff if doff is not None else 5 + len(opts) // 4
    t = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (off & 15) << 4, flags, rnd.getrandbits(16), 0, 0)
    t += opts + payload
    pseudo = src + dst + (struct.pack("!IxxxB", len(t), 6) if v6 else struct.pack("!BBH", 0, 6, len(t)))
    return t[:16] + struct.pack("!H", csum(pseudo + t)) + t[18:]

def ip4(proto, body, ihl=5, tot=None, src=SRC4, opts=b""):
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | (ihl & 15), 0, tot if tot is not None else 20 + len(opts) + len(body),
                    rnd.getrandbits(16), rnd.choice([0, 0x4000, 0x2000, 0x1fff, 0x2001]), 64, proto, 0, src, D4)
    h += opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return DMAC + SMAC + b"\x08\x00" + h + body

def ip6(nxt, body, plen=None):
    h = struct.pack("!IHBB16s16s", 0x60000000, plen if plen is not None else len(body), nxt, 64, SRC6, D6)
    return DMAC + SMAC + b"\x86\xdd" + h + body

def tcp_opts():
    # well-formed, zero-length, over-long, truncated and unknown options
    choices = [b"\2\4\5\xb4", b"\3\3\x0e", b"\4\2", b"\5\x0a" + rb(8), b"\x08\x0a" + rb(8), b"\2\0",
               b"\2\xff", b"\3\1", b"\x1e" + bytes([rnd.randrange(0, 40)]) + rb(rnd.randrange(0, 10)), b"\0", rb(4)]
    return b"".join(rnd.choice(choices) for _ in range(rnd.randrange(0, 6)))[:40]

def garbage(kind):
    if kind == 0:   # random bytes, random ethertype, any length
        return DMAC + SMAC + rb(rnd.randrange(2, 200))
    if kind == 1:   # IPv4 with broken lengths, header sizes, fragments, random protocols
        body = rb(rnd.randrange(0, 80))
        f = ip4(rnd.choice([6, 6, 17, 1, rnd.randrange(256)]), body, ihl=rnd.choice([5, 5, 0, 4, 6, 15]),
                tot=rnd.choice([None, 0, 19, 21, 65535, rnd.randrange(65536)]))
        return f[:rnd.randrange(14, len(f) + 1)]
    if kind == 2:   # TCP with correct checksums: bad data offsets, options, flags, ports
        seg = tcp_seg(SRC4, D4, rnd.randrange(1, 65536), rnd.choice([7000, 7000, rnd.randrange(65536)]),
                      rnd.getrandbits(32), rnd.getrandbits(32), rnd.getrandbits(8), tcp_opts(), rb(rnd.randrange(0, 64)),
                      doff=rnd.choice([None, None, 0, 4, 15]))
        return ip4(6, seg)
    if kind == 3:   # IPv6 extension-header chains, some long, some looping back to themselves
        nxt, body = rnd.choice([6, 59, 58, rnd.randrange(256)]), rb(rnd.randrange(0, 40))
        for _ in range(rnd.randrange(0, 24)):
            h = rnd.choice([0, 43, 44, 60, 51, 50])
            if h == 44:
                body = struct.pack("!BBHI", nxt, 0, rnd.getrandbits(16), rnd.getrandbits(32)) + body
            else:
                n = rnd.randrange(0, 3)
                body = struct.pack("!BB", nxt, n) + rb(6 + 8 * n) + body
            nxt = h
        f = ip6(nxt, body, plen=rnd.choice([None, None, 0, len(body) + 8, rnd.randrange(65536)]))
        return f[:rnd.randrange(54, len(f) + 1)] if rnd.random() < 0.3 else f
    if kind == 4:   # ICMPv4/ICMPv6 of every type, quoting forged headers
        body = bytes([rnd.randrange(256), rnd.randrange(16)]) + b"\0\0" + rb(4) + rb(rnd.randrange(0, 60))
        if rnd.random() < 0.5:
            return ip4(1, body[:2] + struct.pack("!H", csum(body)) + body[4:])
        return ip6(58, body)
    # kind 5: ARP of every opcode from an address nobody uses (never our peer's)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, rnd.randrange(0, 5), SMAC, socket.inet_aton("10.55.0.200"),
                      rb(6), D4 if rnd.random() < 0.5 else rb(4))
    return DMAC + SMAC + b"\x08\x06" + arp[:rnd.randrange(0, len(arp) + 1)]

raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((IFACE, 0))
def connect6():
    # the kernel gives up neighbour discovery after 3 s (EHOSTUNREACH) when the
    # machine is loaded enough to hold back our answer; that is not this test's subject
    for attempt in range(4):
        try:
            return socket.create_connection((DST6, 7000), timeout=10)
        except OSError as e:
            if e.errno != 113 or attempt == 3: raise
bystander = socket.create_connection((DST4, 7000), timeout=10)
bystander6 = connect6()
victim = socket.create_connection((DST4, 7000), timeout=10)
echo(bystander, 1000); echo(bystander6, 1000); echo(victim, 100)
base = stats((DST4, 7000))[0]

# the victim's sequence numbers, for forged segments inside its windows
vport = victim.getsockname()[1]
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
sniff.bind((IFACE, 0)); sniff.settimeout(5)
victim.sendall(b"x" * 10 + b"\n")
srv_seq = our_seq = None
while srv_seq is None:
    f = sniff.recv(2048)
    if f[12:14] == b"\x08\x00" and f[23] == 6 and f[26:30] == D4:
        t = f[14 + (f[14] & 15) * 4:]
        if struct.unpack("!HH", t[:4]) == (7000, vport):
            srv_seq, our_seq = struct.unpack("!II", t[4:12])
sniff.close()
def forged():
    seq = (our_seq + rnd.randrange(-70000, 70000)) & 0xffffffff
    ack = (srv_seq + rnd.randrange(-70000, 70000)) & 0xffffffff
    flags = rnd.choice([0x10, 0x18, 0x11, 0x12, 0x02, 0x04, 0x14, 0x01, rnd.getrandbits(8)])
    return ip4(6, tcp_seg(SRC4, D4, vport, 7000, seq, ack, flags, tcp_opts(), rb(rnd.randrange(0, 1400))))

# What the bystanders' connections carried, for a stall's report: the
# kernel's view of each (ss) and the last segments on the wire.
import subprocess, tempfile, sys
ports = [str(s.getsockname()[1]) for s in (bystander, bystander6)]
cap = tempfile.mktemp(suffix=".pcap", dir=os.path.dirname(os.path.abspath(__file__)))
try:   # tshark's package (scripts/deps.sh); the report goes without it otherwise
    dumpcap = subprocess.Popen(["dumpcap", "-q", "-i", IFACE, "-P", "-w", cap, "-f",
                                " or ".join("tcp port " + p for p in ports)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
except OSError:
    dumpcap = None
def stop_capture():
    if dumpcap: dumpcap.terminate(); dumpcap.wait()
def capture():
    if not dumpcap: return "(no capture: dumpcap is missing)"
    stop_capture()
    try:
        return subprocess.run(["tshark", "-r", cap, "-t", "r", "-o", "tcp.relative_sequence_numbers:FALSE"],
                              capture_output=True, text=True).stdout[-6000:]
    except OSError as e:
        return "(no capture: %r)" % e
def stalled(name, s, rd, e):
    out = ["%s stalled in round %d: %r" % (name, rd, e)]
    out.append(subprocess.run(["ss", "-tinoe", "sport", "= :" + str(s.getsockname()[1])],
                              capture_output=True, text=True).stdout)
    try:
        echo(bystander6 if s is bystander else bystander, 100)
        out.append("the other bystander still echoes")
    except Exception as e2:
        out.append("the other bystander fails too: %r" % e2)
    try:
        out.append("stats (mbufs, conns): %r" % (stats((DST4, 7000)),))
    except Exception as e3:
        out.append("no new connection: %r" % e3)
    time.sleep(1)
    out.append(capture())
    print("\n".join(out), flush=True)
    sys.exit(1)
sent = 0
for round in range(20):
    for _ in range(2500):
        raw.send(garbage(rnd.randrange(6)))
        sent += 1
    for _ in range(500):
        raw.send(forged())
        sent += 1
    for name, s in (("IPv4 bystander", bystander), ("IPv6 bystander", bystander6)):
        try:
            echo(s, rnd.randrange(1, 20000))
        except (socket.timeout, AssertionError) as e:
            stalled(name, s, round, e)
stop_capture()
t0 = time.monotonic()
new = socket.create_connection((DST4, 7000), timeout=5)
echo(new, 5000)
new.close()
served = time.monotonic() - t0
bystander.close(); bystander6.close(); victim.close()
deadline = time.monotonic() + 10
while True:
    mbufs = stats((DST4, 7000))[0]
    if mbufs <= base or time.monotonic() > deadline: break
    time.sleep(0.1)
print("sent %d frames; new client served in %.3f s; mbufs base %d after %d" % (sent, served, base, mbufs))
]]

local SLOWLORIS = CLIENT .. [[
DST = ("10.56.0.2", 7000)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
def served_in():
    t0 = time.monotonic()
    s = socket.create_connection(DST, timeout=10)
    echo(s, 100)
    s.close()
    return time.monotonic() - t0
before = sorted(served_in() for _ in range(5))[2]
idle = []
for i in range(2000):
    s = socket.create_connection(DST, timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: slow")   # a request line that never ends
    idle.append(s)
conns = stats(DST)[1]
during = sorted(served_in() for _ in range(5))[2]
for s in idle: s.close()
print("served in %.4f s before, %.4f s with %d connections open" % (before, during, conns))
]]

describe("garbage from the wire", function()
    -- It stalled the IPv4 bystander in 3 runs of 9 until stack/patches/75: a
    -- truncated ARP packet moved the kernel peer's ARP entry (the next test). A
    -- stall is reported with the kernel's view of the connection (ss) and the
    -- last segments on the wire.
    it("crashes nothing, keeps established streams intact and leaks no mbufs", function()
        local svc = service("dla0", 55)
        finally(svc.stop)
        local rc, out = net.python(GARBAGE, 240)
        assert.are.equal(0, rc, out)
        local sent, took, base, after = out:match(
            "sent (%d+) frames; new client served in ([%d.]+) s; mbufs base (%d+) after (%d+)")
        assert.is_truthy(sent, out)
        assert.is_true(tonumber(sent) >= 60000, out)
        assert.is_true(tonumber(took) < 3, out)
        assert.is_true(tonumber(after) <= tonumber(base), out)
        assert.is_false(svc.proc:exited(), "the service died:\n" .. svc.proc:stderr())
    end)
end)

-- A truncated ARP packet (issue 11, the garbage flood's stall): lwIP read the
-- ARP header without checking the packet's length, so the fields a short frame
-- lacked came from what its mbuf held before. The frames before each one here
-- leave byte 31 at 1, and each ARP reply is cut after "10.74.0" of its
-- sender's address (10.74.0.200): read whole, it says the kernel peer 10.74.0.1
-- moved to another MAC, and every IPv4 frame to the peer went there.
local SHORT_ARP = CLIENT .. [[
IFACE, DST = "dlr0", "10.74.0.2"
DMAC, SMAC = bytes.fromhex("02d14a000002"), bytes.fromhex("020000000074")
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((IFACE, 0))
old = socket.create_connection((DST, 7000), timeout=5)
echo(old, 100)   # the stack now has the peer's ARP entry
filler = DMAC + SMAC + b"\x88\xb5" + bytes(17) + b"\x01" + bytes(28)   # byte 31 is 1; ethertype nobody takes
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, SMAC, socket.inet_aton("10.74.0.200"),
                  SMAC, socket.inet_aton("10.74.0.1"))
short = DMAC + SMAC + b"\x08\x06" + arp[:17]
for _ in range(2000):
    raw.send(filler)
    raw.send(short)
time.sleep(0.2)
echo(old, 100)
new = socket.create_connection((DST, 7000), timeout=5)
echo(new, 100)
print("served after 2000 short ARP packets")
]]

describe("a truncated ARP packet", function()
    it("is dropped: it does not move the peer's ARP entry", function()
        local svc = service("dlr0", 74) -- the line echo the other tests use
        finally(svc.stop)
        local rc, out = net.python(SHORT_ARP, 60)
        assert.are.equal(0, rc, out)
        assert.is_truthy(out:find("served after 2000 short ARP packets", 1, true), out)
        assert.is_false(svc.proc:exited(), "the service died:\n" .. svc.proc:stderr())
    end)
end)

describe("2 000 idle connections (slowloris)", function()
    it("do not keep a new client from being served", function()
        local svc = service("dla1", 56)
        finally(svc.stop)
        local rc, out = net.python(SLOWLORIS, 180)
        assert.are.equal(0, rc, out)
        local before, during, conns = out:match("served in ([%d.]+) s before, ([%d.]+) s with (%d+) connections")
        assert.is_truthy(before, out)
        assert.is_true(tonumber(conns) >= 2000, out)
        -- a failure bound, not a timing claim: a stalled service would not answer at all
        assert.is_true(tonumber(during) < 2, out)
    end)
end)

#!/usr/bin/env python3
"""fuzz/seeds.py — write the seed inputs of fuzz/corpus/frames/ (frames_fuzz.c's
record format: ARP, ICMP echo, IPv6 neighbour solicitation and TCP handshakes
to the harness's listeners on port 80, checksums filled in by the harness) and
fuzz/corpus/tcp/ (tcp_fuzz.c's operations: a request and a reply, out of
order data, a zero window, both closes)."""
import os
import struct

MAC = bytes.fromhex("02d1be000002")
PEER_MAC = bytes.fromhex("02d1be000001")
IP4, PEER4 = bytes([10, 190, 0, 2]), bytes([10, 190, 0, 1])
IP6 = bytes.fromhex("fdbe0000000000000000000000000002")
PEER6 = bytes.fromhex("fdbe0000000000000000000000000001")


def record(frame, ctl=0x20, split=None):
    if split is not None:
        return struct.pack("<BHB", ctl | 0x40, len(frame), split) + frame
    return struct.pack("<BH", ctl, len(frame)) + frame


def eth(dst, ethertype, payload):
    return dst + PEER_MAC + struct.pack("!H", ethertype) + payload


def ip4(proto, payload):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                       PEER4, IP4) + payload


def ip6(nh, payload, src=PEER6, dst=IP6):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 255, src, dst) + payload


def tcp(sport, dport, seq, ack, flags, opts=b"", data=b"", win=65535):
    off = (20 + len(opts)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, 0) + opts + data


SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04
MSS = b"\x02\x04\x05\xb4"
OPTS = MSS + b"\x01\x03\x03\x07" + b"\x04\x02\x01\x01"  # MSS, NOP, wscale 7, SACK ok, NOP NOP

arp = eth(b"\xff" * 6, 0x0806, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER_MAC, PEER4,
                                           b"\0" * 6, IP4))
echo = eth(MAC, 0x0800, ip4(1, struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"ping" * 8))
ns_target = IP6
sol = bytes.fromhex("ff0200000000000000000001ff000002")
ns = eth(bytes.fromhex("3333ff000002"), 0x86dd,
         ip6(58, struct.pack("!BBHI16s", 135, 0, 0, 0, ns_target) + b"\x01\x01" + PEER_MAC,
             dst=sol))
syn4 = eth(MAC, 0x0800, ip4(6, tcp(40000, 80, 1000, 0, SYN, OPTS)))
ack4 = eth(MAC, 0x0800, ip4(6, tcp(40000, 80, 1001, 1, ACK)))
data4 = eth(MAC, 0x0800, ip4(6, tcp(40000, 80, 1001, 1, ACK | PSH, data=b"GET / HTTP/1.0\r\n\r\n")))
fin4 = eth(MAC, 0x0800, ip4(6, tcp(40000, 80, 1019, 1, ACK | FIN)))
syn6 = eth(MAC, 0x86dd, ip6(6, tcp(40001, 80, 5000, 0, SYN, OPTS)))
data6 = eth(MAC, 0x86dd, ip6(6, tcp(40001, 80, 5001, 1, ACK | PSH, data=b"hello")))
rst4 = eth(MAC, 0x0800, ip4(6, tcp(40000, 80, 1001, 0, RST)))

seeds = {
    "arp": record(arp),
    "icmp-echo": record(arp) + record(echo),
    "nd6-ns": record(ns),
    "tcp4-session": record(arp) + record(syn4) + record(ack4) + record(data4, split=40)
    + record(fin4, ctl=0x25),
    "tcp6-session": record(ns) + record(syn6) + record(data6) + record(data6, ctl=0x3f),
    "tcp4-rst": record(syn4) + record(rst4),
    "tcp4-busy-nic": record(arp, ctl=0xa0) + record(syn4, ctl=0xa0) + record(data4, ctl=0xa0),
}


def seg(flags, dseq=0, dack=0, win=0xff, n8=0):
    return bytes([0, flags, dseq & 0xff, dack & 0xff, win, n8])


def send(n):
    return bytes([3, n >> 8, n & 0xff])


def recv(n16):
    return bytes([4, n16])


def clock(ms20, busy=False):
    return bytes([5 | (0x80 if busy else 0), ms20])


def call(which):
    return bytes([6, which])


def ack_all(win=0xff):
    return bytes([7, win])


exchange = seg(0x18, n8=8) + recv(8) + send(3000) + ack_all() + send(100) + ack_all()
tcp_seeds = {
    "echo4": bytes([0]) + exchange + call(0) + seg(0x11) + clock(10),
    "echo6-wrap": bytes([3]) + exchange + seg(0x11) + recv(1) + call(0) + ack_all(),
    "ooseq": bytes([0]) + seg(0x18, dseq=64, n8=4) + seg(0x18, n8=8) + recv(20) + seg(0x18, n8=12)
    + recv(20),
    "zero-window": bytes([0]) + send(20000) + ack_all(0) + clock(250) + clock(250) + ack_all()
    + clock(50, busy=True) + clock(50),
    "connect4": bytes([4]) + exchange + call(1) + seg(0x11) + recv(1) + clock(100),
    "connect6": bytes([5]) + send(2000) + ack_all() + seg(0x18, n8=30) + recv(40) + call(0),
    "rst": bytes([0]) + send(500) + seg(0x04) + recv(1) + call(4),
    "sack": bytes([0]) + send(6000) + bytes([1, 0x10, 10, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                             0, 0xff, 0]) + clock(20) + ack_all(),
}
# Regression inputs (written as regress-<name>): each once made a harness fail.
# ooseq-past-window: the application reads nothing, so 93 segments of 1400
# bytes leave 872 bytes of the 128 KiB first window; a segment 64 bytes ahead
# runs 592 bytes past the window's right edge and is queued out of order; the
# 64 bytes before it fill the hole, and the queued segment was more than the
# window left ("tcp_receive: ooseq tcplen > rcv_wnd", stack/patches/70-*).
tcp_regressions = {
    "ooseq-past-window": bytes([0]) + seg(0x18, n8=175) * 93 + seg(0x18, dseq=64, n8=175)
    + seg(0x18, n8=8) + recv(255) * 34 + ack_all() + clock(10),
}
dirs = {"frames": seeds, "tcp": tcp_seeds}
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
for harness, inputs in dirs.items():
    os.makedirs(os.path.join(root, harness), exist_ok=True)
    for name, data in inputs.items():
        with open(os.path.join(root, harness, "seed-" + name), "wb") as f:
            f.write(data)
for name, data in tcp_regressions.items():
    with open(os.path.join(root, "tcp", "regress-" + name), "wb") as f:
        f.write(data)

/*
 * tcp_fuzz.c — libFuzzer harness: one TCP connection to stack copy 0 (no
 * EAL: fake_dpdk.c) driven by fuzzed segments and application calls.
 *
 * The harness is the peer. It answers ARP and neighbour solicitations,
 * completes the handshake with the stack's real ISN (read from its SYN-ACK),
 * then builds every segment relative to what the stack sent and what the
 * peer sent before, so that most of them land near the window and reach the
 * states a random frame never does (data, out of order, SACK, FIN, zero
 * window, retransmits, close). Two oracles: the bytes the application reads
 * must be the peer's stream (each byte is a function of its sequence number,
 * whatever the segmentation), and every byte the stack sends must be the
 * application's stream at that sequence number (retransmits included).
 *
 * Input: u8 setup (bit 0: IPv6; bit 1: sequence numbers wrap soon; bit 2: the
 * stack connects to the peer instead of accepting the peer's connection), then
 * operations, each one byte (low 3 bits: which) plus its arguments:
 *   0 segment      flags, dseq s8, dack s8, window/256, n, then n payload bytes
 *                  are taken as they are (the payload itself is the stream's)
 *   1 options      flags, optlen, optlen bytes of TCP options, then as 0
 *   2 far segment  flags, seq offset u32, ack offset u32 (anywhere)
 *   3 app send     n u16
 *   4 app recv     n/16
 *   5 clock        ms/20 (the NIC is busy that turn when bit 7 of the op is set)
 *   6 app call     which: close, shutdown_send, nodelay, keepalive, free
 *   7 ack all      window/256
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_dpdk.h"

extern const stack_ops stack_ops_0;
static const stack_ops *const S = &stack_ops_0;

enum { PEER_PORT = 40000, PORT = 80, MAX_REPLIES = 8, MAX_PAYLOAD = 1400 };

static struct {
    bool v6;
    uint16_t stack_port;         /* 80 when it listens; the port it picked when it connects */
    uint32_t peer_isn, peer_nxt; /* the peer's stream starts at peer_isn + 1 */
    uint32_t stack_isn, stack_nxt;
    bool synack;
    uint64_t app_sent, app_read;       /* the two streams, as the application saw them */
    uint8_t replies[MAX_REPLIES][128]; /* ARP/NA answers for the next turn */
    uint32_t reply_len[MAX_REPLIES];
    int n_replies;
} P;

static void fail(const char *what, uint64_t a, uint64_t b)
{
    fprintf(stderr, "tcp_fuzz: %s (%llu, %llu)\n", what, (unsigned long long)a,
            (unsigned long long)b);
    abort();
}

static bool seq_lt(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

/* The streams' bytes, by offset: any segmentation carries the same bytes. */
static uint8_t peer_byte(uint32_t off)
{
    return (uint8_t)(off * 7 + (off >> 8) * 13 + 1);
}

static uint8_t app_byte(uint64_t off)
{
    return (uint8_t)(off * 11 + (off >> 9) * 5 + 3);
}

/* ---- frames ---- */

static size_t eth_header(uint8_t *f, uint16_t type)
{
    memcpy(f, fz_mac, 6);
    memcpy(f + 6, fz_peer_mac, 6);
    f[12] = (uint8_t)(type >> 8);
    f[13] = (uint8_t)type;
    return 14;
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void deliver(uint8_t *f, size_t len)
{
    fz_fix_checksums(f, len);
    struct rte_mbuf *m = fz_frame(f, len, 0);
    if (m)
        S->input(0, &m, 1);
}

static void segment(uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win, const uint8_t *opts,
                    size_t optlen, size_t n)
{
    static uint8_t f[14 + 40 + 60 + MAX_PAYLOAD];
    optlen = (optlen > 40 ? 40 : optlen + 3) & ~(size_t)3;
    if (n > MAX_PAYLOAD)
        n = MAX_PAYLOAD;
    size_t at = eth_header(f, P.v6 ? 0x86dd : 0x0800);
    size_t tcp_len = 20 + optlen + n;
    uint8_t *ip = f + at;
    if (P.v6) {
        memset(ip, 0, 40);
        ip[0] = 0x60;
        put16(ip + 4, (uint32_t)tcp_len);
        ip[6] = 6;
        ip[7] = 64;
        memcpy(ip + 8, fz_peer_ip6, 16);
        memcpy(ip + 24, fz_ip6, 16);
        at += 40;
    } else {
        memset(ip, 0, 20);
        ip[0] = 0x45;
        put16(ip + 2, (uint32_t)(20 + tcp_len));
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 6;
        memcpy(ip + 12, fz_peer_ip4, 4);
        memcpy(ip + 16, fz_ip4, 4);
        at += 20;
    }
    uint8_t *t = f + at;
    memset(t, 0, 20);
    put16(t, PEER_PORT);
    put16(t + 2, P.stack_port);
    put32(t + 4, seq);
    put32(t + 8, ack);
    t[12] = (uint8_t)((20 + optlen) / 4 << 4);
    t[13] = flags;
    put16(t + 14, win);
    memset(t + 20, 1, optlen); /* NOPs, then whatever the input gave */
    if (opts)
        memcpy(t + 20, opts, optlen);
    uint32_t data_seq = seq + ((flags & 0x02) ? 1 : 0);
    for (size_t i = 0; i < n; i++)
        t[20 + optlen + i] = peer_byte(data_seq + (uint32_t)i - P.peer_isn - 1);
    /* What the peer has sent in order so far. */
    uint32_t end = data_seq + (uint32_t)n + ((flags & 0x01) ? 1 : 0);
    if (!seq_lt(P.peer_nxt, seq) && seq_lt(P.peer_nxt, end) && !(flags & 0x04))
        P.peer_nxt = end;
    deliver(f, at + 20 + optlen + n);
}

/* ---- what the stack sends ---- */

static void queue_reply(const uint8_t *f, size_t len)
{
    if (P.n_replies == MAX_REPLIES || len > sizeof P.replies[0])
        return;
    memcpy(P.replies[P.n_replies], f, len);
    P.reply_len[P.n_replies++] = (uint32_t)len;
}

static void answer_arp(const uint8_t *f, uint32_t len)
{
    if (len < 42 || f[21] != 1 || memcmp(f + 38, fz_peer_ip4, 4) != 0)
        return;
    uint8_t r[42];
    eth_header(r, 0x0806);
    memcpy(r + 14, f + 14, 6); /* htype, ptype, hlen, plen */
    r[20] = 0;
    r[21] = 2;
    memcpy(r + 22, fz_peer_mac, 6);
    memcpy(r + 28, fz_peer_ip4, 4);
    memcpy(r + 32, fz_mac, 6);
    memcpy(r + 38, fz_ip4, 4);
    queue_reply(r, sizeof r);
}

static void answer_ns(const uint8_t *f, uint32_t len)
{
    if (len < 14 + 40 + 24 || f[20] != 58 || f[54] != 135 || memcmp(f + 62, fz_peer_ip6, 16) != 0)
        return;
    uint8_t r[14 + 40 + 32];
    eth_header(r, 0x86dd);
    uint8_t *ip = r + 14, *na = r + 54;
    memset(ip, 0, 40 + 32);
    ip[0] = 0x60;
    put16(ip + 4, 32);
    ip[6] = 58;
    ip[7] = 255;
    memcpy(ip + 8, fz_peer_ip6, 16);
    memcpy(ip + 24, fz_ip6, 16);
    na[0] = 136;
    na[4] = 0x60; /* solicited, override */
    memcpy(na + 8, fz_peer_ip6, 16);
    na[24] = 2; /* target link-layer address */
    na[25] = 1;
    memcpy(na + 26, fz_peer_mac, 6);
    queue_reply(r, sizeof r);
}

static void on_tx(const uint8_t *f, uint32_t len)
{
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    if (type == 0x0806) {
        answer_arp(f, len);
        return;
    }
    const uint8_t *t;
    uint32_t tcp_len;
    if (type == 0x0800 && len >= 34 && f[23] == 6) {
        uint32_t ihl = (f[14] & 0xfu) * 4;
        uint32_t total = (uint32_t)(f[16] << 8 | f[17]);
        if (total > len - 14 || total < ihl + 20)
            fail("IPv4 length", total, len);
        t = f + 14 + ihl;
        tcp_len = total - ihl;
    } else if (type == 0x86dd && len >= 54 && f[20] == 6) {
        tcp_len = (uint32_t)(f[18] << 8 | f[19]);
        if (tcp_len > len - 54 || tcp_len < 20)
            fail("IPv6 length", tcp_len, len);
        t = f + 54;
    } else {
        if (type == 0x86dd)
            answer_ns(f, len);
        return;
    }
    uint32_t hl = (uint32_t)(t[12] >> 4) * 4;
    if (hl < 20 || hl > tcp_len)
        fail("TCP header length", hl, tcp_len);
    uint8_t flags = t[13];
    uint32_t seq = get32(t + 4), n = tcp_len - hl;
    if (flags & 0x02) {
        P.stack_port = (uint16_t)(t[0] << 8 | t[1]);
        P.stack_isn = seq;
        P.stack_nxt = seq + 1;
        P.synack = true;
    }
    if (!P.synack || (flags & 0x04))
        return;
    uint32_t data_seq = seq + ((flags & 0x02) ? 1 : 0);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = (uint32_t)(data_seq + i - P.stack_isn - 1);
        if (off >= P.app_sent || t[hl + i] != app_byte(off))
            fail("the stack sent bytes the application did not send there", off, P.app_sent);
    }
    uint32_t end = data_seq + n + ((flags & 0x01) ? 1 : 0);
    if (seq_lt(P.stack_nxt, end))
        P.stack_nxt = end;
}

/* One loop turn, then the answers it asked for (ARP/ND) and their turn. */
static void turn(void)
{
    S->poll();
    for (int round = 0; round < 3 && P.n_replies; round++) {
        int n = P.n_replies;
        P.n_replies = 0;
        static uint8_t r[MAX_REPLIES][128];
        static uint32_t rl[MAX_REPLIES];
        memcpy(r, P.replies, sizeof r);
        memcpy(rl, P.reply_len, sizeof rl);
        for (int i = 0; i < n; i++)
            deliver(r[i], rl[i]);
        S->poll();
    }
}

/* ---- the application side ---- */

static void app_send(dl_conn *c, size_t n)
{
    static uint8_t buf[65536];
    if (n > sizeof buf)
        n = sizeof buf;
    for (size_t i = 0; i < n; i++)
        buf[i] = app_byte(P.app_sent + i);
    size_t sent = 0;
    int err;
    S->send(c, (const char *)buf, n, &sent, 3, &err);
    if (sent > n)
        fail("send took more than it was given", sent, n);
    P.app_sent += sent;
}

static void app_recv(dl_conn *c, size_t n)
{
    static uint8_t buf[4096];
    if (n > sizeof buf)
        n = sizeof buf;
    size_t got = 0;
    int err;
    if (S->recv(c, (char *)buf, n, &got, 2, &err) != DL_OK)
        return;
    if (got > n)
        fail("recv returned more than asked", got, n);
    for (size_t i = 0; i < got; i++)
        if (buf[i] != peer_byte((uint32_t)(P.app_read + i)))
            fail("the application read bytes the peer did not send there", P.app_read + i, got);
    P.app_read += got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    memset(&P, 0, sizeof P);
    P.v6 = data[0] & 1;
    P.peer_isn = data[0] & 2 ? 0xffffff00u : 0x10000000u;
    P.peer_nxt = P.peer_isn;
    fz_start(S);
    fz_tx_hook = on_tx;
    P.stack_port = PORT;
    int err = 0;
    uint8_t any[16] = {0};
    dl_conn *l = NULL, *c = NULL;
    static const uint8_t syn_opts[] = {2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1};
    if (data[0] & 4) {
        /* Active open: the stack's SYN, the peer's SYN-ACK. */
        uint8_t peer[16] = {0};
        memcpy(peer, P.v6 ? fz_peer_ip6 : fz_peer_ip4, P.v6 ? 16 : 4);
        c = S->conn_new(P.v6 ? 6 : 4, &err);
        if (!c || S->connect(c, peer, PEER_PORT, 1, &err) == DL_ERROR)
            fail("connect", (uint64_t)err, 0);
        turn();
        if (!P.synack)
            fail("no SYN", 0, 0);
        segment(0x12, P.peer_isn, P.stack_isn + 1, 65535, syn_opts, sizeof syn_opts, 0);
        turn();
        if (S->connect(c, peer, PEER_PORT, 1, &err) != DL_OK)
            fail("connect did not complete", (uint64_t)err, 0);
    } else {
        l = S->conn_new(P.v6 ? 6 : 4, &err);
        if (!l || S->bind(l, any, PORT, &err) != DL_OK || S->listen(l, 4, &err) != DL_OK)
            fail("listen", (uint64_t)err, 0);
        segment(0x02, P.peer_isn, 0, 65535, syn_opts, sizeof syn_opts, 0);
        turn();
        if (!P.synack)
            fail("no SYN-ACK", 0, 0);
        segment(0x10, P.peer_isn + 1, P.stack_isn + 1, 65535, NULL, 0, 0);
        turn();
        if (S->accept(l, &c, 1, &err) != DL_OK || !c)
            fail("accept", (uint64_t)err, 0);
    }

    size_t at = 1;
#define ARG() (at < size ? data[at++] : 0)
    while (at < size) {
        uint8_t op = data[at++];
        switch (op & 7) {
        case 0:
        case 1: {
            uint8_t flags = ARG();
            uint8_t opts[40];
            size_t optlen = 0;
            if ((op & 7) == 1) {
                optlen = ARG() % 41;
                for (size_t i = 0; i < optlen; i++)
                    opts[i] = ARG();
            }
            int8_t dseq = (int8_t)ARG(), dack = (int8_t)ARG();
            uint16_t win = (uint16_t)(ARG() << 8 | 0xff);
            size_t n = (size_t)ARG() * 8;
            segment(flags, P.peer_nxt + (uint32_t)(int32_t)dseq,
                    P.stack_nxt + (uint32_t)(int32_t)dack, win, optlen ? opts : NULL, optlen, n);
            break;
        }
        case 2: {
            uint8_t flags = ARG();
            uint32_t dseq = 0, dack = 0;
            for (int i = 0; i < 4; i++)
                dseq = dseq << 8 | ARG();
            for (int i = 0; i < 4; i++)
                dack = dack << 8 | ARG();
            segment(flags, P.peer_nxt + dseq, P.stack_nxt + dack, 65535, NULL, 0, ARG());
            break;
        }
        case 3: {
            size_t n = (size_t)ARG() << 8;
            n |= ARG();
            if (c)
                app_send(c, n);
            break;
        }
        case 4:
            if (c)
                app_recv(c, (size_t)ARG() * 16 + 1);
            break;
        case 5:
            fz_now += (uint32_t)ARG() * 20;
            fz_tx_room = op & 0x80 ? 0 : -1;
            break;
        case 6: {
            uint8_t which = ARG() % 5;
            if (!c)
                break;
            if (which == 0)
                S->close(c, &err);
            else if (which == 1)
                S->shutdown_send(c, &err);
            else if (which == 2)
                S->setopt(c, DL_OPT_NODELAY, 1, &err);
            else if (which == 3)
                S->setopt(c, DL_OPT_KEEPALIVE, 1, &err);
            else {
                S->conn_free(c);
                c = NULL;
            }
            break;
        }
        case 7:
            segment(0x10, P.peer_nxt, P.stack_nxt, (uint16_t)(ARG() << 8 | 0xff), NULL, 0, 0);
            break;
        }
        turn();
        fz_tx_room = -1;
    }
#undef ARG
    /* The rest of the connection's life: retransmits, FIN-wait, TIME_WAIT. */
    for (int i = 0; i < 8; i++) {
        fz_now += 500;
        turn();
    }
    fz_stop(S);
    fz_tx_hook = NULL;
    if (c)
        S->conn_free(c);
    if (l)
        S->conn_free(l);
    return 0;
}

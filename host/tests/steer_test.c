/*
 * steer_test.c — the flow → worker function (host/steer.c) checked without
 * a runtime: the Toeplitz layout against Microsoft's published RSS vectors,
 * the hash against DPDK's second implementation (rte_softrss_be with a
 * converted key), the symmetry of the key, the local-port shortcut that
 * connect() uses, and frame classification. Run by spec/steering_spec.lua.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <rte_thash.h>

#include "runtime.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* Microsoft's "Verifying the RSS Hash Calculation" key and vectors (also in
 * DPDK's app/test/test_thash.c). */
static const uint8_t ms_key[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

static const struct {
    const char *dst, *src;
    uint16_t dport, sport;
    uint32_t l3, l4;
} v4[] = {
    {"161.142.100.80", "66.9.149.187", 1766, 2794, 0x323e8fc2, 0x51ccc178},
    {"65.69.140.83", "199.92.111.2", 4739, 14230, 0xd718262a, 0xc626b0ea},
    {"12.22.207.184", "24.19.198.95", 38024, 12898, 0xd2d0a5de, 0x5c2b394a},
    {"209.142.163.6", "38.27.205.30", 2217, 48228, 0x82989176, 0xafc7327f},
    {"202.188.127.2", "153.39.163.191", 1303, 44251, 0x5d1809c5, 0x10e828a2},
};

static const struct {
    const char *dst, *src;
    uint16_t dport, sport;
    uint32_t l3, l4;
} v6[] = {
    {"3ffe:2501:200:3::1", "3ffe:2501:200:1fff::7", 1766, 2794, 0x2cc18cd5, 0x40207d3d},
    {"ff02::1", "3ffe:501:8::260:97ff:fe40:efab", 4739, 14230, 0x0f0c461c, 0xdde51bbf},
    {"fe80::200:f8ff:fe21:67cf", "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 38024, 44251, 0x4b61e985,
     0x02d1feef},
};

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void fill(uint8_t *p, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

/* An Ethernet + IP + TCP header (no payload) from src:sport to dst:dport. */
static uint32_t tcp_frame(uint8_t *f, int family, const uint8_t *src, const uint8_t *dst,
                          uint16_t sport, uint16_t dport)
{
    memset(f, 0, 128);
    uint8_t *ip = f + 14;
    uint8_t *tcp;
    if (family == 4) {
        f[12] = 0x08, f[13] = 0x00;
        ip[0] = 0x45, ip[9] = 6;
        memcpy(ip + 12, src, 4);
        memcpy(ip + 16, dst, 4);
        tcp = ip + 20;
    } else {
        f[12] = 0x86, f[13] = 0xdd;
        ip[0] = 0x60, ip[6] = 6;
        memcpy(ip + 8, src, 16);
        memcpy(ip + 24, dst, 16);
        tcp = ip + 40;
    }
    tcp[0] = (uint8_t)(sport >> 8), tcp[1] = (uint8_t)sport;
    tcp[2] = (uint8_t)(dport >> 8), tcp[3] = (uint8_t)dport;
    return (uint32_t)(tcp + 20 - f);
}

int main(void)
{
    /* 1. the tuple layout, against the published vectors */
    for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++) {
        uint8_t s[4], d[4];
        inet_pton(AF_INET, v4[i].src, s);
        inet_pton(AF_INET, v4[i].dst, d);
        uint32_t h = dl_toeplitz(ms_key, 4, s, d, v4[i].sport, v4[i].dport);
        CHECK(h == v4[i].l4, "v4 vector %zu: %08x != %08x", i, h, v4[i].l4);
    }
    for (size_t i = 0; i < sizeof v6 / sizeof v6[0]; i++) {
        uint8_t s[16], d[16];
        inet_pton(AF_INET6, v6[i].src, s);
        inet_pton(AF_INET6, v6[i].dst, d);
        uint32_t h = dl_toeplitz(ms_key, 6, s, d, v6[i].sport, v6[i].dport);
        CHECK(h == v6[i].l4, "v6 vector %zu: %08x != %08x", i, h, v6[i].l4);
    }

    /* 2. our key: the same as DPDK's other implementation; 3. symmetric */
    uint8_t be_key[40];
    rte_convert_rss_key((const uint32_t *)dl_steer_key, (uint32_t *)be_key, sizeof be_key);
    for (int i = 0; i < 100000; i++) {
        int family = i & 1 ? 6 : 4, alen = family == 6 ? 16 : 4;
        uint8_t a[16], b[16];
        fill(a, alen);
        fill(b, alen);
        uint16_t pa = (uint16_t)rnd(), pb = (uint16_t)rnd();
        uint32_t h = dl_steer_hash(family, a, b, pa, pb);
        union rte_thash_tuple t;
        uint32_t be[RTE_THASH_V6_L4_LEN];
        memset(&t, 0, sizeof t);
        if (family == 4) {
            memcpy(&be[0], a, 4);
            memcpy(&be[1], b, 4);
            be[2] = htonl((uint32_t)pa << 16 | pb); /* as on the wire */
            for (int k = 0; k < 3; k++)
                be[k] = ntohl(be[k]);
            uint32_t h2 = rte_softrss_be(be, RTE_THASH_V4_L4_LEN, be_key);
            CHECK(h == h2, "v4 softrss_be %08x != %08x", h, h2);
        } else {
            memcpy(&be[0], a, 16);
            memcpy(&be[4], b, 16);
            for (int k = 0; k < 8; k++)
                be[k] = ntohl(be[k]);
            be[8] = (uint32_t)pa << 16 | pb;
            uint32_t h2 = rte_softrss_be(be, RTE_THASH_V6_L4_LEN, be_key);
            CHECK(h == h2, "v6 softrss_be %08x != %08x", h, h2);
        }
        uint32_t back = dl_steer_hash(family, b, a, pb, pa);
        CHECK(h == back, "not symmetric: %08x != %08x", h, back);
        if (failures > 10)
            break;
    }

    /* 4. connect's shortcut, and 5. classification of the answers */
    for (int n = 2; n <= 4; n++) {
        dl_steer s;
        dl_steer_init(&s, n);
        const stack_steer *p = &s.pub;
        for (int i = 0; i < 2000; i++) {
            int family = i & 1 ? 6 : 4, alen = family == 6 ? 16 : 4;
            uint8_t local[16], remote[16], frame[128];
            fill(local, alen);
            fill(remote, alen);
            uint16_t rport = (uint16_t)rnd();
            int want = (int)(rnd() % (uint32_t)n);
            uint32_t base = p->hash(family, remote, local, rport, 0);
            const uint8_t *bits = family == 6 ? p->port_bits6 : p->port_bits4;
            int tries = 0;
            uint16_t lport = (uint16_t)(0xc000 + rnd() % 0x4000);
            while (p->reta[(base ^ bits[lport]) & p->reta_mask] != want) {
                lport = (uint16_t)(0xc000 + (lport + 1 - 0xc000) % 0x4000);
                tries++;
            }
            CHECK(tries < 64, "%d tries to find a port", tries);
            /* the peer's answer and our own packets land on `want` */
            uint32_t len = tcp_frame(frame, family, remote, local, rport, lport);
            int o = dl_steer_classify_frame(&s, frame, len);
            CHECK(o == want, "n=%d: answer to port %u classified %d, chosen for %d", n, lport, o,
                  want);
            len = tcp_frame(frame, family, local, remote, lport, rport);
            o = dl_steer_classify_frame(&s, frame, len);
            CHECK(o == want, "n=%d: own frame classified %d, not %d", n, o, want);
            if (failures > 10)
                break;
        }
        /* ARP and neighbour discovery reach everyone; others stay */
        uint8_t f[128] = {0};
        f[12] = 0x08, f[13] = 0x06;
        CHECK(dl_steer_classify_frame(&s, f, 42) == DL_STEER_ALL, "ARP");
        f[12] = 0x86, f[13] = 0xdd, f[14 + 6] = 58, f[14 + 40] = 135;
        CHECK(dl_steer_classify_frame(&s, f, 78) == DL_STEER_ALL, "NS");
        f[14 + 40] = 136;
        CHECK(dl_steer_classify_frame(&s, f, 78) == DL_STEER_ALL, "NA");
        f[14 + 40] = 128; /* echo request: one worker by its addresses */
        int o = dl_steer_classify_frame(&s, f, 78);
        CHECK(o >= 0 && o < n, "echo %d", o);
        f[12] = 0x88, f[13] = 0xcc; /* LLDP */
        CHECK(dl_steer_classify_frame(&s, f, 60) == DL_STEER_HERE, "LLDP");
    }
    if (failures) {
        printf("steer_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("steer_test: ok\n");
    return 0;
}

/*
 * ring_link.c — two stack copies back to back over a net_ring pair, driven
 * directly through stack_ops (no runtime, no kernel): copy 1 listens, copy 0
 * connects and sends 32 MiB over IPv4 and IPv6; the content is hashed on both
 * sides and the receiver's frame sizes show the MSS the MTU allows.
 *
 * It exercises what the vdevs of a runtime cannot on this machine: DPDK
 * 22.11's net_tap/net_memif refuse MTUs over 1504, net_ring takes 9001.
 *   MTU=9001 (default) or MTU=1500; SPLIT=1 chains every received frame
 *   into two mbufs (multi-segment RX).
 * Prints one line per transfer and exits non-zero on any failure.
 * Built by `make ring-link` (build/stack/ring_link); spec/tcp_stack_spec.lua runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "stack.h"

extern const stack_ops stack_ops_0, stack_ops_1;
static const stack_ops *S[2] = {&stack_ops_0, &stack_ops_1};

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t wakes;
static void wake(void *w, uint32_t t, int64_t a)
{
    (void)w;
    (void)t;
    (void)a;
    wakes++;
}
static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}
static void slog(int level, const char *msg)
{
    if (level <= DL_LOG_WARN)
        fprintf(stderr, "[lwip %d] %s\n", level, msg);
}

static uint16_t pid[2];
static bool split;
static uint64_t splits;
static uint64_t frames[2], bytes[2], maxframe[2]; /* received by copy i */

static void turn(void)
{
    struct rte_mbuf *rx[32];
    for (int i = 0; i < 2; i++) {
        uint16_t n = rte_eth_rx_burst(pid[i], 0, rx, 32);
        for (uint16_t k = 0; k < n; k++) {
            frames[i]++;
            bytes[i] += rx[k]->pkt_len;
            if (rx[k]->pkt_len > maxframe[i])
                maxframe[i] = rx[k]->pkt_len;
        }
        if (split) /* multi-segment frames: head keeps 300 bytes, the rest in a chained mbuf */
            for (uint16_t k = 0; k < n; k++) {
                struct rte_mbuf *m = rx[k];
                if (m->pkt_len <= 600)
                    continue;
                struct rte_mbuf *t = rte_pktmbuf_alloc(m->pool);
                CHECK(t, "alloc");
                uint16_t rest = (uint16_t)(m->data_len - 300);
                memcpy(rte_pktmbuf_append(t, rest), rte_pktmbuf_mtod_offset(m, char *, 300), rest);
                rte_pktmbuf_trim(m, rest);
                CHECK(rte_pktmbuf_chain(m, t) == 0, "chain");
                splits++;
            }
        if (n)
            S[i]->input(0, rx, n);
    }
    S[0]->poll();
    S[1]->poll();
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void transfer(int family, const char *dst, size_t total)
{
    int err = 0;
    uint8_t any[16] = {0}, a[16] = {0};
    inet_pton(family == 6 ? AF_INET6 : AF_INET, dst, a);
    dl_conn *l = S[1]->conn_new(family, &err);
    CHECK(S[1]->bind(l, any, 5000, &err) == DL_OK && S[1]->listen(l, 8, &err) == DL_OK, "listen %d",
          err);
    dl_conn *c = S[0]->conn_new(family, &err);
    int rc = S[0]->connect(c, a, 5000, 1, &err);
    while (rc == DL_AGAIN) {
        turn();
        rc = S[0]->connect(c, a, 5000, 1, &err);
    }
    CHECK(rc == DL_OK, "connect err %d", err);
    dl_conn *s = NULL;
    while (S[1]->accept(l, &s, 2, &err) == DL_AGAIN)
        turn();
    CHECK(s, "accept");
    static unsigned char out[1 << 16], in[1 << 16];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 131 + 7);
    uint64_t f0 = frames[1], b0 = bytes[1];
    size_t sent = 0, got = 0;
    uint64_t hs = 0xcbf29ce484222325ULL, hr = hs;
    bool shut = false, eof = false;
    uint32_t t0 = now_ms();
    while (!eof) {
        if (sent < total) {
            size_t want = total - sent < sizeof out - 7 ? total - sent : sizeof out - 7;
            size_t k = 0;
            if (S[0]->send(c, (char *)out + (sent % 7), want, &k, 3, &err) == DL_ERROR)
                CHECK(0, "send err %d", err);
            hs = fnv(hs, out + (sent % 7), k);
            sent += k;
        } else if (!shut) {
            CHECK(S[0]->shutdown_send(c, &err) == DL_OK, "shutdown %d", err);
            shut = true;
        }
        size_t k = 0;
        size_t rb = getenv("RBUF") ? (size_t)atoi(getenv("RBUF")) : sizeof in;
        rc = S[1]->recv(s, (char *)in, rb, &k, 4, &err);
        CHECK(rc != DL_ERROR, "recv err %d", err);
        if (rc == DL_OK && k == 0)
            eof = true;
        if (rc == DL_OK) {
            hr = fnv(hr, in, k);
            got += k;
        }
        turn();
        CHECK(now_ms() - t0 < 30000, "timeout sent %zu got %zu", sent, got);
    }
    uint32_t ms = now_ms() - t0;
    uint64_t nf = frames[1] - f0, nb = bytes[1] - b0;
    printf("IPv%d %s: %zu bytes sent, %zu received, hash %s, %u ms, %lu frames to the receiver, "
           "avg %lu B, max %lu B\n",
           family, dst, sent, got, hs == hr && sent == got ? "OK" : "MISMATCH", ms,
           (unsigned long)nf, (unsigned long)(nf ? nb / nf : 0), (unsigned long)maxframe[1]);
    CHECK(hs == hr && sent == got, "content differs");
    S[0]->close(c, &err);
    S[0]->conn_free(c);
    S[1]->close(s, &err);
    S[1]->conn_free(s);
    S[1]->conn_free(l);
    for (int i = 0; i < 200; i++)
        turn();
}

int main(int argc, char **argv)
{
    (void)argc;
    int mtu = getenv("MTU") ? atoi(getenv("MTU")) : 9001;
    split = getenv("SPLIT") != NULL;
    char prefix[64];
    /* dpdklua's naming: a dpdklua process removes the directory if this one dies */
    snprintf(prefix, sizeof prefix, "--file-prefix=dpdklua-%d", getpid());
    char *eal[] = {argv[0],          "--no-huge", "-m", "512", "--no-pci",
                   "--no-telemetry", prefix,      "-l", "0",   "--log-level=5"};
    CHECK(rte_eal_init(10, eal) >= 0, "eal");
    unsigned room = (unsigned)mtu + 26 + RTE_PKTMBUF_HEADROOM;
    if (room < RTE_MBUF_DEFAULT_BUF_SIZE)
        room = RTE_MBUF_DEFAULT_BUF_SIZE;
    struct rte_mempool *pool = rte_pktmbuf_pool_create("rp", 4096, 256, 64, (uint16_t)room, 0);
    CHECK(pool, "pool");
    struct rte_ring *r01 = rte_ring_create("r01", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    struct rte_ring *r10 = rte_ring_create("r10", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    int p0 = rte_eth_from_rings("ringA", &r10, 1, &r01, 1, 0); /* rx from r10, tx to r01 */
    int p1 = rte_eth_from_rings("ringB", &r01, 1, &r10, 1, 0);
    CHECK(p0 >= 0 && p1 >= 0, "from_rings");
    pid[0] = (uint16_t)p0;
    pid[1] = (uint16_t)p1;
    static dl_device_config dev[2];
    stack_env env = {.wake = wake, .now_ms = now_ms, .log = slog};
    for (int i = 0; i < 2; i++) {
        struct rte_eth_conf conf;
        memset(&conf, 0, sizeof conf);
        CHECK(rte_eth_dev_configure(pid[i], 1, 1, &conf) == 0, "conf");
        CHECK(rte_eth_rx_queue_setup(pid[i], 0, 512, 0, NULL, pool) == 0, "rxq");
        CHECK(rte_eth_tx_queue_setup(pid[i], 0, 512, 0, NULL) == 0, "txq");
        CHECK(rte_eth_dev_start(pid[i]) == 0, "start");
        dev[i].mtu = mtu;
        dev[i].n_addresses = 2;
        dev[i].addresses[0].family = 4;
        dev[i].addresses[0].prefix = 24;
        char s[64];
        snprintf(s, sizeof s, "10.88.0.%d", i + 1);
        inet_pton(AF_INET, s, dev[i].addresses[0].addr);
        dev[i].addresses[1].family = 6;
        dev[i].addresses[1].prefix = 64;
        snprintf(s, sizeof s, "fd88::%d", i + 1);
        inet_pton(AF_INET6, s, dev[i].addresses[1].addr);
        env.worker_index = i;
        CHECK(S[i]->init(&env) == DL_OK, "init");
        stack_port sp = {
            .index = 0, .port_id = pid[i], .queue = 0, .pool = pool, .mtu = mtu, .dev = &dev[i]};
        uint8_t mac[6] = {0x02, 0, 0, 0, 0x88, (uint8_t)(i + 1)};
        memcpy(sp.mac, mac, 6);
        CHECK(S[i]->add_port(&sp) == DL_OK, "add_port");
    }
    printf("mtu %d\n", mtu);
    transfer(4, "10.88.0.2", 32u << 20);
    transfer(6, "fd88::2", 32u << 20);
    printf("split frames: %lu\n", (unsigned long)splits);
    S[0]->shutdown();
    S[1]->shutdown();
    /* net_ring holds no mbufs of its own: every one must be back */
    unsigned avail = rte_mempool_avail_count(pool);
    printf("pool: %u of 4096 mbufs back after shutdown\n", avail);
    CHECK(avail == 4096, "%u mbufs leaked", 4096 - avail);
    printf("ring_link: ok\n");
    rte_eal_cleanup();
    char cmd[128]; /* --no-huge leaves the EAL's runtime directory behind */
    snprintf(cmd, sizeof cmd, "rm -rf /var/run/dpdk/dpdklua-%d", getpid());
    return system(cmd) == 0 ? 0 : 1;
}

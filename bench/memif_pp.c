/*
 * memif_pp.c — the raw memif anchor: two DPDK processes joined by net_memif,
 * no TCP stack. One reflects every frame it receives; the other sends one
 * 64-byte frame at a time and times the round trip (ping), or keeps a window
 * of frames in flight and counts frames per second (flood).
 *
 *   memif_pp <EAL args> -- reflect
 *   memif_pp <EAL args> -- ping  <round trips>
 *   memif_pp <EAL args> -- flood <seconds> [window]
 *
 * Prints one line of key=value pairs (bench/run.lua parses it).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

enum { BURST = 32, FRAME = 64 };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static struct rte_mbuf *frame(struct rte_mempool *mp)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
    if (!m)
        return NULL;
    char *p = rte_pktmbuf_append(m, FRAME);
    if (!p) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    memset(p, 0, FRAME);
    memset(p, 0xff, 6); /* broadcast; the reflector does not look */
    p[12] = 0x88;       /* local experimental ethertype */
    p[13] = 0xb5;
    return m;
}

static int setup_port(uint16_t port, struct rte_mempool *mp)
{
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
        rte_eth_rx_queue_setup(port, 0, 1024, rte_socket_id(), NULL, mp) != 0 ||
        rte_eth_tx_queue_setup(port, 0, 1024, rte_socket_id(), NULL) != 0 ||
        rte_eth_dev_start(port) != 0)
        return -1;
    return 0;
}

static int wait_link(uint16_t port, double seconds)
{
    uint64_t hz = rte_get_tsc_hz(), end = rte_rdtsc() + (uint64_t)(seconds * (double)hz);
    struct rte_eth_link link;
    while (rte_rdtsc() < end && !stop) {
        if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status)
            return 0;
        rte_delay_ms(1);
    }
    return -1;
}

static int reflect(uint16_t port)
{
    struct rte_mbuf *pkts[BURST];
    uint64_t frames = 0;
    while (!stop) {
        uint16_t n = rte_eth_rx_burst(port, 0, pkts, BURST);
        if (n == 0)
            continue;
        uint16_t sent = rte_eth_tx_burst(port, 0, pkts, n);
        if (sent < n)
            rte_pktmbuf_free_bulk(pkts + sent, n - sent);
        frames += n;
    }
    printf("reflected=%llu\n", (unsigned long long)frames);
    return 0;
}

static int ping(uint16_t port, struct rte_mempool *mp, long n)
{
    uint64_t *rtt = calloc((size_t)n, sizeof *rtt);
    struct rte_mbuf *pkts[BURST];
    long warm = n / 10;
    for (long i = -warm; i < n && !stop; i++) {
        struct rte_mbuf *m = frame(mp);
        uint64_t t0 = rte_rdtsc();
        if (!m || rte_eth_tx_burst(port, 0, &m, 1) != 1) {
            fprintf(stderr, "memif_pp: tx failed\n");
            return 1;
        }
        uint16_t got = 0;
        uint64_t limit = t0 + rte_get_tsc_hz();
        while (got == 0) {
            got = rte_eth_rx_burst(port, 0, pkts, BURST);
            if (rte_rdtsc() > limit) {
                fprintf(stderr, "memif_pp: no reply within 1 s\n");
                return 1;
            }
        }
        uint64_t t1 = rte_rdtsc();
        rte_pktmbuf_free_bulk(pkts, got);
        if (i >= 0)
            rtt[i] = t1 - t0;
    }
    qsort(rtt, (size_t)n, sizeof *rtt, cmp_u64);
    double us = 1e6 / (double)rte_get_tsc_hz();
    printf("n=%ld p50_us=%.3f p99_us=%.3f min_us=%.3f\n", n, (double)rtt[n / 2] * us,
           (double)rtt[n * 99 / 100] * us, (double)rtt[0] * us);
    free(rtt);
    return 0;
}

/* Frames per second through the reflector with `window` frames in flight:
 * the ceiling of a memif pair on this machine. */
static int flood(uint16_t port, struct rte_mempool *mp, double seconds, int window)
{
    struct rte_mbuf *pkts[BURST];
    uint64_t hz = rte_get_tsc_hz(), t0 = rte_rdtsc(), end = t0 + (uint64_t)(seconds * (double)hz);
    uint64_t back = 0;
    int inflight = 0;
    while (rte_rdtsc() < end && !stop) {
        while (inflight < window) {
            int k = window - inflight < BURST ? window - inflight : BURST;
            for (int i = 0; i < k; i++)
                pkts[i] = frame(mp);
            uint16_t sent = rte_eth_tx_burst(port, 0, pkts, (uint16_t)k);
            if (sent < k)
                rte_pktmbuf_free_bulk(pkts + sent, (unsigned)(k - sent));
            inflight += sent;
            if (sent < k)
                break;
        }
        uint16_t got = rte_eth_rx_burst(port, 0, pkts, BURST);
        rte_pktmbuf_free_bulk(pkts, got);
        inflight -= got;
        back += got;
    }
    double s = (double)(rte_rdtsc() - t0) / (double)hz;
    printf("frames=%llu seconds=%.3f mpps=%.3f\n", (unsigned long long)back, s,
           (double)back / s / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    int used = rte_eal_init(argc, argv);
    if (used < 0) {
        fprintf(stderr, "memif_pp: rte_eal_init failed\n");
        return 1;
    }
    argc -= used;
    argv += used;
    if (argc < 2) {
        fprintf(stderr,
                "usage: memif_pp <EAL args> -- reflect | ping N | flood SECONDS [WINDOW]\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (rte_eth_dev_count_avail() < 1) {
        fprintf(stderr, "memif_pp: no port (give --vdev=net_memif...)\n");
        return 1;
    }
    struct rte_mempool *mp =
        rte_pktmbuf_pool_create("pp", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
    if (!mp || setup_port(0, mp) != 0) {
        fprintf(stderr, "memif_pp: port setup failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    int rc;
    if (strcmp(argv[1], "reflect") == 0) {
        printf("READY\n");
        fflush(stdout);
        rc = reflect(0);
    } else {
        if (wait_link(0, 10) != 0) {
            fprintf(stderr, "memif_pp: link did not come up\n");
            return 1;
        }
        if (strcmp(argv[1], "ping") == 0)
            rc = ping(0, mp, argc > 2 ? atol(argv[2]) : 100000);
        else
            rc = flood(0, mp, argc > 2 ? atof(argv[2]) : 2, argc > 3 ? atoi(argv[3]) : 256);
    }
    fflush(stdout);
    rte_eth_dev_stop(0);
    rte_eth_dev_close(0);
    rte_eal_cleanup();
    return rc;
}

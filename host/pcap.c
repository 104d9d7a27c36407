/*
 * pcap.c — DPDKLUA_PCAP=file: every frame the runtime's ports receive and
 * send, written as pcapng (DPDK's librte_pcapng) that tshark / Wireshark read.
 *
 * Each worker copies the frames of its own bursts into the capture pool
 * (rte_pcapng_copy adds the pcapng block around them) and writes them; one
 * lock keeps the writes of several workers whole. Off (no DPDKLUA_PCAP), the
 * cost is one predictable branch per RX burst (host/worker.c) and per TX
 * burst (stack/netif_dpdk.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pcapng.h>

#include "runtime.h"

/* The capture pool: frames copied, not yet written (each worker writes its
 * copies before its burst ends, so a few bursts' worth is plenty). */
enum { PCAP_POOL_SIZE = 2048, PCAP_POOL_CACHE = 32, DL_TX_CAPTURE = 64 };

struct dl_pcap {
    rte_pcapng_t *out;
    struct rte_mempool *pool;
    uint32_t snaplen;
    pthread_mutex_t lock;
    char path[4096];
};

int dl_pcap_open(dl_runtime *rt)
{
    const char *path = getenv("DPDKLUA_PCAP");
    if (!path || !*path || rt->n_ports == 0)
        return DL_OK;
    dl_pcap *pc = calloc(1, sizeof *pc);
    if (!pc)
        return dl_fail("DPDKLUA_PCAP: out of memory");
    snprintf(pc->path, sizeof pc->path, "%s", path);
    pthread_mutex_init(&pc->lock, NULL);
    int mtu = 0;
    for (int i = 0; i < rt->n_ports; i++)
        if (rt->ports[i].mtu > mtu)
            mtu = rt->ports[i].mtu;
    pc->snaplen = (uint32_t)mtu + 14 + 4 + 4; /* Ethernet header, VLAN tag, FCS */
    char name[RTE_MEMPOOL_NAMESIZE];
    snprintf(name, sizeof name, "dl%d_pcap", rt->seq);
    uint32_t room = rte_pcapng_mbuf_size(pc->snaplen);
    pc->pool =
        rte_pktmbuf_pool_create(name, PCAP_POOL_SIZE, PCAP_POOL_CACHE, 0,
                                (uint16_t)(room > UINT16_MAX ? UINT16_MAX : room), SOCKET_ID_ANY);
    if (!pc->pool) {
        free(pc);
        return dl_fail("DPDKLUA_PCAP=%s: cannot create the capture pool (%d mbufs of %u bytes): "
                       "%s; give the EAL more memory (-m) or unset DPDKLUA_PCAP",
                       path, PCAP_POOL_SIZE, room, rte_strerror(rte_errno));
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        rte_mempool_free(pc->pool);
        free(pc);
        return dl_fail("DPDKLUA_PCAP=%s: cannot create the capture file: %s", path, strerror(err));
    }
    struct utsname u;
    char os[256] = "Linux", app[64];
    if (uname(&u) == 0)
        snprintf(os, sizeof os, "%s %s", u.sysname, u.release);
    snprintf(app, sizeof app, "dpdklua %s", dl_version());
    /* writes an interface block for every ethdev port: ours exist by now */
    pc->out = rte_pcapng_fdopen(fd, os, NULL, app, NULL);
    if (!pc->out) {
        close(fd);
        rte_mempool_free(pc->pool);
        free(pc);
        return dl_fail("DPDKLUA_PCAP=%s: cannot start the pcapng file: %s", path,
                       rte_strerror(rte_errno));
    }
    rt->pcap = pc;
    DL_INFO("pcap", "capturing every port's frames into %s", path);
    return DL_OK;
}

void dl_pcap_close(dl_runtime *rt)
{
    dl_pcap *pc = rt->pcap;
    if (!pc)
        return;
    rt->pcap = NULL;
    rte_pcapng_close(pc->out); /* closes the file */
    rte_mempool_free(pc->pool);
    pthread_mutex_destroy(&pc->lock);
    free(pc);
}

static void count(dl_worker *w, uint64_t written, uint64_t drops)
{
    if (!w)
        return;
    __atomic_store_n(&w->stats.pcap_packets, w->stats.pcap_packets + written, __ATOMIC_RELAXED);
    __atomic_store_n(&w->stats.pcap_drops, w->stats.pcap_drops + drops, __ATOMIC_RELAXED);
}

void dl_pcap_rx(dl_runtime *rt, uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts,
                uint16_t n)
{
    dl_pcap *pc = rt->pcap;
    struct rte_mbuf *copies[DL_RX_BURST];
    uint64_t now = rte_get_tsc_cycles(), drops = 0;
    uint16_t nb = 0;
    for (uint16_t i = 0; i < n && i < DL_RX_BURST; i++) {
        struct rte_mbuf *c = rte_pcapng_copy(port_id, queue, pkts[i], pc->pool, pc->snaplen, now,
                                             RTE_PCAPNG_DIRECTION_IN);
        if (c)
            copies[nb++] = c;
        else
            drops++;
    }
    if (nb) {
        pthread_mutex_lock(&pc->lock);
        ssize_t rc = rte_pcapng_write_packets(pc->out, copies, nb); /* frees the copies */
        pthread_mutex_unlock(&pc->lock);
        if (rc < 0) {
            drops += nb;
            nb = 0;
        }
    }
    count(dl_self(), nb, drops);
}

/* The TX burst while capturing: the frames must be copied before the burst
 * (the NIC owns and may free them after), and only those it took are kept. */
uint16_t dl_pcap_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    dl_worker *w = dl_self();
    dl_pcap *pc = w ? w->rt->pcap : NULL;
    if (!pc)
        return rte_eth_tx_burst(port_id, queue, pkts, n);
    struct rte_mbuf *copies[DL_TX_CAPTURE];
    uint16_t done = 0;
    while (done < n) {
        uint16_t k = (uint16_t)(n - done < DL_TX_CAPTURE ? n - done : DL_TX_CAPTURE);
        uint16_t nb = 0;
        uint64_t now = rte_get_tsc_cycles(), drops = 0;
        for (uint16_t i = 0; i < k; i++) {
            copies[i] = rte_pcapng_copy(port_id, queue, pkts[done + i], pc->pool, pc->snaplen, now,
                                        RTE_PCAPNG_DIRECTION_OUT);
        }
        /* ownership: the frames the NIC took are its own now; the copies ours */
        uint16_t sent = rte_eth_tx_burst(port_id, queue, pkts + done, k);
        struct rte_mbuf *keep[DL_TX_CAPTURE];
        for (uint16_t i = 0; i < k; i++) {
            if (!copies[i]) {
                drops += i < sent;
                continue;
            }
            if (i < sent)
                keep[nb++] = copies[i];
            else
                rte_pktmbuf_free(copies[i]); /* not sent: captured when it is */
        }
        if (nb) {
            pthread_mutex_lock(&pc->lock);
            ssize_t rc = rte_pcapng_write_packets(pc->out, keep, nb); /* frees the copies */
            pthread_mutex_unlock(&pc->lock);
            if (rc < 0) {
                drops += nb;
                nb = 0;
            }
        }
        count(w, nb, drops);
        done = (uint16_t)(done + sent);
        if (sent < k)
            break; /* the NIC is full: the rest stays queued */
    }
    return done;
}

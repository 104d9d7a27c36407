/*
 * fault.c — the fault injector: a faulty link between a port and the stack.
 *
 * No tc netem works on a DPDK port, so the host plays the bad wire itself.
 * Each worker has one state per port and direction (single threaded, like
 * its queue), seeded from the config's seed, the worker, the port and the
 * direction: a run repeats as long as the traffic does. Per frame, in this
 * order: drop; truncate (to 14..len-1 bytes); corrupt (one bit flipped past
 * the Ethernet header); duplicate (a copy follows it); reorder (held back
 * until 1..reorder_depth later frames have passed, or the link goes idle).
 *
 * A corrupted or truncated frame must look as a NIC would see it off a bad
 * wire: on RX its checksum flags say "unknown" (the stack verifies in
 * software), on TX its checksums are computed in software first (an offload
 * would otherwise sum the damage into a valid frame) and then damaged.
 *
 * Frames go through a small FIFO: RX hands the stack at most DL_RX_BURST a
 * turn (duplicates can make more), TX keeps what the NIC refused for the next
 * turn, as the stack's own queue would. Everything held is freed at teardown.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "fault.h"

enum { ETH_HLEN = 14, FIFO_CAP = 2048, IDLE_RELEASE = 2 };

typedef struct held {
    struct rte_mbuf *m;
    int left; /* frames still to overtake it */
} held;

struct dl_fault {
    uint64_t rng;
    /* probabilities as thresholds on 32 random bits (2^32: always) */
    uint64_t p_drop, p_truncate, p_corrupt, p_dup, p_reorder;
    int depth;
    bool tx;
    uint16_t port_id, queue;
    struct rte_mempool *pool; /* for duplicates */
    uint64_t dropped, duplicated, reordered, corrupted, truncated;
    int n_held, idle;
    held hold[DL_FAULT_MAX_DEPTH];
    unsigned n_fifo;
    struct rte_mbuf *fifo[FIFO_CAP];
    struct rte_mbuf *burst[DL_RX_BURST]; /* RX: what the stack gets this turn */
};

static uint64_t next(dl_fault *f) /* splitmix64 */
{
    uint64_t z = (f->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static bool chance(dl_fault *f, uint64_t p)
{
    return p && (next(f) >> 32) < p;
}

static uint64_t threshold(double p)
{
    return (uint64_t)(p * 4294967296.0);
}

/* ---- configuration ---- */

int dl_fault_parse(const char *text, const char *origin, dl_fault_config *out)
{
    *out = (dl_fault_config){
        .enabled = 1, .direction = DL_FAULT_RX | DL_FAULT_TX, .reorder_depth = 4, .seed = 1};
    char buf[512];
    if (strlen(text) >= sizeof buf)
        return dl_fail("%s: too long (at most %zu characters)", origin, sizeof buf - 1);
    strcpy(buf, text);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ", ", &save); kv; kv = strtok_r(NULL, ", ", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return dl_fail("%s: \"%s\": expected key=value, like drop=0.01", origin, kv);
        *eq = '\0';
        const char *key = kv, *val = eq + 1;
        char *end;
        errno = 0;
        double v = strtod(val, &end);
        bool number = *val && *end == '\0' && errno == 0;
        double *prob = strcmp(key, "drop") == 0        ? &out->drop
                       : strcmp(key, "duplicate") == 0 ? &out->duplicate
                       : strcmp(key, "reorder") == 0   ? &out->reorder
                       : strcmp(key, "corrupt") == 0   ? &out->corrupt
                       : strcmp(key, "truncate") == 0  ? &out->truncate
                                                       : NULL;
        if (prob) {
            if (!number || !(v >= 0 && v <= 1))
                return dl_fail("%s: %s: expected a probability 0..1, got \"%s\"", origin, key, val);
            *prob = v;
        } else if (strcmp(key, "seed") == 0) {
            if (!number || !(v >= 0 && v <= 9007199254740992.0) || v != (double)(long long)v)
                return dl_fail("%s: seed: expected an integer 0..2^53, got \"%s\"", origin, val);
            out->seed = v;
        } else if (strcmp(key, "reorder_depth") == 0) {
            if (!number || !(v >= 1 && v <= DL_FAULT_MAX_DEPTH) || v != (double)(int)v)
                return dl_fail("%s: reorder_depth: expected a depth 1..%d, got \"%s\"", origin,
                               DL_FAULT_MAX_DEPTH, val);
            out->reorder_depth = (int)v;
        } else if (strcmp(key, "direction") == 0) {
            if (strcmp(val, "rx") == 0)
                out->direction = DL_FAULT_RX;
            else if (strcmp(val, "tx") == 0)
                out->direction = DL_FAULT_TX;
            else if (strcmp(val, "both") == 0)
                out->direction = DL_FAULT_RX | DL_FAULT_TX;
            else
                return dl_fail("%s: direction: expected rx, tx or both, got \"%s\"", origin, val);
        } else {
            return dl_fail("%s: unknown fault \"%s\": expected seed, drop, duplicate, reorder, "
                           "reorder_depth, corrupt, truncate or direction",
                           origin, key);
        }
    }
    return DL_OK;
}

static dl_fault *fault_new(const dl_fault_config *fc, const dl_worker *w, int p, bool tx)
{
    dl_fault *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    const dl_port *port = &w->rt->ports[p];
    f->rng = (uint64_t)fc->seed ^ (uint64_t)w->index << 40 ^ (uint64_t)p << 32 ^ (tx ? 1u : 2u);
    f->p_drop = threshold(fc->drop);
    f->p_truncate = threshold(fc->truncate);
    f->p_corrupt = threshold(fc->corrupt);
    f->p_dup = threshold(fc->duplicate);
    f->p_reorder = threshold(fc->reorder);
    f->depth = fc->reorder_depth > 0 ? fc->reorder_depth : 4;
    f->tx = tx;
    f->port_id = port->port_id;
    f->queue = (uint16_t)w->index;
    f->pool = port->pool;
    return f;
}

int dl_fault_setup(dl_worker *w)
{
    const char *env = getenv("DPDKLUA_FAULTS");
    dl_fault_config from_env;
    bool use_env = env && *env;
    if (use_env && dl_fault_parse(env, "DPDKLUA_FAULTS", &from_env) != DL_OK)
        return DL_ERROR;
    for (int p = 0; p < w->rt->n_ports; p++) {
        const dl_fault_config *fc = use_env ? &from_env : &w->rt->ports[p].dev->faults;
        if (!fc->enabled)
            continue;
        if ((fc->direction & DL_FAULT_RX) && !(w->fault_rx[p] = fault_new(fc, w, p, false)))
            return dl_fail("worker %d: no memory for the fault injector", w->index);
        if ((fc->direction & DL_FAULT_TX) && !(w->fault_tx[p] = fault_new(fc, w, p, true)))
            return dl_fail("worker %d: no memory for the fault injector", w->index);
        if (w->index == 0)
            DL_WARN("fault",
                    "port %s: injecting faults (%s%s): drop %g, duplicate %g, reorder %g "
                    "(depth %d), corrupt %g, truncate %g, seed %.0f",
                    w->rt->ports[p].name, fc->direction & DL_FAULT_RX ? "rx" : "",
                    fc->direction & DL_FAULT_TX ? " tx" : "", fc->drop, fc->duplicate, fc->reorder,
                    fc->reorder_depth, fc->corrupt, fc->truncate, fc->seed);
    }
    return DL_OK;
}

static void fault_free(dl_fault *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_held; i++)
        rte_pktmbuf_free(f->hold[i].m);
    if (f->n_fifo)
        rte_pktmbuf_free_bulk(f->fifo, f->n_fifo);
    free(f);
}

void dl_fault_teardown(dl_worker *w)
{
    for (int p = 0; p < DL_MAX_DEVICES; p++) {
        fault_free(w->fault_rx[p]);
        fault_free(w->fault_tx[p]);
        w->fault_rx[p] = w->fault_tx[p] = NULL;
    }
}

void dl_fault_stats(const dl_worker *w, dl_worker_stats *out)
{
    for (int p = 0; p < DL_MAX_DEVICES; p++) {
        const dl_fault *fs[2] = {w->fault_rx[p], w->fault_tx[p]};
        for (int i = 0; i < 2; i++) {
            const dl_fault *f = fs[i];
            if (!f)
                continue;
            out->fault_dropped += __atomic_load_n(&f->dropped, __ATOMIC_RELAXED);
            out->fault_duplicated += __atomic_load_n(&f->duplicated, __ATOMIC_RELAXED);
            out->fault_reordered += __atomic_load_n(&f->reordered, __ATOMIC_RELAXED);
            out->fault_corrupted += __atomic_load_n(&f->corrupted, __ATOMIC_RELAXED);
            out->fault_truncated += __atomic_load_n(&f->truncated, __ATOMIC_RELAXED);
        }
    }
}

/* ---- the faults ---- */

static inline void count(uint64_t *c)
{
    __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED); /* single writer; dpdk.stats reads */
}

/* TX: compute the checksums an offload would have, so that damage done
 * after this is damage the receiver sees. */
static void tx_sums_now(struct rte_mbuf *m)
{
    uint64_t sums = RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM;
    if (!(m->ol_flags & sums) || m->data_len < ETH_HLEN + m->l3_len + sizeof(struct rte_tcp_hdr))
        return;
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    uint16_t l4 = (uint16_t)(ETH_HLEN + m->l3_len);
    struct rte_tcp_hdr *t = (void *)(f + l4);
    if (m->ol_flags & RTE_MBUF_F_TX_IPV4) {
        struct rte_ipv4_hdr *h = (void *)(f + ETH_HLEN);
        if (m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM) {
            h->hdr_checksum = 0;
            h->hdr_checksum = rte_ipv4_cksum(h);
        }
        if (m->ol_flags & RTE_MBUF_F_TX_TCP_CKSUM) {
            t->cksum = 0;
            t->cksum = rte_ipv4_udptcp_cksum_mbuf(m, h, l4);
        }
    } else if (m->ol_flags & RTE_MBUF_F_TX_IPV6) {
        t->cksum = 0;
        t->cksum = rte_ipv6_udptcp_cksum_mbuf(m, (void *)(f + ETH_HLEN), l4);
    }
    m->ol_flags &= ~(sums | RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IPV6);
}

/* Damaged on the wire: RX checksum verdicts no longer hold. */
static void damaged(dl_fault *f, struct rte_mbuf *m)
{
    if (f->tx)
        tx_sums_now(m);
    else
        m->ol_flags &= ~(RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK);
}

static void push(dl_fault *f, struct rte_mbuf *m)
{
    if (f->n_fifo == FIFO_CAP) { /* the link is behind: it loses the frame */
        rte_pktmbuf_free(m);
        count(&f->dropped);
        return;
    }
    f->fifo[f->n_fifo++] = m;
}

/* A frame passed: held frames it overtook come due. */
static void passed(dl_fault *f)
{
    int k = 0;
    for (int i = 0; i < f->n_held; i++) {
        if (--f->hold[i].left <= 0)
            push(f, f->hold[i].m);
        else
            f->hold[k++] = f->hold[i];
    }
    f->n_held = k;
}

static void one(dl_fault *f, struct rte_mbuf *m)
{
    if (chance(f, f->p_drop)) {
        rte_pktmbuf_free(m);
        count(&f->dropped);
        return;
    }
    uint32_t len = rte_pktmbuf_pkt_len(m);
    if (chance(f, f->p_truncate) && m->nb_segs == 1 && len > ETH_HLEN + 1) {
        damaged(f, m);
        rte_pktmbuf_trim(m, (uint16_t)(len - (ETH_HLEN + next(f) % (len - ETH_HLEN))));
        len = rte_pktmbuf_pkt_len(m);
        count(&f->truncated);
    }
    if (chance(f, f->p_corrupt) && len > ETH_HLEN) {
        damaged(f, m);
        uint64_t r = next(f);
        uint32_t off = ETH_HLEN + (uint32_t)(r % (len - ETH_HLEN));
        struct rte_mbuf *s = m;
        while (off >= s->data_len) {
            off -= s->data_len;
            s = s->next;
        }
        rte_pktmbuf_mtod(s, uint8_t *)[off] ^= (uint8_t)(1u << (r >> 61));
        count(&f->corrupted);
    }
    struct rte_mbuf *dup = NULL;
    if (chance(f, f->p_dup) && (dup = rte_pktmbuf_copy(m, f->pool, 0, UINT32_MAX)))
        count(&f->duplicated);
    if (chance(f, f->p_reorder) && f->n_held < f->depth) {
        f->hold[f->n_held++] = (held){m, 1 + (int)(next(f) % (uint64_t)f->depth)};
        count(&f->reordered);
    } else {
        push(f, m);
        passed(f);
    }
    if (dup) {
        push(f, dup);
        passed(f);
    }
}

static void take(dl_fault *f, struct rte_mbuf **in, uint16_t n)
{
    for (uint16_t i = 0; i < n; i++)
        one(f, in[i]);
    /* nothing else to overtake them: held frames leave after a short pause */
    if (n == 0 && f->n_held && ++f->idle >= IDLE_RELEASE) {
        for (int i = 0; i < f->n_held; i++)
            push(f, f->hold[i].m);
        f->n_held = 0;
    }
    if (n)
        f->idle = 0;
}

static void shift(dl_fault *f, unsigned k)
{
    f->n_fifo -= k;
    if (f->n_fifo)
        memmove(f->fifo, f->fifo + k, f->n_fifo * sizeof f->fifo[0]);
}

uint16_t dl_fault_rx(dl_fault *f, struct rte_mbuf **in, uint16_t n, struct rte_mbuf ***out)
{
    take(f, in, n);
    unsigned k = f->n_fifo < DL_RX_BURST ? f->n_fifo : DL_RX_BURST;
    memcpy(f->burst, f->fifo, k * sizeof f->burst[0]);
    shift(f, k);
    *out = f->burst;
    return (uint16_t)k;
}

uint16_t dl_fault_tx(void *arg, struct rte_mbuf **pkts, uint16_t n)
{
    dl_fault *f = arg;
    take(f, pkts, n);
    unsigned k = f->n_fifo < UINT16_MAX ? f->n_fifo : UINT16_MAX;
    if (k)
        shift(f, dl_port_link_gate(f->port_id)
                     ? rte_eth_tx_burst(f->port_id, f->queue, f->fifo, (uint16_t)k)
                     : 0);
    return n;
}

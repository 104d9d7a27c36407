/*
 * fake_dpdk.c — see fake_dpdk.h. No EAL: DPDK's mbuf and mempool inline
 * functions need only a struct rte_mempool whose ops index names ops that
 * work, and rte_eth_tx_burst only rte_eth_fp_ops[port]; both are set up
 * here. Each mbuf is its own malloc'd block and is poisoned while it sits in
 * the pool, so AddressSanitizer sees overflows past an mbuf and any use of
 * one (or of the pbuf in its private area) after it went back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <sanitizer/asan_interface.h>

#include "fake_dpdk.h"

enum {
    PRIV = 64, /* the host's mbuf private area (pbuf_custom), host/port.c */
    DATA_ROOM = RTE_PKTMBUF_HEADROOM + FZ_MTU + 18,
    PORT_ID = 0,
};

const uint8_t fz_mac[6] = {0x02, 0xd1, 0xbe, 0, 0, 0x02};
const uint8_t fz_peer_mac[6] = {0x02, 0xd1, 0xbe, 0, 0, 0x01};
const uint8_t fz_ip4[4] = {10, 190, 0, 2};
const uint8_t fz_peer_ip4[4] = {10, 190, 0, 1};
const uint8_t fz_ip6[16] = {0xfd, 0xbe, [15] = 2};
const uint8_t fz_peer_ip6[16] = {0xfd, 0xbe, [15] = 1};

uint32_t fz_now = 1000;
void (*fz_tx_hook)(const uint8_t *frame, uint32_t len);
int fz_tx_room = -1;

static struct rte_mempool *pool;
static void *free_objs[FZ_POOL];
static unsigned n_free;
static size_t elt_size;

static void die(const char *what)
{
    fprintf(stderr, "fake_dpdk: %s\n", what);
    abort();
}

/* ---- mempool ops: a stack of free mbufs ---- */

static int ops_alloc(struct rte_mempool *mp)
{
    (void)mp;
    return 0;
}

static void ops_free(struct rte_mempool *mp)
{
    (void)mp;
}

static int ops_enqueue(struct rte_mempool *mp, void *const *objs, unsigned n)
{
    (void)mp;
    if (n_free + n > FZ_POOL)
        die("more mbufs returned than the pool holds (double free)");
    for (unsigned i = 0; i < n; i++) {
        ASAN_POISON_MEMORY_REGION(objs[i], elt_size);
        free_objs[n_free++] = objs[i];
    }
    return 0;
}

static int ops_dequeue(struct rte_mempool *mp, void **objs, unsigned n)
{
    (void)mp;
    if (n > n_free)
        return -ENOBUFS;
    for (unsigned i = 0; i < n; i++) {
        objs[i] = free_objs[--n_free];
        ASAN_UNPOISON_MEMORY_REGION(objs[i], elt_size);
    }
    return 0;
}

static unsigned ops_count(const struct rte_mempool *mp)
{
    (void)mp;
    return n_free;
}

static const struct rte_mempool_ops fake_ops = {
    .name = "dpdklua_fuzz",
    .alloc = ops_alloc,
    .free = ops_free,
    .enqueue = ops_enqueue,
    .dequeue = ops_dequeue,
    .get_count = ops_count,
};

static void make_pool(void)
{
    size_t size = RTE_ALIGN_CEIL(
        sizeof(struct rte_mempool) + sizeof(struct rte_pktmbuf_pool_private), RTE_CACHE_LINE_SIZE);
    pool = aligned_alloc(RTE_CACHE_LINE_SIZE, size);
    if (!pool)
        die("out of memory");
    memset(pool, 0, size);
    snprintf(pool->name, sizeof pool->name, "fuzz");
    int ops = rte_mempool_register_ops(&fake_ops);
    if (ops < 0)
        die("rte_mempool_register_ops failed");
    pool->ops_index = ops;
    pool->size = FZ_POOL;
    pool->cache_size = 0; /* no per-lcore caches: every get/put reaches the ops */
    pool->header_size = sizeof(struct rte_mempool_objhdr);
    pool->elt_size = sizeof(struct rte_mbuf) + PRIV + DATA_ROOM;
    pool->private_data_size = sizeof(struct rte_pktmbuf_pool_private);
    elt_size = pool->elt_size;
    struct rte_pktmbuf_pool_private *priv = rte_mempool_get_priv(pool);
    priv->mbuf_data_room_size = DATA_ROOM;
    priv->mbuf_priv_size = PRIV;
    for (unsigned i = 0; i < FZ_POOL; i++) {
        /* rte_mempool_virt2iova reads the object header just before it;
         * exactly the size, so that ASan's redzone starts where the mbuf ends */
        void *raw;
        if (posix_memalign(&raw, RTE_CACHE_LINE_SIZE, RTE_CACHE_LINE_SIZE + elt_size) != 0)
            die("out of memory");
        char *block = raw;
        void *obj = block + RTE_CACHE_LINE_SIZE;
        struct rte_mempool_objhdr *hdr = (struct rte_mempool_objhdr *)obj - 1;
        memset(hdr, 0, sizeof *hdr);
        hdr->mp = pool;
        hdr->iova = RTE_BAD_IOVA;
        rte_pktmbuf_init(pool, NULL, obj, i);
        ASAN_POISON_MEMORY_REGION(obj, elt_size);
        free_objs[n_free++] = obj;
    }
    pool->populated_size = FZ_POOL;
}

unsigned fz_pool_free(void)
{
    return n_free;
}

/* ---- the port: TX only (RX frames go straight to ops->input) ---- */

/* FZ_TRACE=1: one line per frame sent (to check what seeds reach). */
static bool trace;

static void trace_frame(const uint8_t *f, uint32_t len)
{
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    const uint8_t *l4 = type == 0x0800 ? f + 14 + (f[14] & 0xf) * 4 : f + 54;
    int proto = type == 0x0800 ? f[23] : type == 0x86dd ? f[20] : -1;
    if (proto == 6 && l4 + 14 <= f + len)
        fprintf(stderr, "tx %u B type %04x tcp %u->%u flags %02x\n", len, type, l4[0] << 8 | l4[1],
                l4[2] << 8 | l4[3], l4[13]);
    else
        fprintf(stderr, "tx %u B type %04x proto %d\n", len, type, proto);
}

static uint16_t fake_tx(void *queue, struct rte_mbuf **pkts, uint16_t n)
{
    (void)queue;
    if (fz_tx_room >= 0 && n > fz_tx_room)
        n = (uint16_t)fz_tx_room;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[i];
        if (m->nb_segs != 1 || m->pkt_len != m->data_len || m->pkt_len > FZ_MTU + 14)
            die("the stack sent a malformed mbuf");
        if (trace)
            trace_frame(rte_pktmbuf_mtod(m, const uint8_t *), m->pkt_len);
        if (fz_tx_hook)
            fz_tx_hook(rte_pktmbuf_mtod(m, const uint8_t *), m->pkt_len);
        rte_pktmbuf_free(m);
    }
    return n;
}

static void *txq_data[RTE_MAX_QUEUES_PER_PORT], *txq_clbk[RTE_MAX_QUEUES_PER_PORT];

static uint32_t now_ms(void)
{
    return fz_now;
}

static void wake(void *worker, uint32_t token, int64_t arg)
{
    (void)worker;
    (void)token;
    (void)arg;
}

static void slog(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

void fz_start(const stack_ops *S)
{
    if (!pool) {
        trace = getenv("FZ_TRACE") != NULL;
        make_pool();
        rte_eth_fp_ops[PORT_ID].tx_pkt_burst = fake_tx;
        rte_eth_fp_ops[PORT_ID].txq.data = txq_data;
        rte_eth_fp_ops[PORT_ID].txq.clbk = txq_clbk;
    }
    static dl_device_config dev;
    memset(&dev, 0, sizeof dev);
    dev.mtu = FZ_MTU;
    dev.n_addresses = 2;
    dev.addresses[0].family = 4;
    dev.addresses[0].prefix = 24;
    memcpy(dev.addresses[0].addr, fz_ip4, 4);
    dev.addresses[1].family = 6;
    dev.addresses[1].prefix = 64;
    memcpy(dev.addresses[1].addr, fz_ip6, 16);
    dev.has_gateway_v4 = 1;
    memcpy(dev.gateway_v4, (uint8_t[]){10, 190, 0, 254}, 4);
    stack_env env = {.wake = wake, .now_ms = now_ms, .log = slog};
    stack_port sp = {.index = 0, .port_id = PORT_ID, .pool = pool, .mtu = FZ_MTU, .dev = &dev};
    memcpy(sp.mac, fz_mac, 6);
    if (S->init(&env) != DL_OK || S->add_port(&sp) != DL_OK)
        die("stack init failed");
}

void fz_stop(const stack_ops *S)
{
    fz_tx_room = -1;
    S->shutdown();
    if (n_free != FZ_POOL) {
        fprintf(stderr, "fake_dpdk: %u of %u mbufs not back after shutdown\n", FZ_POOL - n_free,
                FZ_POOL);
        abort();
    }
}

struct rte_mbuf *fz_frame(const uint8_t *data, size_t len, size_t split)
{
    if (len > FZ_MTU + 14)
        len = FZ_MTU + 14;
    struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
    if (!m)
        return NULL;
    size_t first = split > 0 && split < len ? split : len;
    memcpy(rte_pktmbuf_append(m, (uint16_t)first), data, first);
    if (first < len) {
        struct rte_mbuf *t = rte_pktmbuf_alloc(pool);
        if (!t) {
            rte_pktmbuf_free(m);
            return NULL;
        }
        memcpy(rte_pktmbuf_append(t, (uint16_t)(len - first)), data + first, len - first);
        if (rte_pktmbuf_chain(m, t) != 0)
            die("rte_pktmbuf_chain failed");
    }
    return m;
}

/* ---- checksums ---- */

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)(p[n - 1] << 8);
    return sum;
}

static void put_sum(uint8_t *at, uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    uint16_t v = (uint16_t)~sum;
    at[0] = (uint8_t)(v >> 8);
    at[1] = (uint8_t)v;
}

/* l4: the transport header of `n` bytes; pseudo: the pseudo-header sum (0: none). */
static void fix_l4(uint8_t *l4, size_t n, int proto, uint32_t pseudo)
{
    size_t at = proto == 6 ? 16 : 2; /* TCP, or ICMP/ICMPv6 */
    if (n < at + 2)
        return;
    l4[at] = l4[at + 1] = 0;
    put_sum(l4 + at, sum16(pseudo, l4, n));
}

void fz_fix_checksums(uint8_t *f, size_t len)
{
    if (len < 14)
        return;
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    uint8_t *ip = f + 14;
    size_t room = len - 14;
    if (type == 0x0800 && room >= 20) {
        size_t ihl = (size_t)(ip[0] & 0xf) * 4;
        if (ihl < 20 || ihl > room)
            return;
        ip[10] = ip[11] = 0;
        put_sum(ip + 10, sum16(0, ip, ihl));
        size_t total = (size_t)(ip[2] << 8 | ip[3]);
        if (total > room)
            total = room;
        if (total <= ihl)
            return;
        size_t n = total - ihl;
        if (ip[9] == 6)
            fix_l4(ip + ihl, n, 6, sum16(sum16(0, ip + 12, 8), (uint8_t[]){0, 6}, 2) + (uint32_t)n);
        else if (ip[9] == 1)
            fix_l4(ip + ihl, n, 1, 0);
    } else if (type == 0x86dd && room >= 40) {
        size_t n = (size_t)(ip[4] << 8 | ip[5]);
        if (n > room - 40)
            n = room - 40;
        if (ip[6] == 6 || ip[6] == 58)
            fix_l4(ip + 40, n, ip[6], sum16(0, ip + 8, 32) + (uint32_t)n + ip[6]);
    }
}

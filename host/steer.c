/*
 * steer.c — which worker owns a flow, computed the same way by every worker
 * (and by the NIC, where it has RSS).
 *
 * The owner of a frame is reta[toeplitz(tuple) & (DL_RETA_SIZE - 1)], where
 * the Toeplitz hash (rte_softrss) runs over the tuple as received: source
 * address, destination address, source port, destination port. The key is
 * 0x6d5a repeated: a key with a 16-bit period hashes (a, b, pa, pb) and
 * (b, a, pb, pa) alike, so both directions of a flow have one owner, and two
 * dpdklua processes with the same worker count agree on it.
 *
 * Toeplitz is linear over XOR: hash(tuple) = hash(tuple with local port 0) ^
 * hash(zeros with only the local port). The second term, reduced to the
 * RETA index bits, is precomputed once per process for every port number
 * (port_bits4/6), so that connect() finds a local port owned by the calling
 * worker in ~n_workers table lookups (stack/steer_port.c).
 */
#include <pthread.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_thash.h>

#include "runtime.h"

const uint8_t dl_steer_key[DL_RSS_KEY_LEN] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

static uint8_t port_bits4[65536], port_bits6[65536];
static pthread_once_t port_bits_once = PTHREAD_ONCE_INIT;

static void compute_port_bits(void)
{
    for (uint32_t p = 0; p < 65536; p++) {
        uint32_t t4[RTE_THASH_V4_L4_LEN] = {0, 0, p};
        uint32_t t6[RTE_THASH_V6_L4_LEN] = {0};
        t6[8] = p;
        port_bits4[p] =
            (uint8_t)(rte_softrss(t4, RTE_THASH_V4_L4_LEN, dl_steer_key) & (DL_RETA_SIZE - 1));
        port_bits6[p] =
            (uint8_t)(rte_softrss(t6, RTE_THASH_V6_L4_LEN, dl_steer_key) & (DL_RETA_SIZE - 1));
    }
}

static uint32_t load_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return rte_be_to_cpu_32(v);
}

uint32_t dl_toeplitz(const uint8_t *key, int family, const uint8_t *src, const uint8_t *dst,
                     uint16_t sport, uint16_t dport)
{
    uint32_t ports = (uint32_t)sport << 16 | dport;
    if (family == 6) {
        uint32_t t[RTE_THASH_V6_L4_LEN];
        for (int i = 0; i < 4; i++) {
            t[i] = load_be32(src + 4 * i);
            t[4 + i] = load_be32(dst + 4 * i);
        }
        t[8] = ports;
        return rte_softrss(t, RTE_THASH_V6_L4_LEN, key);
    }
    uint32_t t[RTE_THASH_V4_L4_LEN] = {load_be32(src), load_be32(dst), ports};
    return rte_softrss(t, RTE_THASH_V4_L4_LEN, key);
}

uint32_t dl_steer_hash(int family, const uint8_t *src, const uint8_t *dst, uint16_t sport,
                       uint16_t dport)
{
    return dl_toeplitz(dl_steer_key, family, src, dst, sport, dport);
}

/* stack_steer.hash: the flow as the peer sends it (remote → local). */
static uint32_t steer_hash_remote(int family, const uint8_t *remote, const uint8_t *local,
                                  uint16_t rport, uint16_t lport)
{
    return dl_steer_hash(family, remote, local, rport, lport);
}

void dl_steer_init(dl_steer *s, int n_workers)
{
    pthread_once(&port_bits_once, compute_port_bits);
    memset(s, 0, sizeof *s);
    s->n_workers = n_workers;
    for (int i = 0; i < DL_RETA_SIZE; i++)
        s->reta[i] = (uint16_t)(i % n_workers);
    s->pub = (stack_steer){
        .n_workers = n_workers,
        .reta_mask = DL_RETA_SIZE - 1,
        .reta = s->reta,
        .port_bits4 = port_bits4,
        .port_bits6 = port_bits6,
        .hash = steer_hash_remote,
    };
}

int dl_steer_owner_of_hash(const dl_steer *s, uint32_t hash)
{
    return s->reta[hash & (DL_RETA_SIZE - 1)];
}

/* The frame's first segment decides (headers never span segments here).
 * TCP over IPv4 or IPv6: the owner of its 4-tuple; other IP: of its address
 * pair (ports 0); ARP, neighbour solicitations and advertisements:
 * DL_STEER_ALL; anything else stays where it arrived (DL_STEER_HERE). */
int dl_steer_classify(const dl_steer *s, const struct rte_mbuf *m)
{
    return dl_steer_classify_frame(s, rte_pktmbuf_mtod(m, const uint8_t *), m->data_len);
}

int dl_steer_classify_frame(const dl_steer *s, const uint8_t *f, uint32_t len)
{
    if (len < RTE_ETHER_HDR_LEN)
        return DL_STEER_HERE;
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    const uint8_t *ip = f + RTE_ETHER_HDR_LEN;
    len -= RTE_ETHER_HDR_LEN;
    if (type == RTE_ETHER_TYPE_ARP)
        return DL_STEER_ALL;
    uint16_t sport = 0, dport = 0;
    if (type == RTE_ETHER_TYPE_IPV4 && len >= sizeof(struct rte_ipv4_hdr)) {
        const struct rte_ipv4_hdr *h = (const void *)ip;
        uint32_t hlen = (uint32_t)(h->version_ihl & 0x0f) * 4;
        /* a fragment after the first carries no ports */
        bool later_frag = (rte_be_to_cpu_16(h->fragment_offset) & RTE_IPV4_HDR_OFFSET_MASK) != 0;
        if (h->next_proto_id == IPPROTO_TCP && !later_frag && len >= hlen + 4) {
            sport = (uint16_t)(ip[hlen] << 8 | ip[hlen + 1]);
            dport = (uint16_t)(ip[hlen + 2] << 8 | ip[hlen + 3]);
        }
        uint32_t hash = dl_steer_hash(4, ip + 12, ip + 16, sport, dport);
        return dl_steer_owner_of_hash(s, hash);
    }
    if (type == RTE_ETHER_TYPE_IPV6 && len >= sizeof(struct rte_ipv6_hdr)) {
        const struct rte_ipv6_hdr *h = (const void *)ip;
        const uint8_t *l4 = ip + sizeof *h;
        if (h->proto == IPPROTO_TCP && len >= sizeof *h + 4) {
            sport = (uint16_t)(l4[0] << 8 | l4[1]);
            dport = (uint16_t)(l4[2] << 8 | l4[3]);
        } else if (h->proto == IPPROTO_ICMPV6 && len >= sizeof *h + 1 &&
                   (l4[0] == 135 || l4[0] == 136)) { /* neighbour solicitation, advertisement */
            return DL_STEER_ALL;
        }
        uint32_t hash = dl_steer_hash(6, ip + 8, ip + 24, sport, dport);
        return dl_steer_owner_of_hash(s, hash);
    }
    return DL_STEER_HERE;
}

/* A private copy of a (small) frame for another worker's stack: its own
 * mbuf, so each copy carries its own pbuf_custom and lwIP may touch the
 * bytes of one copy without another seeing it. NULL: no mbuf free. */
struct rte_mbuf *dl_steer_copy(const struct rte_mbuf *m, struct rte_mempool *pool)
{
    uint32_t len = rte_pktmbuf_pkt_len(m);
    struct rte_mbuf *c = rte_pktmbuf_alloc(pool);
    if (!c)
        return NULL;
    char *dst = rte_pktmbuf_append(c, (uint16_t)len);
    if (!dst || len > UINT16_MAX) {
        rte_pktmbuf_free(c);
        return NULL;
    }
    const void *src = rte_pktmbuf_read(m, 0, len, dst);
    if (src != dst)
        memcpy(dst, src, len);
    c->ol_flags = m->ol_flags & (RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK);
    c->port = m->port;
    return c;
}

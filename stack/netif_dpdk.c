/*
 * netif_dpdk.c — an lwIP netif on one DPDK port queue (lwIP contrib style:
 * init, low_level_output, input).
 *
 * RX is zero copy: each received mbuf segment is wrapped in a pbuf_custom
 * (PBUF_REF) that lives in the mbuf's private area; freeing the pbuf returns
 * the segment to its pool. Multi-segment frames become a pbuf chain, one pbuf
 * per segment. When the port's mempool runs low (the application does not
 * read, out-of-order data piles up) frames are copied into lwIP's PBUF_POOL
 * instead, so held data cannot starve the NIC of mbufs.
 *
 * TX copies each frame into one mbuf of the port's pool (the host sizes the
 * data room for MTU + headers) and queues it; st_netif_flush() sends a port's
 * queue with one rte_eth_tx_burst per loop turn and keeps what the NIC did not
 * take for the next. The queue is bounded (DL_TX_QUEUE frames, at most half
 * the port's pool): a frame that finds it full even after a burst is dropped
 * (tx_full). Connections' output waits in lwIP
 * instead while any queue holds seven eighths of what it may
 * (glue_output_dirty), so a turn in which thousands of connections send
 * leaves room for what lwIP sends on its own (delayed ACKs, retransmissions).
 */
#include <assert.h>
#include <string.h>

#include <rte_mbuf.h>

#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/ip.h"
#include "lwip/prot/icmp6.h"
#include "lwip/prot/ip6.h"
#include "netif/ethernet.h"

#include "chksum.h"
#include "hooks.h"
#include "internal.h"
#include "port_io.h"
#include "tcp_conn.h"

/* The host creates its pools with a 64-byte private area (host/port.c). */
static_assert(sizeof(struct pbuf_custom) <= 64, "pbuf_custom must fit the mbuf private area");

enum { ETH_HLEN = 14, DL_PREFETCH_BURST = 64 };

static inline struct pbuf_custom *mbuf_pbuf(struct rte_mbuf *m)
{
    return rte_mbuf_to_priv(m);
}

/* pbuf_free gave up the last reference: the segment goes back to its pool. */
static void rx_pbuf_free(struct pbuf *p)
{
    struct rte_mbuf *m = (struct rte_mbuf *)((char *)p - sizeof(struct rte_mbuf));
    rte_pktmbuf_free_seg(m); /* ownership: mbuf segment → mempool */
}

/* Wrap every segment; the chain owns the segments from here on. */
static struct pbuf *wrap_frame(struct rte_mbuf *m)
{
    struct pbuf *head = NULL;
    while (m) {
        struct rte_mbuf *next = m->next;
        struct pbuf_custom *pc = mbuf_pbuf(m);
        pc->custom_free_function = rx_pbuf_free;
        struct pbuf *p = pbuf_alloced_custom(PBUF_RAW, m->data_len, PBUF_REF, pc,
                                             rte_pktmbuf_mtod(m, void *), m->data_len);
        if (head)
            pbuf_cat(head, p);
        else
            head = p;
        m = next;
    }
    return head;
}

/* Under mempool pressure: copy into PBUF_POOL and give the mbuf back now. */
static struct pbuf *copy_frame(struct rte_mbuf *m)
{
    struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)rte_pktmbuf_pkt_len(m), PBUF_POOL);
    if (p) {
        u16_t off = 0;
        for (struct rte_mbuf *s = m; s; s = s->next) {
            pbuf_take_at(p, rte_pktmbuf_mtod(s, void *), s->data_len, off);
            off = (u16_t)(off + s->data_len);
        }
    }
    rte_pktmbuf_free(m);
    return p; /* NULL: pool empty too, frame dropped (TCP retransmits) */
}

/* lwIP's checksum (LWIP_CHKSUM in lwipopts.h): see chksum.h. memif offers
 * no checksum offload, so every segment is summed once on each side: on the
 * sender while tcp_write copies it (LWIP_CHECKSUM_ON_COPY), on the receiver
 * in tcp_input. */
unsigned short st_chksum(const void *data, int len)
{
    return st_chksum_sum(data, len);
}

static struct netif *by_ip4(st_port *port, const uint8_t *a)
{
    u32_t v;
    memcpy(&v, a, 4);
    for (int i = 0; i < port->n_nifs; i++)
        if (ip4_addr_get_u32(netif_ip4_addr(&port->nifs[i].netif)) == v)
            return &port->nifs[i].netif;
    return &port->nifs[0].netif;
}

static struct netif *by_ip6(st_port *port, const uint8_t *a)
{
    ip6_addr_t v;
    memcpy(v.addr, a, 16);
    for (int i = 0; i < port->n_nifs; i++) {
        struct netif *n = &port->nifs[i].netif;
        for (int j = 0; j < LWIP_IPV6_NUM_ADDRESSES; j++)
            if (ip6_addr_isvalid(netif_ip6_addr_state(n, j)) &&
                ip6_addr_zoneless_eq(&v, netif_ip6_addr(n, j)))
                return n;
    }
    return &port->nifs[0].netif;
}

/* lwIP holds one IPv4 address per netif: hand each frame to the netif that
 * owns its address (ARP: target IP; IPv4: destination; IPv6: destination, or
 * the target of a neighbour solicitation). Anything else goes to the first. */
static struct netif *demux(st_port *port, const uint8_t *f, uint32_t len)
{
    if (port->n_nifs == 1)
        return &port->nifs[0].netif;
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    if (type == ETHTYPE_ARP && len >= ETH_HLEN + 28)
        return by_ip4(port, f + ETH_HLEN + 24);
    if (type == ETHTYPE_IP && len >= ETH_HLEN + 20)
        return by_ip4(port, f + ETH_HLEN + 16);
    if (type == ETHTYPE_IPV6 && len >= ETH_HLEN + 40) {
        const uint8_t *ip6 = f + ETH_HLEN;
        if (ip6[6] == IP6_NEXTH_ICMP6 && len >= ETH_HLEN + 40 + 24 && ip6[40] == ICMP6_TYPE_NS)
            return by_ip6(port, ip6 + 48);
        return by_ip6(port, ip6 + 24);
    }
    return &port->nifs[0].netif;
}

/* The pool's free mbufs, counted cheaply: its common store and this
 * thread's cache. rte_mempool_avail_count adds every lcore's cache too:
 * RTE_MAX_LCORE reads 8 KiB apart, 30-70 ns on every rx burst, i.e. on each
 * ping-pong message's path. Leaving the other workers' caches out (at most
 * cache_size each) can only make the count lower: "low" comes a little
 * early, never late. */
static unsigned pool_avail(struct rte_mempool *mp)
{
    unsigned n = rte_mempool_get_ops(mp->ops_index)->get_count(mp);
    struct rte_mempool_cache *cache = rte_mempool_default_cache(mp, rte_lcore_id());
    if (cache)
        n += cache->len;
    return n;
}

/* Out-of-order data a pcb may hold once the pool runs low (each pbuf pins an
 * mbuf of it); while it is healthy, up to the window (lwipopts.h). */
#define OOSEQ_LOW_PBUFS 128
#define OOSEQ_LOW_BYTES (192 * 1024)
/* A full window of the smallest common MSS (536), in pbufs. */
#define OOSEQ_WINDOW_PBUFS ((TCP_WND + 535) / 536)

u32_t st_hook_ooseq_bytes(const struct tcp_pcb *pcb)
{
    (void)pcb;
    return st_inst.rx_pool_low ? OOSEQ_LOW_BYTES : TCP_WND;
}

u16_t st_hook_ooseq_pbufs(const struct tcp_pcb *pcb)
{
    (void)pcb;
    return st_inst.rx_pool_low ? OOSEQ_LOW_PBUFS : OOSEQ_WINDOW_PBUFS;
}

/* A TCP/IPv4 frame's 4-tuple as tcp_input will see it: the pcb's. */
struct frame_key {
    u32_t local_ip, remote_ip; /* network order, as ip4_addr_t */
    u16_t local_port, remote_port;
};

/* A TCP/IPv4 frame's pcb bucket, or NULL (another protocol, IP options
 * longer than the frame); *k its 4-tuple. */
static struct tcp_pcb **frame_slot(const struct rte_mbuf *m, struct frame_key *k)
{
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    if (m->data_len < ETH_HLEN + 20 || f[12] != 0x08 || f[13] != 0x00)
        return NULL;
    const uint8_t *ip = f + ETH_HLEN;
    unsigned ihl = (ip[0] & 0xfu) * 4u;
    if (ip[9] != IP_PROTO_TCP || m->data_len < ETH_HLEN + ihl + 4)
        return NULL;
    const uint8_t *th = ip + ihl;
    memcpy(&k->remote_ip, ip + 12, 4);
    memcpy(&k->local_ip, ip + 16, 4);
    k->remote_port = (u16_t)(th[0] << 8 | th[1]);
    k->local_port = (u16_t)(th[2] << 8 | th[3]);
    ip_addr_t src, dst;
    ip_addr_set_ip4_u32_val(src, k->remote_ip);
    ip_addr_set_ip4_u32_val(dst, k->local_ip);
    return tcp_pcb_hash_slot(&dst, k->local_port, &src, k->remote_port);
}

/* Whether pcb is the frame's (the caller prefetched its lines). An IPv6
 * pcb may pass: a hint. */
static bool pcb_is(const struct tcp_pcb *pcb, const struct frame_key *k)
{
    return pcb->remote_port == k->remote_port && pcb->local_port == k->local_port &&
           ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip)) == k->remote_ip &&
           ip4_addr_get_u32(ip_2_ip4(&pcb->local_ip)) == k->local_ip;
}

static void prefetch_lines(const void *p, size_t len)
{
    for (size_t o = 0; o < len; o += RTE_CACHE_LINE_SIZE)
        rte_prefetch0((const char *)p + o);
}

/* The lines of pcb that tcp_input and the glue read next: its conn, and the
 * oldest unacked segment (the ACK the frame carries frees it). */
static void prefetch_pcb_next(const struct tcp_pcb *pcb)
{
    const void *arg = pcb->callback_arg;
    if (arg && !tc_is_orphan(arg)) /* a conn, not an orphan's deadline: its first two lines */
        prefetch_lines(arg, 2 * RTE_CACHE_LINE_SIZE);
    if (pcb->unacked)
        rte_prefetch0(pcb->unacked);
}

/* At many connections each frame's pcb, its glue connection and the oldest
 * segment its ACK frees are cold (a miss each), and lwIP takes the frames
 * one after another: the misses of a burst came one at a time. Walk the
 * chain for the whole burst first, a level per pass, prefetching the next
 * level, so that each level's misses overlap; tcp_input then finds the
 * lines in the cache. A bucket's first pcb is another 4-tuple's for a few
 * frames (7 % at 10 000 connections): those take the chain's next pcb in a
 * pass of their own. Only hints: a wrong guess costs a wasted prefetch. */
static void prefetch_pcbs(struct rte_mbuf **pkts, int n)
{
    struct tcp_pcb **slot[DL_PREFETCH_BURST];
    struct tcp_pcb *pcb[DL_PREFETCH_BURST];
    struct frame_key key[DL_PREFETCH_BURST];
    bool again = false;
    if (n > DL_PREFETCH_BURST)
        n = DL_PREFETCH_BURST;
    for (int i = 0; i < n; i++) {
        slot[i] = frame_slot(pkts[i], &key[i]);
        if (slot[i])
            rte_prefetch0(slot[i]);
    }
    for (int i = 0; i < n; i++) {
        pcb[i] = slot[i] ? *slot[i] : NULL;
        if (pcb[i])
            prefetch_lines(pcb[i], sizeof(struct tcp_pcb));
    }
    for (int i = 0; i < n; i++) {
        if (!pcb[i])
            continue;
        if (!pcb_is(pcb[i], &key[i])) { /* the chain's next, in the pass below */
            pcb[i] = pcb[i]->hash_next;
            slot[i] = NULL; /* marks it for that pass */
            if (pcb[i])
                prefetch_lines(pcb[i], sizeof(struct tcp_pcb));
            again = true;
            continue;
        }
        prefetch_pcb_next(pcb[i]);
    }
    for (int i = 0; again && i < n; i++) {
        if (slot[i] || !pcb[i])
            continue;
        if (pcb_is(pcb[i], &key[i]))
            prefetch_pcb_next(pcb[i]);
        else
            pcb[i] = NULL; /* a third in its bucket: rare, left to tcp_input */
    }
    for (int i = 0; i < n; i++) {
        struct tcp_seg *seg = pcb[i] ? pcb[i]->unacked : NULL;
        if (seg) {
            rte_prefetch0(seg->tcphdr);
            rte_prefetch0(seg->p);
        }
    }
}

void st_netif_input(st_port *port, struct rte_mbuf **pkts, int n)
{
    if (n > 1)
        prefetch_pcbs(pkts, n);
    /* Below a quarter of the pool free, stop pinning mbufs in lwIP queues. */
    unsigned avail = pool_avail(port->pool);
    bool low = avail < port->pool->size / 4;
    st_inst.rx_pool_low = avail < port->pool->size / 2; /* unread data moves off mbufs */
    for (int i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[i]; /* ownership: ours, from the host */
        const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
        /* The port is promiscuous: keep only frames for our MAC or a group. */
        if (m->data_len < ETH_HLEN || (!(f[0] & 1) && memcmp(f, port->mac, 6) != 0)) {
            rte_pktmbuf_free(m);
            port->rx_dropped++;
            port->rx_not_ours++;
            continue;
        }
        if (port->rx_cksum && !st_io_rx_cksum_ok(m)) {
            rte_pktmbuf_free(m);
            port->rx_dropped++;
            port->rx_bad_cksum++;
            continue;
        }
        struct netif *nif = demux(port, f, m->data_len);
        struct pbuf *p;
        if (low) {
            p = copy_frame(m);
            port->rx_copied++;
            if (!p) {
                port->rx_dropped++;
                port->rx_nobuf++;
                continue;
            }
        } else {
            p = wrap_frame(m);
        }
        /* ownership: p → lwIP; it frees p unless input fails */
        if (nif->input(p, nif) != ERR_OK)
            pbuf_free(p);
    }
}

/* One burst of the n queued frames from slot `first` on (no wrap). */
static uint16_t tx_burst(st_port *port, uint16_t first, uint16_t n)
{
    /* the fault injector's hook sends what it lets through itself, so frames
     * are captured (DPDKLUA_PCAP) only when no tx faults are on */
    struct rte_mbuf **pkts = &port->tx[first];
    uint16_t sent = port->tx_hook ? port->tx_hook(port->tx_hook_arg, pkts, n)
                    : st_inst.env.tx_burst
                        ? st_inst.env.tx_burst(port->port_id, port->queue, pkts, n)
                        : st_io_tx_burst(port->port_id, port->queue, pkts, n);
    /* ownership: the mbufs the NIC took are the driver's now; their lengths
     * were kept aside (a frame the NIC took may be freed already) */
    for (uint16_t i = 0; i < sent; i++)
        port->tx_bytes += port->tx_len[first + i];
    port->tx_head = (uint16_t)((first + sent) & (DL_TX_QUEUE - 1));
    port->n_tx = (uint16_t)(port->n_tx - sent);
    return sent;
}

/* The queue is a ring: a turn the NIC takes nothing from a full queue costs
 * one call, not a pass over the frames kept for the next turn. */
int st_netif_flush(st_port *port)
{
    if (port->n_tx == 0 && !port->tx_hook) /* the fault injector has its own turn */
        return 0;
    uint16_t n = port->n_tx, head = port->tx_head;
    uint16_t first = (uint16_t)(n < DL_TX_QUEUE - head ? n : DL_TX_QUEUE - head);
    uint16_t sent = tx_burst(port, head, first);
    if (sent == first && n > first) /* the rest, from the ring's start */
        sent = (uint16_t)(sent + tx_burst(port, 0, (uint16_t)(n - first)));
    return sent;
}

bool st_netif_tx_backlogged(void)
{
    for (int i = 0; i < st_inst.n_live; i++)
        if (st_inst.live[i]->n_tx >= DL_TX_QUEUE_HIGH)
            return true;
    return false;
}

/* The frames a port's TX queue may hold: DL_TX_QUEUE, or half its pool if
 * that is less (the default pool is DL_TX_QUEUE mbufs). */
static unsigned tx_cap(const st_port *port)
{
    unsigned half = port->pool->size / 2;
    return half < DL_TX_QUEUE ? half : DL_TX_QUEUE;
}

/* The dirty list's mark, not DL_TX_QUEUE_HIGH: lwIP's own output (the fast
 * timer's delayed ACKs with the unsent data of their connections, replies to
 * input, retransmissions) can hold a queue above that mark for as long as
 * the NIC is behind, and the dirty list then never ran: under 10 000
 * keep-alive connections whose server is slower than their client, the
 * client's requests that missed the timer's burst waited there for seconds
 * (or for their RTO, backing off, after a refused try), past the server's
 * 10 s read timeout. A small pool's queue keeps the old mark. */
bool st_netif_tx_nearly_full(void)
{
    for (int i = 0; i < st_inst.n_live; i++) {
        const st_port *port = st_inst.live[i];
        unsigned cap = tx_cap(port), mark = cap - cap / 8;
        if (port->n_tx >= (mark > DL_TX_QUEUE_HIGH ? mark : DL_TX_QUEUE_HIGH))
            return true;
    }
    return false;
}

void st_netif_drop_tx(st_port *port)
{
    while (port->n_tx) {
        uint16_t n =
            port->n_tx < DL_TX_QUEUE - port->tx_head ? port->n_tx : DL_TX_QUEUE - port->tx_head;
        rte_pktmbuf_free_bulk(&port->tx[port->tx_head], n);
        port->tx_head = (uint16_t)((port->tx_head + n) & (DL_TX_QUEUE - 1));
        port->n_tx = (uint16_t)(port->n_tx - n);
    }
}

/* An ARP reply or a neighbour advertisement (lwIP sends no IPv6 extension
 * headers, so the ICMPv6 type follows the fixed header). */
static bool is_answer(const struct pbuf *p)
{
    uint8_t h[ETH_HLEN + 41];
    u16_t n = pbuf_copy_partial(p, h, sizeof h, 0);
    if (n < ETH_HLEN + 8)
        return false;
    uint16_t type = (uint16_t)(h[12] << 8 | h[13]);
    if (type == ETHTYPE_ARP)
        return h[ETH_HLEN + 6] == 0 && h[ETH_HLEN + 7] == 2; /* op: reply */
    return type == ETHTYPE_IPV6 && n >= ETH_HLEN + 41 && h[ETH_HLEN + 6] == IP6_NEXTH_ICMP6 &&
           h[ETH_HLEN + 40] == ICMP6_TYPE_NA;
}

static err_t low_level_output(struct netif *netif, struct pbuf *p)
{
    st_port *port = ((st_nif *)netif->state)->port;
    if (port->quiet && is_answer(p)) { /* another worker answers this request */
        port->tx_quieted++;
        return ERR_OK;
    }
    /* At most half the pool waits in the queue; the rest stays free for
     * receiving. A queue that took the whole pool while its peer's did the
     * same (each ring full, each receiver out of mbufs to take a frame from
     * it) stopped both directions until lwIP gave the connections up. */
    unsigned cap = tx_cap(port);
    if (port->n_tx >= cap)
        st_netif_flush(port); /* a burst now rather than a drop */
    if (port->n_tx >= cap) {
        if (cap < DL_TX_QUEUE) { /* the queue's share of the pool: as if it were empty */
            port->tx_nombuf++;
            return ERR_MEM; /* lwIP keeps the segment (or the ACK) and sends it later */
        }
        port->tx_dropped++;
        return ERR_OK; /* lost on the wire, as far as lwIP knows */
    }
    struct rte_mbuf *m = rte_pktmbuf_alloc(port->pool);
    if (!m) {
        port->tx_nombuf++;
        return ERR_MEM;
    }
    if (p->tot_len > rte_pktmbuf_tailroom(m)) {
        rte_pktmbuf_free(m);
        port->tx_too_big++;
        return ERR_IF;
    }
    /* lwIP keeps p: the frame is copied */
    pbuf_copy_partial(p, rte_pktmbuf_append(m, p->tot_len), p->tot_len, 0);
    if (port->tx_ip_cksum || port->tx_tcp_cksum)
        st_io_tx_offload(m, port->tx_ip_cksum, port->tx_tcp_cksum);
    uint16_t slot = (uint16_t)((port->tx_head + port->n_tx) & (DL_TX_QUEUE - 1));
    port->tx[slot] = m; /* ownership: mbuf → the port's TX queue */
    port->tx_len[slot] = p->tot_len;
    port->n_tx++;
    return ERR_OK;
}

err_t st_netif_init(struct netif *netif)
{
    st_port *port = ((st_nif *)netif->state)->port;
    netif->name[0] = 'd';
    netif->name[1] = 'p';
    netif->hwaddr_len = ETH_HWADDR_LEN;
    memcpy(netif->hwaddr, port->mac, ETH_HWADDR_LEN);
    netif->mtu = (u16_t)port->mtu;
#if LWIP_ND6_ALLOW_RA_UPDATES
    netif->mtu6 = (u16_t)port->mtu;
#endif
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET |
                   NETIF_FLAG_IGMP | NETIF_FLAG_MLD6;
    netif->output = etharp_output;
    netif->output_ip6 = ethip6_output;
    netif->linkoutput = low_level_output;
    u16_t sums = NETIF_CHECKSUM_ENABLE_ALL;
    if (port->tx_ip_cksum)
        sums &= (u16_t)~NETIF_CHECKSUM_GEN_IP;
    if (port->tx_tcp_cksum)
        sums &= (u16_t)~NETIF_CHECKSUM_GEN_TCP;
    if (port->rx_cksum)
        sums &= (u16_t) ~(NETIF_CHECKSUM_CHECK_IP | NETIF_CHECKSUM_CHECK_TCP);
    NETIF_SET_CHECKSUM_CTRL(netif, sums);
    return ERR_OK;
}

/*
 * port_io.c — the driver's DPDK calls that need <rte_ethdev.h>/<rte_ip.h>
 * (see port_io.h for why they live apart from netif_dpdk.c).
 */
#include <netinet/in.h>

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "port_io.h"

enum { ETH_HLEN = 14, ETHTYPE_IPV4 = 0x0800, ETHTYPE_IPV6 = 0x86dd };

uint16_t st_io_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_tx_burst(port_id, queue, pkts, n);
}

static uint16_t ethertype(const uint8_t *f)
{
    return (uint16_t)(f[12] << 8 | f[13]);
}

bool st_io_rx_cksum_ok(const struct rte_mbuf *m)
{
    uint64_t ip = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
    uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
    if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD)
        return false;
    bool l4_known = l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD || l4 == RTE_MBUF_F_RX_L4_CKSUM_NONE;
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    if (ethertype(f) == ETHTYPE_IPV4 && m->data_len >= ETH_HLEN + sizeof(struct rte_ipv4_hdr)) {
        const struct rte_ipv4_hdr *h = (const void *)(f + ETH_HLEN);
        uint32_t hlen = rte_ipv4_hdr_len(h);
        if (m->data_len < ETH_HLEN + hlen)
            return false;
        /* A valid header, checksum field included, sums to 0xffff. */
        if (ip != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(h, hlen) != 0xffff)
            return false;
        if (h->next_proto_id == IPPROTO_TCP && !l4_known)
            return rte_ipv4_udptcp_cksum_mbuf_verify(m, h, (uint16_t)(ETH_HLEN + hlen)) == 0;
    } else if (ethertype(f) == ETHTYPE_IPV6 &&
               m->data_len >= ETH_HLEN + sizeof(struct rte_ipv6_hdr)) {
        const struct rte_ipv6_hdr *h = (const void *)(f + ETH_HLEN);
        if (h->proto == IPPROTO_TCP && !l4_known)
            return rte_ipv6_udptcp_cksum_mbuf_verify(m, h, ETH_HLEN + sizeof *h) == 0;
    }
    return true;
}

/* lwIP skipped the sums its netif flags disable; TCP offload wants the
 * pseudo-header sum in the checksum field. */
void st_io_tx_offload(struct rte_mbuf *m, bool ip_cksum, bool tcp_cksum)
{
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    m->l2_len = ETH_HLEN;
    if (ethertype(f) == ETHTYPE_IPV4) {
        struct rte_ipv4_hdr *h = (void *)(f + ETH_HLEN);
        m->l3_len = rte_ipv4_hdr_len(h);
        m->ol_flags |= RTE_MBUF_F_TX_IPV4;
        if (ip_cksum) {
            h->hdr_checksum = 0;
            m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
        }
        if (tcp_cksum && h->next_proto_id == IPPROTO_TCP) {
            struct rte_tcp_hdr *t = (void *)((uint8_t *)h + m->l3_len);
            m->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM;
            t->cksum = rte_ipv4_phdr_cksum(h, m->ol_flags);
        }
    } else if (ethertype(f) == ETHTYPE_IPV6 && tcp_cksum) {
        struct rte_ipv6_hdr *h = (void *)(f + ETH_HLEN);
        if (h->proto == IPPROTO_TCP) { /* lwIP sends no extension headers */
            struct rte_tcp_hdr *t = (void *)(h + 1);
            m->l3_len = sizeof *h;
            m->ol_flags |= RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_CKSUM;
            t->cksum = rte_ipv6_phdr_cksum(h, m->ol_flags);
        }
    }
}

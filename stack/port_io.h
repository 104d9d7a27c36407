/*
 * port_io.h — the DPDK calls of the driver that cannot share a file with
 * lwIP's headers: <rte_ethdev.h> and <rte_ip.h> pull in <netinet/ip6.h>,
 * whose struct ip6_hdr (and IP_DF & co.) clash with lwIP's. Implemented in
 * port_io.c, which includes no lwIP header.
 */
#ifndef DL_STACK_PORT_IO_H
#define DL_STACK_PORT_IO_H

#include <stdbool.h>
#include <stdint.h>

struct rte_mbuf;

/* rte_eth_tx_burst: the NIC takes (and then owns) the first n returned. */
uint16_t st_io_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
/* With RX checksum offload: false for a frame the NIC found bad or that fails
 * a software check where the NIC could not tell. */
bool st_io_rx_cksum_ok(const struct rte_mbuf *m);
/* Ask the NIC for the IPv4 header and/or TCP checksums lwIP left out. */
void st_io_tx_offload(struct rte_mbuf *m, bool ip_cksum, bool tcp_cksum);

#endif

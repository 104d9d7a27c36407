/*
 * fake_dpdk.h — one stack copy without the EAL, for the libFuzzer harnesses:
 * an mbuf pool in malloc'd memory (mempool ops of our own, so the stack's
 * rte_pktmbuf_alloc/free work unchanged), a TX burst that hands each frame
 * to the harness and frees it, and a clock the harness moves.
 */
#ifndef DL_FUZZ_FAKE_DPDK_H
#define DL_FUZZ_FAKE_DPDK_H

#include <stddef.h>
#include <stdint.h>

#include "stack.h"

struct rte_mbuf;

enum { FZ_POOL = 512, FZ_MTU = 1500 };

/* The stack's addresses and MAC (net 10.190, fdbe::/64) and the peer's. */
extern const uint8_t fz_mac[6], fz_peer_mac[6];
extern const uint8_t fz_ip4[4], fz_peer_ip4[4], fz_ip6[16], fz_peer_ip6[16];

/* The clock the stack reads (sys_now), in ms. */
extern uint32_t fz_now;
/* Called for every frame the stack sends (NULL: dropped unseen). */
extern void (*fz_tx_hook)(const uint8_t *frame, uint32_t len);
/* The next TX bursts take at most this many frames (the NIC is busy); -1: all. */
extern int fz_tx_room;

/* init + add_port of copy S on the fake port. Aborts on failure. */
void fz_start(const stack_ops *S);
/* shutdown of copy S; aborts unless every mbuf is back in the pool. */
void fz_stop(const stack_ops *S);
/* A received frame in a fresh mbuf, split into two segments after `split`
 * bytes when 0 < split < len; NULL when the pool is empty. */
struct rte_mbuf *fz_frame(const uint8_t *data, size_t len, size_t split);
/* Mbufs in the pool now. */
unsigned fz_pool_free(void);
/* Recompute the IPv4 header checksum and the TCP/ICMP/ICMPv6 checksum of an
 * Ethernet frame in place (what does not parse is left as it is). */
void fz_fix_checksums(uint8_t *frame, size_t len);

#endif

/*
 * lwipopts.h — lwIP options for one dpdklua worker's private stack.
 *
 * Every value that differs from lwIP's opt.h says why. Sizes are per worker
 * (per copy of lwIP): each copy has its own pools in its own bss, touched only
 * when that worker's copy is initialised.
 */
#ifndef DL_LWIPOPTS_H
#define DL_LWIPOPTS_H

/* ---- system ---- */
/* One thread owns the instance and drives it from its poll loop: no OS layer. */
#define NO_SYS 1
/* Single-threaded per instance: no interrupt/thread protection needed. */
#define SYS_LIGHTWEIGHT_PROT 0
/* We only need the raw TCP API. */
#define LWIP_SOCKET 0
#define LWIP_NETCONN 0
/* No UDP service and no DHCP/DNS in the stack (names resolve off the worker). */
#define LWIP_UDP 0
/* IPv4 multicast is not offered to services. */
#define LWIP_IGMP 0
/* Statistics: TCP's own and the MIB-2 TCP group (retransmissions, opens,
 * resets for dpdk.stats, docs/observability.md): a few increments of this
 * copy's own counters per segment; and the pools' use counts (one increment
 * per allocation), which the glue reads to share segments and pcbs out
 * (tcp_glue.c). The other groups stay off (per-packet increments nobody
 * reads). 32-bit counters: 16-bit ones wrap in a second. */
#define LWIP_STATS 1
#define LWIP_STATS_LARGE 1
#define LWIP_STATS_DISPLAY 0
#define TCP_STATS 1
#define MIB2_STATS 1
#define LINK_STATS 0
#define ETHARP_STATS 0
#define IP_STATS 0
#define IPFRAG_STATS 0
#define ICMP_STATS 0
#define IGMP_STATS 0
#define UDP_STATS 0
#define MEM_STATS 0
#define MEMP_STATS 1
#define SYS_STATS 0
#define IP6_STATS 0
#define ICMP6_STATS 0
#define IP6_FRAG_STATS 0
#define MLD6_STATS 0
#define ND6_STATS 0

/* ---- memory ---- */
/* 64-bit hosts: keep pool and heap objects naturally aligned. */
#define MEM_ALIGNMENT 8
/* The heap serves variable-size PBUF_RAM (the copies tcp_write makes of sent
 * data, and ACKs). glibc malloc grows with demand and is uncontended per worker
 * thread, where lwIP's own heap would be a fixed array sized for the worst case
 * (1000+ connections x 1 MiB send buffers) in every copy; in front of it, a
 * free list of segment-sized blocks (st_mem_malloc, instance.c) keeps a bulk
 * sender out of malloc and away from glibc trimming and regrowing its arena
 * (page faults) as a 1 MiB send queue fills and drains. The fixed-size
 * objects (pcbs, segments, pbuf headers) stay in lwIP's O(1) pools below. */
#define MEM_CUSTOM_ALLOCATOR 1
#define MEM_CUSTOM_MALLOC st_mem_malloc
#define MEM_CUSTOM_FREE st_mem_free
#define MEM_CUSTOM_CALLOC st_mem_calloc
#include <stddef.h>
void *st_mem_malloc(size_t size);
void st_mem_free(void *p);
void *st_mem_calloc(size_t n, size_t size);
/* The ceiling of the max_connections runtime option (pcbs per worker,
 * TIME_WAIT included: lwIP recycles the oldest of those on demand). A smaller
 * limit holds the rest of the pool back at init (tcp_glue.c). 320 bytes each:
 * 5 MiB per running worker (memp_init touches the whole pool), enough for the
 * 10 000-connection bench row on one worker (docs/performance.md). */
#define MEMP_NUM_TCP_PCB 16384
/* Listeners per worker (each service port x address). */
#define MEMP_NUM_TCP_PCB_LISTEN 64
/* Segments queued (unsent + unacked + out-of-sequence) across all of a
 * worker's connections: must be >= TCP_SND_QUEUELEN; 16k segments ~ 23 MB
 * in flight per worker. A connection that holds many may not take the last
 * eighth (SEG_RESERVE in tcp_conn.h): handshakes, FINs and small replies
 * always find one; a writer short of them parks until segments free. */
#define MEMP_NUM_TCP_SEG 16384
/* pbuf headers for PBUF_REF/ROM: only lwIP-internal users (we copy on write). */
#define MEMP_NUM_PBUF 64
/* PBUF_POOL is used only by the driver, to copy received frames out of their
 * mbufs when the port's mempool runs low (see netif_dpdk.c). 1536-byte
 * buffers (a 1500-MTU frame; jumbo frames chain) keep the pool small. */
#define PBUF_POOL_SIZE 1024
#define PBUF_POOL_BUFSIZE 1536

/* ---- link layer ---- */
/* Peers per worker on the local link (hosts and gateways). */
#define ARP_TABLE_SIZE 64
/* Cache the ARP / ND entry index per pcb: no table walk per segment. */
#define LWIP_NETIF_HWADDRHINT 1
/* Several netifs (one per IPv4 address) share each port. */
#define LWIP_SINGLE_NETIF 0
/* Checksums are computed in software or offloaded per port. */
#define LWIP_CHECKSUM_CTRL_PER_NETIF 1
/* Software TCP checksums are summed while tcp_write copies the data. */
#define LWIP_CHECKSUM_ON_COPY 1
/* Software checksums 64 bits at a time (netif_dpdk.c); lwIP's sums 16. */
#define LWIP_CHKSUM st_chksum
unsigned short st_chksum(const void *data, int len);
/* Zero-copy RX: each mbuf is wrapped in a pbuf_custom (netif_dpdk.c). */
#define LWIP_SUPPORT_CUSTOM_PBUF 1

/* ---- IP ---- */
/* Same default TTL as Linux, so a service looks the same on the wire. */
#define IP_DEFAULT_TTL 64
/* TCP peers set DF and use PMTU discovery: no fragments are expected, and a
 * reassembly queue would pin received mbufs for seconds. */
#define IP_REASSEMBLY 0
#define IP_FRAG 0
#define LWIP_IPV6 1
/* A device may carry up to 128 addresses; IPv6 ones spill over netifs. */
#define LWIP_IPV6_NUM_ADDRESSES 8
/* Addresses are configured statically (env.json), never by SLAAC. */
#define LWIP_IPV6_AUTOCONFIG 0
/* Gateways are configured statically: no router solicitations at start. */
#define LWIP_IPV6_SEND_ROUTER_SOLICIT 0
/* Static addresses are set PREFERRED directly: every worker's copy holds the
 * same addresses, so duplicate detection between them would be meaningless. */
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS 0
/* See IP_REASSEMBLY; IPv6 TCP never needs fragments from us either. */
#define LWIP_IPV6_REASS 0
#define LWIP_IPV6_FRAG 0
/* One solicited-node group per configured IPv6 address (and link-local). */
#define MEMP_NUM_MLD6_GROUP 160
/* On-link IPv6 peers and remote destinations cached per worker (nd6.c walks
 * these tables with s8_t indexes: at most 127). */
#define LWIP_ND6_NUM_NEIGHBORS 64
#define LWIP_ND6_NUM_DESTINATIONS 64

/* ---- TCP ---- */
/* The largest MSS the stack may use: 9001 (jumbo MTU) - 40. lwIP clamps it per
 * route to the netif's MTU - 40 (TCP_CALCULATE_EFF_SEND_MSS, on by default),
 * for the MSS it advertises and the one it sends with: 1460 on a 1500-MTU
 * port, 8961 on a 9001-MTU port. */
#define TCP_MSS 8961
/* Windows for a high bandwidth-delay product (10 Gb/s x 1 ms ~ 1.2 MB). */
#define LWIP_WND_SCALE 1
#define TCP_RCV_SCALE 5 /* 1 MiB >> 5 fits the 16-bit window field */
#define TCP_WND (1024 * 1024)
#define TCP_SND_BUF (1024 * 1024)
/* Segments per connection: sized for the common 1460-byte MSS (a jumbo MSS
 * needs fewer), with room for small writes that each make a segment. */
#define TCP_SND_QUEUELEN ((4 * TCP_SND_BUF + 1459) / 1460)
/* Only the netconn API reads TCP_SNDLOWAT; lwIP checks it fits 16 bits. The
 * glue's own "writable again" threshold is WRITE_WAKE_BYTES (tcp_conn.h). */
#define TCP_SNDLOWAT 16384
/* Keep out-of-order data (retransmission repairs the hole): as much as the
 * window while the port's pool is healthy, so one loss costs one resent
 * segment. A fixed cap below the window (192 KiB of a 1 MiB one) dropped
 * everything the peer had sent past it, and withdrew its SACK: one loss
 * became hundreds, and a Linux sender's RTO backed off to tens of seconds
 * (docs/reliability.md). Once the pool runs low each held pbuf pins an mbuf
 * every connection needs, so the cap falls to OOSEQ_LOW_PBUFS / _BYTES
 * (stack/netif_dpdk.c). */
#define TCP_QUEUE_OOSEQ 1
#define TCP_OOSEQ_BYTES_LIMIT(pcb) st_hook_ooseq_bytes(pcb)
#define TCP_OOSEQ_PBUFS_LIMIT(pcb) st_hook_ooseq_pbufs(pcb)
/* NewReno fast recovery (stack/patches/20-fast-recovery.patch): a partial ACK
 * resends the next lost segment at once, so a window that lost several
 * segments does not wait for a retransmission timeout per loss. */
#define LWIP_TCP_NEWRENO 1
/* Tell peers what we hold out of order (SACK), so a loss in a 1 MiB window
 * is repaired without resending what already arrived. */
#define LWIP_TCP_SACK_OUT 1
/* Bounded accept queues: SYNs beyond the backlog are dropped (the client
 * retries), as Linux does. */
#define TCP_LISTEN_BACKLOG 1
/* Listeners may be reopened on a port whose old connections sit in TIME_WAIT
 * (nginx sets SO_REUSEADDR for the same reason). */
#define SO_REUSE 1
/* The keepalive socket option. */
#define LWIP_TCP_KEEPALIVE 1
/* TCP timers (stack/patches/50-rto-fine-timers.patch, docs/reliability.md
 * "Faulty links"). The fast timer (delayed ACKs, refused data) runs every
 * 5 ms, the slow one (RTO, persist, keepalive, FIN_WAIT_2, SYN_RCVD,
 * TIME_WAIT, our poll callback) every 10 ms: the RTO is counted in 10 ms
 * ticks, not 200 ms. lwIP's other timeouts are milliseconds divided by the
 * tick (the patch makes the zero-window probes so too). Each tick walks the
 * active pcbs once (fast) and, every other tick, active + TIME_WAIT (slow). */
#define TCP_TMR_INTERVAL 5
/* RFC 6298's initial RTO (lwIP's default is 3 s): a lost SYN, SYN-ACK or
 * first segment costs 1 s, as on Linux. */
#define LWIP_TCP_RTO_TIME 1000
/* The RTO's floor. RFC 6298 asks 1 s and Linux uses 200 ms; on a LAN with a
 * microsecond RTT the estimate is always below the floor, so the floor is the
 * time every timeout-repaired loss (a lost retransmission, a tail loss, a
 * loss with too few segments behind it for duplicate ACKs) costs. 50 ms:
 * above a Linux peer's delayed ACK on a LAN (40 ms: Linux caps it by its
 * SRTT, at least TCP_DELACK_MIN) plus a tick, so a peer that delays its ACK
 * does not trigger a spurious retransmission and a halved window; our own
 * peers ACK within the 5 ms fast timer. Measured (docs/reliability.md, 20 MiB
 * each way between two dpdklua processes under 5 % loss, 5 % reordering, 1 %
 * duplication, 0.5 % corruption): 8.8 s with a 20 ms floor, 14.7 s with 50,
 * 65.5 s with 200 (before the patch's recovery-sample rule; 10.0 s with it at
 * 50). A peer that vanishes is given up after
 * TCP_MAXRTX (12) backed-off retransmissions: ~767 x the floor, ~38 s on a
 * LAN (the application's own timeouts and linger_timeout_ms end it first).
 * A round trip that grows past the RTO (a queue under load: 60-80 ms with
 * 10 000 requests in flight) is learnt, not timed out every time: after a
 * timeout the RTO stays backed off until a valid RTT sample
 * (stack/patches/88-rto-karn.patch, Karn). */
#define TCP_RTO_MIN_MS 50

/* ---- hooks (stack/hooks.h) ---- */
#define LWIP_HOOK_FILENAME "hooks.h"
/* Route by source address: a pcb bound to one of our addresses leaves
 * through the netif that owns it; an unbound one through the first netif (in
 * configuration order) on the destination's link. */
#define LWIP_HOOK_IP4_ROUTE_SRC(src, dest) st_hook_route4_src(src, dest)
#define LWIP_HOOK_IP6_ROUTE(src, dest) st_hook_route6(src, dest)
/* gateway_v6 as next hop for off-link destinations (no router advertisements). */
#define LWIP_HOOK_ND6_GET_GW(netif, dest) st_hook_nd6_gw(netif, dest)
/* RFC 6528 initial sequence numbers: lwIP's default is predictable. */
#define LWIP_HOOK_TCP_ISN(lip, lport, rip, rport) st_hook_tcp_isn(lip, lport, rip, rport)
/* SYN cookies (stack/patches/10-syncookies.patch, stack/syncookie.c): a listener
 * whose backlog is full answers SYNs statelessly, so a SYN flood from
 * addresses that never answer cannot keep real clients out. */
#define LWIP_TCP_SYNCOOKIES 1
/* tcp_input finds a segment's pcb in a hash of the active and TIME-WAIT pcbs
 * (stack/patches/60-pcb-hash.patch), not by walking lists of up to
 * MEMP_NUM_TCP_PCB pcbs. 2^16 buckets, four per pcb of the pool: the
 * driver prefetches each received frame's pcb as its bucket's first
 * (prefetch_pcbs), which at 10 000 connections in 2^14 buckets was
 * another 4-tuple's for a quarter of the frames, in 2^16 for 7 %. */
#define LWIP_TCP_PCB_HASH 1
#define TCP_PCB_HASH_BITS 16
/* The active and TIME-WAIT lists doubly linked (80-pcb-dlist.patch): with a
 * pool full of TIME-WAIT pcbs (a server that closes first, thousands of
 * connections a second) recycling one no longer walks all of them. */
#define LWIP_TCP_PCB_DLIST 1
/* TIME-WAIT lasts 2 MSL = 2 min (lwIP's MSL, RFC 793; Linux: 60 s). Kept: a
 * full pool of TIME-WAIT pcbs costs O(1) per new connection (tcp_kill_timewait
 * takes the oldest, 80-pcb-dlist.patch) and per slow tick (86-timewait-timer-
 * order.patch), and above 16 384 / 120 s = 137 connections/s (273/s at 60 s)
 * the pool, not the MSL, bounds how long a pair stays in TIME-WAIT anyway. */
#define TCP_MSL 60000UL
#define LWIP_HOOK_TCP_SYNCOOKIE_MAKE(lip, lport, rip, rport, isn, data)                            \
    st_hook_syncookie_make(lip, lport, rip, rport, isn, data)
#define LWIP_HOOK_TCP_SYNCOOKIE_CHECK(lip, lport, rip, rport, isn, cookie, data)                   \
    st_hook_syncookie_check(lip, lport, rip, rport, isn, cookie, data)
/* A SYN that reuses a pair in TIME_WAIT with a newer sequence number is a new
 * connection (RFC 6191; stack/patches/40-timewait-reuse.patch): clients that
 * reuse ports are served, not stalled. Counted by the hook (tcp_glue.c). */
#define LWIP_TCP_TIMEWAIT_REUSE 1
#define LWIP_HOOK_TCP_TIMEWAIT_REUSED() st_hook_tcp_timewait_reused()

#endif

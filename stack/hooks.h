/*
 * hooks.h — the lwIP hooks that lwipopts.h names (LWIP_HOOK_FILENAME): lwIP
 * includes this file in its sources after its own headers. The hooks are
 * implemented in stack/instance.c unless said otherwise.
 */
#ifndef DL_STACK_HOOKS_H
#define DL_STACK_HOOKS_H

#include "lwip/ip_addr.h"
#include "lwip/netif.h"

/* The netif that owns src (a pcb bound to one of our addresses); for an
 * unbound pcb (src any or NULL) the first netif, in configuration order, on
 * dest's subnet; else NULL (lwIP's default route). */
struct netif *st_hook_route4_src(const ip4_addr_t *src, const ip4_addr_t *dest);
/* The same for IPv6; an unbound pcb whose dest is on none of our links goes
 * to the netif of the port that has gateway_v6. */
struct netif *st_hook_route6(const ip6_addr_t *src, const ip6_addr_t *dest);
/* The port's gateway_v6 as next hop for off-link destinations, or NULL. */
const ip6_addr_t *st_hook_nd6_gw(struct netif *netif, const ip6_addr_t *dest);
/* RFC 6528: a keyed hash of the 4-tuple plus a 4 µs clock (CLOCK_MONOTONIC). */
u32_t st_hook_tcp_isn(const ip_addr_t *local_ip, u16_t local_port, const ip_addr_t *remote_ip,
                      u16_t remote_port);

/* SYN cookies (stack/syncookie.c, stack/patches/10-syncookies.patch): the
 * cookie for a SYN from rip:rport with sequence number peer_isn, carrying
 * lwIP's data byte; check: 1 and *data if cookie is one we made (and is
 * recent), else 0. */
u32_t st_hook_syncookie_make(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport,
                             u32_t peer_isn, u8_t data);
int st_hook_syncookie_check(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport,
                            u32_t peer_isn, u32_t cookie, u8_t *data);

/* The most out-of-order data one pcb may hold (stack/netif_dpdk.c): the
 * window while the port's pool is healthy, a small cap once it runs low. */
struct tcp_pcb;
u32_t st_hook_ooseq_bytes(const struct tcp_pcb *pcb);
u16_t st_hook_ooseq_pbufs(const struct tcp_pcb *pcb);

/* stack/patches/40-timewait-reuse.patch ended a TIME_WAIT for a new SYN
 * (tcp_glue.c counts it). */
void st_hook_tcp_timewait_reused(void);

#endif

/*
 * instance.c — one private lwIP instance: its stack_ops table (the only
 * symbol the build leaves global, renamed stack_ops_<i> per copy), port and
 * netif set-up, the poll turn, shutdown, and the platform pieces lwIP asks
 * for (sys_now, random numbers, hooks, diagnostics).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "lwip/init.h"
#include "lwip/ip6_addr.h"
#include "lwip/nd6.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/netif.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#include "hooks.h"
#include "internal.h"

st_instance st_inst;

void st_log(int level, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (st_inst.env.log)
        st_inst.env.log(level, msg);
    else
        fprintf(stderr, "lwip: %s\n", msg);
}

/* ---- platform ---- */

u32_t sys_now(void)
{
    st_inst.last_now = st_inst.env.now_ms() + st_inst.clock_offset;
    return st_inst.last_now;
}

/* lwIP's heap (MEM_CUSTOM_ALLOCATOR in lwipopts.h): the PBUF_RAM pbufs of
 * every sent segment (tcp_write copies into them) and of every ACK. Blocks
 * that fit MEM_BLOCK (a 1460-byte segment with its headers) come from a
 * free list of the instance's own (one thread uses it) and go back to it, up
 * to MEM_CACHE_MAX of them; anything larger, and what the list cannot hold,
 * is glibc's. A 16-byte header keeps
 * the block's class (and the payload 16-byte aligned). */
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define ST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define ST_ASAN 1
#endif
#endif
#ifdef ST_ASAN
enum { MEM_CACHE_MAX = 0 }; /* ASan sees every block's use after free */
#else
enum { MEM_CACHE_MAX = 4096 }; /* 8 MiB per worker at most */
#endif
/* MEM_PREFETCH: the block's first lines (header, pbuf, a short segment's
 * frame: a ~110-byte reply ends in its fourth) */
enum { MEM_HDR = 16, MEM_BLOCK = 2048, MEM_PREFETCH = 256 };

typedef struct mem_free_block {
    struct mem_free_block *next;
} mem_free_block;

static mem_free_block *mem_cache;
static int mem_cached;

void *st_mem_malloc(size_t size)
{
    if (size > SIZE_MAX - MEM_HDR)
        return NULL;
    size_t total = size + MEM_HDR;
    char *b;
    if (total <= MEM_BLOCK && mem_cache) {
        b = (char *)mem_cache;
        mem_cache = mem_cache->next;
        mem_cached--;
        /* The next block out (LIFO) was written a round trip ago: at many
         * connections its lines are cold, and tcp_write copies into them at
         * once. Fetch them now, a request's work ahead. Only a hint. */
        if (mem_cache)
            for (int o = 0; o < MEM_PREFETCH; o += 64)
                __builtin_prefetch((char *)mem_cache + o, 1, 3);
    } else if (total <= MEM_BLOCK) {
        /* line-aligned: the header and the pbuf behind it share a line */
        b = aligned_alloc(64, MEM_BLOCK);
        if (!b)
            return NULL;
    } else {
        b = malloc(total);
        if (!b)
            return NULL;
    }
    *(size_t *)b = total <= MEM_BLOCK ? MEM_BLOCK : 0;
    return b + MEM_HDR;
}

void st_mem_free(void *p)
{
    if (!p)
        return;
    char *b = (char *)p - MEM_HDR;
    if (*(size_t *)b == MEM_BLOCK && mem_cached < MEM_CACHE_MAX) {
        mem_free_block *f = (mem_free_block *)b;
        f->next = mem_cache;
        mem_cache = f;
        mem_cached++;
        return;
    }
    free(b);
}

void *st_mem_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = st_mem_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

uint32_t st_lwip_rand(void)
{
    uint64_t x = st_inst.rand_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    st_inst.rand_state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

void st_lwip_diag(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st_log(DL_LOG_DEBUG, "%s", msg);
}

void st_lwip_assert(const char *msg, const char *file, int line)
{
    st_log(DL_LOG_ERROR, "assertion \"%s\" failed at %s:%d", msg, file, line);
    fprintf(stderr, "lwip: assertion \"%s\" failed at %s:%d\n", msg, file, line);
    abort();
}

static uint64_t seed64(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = rte_rdtsc() ^ (uint64_t)(uintptr_t)&st_inst;
    return s ? s : 0x9E3779B97F4A7C15ULL;
}

/* ---- hooks (lwipopts.h) ---- */

static struct netif *owner4(const ip4_addr_t *a)
{
    struct netif *n;
    NETIF_FOREACH(n)
    {
        if (netif_is_up(n) && ip4_addr_eq(a, netif_ip4_addr(n)))
            return n;
    }
    return NULL;
}

static struct netif *owner6(const ip6_addr_t *a)
{
    struct netif *n;
    NETIF_FOREACH(n)
    {
        if (netif_is_up(n) && netif_get_ip6_addr_match(n, a) >= 0)
            return n;
    }
    return NULL;
}

/* Unbound pcbs: the first netif in configuration order (netif_list is newest
 * first) whose subnet holds dest, so that the source is the device's first
 * matching address, as Linux picks the primary one. */
static struct netif *first_on_link4(const ip4_addr_t *dest)
{
    for (int p = 0; p < st_inst.n_live; p++) {
        st_port *port = st_inst.live[p];
        for (int k = 0; k < port->n_nifs; k++) {
            struct netif *n = &port->nifs[k].netif;
            if (netif_is_up(n) && !ip4_addr_isany_val(*netif_ip4_addr(n)) &&
                ip4_addr_net_eq(dest, netif_ip4_addr(n), netif_ip4_netmask(n)))
                return n;
        }
    }
    return NULL;
}

static struct netif *first_on_link6(const ip6_addr_t *dest)
{
    for (int p = 0; p < st_inst.n_live; p++) {
        st_port *port = st_inst.live[p];
        for (int k = 0; k < port->n_nifs; k++) {
            struct netif *n = &port->nifs[k].netif;
            for (int i = 0; netif_is_up(n) && i < LWIP_IPV6_NUM_ADDRESSES; i++)
                if (ip6_addr_isvalid(netif_ip6_addr_state(n, i)) &&
                    !ip6_addr_islinklocal(netif_ip6_addr(n, i)) &&
                    ip6_addr_net_eq(dest, netif_ip6_addr(n, i)))
                    return n;
        }
    }
    return NULL;
}

/* src NULL (lwIP found no on-link netif) or any: unbound; else the owner. */
struct netif *st_hook_route4_src(const ip4_addr_t *src, const ip4_addr_t *dest)
{
    return ip4_addr_isany(src) ? first_on_link4(dest) : owner4(src);
}

struct netif *st_hook_route6(const ip6_addr_t *src, const ip6_addr_t *dest)
{
    if (!ip6_addr_isany(src))
        return owner6(src);
    /* Off-link destinations go to the port that has gateway_v6. */
    struct netif *n = first_on_link6(dest);
    return n ? n : st_inst.gw6_netif;
}

const ip6_addr_t *st_hook_nd6_gw(struct netif *netif, const ip6_addr_t *dest)
{
    LWIP_UNUSED_ARG(dest);
    st_nif *nif = netif->state;
    return nif->port->has_gw6 ? &nif->gw6 : NULL;
}

u32_t st_hook_tcp_isn(const ip_addr_t *local_ip, u16_t local_port, const ip_addr_t *remote_ip,
                      u16_t remote_port)
{
    uint64_t h = st_mix_addr(st_inst.isn_key, local_ip);
    h = st_mix_addr(h, remote_ip);
    h = st_mix(h, (uint32_t)local_port << 16 | remote_port);
    /* + a 4 µs clock (RFC 6528), not sys_now()'s ms: a pair reused within
     * the same ms must still start past the old connection (RFC 6191; a
     * TIME_WAIT takes only a newer SYN, stack/patches/40-timewait-reuse.patch) */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u32_t)(h ^ (h >> 32)) + (u32_t)((uint64_t)ts.tv_sec * 250000u + ts.tv_nsec / 4000);
}

/* ---- addresses ---- */

bool st_addr_is_local(const ip_addr_t *addr)
{
    if (IP_IS_V6(addr))
        return owner6(ip_2_ip6(addr)) != NULL;
    return owner4(ip_2_ip4(addr)) != NULL;
}

struct netif *st_first_netif(void)
{
    return st_inst.n_live ? &st_inst.live[0]->nifs[0].netif : NULL;
}

/* ---- ops ---- */

static int inst_init(const stack_env *env)
{
    st_inst.env = *env;
    if (!st_inst.lwip_ready) {
        st_inst.rand_state = seed64();
        st_inst.isn_key = seed64();
        st_inst.clock_offset = 0;
        lwip_init(); /* once per copy: lwIP cannot be torn down */
        st_inst.lwip_ready = true;
    } else {
        /* lwIP's timers are due relative to the last sys_now(): continue
         * from there whatever clock this runtime's env uses. */
        st_inst.clock_offset = st_inst.last_now - env->now_ms();
    }
    glue_init();
    return DL_OK;
}

static void mask_from_prefix(int prefix, ip4_addr_t *mask)
{
    uint32_t m = prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
    ip4_addr_set_u32(mask, lwip_htonl(m));
}

static int count_netifs(void)
{
    int n = 0;
    struct netif *nif;
    NETIF_FOREACH(nif)
    {
        n++;
    }
    return n;
}

/* st_inst.live: the used ports, in index (configuration) order. */
static void live_ports(void)
{
    st_inst.n_live = 0;
    for (int i = 0; i < DL_MAX_DEVICES; i++)
        if (st_inst.ports[i].used)
            st_inst.live[st_inst.n_live++] = &st_inst.ports[i];
}

static void port_free(st_port *port)
{
    for (int i = 0; i < port->n_nifs; i++)
        if (port->nifs[i].port) /* was added */
            netif_remove(&port->nifs[i].netif);
    free(port->nifs);
    memset(port, 0, sizeof *port);
}

static void set_ip6(struct netif *n, int slot, const uint8_t *bytes)
{
    ip6_addr_t a;
    memcpy(a.addr, bytes, 16);
    ip6_addr_clear_zone(&a);
    ip6_addr_assign_zone(&a, IP6_UNICAST, n);
    netif_ip6_addr_set(n, (s8_t)slot, &a);
    /* static: no DAD between copies that all own it (lwipopts.h) */
    netif_ip6_addr_set_state(n, (s8_t)slot, IP6_ADDR_PREFERRED);
}

/* One netif per IPv4 address (lwIP holds one per netif); IPv6 addresses fill
 * LWIP_IPV6_NUM_ADDRESSES slots per netif, after the link-local on the first,
 * and spill over to more netifs when there are more of them. */
static int inst_add_port(const stack_port *sp)
{
    const dl_device_config *dev = sp->dev;
    if (sp->index < 0 || sp->index >= DL_MAX_DEVICES || st_inst.ports[sp->index].used) {
        st_log(DL_LOG_ERROR, "add_port: bad or duplicate port index %d", sp->index);
        return DL_ERROR;
    }
    if (rte_pktmbuf_priv_size(sp->pool) < sizeof(struct pbuf_custom)) {
        st_log(DL_LOG_ERROR, "port %u: mbuf private area %u < %zu bytes (zero-copy RX needs it)",
               sp->port_id, rte_pktmbuf_priv_size(sp->pool), sizeof(struct pbuf_custom));
        return DL_ERROR;
    }
    if (sp->mtu < DL_MIN_MTU || sp->mtu > 0xffff) {
        st_log(DL_LOG_ERROR, "port %u: mtu %d out of range", sp->port_id, sp->mtu);
        return DL_ERROR;
    }
    int n4 = 0, n6 = 0;
    for (int i = 0; i < dev->n_addresses; i++) {
        if (dev->addresses[i].family == 6)
            n6++;
        else
            n4++;
    }
    int need6 = n6 ? (n6 + 1 + LWIP_IPV6_NUM_ADDRESSES - 1) / LWIP_IPV6_NUM_ADDRESSES : 0;
    int n_nifs = n4 > need6 ? n4 : need6 > 0 ? need6 : 1;
    if (count_netifs() + n_nifs > 254) { /* lwIP numbers netifs in a u8 */
        st_log(DL_LOG_ERROR, "port %u: %d addresses need %d netifs; an instance holds 254",
               sp->port_id, dev->n_addresses, n_nifs);
        return DL_ERROR;
    }

    st_port *port = &st_inst.ports[sp->index];
    memset(port, 0, sizeof *port);
    port->port_id = sp->port_id;
    port->queue = sp->queue;
    port->pool = sp->pool;
    memcpy(port->mac, sp->mac, 6);
    port->mtu = sp->mtu;
    port->tx_ip_cksum = sp->tx_ip_cksum;
    port->tx_tcp_cksum = sp->tx_tcp_cksum;
    port->rx_cksum = sp->rx_cksum;
    port->tx_hook = sp->tx_hook;
    port->tx_hook_arg = sp->tx_hook_arg;
    port->has_gw6 = dev->has_gateway_v6 != 0;
    port->nifs = calloc((size_t)n_nifs, sizeof *port->nifs);
    if (!port->nifs) {
        st_log(DL_LOG_ERROR, "port %u: out of memory for %d netifs", sp->port_id, n_nifs);
        return DL_ERROR;
    }
    port->n_nifs = n_nifs;
    port->used = true;

    ip4_addr_t gw;
    ip4_addr_set_zero(&gw);
    if (dev->has_gateway_v4)
        memcpy(&gw.addr, dev->gateway_v4, 4);
    int next4 = 0, next6 = 0, slot6 = 0;
    for (int k = 0; k < n_nifs; k++) {
        st_nif *nif = &port->nifs[k];
        struct netif *n = &nif->netif;
        ip4_addr_t ip, mask;
        ip4_addr_set_zero(&ip);
        ip4_addr_set_zero(&mask);
        while (next4 < dev->n_addresses && dev->addresses[next4].family != 4)
            next4++;
        if (next4 < dev->n_addresses) {
            memcpy(&ip.addr, dev->addresses[next4].addr, 4);
            mask_from_prefix(dev->addresses[next4].prefix, &mask);
            next4++;
        }
        nif->port = port;
        if (!netif_add(n, &ip, &mask, &gw, nif, st_netif_init, ethernet_input)) {
            nif->port = NULL;
            st_log(DL_LOG_ERROR, "port %u: netif_add failed", sp->port_id);
            port_free(port);
            return DL_ERROR;
        }
        if (port->has_gw6) {
            memcpy(nif->gw6.addr, dev->gateway_v6, 16);
            ip6_addr_clear_zone(&nif->gw6);
            ip6_addr_assign_zone(&nif->gw6, IP6_UNICAST, n);
        }
        slot6 = 0;
        if (k == 0 && n6) {
            netif_create_ip6_linklocal_address(n, 1);
            netif_ip6_addr_set_state(n, 0, IP6_ADDR_PREFERRED);
            slot6 = 1;
        }
        for (; slot6 < LWIP_IPV6_NUM_ADDRESSES; slot6++) {
            while (next6 < dev->n_addresses && dev->addresses[next6].family != 6)
                next6++;
            if (next6 == dev->n_addresses)
                break;
            set_ip6(n, slot6, dev->addresses[next6++].addr);
        }
        netif_set_link_up(n);
        netif_set_up(n);
    }

    /* Unbound IPv4 traffic to off-link destinations leaves through the
     * default netif: the first port that has a gateway (else the first). */
    struct netif *first = &port->nifs[0].netif;
    if (!netif_default || (dev->has_gateway_v4 && ip4_addr_isany_val(*netif_ip4_gw(netif_default))))
        netif_set_default(first);
    if (port->has_gw6 && !st_inst.gw6_netif)
        st_inst.gw6_netif = first;
    live_ports();
    return DL_OK;
}

static void input_frames(int port_index, struct rte_mbuf **pkts, int n, bool quiet)
{
    if (port_index < 0 || port_index >= DL_MAX_DEVICES || !st_inst.ports[port_index].used) {
        rte_pktmbuf_free_bulk(pkts, (unsigned)n);
        return;
    }
    st_port *port = &st_inst.ports[port_index];
    port->quiet = quiet;
    st_netif_input(port, pkts, n);
    port->quiet = false;
}

static void inst_input(int port_index, struct rte_mbuf **pkts, int n)
{
    input_frames(port_index, pkts, n, false);
}

static void inst_input_quiet(int port_index, struct rte_mbuf **pkts, int n)
{
    input_frames(port_index, pkts, n, true);
}

void st_flush_now(void)
{
    for (int i = 0; i < st_inst.n_live; i++)
        st_inst.sent_early += st_netif_flush(st_inst.live[i]);
}

static int inst_poll(void)
{
    sys_check_timeouts();
    glue_poll_resources();
    glue_output_dirty();
    int sent = st_inst.sent_early;
    st_inst.sent_early = 0;
    for (int i = 0; i < st_inst.n_live; i++)
        sent += st_netif_flush(st_inst.live[i]);
    return sent;
}

static void inst_counters(stack_counters *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < st_inst.n_live; i++) {
        const st_port *port = st_inst.live[i];
        out->tx_bytes += port->tx_bytes;
        out->rx_dropped += port->rx_dropped;
        out->tx_dropped += port->tx_dropped + port->tx_nombuf + port->tx_too_big;
        out->rx_copied += port->rx_copied;
        out->rx_not_ours += port->rx_not_ours;
        out->rx_bad_cksum += port->rx_bad_cksum;
        out->rx_nobuf += port->rx_nobuf;
        out->tx_full += port->tx_dropped;
        out->tx_nombuf += port->tx_nombuf;
        out->tx_too_big += port->tx_too_big;
    }
    glue_counters(out);
    out->syncookies_sent = st_inst.cookies_sent;
    out->syncookies_ok = st_inst.cookies_ok;
    out->syncookies_bad = st_inst.cookies_bad;
}

static void count_states(const struct tcp_pcb *list, stack_tcp_stats *out)
{
    for (const struct tcp_pcb *pcb = list; pcb; pcb = pcb->next) {
        switch (pcb->state) {
        case SYN_SENT:
            out->syn_sent++;
            break;
        case SYN_RCVD:
            out->syn_rcvd++;
            break;
        case ESTABLISHED:
            out->established++;
            break;
        case FIN_WAIT_1:
            out->fin_wait_1++;
            break;
        case FIN_WAIT_2:
            out->fin_wait_2++;
            break;
        case CLOSE_WAIT:
            out->close_wait++;
            break;
        case CLOSING:
            out->closing++;
            break;
        case LAST_ACK:
            out->last_ack++;
            break;
        case TIME_WAIT:
            out->time_wait++;
            break;
        default:
            break; /* CLOSED / LISTEN are on other lists */
        }
    }
}

static void inst_tcp_stats(stack_tcp_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!st_inst.lwip_ready)
        return;
    for (const struct tcp_pcb_listen *l = tcp_listen_pcbs.listen_pcbs; l; l = l->next)
        out->listen++;
    count_states(tcp_active_pcbs, out);
    count_states(tcp_tw_pcbs, out);
    out->active_opens = lwip_stats.mib2.tcpactiveopens;
    out->passive_opens = lwip_stats.mib2.tcppassiveopens;
    out->attempt_fails = lwip_stats.mib2.tcpattemptfails;
    out->estab_resets = lwip_stats.mib2.tcpestabresets;
    out->in_segs = lwip_stats.mib2.tcpinsegs;
    out->out_segs = lwip_stats.mib2.tcpoutsegs;
    out->retrans_segs = lwip_stats.mib2.tcpretranssegs;
    out->in_errs = lwip_stats.mib2.tcpinerrs;
    out->out_rsts = lwip_stats.mib2.tcpoutrsts;
    out->drops = lwip_stats.tcp.drop;
    out->mem_errs = lwip_stats.tcp.memerr;
}

static void inst_shutdown(void)
{
    glue_abort_all();
    for (int i = 0; i < DL_MAX_DEVICES; i++) {
        st_port *port = &st_inst.ports[i];
        if (!port->used)
            continue;
        st_netif_flush(port); /* the RSTs, if the NIC takes them */
        st_netif_drop_tx(port);
        st_log(DL_LOG_DEBUG,
               "port %u queue %u: rx copied %" PRIu64 ", rx dropped %" PRIu64
               ", tx no mbuf %" PRIu64 ", tx dropped %" PRIu64 ", tx too big %" PRIu64,
               port->port_id, port->queue, port->rx_copied, port->rx_dropped, port->tx_nombuf,
               port->tx_dropped, port->tx_too_big);
        port_free(port);
    }
    st_inst.n_live = 0;
    netif_set_default(NULL);
    st_inst.gw6_netif = NULL;
}

/* The one global symbol of this copy. Its C name cannot be `stack_ops` (the
 * typedef has that name), so the asm label gives the object file the name
 * that stack.mk renames to stack_ops_<i>. */
__attribute__((visibility("default"))) const stack_ops st_ops __asm__("stack_ops") = {
    .init = inst_init,
    .add_port = inst_add_port,
    .input = inst_input,
    .input_quiet = inst_input_quiet,
    .poll = inst_poll,
    .shutdown = inst_shutdown,
    .busy = glue_busy,
    .close_all = glue_close_all,
    .counters = inst_counters,
    .tcp_stats = inst_tcp_stats,
    .conn_new = glue_conn_new,
    .conn_free = glue_conn_free,
    .bind = glue_bind,
    .listen = glue_listen,
    .accept = glue_accept,
    .connect = glue_connect,
    .send = glue_send,
    .recv = glue_recv,
    .state = glue_state,
    .shutdown_send = glue_shutdown_send,
    .close = glue_close,
    .setopt = glue_setopt,
    .getopt = glue_getopt,
    .local_addr = glue_local_addr,
    .peer_addr = glue_peer_addr,
};

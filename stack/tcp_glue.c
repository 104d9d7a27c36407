/*
 * tcp_glue.c — the TCP members of stack_ops over lwIP's raw API: the one
 * seam between the host and the instance's connections (tcp_conn.c keeps
 * their records and lwIP's callbacks).
 *
 * lwIP callbacks only record state on the connection and wake the coroutine
 * waiting for it (env.wake with the recorded token, which is then cleared);
 * the host calls the ops again after the wake. Callbacks never run inside an
 * op (ops are called outside of poll/input), so neither side re-enters.
 *
 * Received data stays in the pbufs lwIP delivered (for RX, the mbufs
 * themselves) until the host reads it; reading frees what was consumed and
 * re-opens the window (tcp_recved). Sends are copied by tcp_write and the
 * connection goes on a dirty list: poll() runs tcp_output once per loop turn
 * for each dirty connection.
 */
#include <stdlib.h>
#include <string.h>

#include "lwip/memp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/sys.h"
#include "lwip/tcp.h"

#include "tcp_conn.h"

_Static_assert(MEMP_NUM_TCP_PCB == DL_TCP_MAX_CONNECTIONS, "api.h's ceiling is the pcb pool");
_Static_assert(MEMP_NUM_TCP_SEG == DL_TCP_SEGMENTS, "api.h's segment count is the pool's");

/* ---- shared resources ---- */

/* max_connections below the pool's size: the rest of the pool is held here
 * for the runtime's life, so lwIP's own allocation runs out at the limit
 * (and recycles TIME_WAIT pcbs first, as it does at the pool's end). */
static void *ballast[MEMP_NUM_TCP_PCB];
static int n_ballast;
static u32_t orphans_counted_at;

void glue_init(void)
{
    memset(&tc_count, 0, sizeof tc_count);
    int limit = st_inst.env.max_connections;
    if (limit < 1 || limit > MEMP_NUM_TCP_PCB)
        limit = MEMP_NUM_TCP_PCB;
    while (n_ballast < MEMP_NUM_TCP_PCB - limit) {
        void *p = memp_malloc(MEMP_TCP_PCB);
        if (!p)
            break;
        ballast[n_ballast++] = p;
    }
    if (st_inst.env.linger_ms == 0)
        st_inst.env.linger_ms = 30000;
}

static void release_ballast(void)
{
    while (n_ballast)
        memp_free(MEMP_TCP_PCB, ballast[--n_ballast]);
}

/* Once per loop turn: wake the writers parked for segments once enough
 * are free (each retries; one still short parks again), and recount the
 * orphans for the counters now and then. */
void glue_poll_resources(void)
{
    if (tc_res_head) {
        int free_segs = MEMP_NUM_TCP_SEG - tc_segs_used();
        conn *c = tc_res_head;
        while (c) {
            conn *next = c->res_next;
            if (!c->pub.write_token || !c->pub.pcb) {
                tc_res_unlink(c);
            } else if (free_segs >= c->res_need) {
                tc_res_unlink(c);
                tc_wake(&c->pub.write_token, 0);
            }
            c = next;
        }
    }
    u32_t now = sys_now();
    if ((u32_t)(now - orphans_counted_at) >= 100) {
        orphans_counted_at = now;
        uint32_t n = 0;
        for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
            n += ((uintptr_t)p->callback_arg & 1) != 0;
        tc_count.orphans = n;
    }
}

void glue_counters(stack_counters *out)
{
    out->tcp_connections = memp_pools[MEMP_TCP_PCB]->stats->used - (uint64_t)n_ballast;
    out->tcp_refused = tc_count.refused;
    out->tcp_orphans = tc_count.orphans;
    out->tcp_orphans_aborted = tc_count.orphans_aborted;
    out->tcp_segments = tc_segs_used();
    out->tcp_segment_waits = tc_count.segment_waits;
    out->tcp_rx_compacted = tc_count.rx_compacted;
    out->tcp_rx_unread = tc_count.rx_unread;
    out->tcp_timewait_reused = tc_count.timewait_reused;
}

void st_hook_tcp_timewait_reused(void)
{
    tc_count.timewait_reused++;
}

/* Segments c may not take now: the pool is down to what it must leave to
 * the others. A connection holding few may use all of it. */
static bool segs_short(const struct tcp_pcb *pcb)
{
    int free_segs = MEMP_NUM_TCP_SEG - tc_segs_used();
    return pcb->snd_queuelen < SEG_SMALL ? free_segs <= 0 : free_segs <= SEG_RESERVE;
}

/* How many free segments wake a writer parked by segs_short or ERR_MEM
 * (more than it needed to stop: no wake for every single segment freed). */
static u16_t segs_wanted(const struct tcp_pcb *pcb)
{
    return pcb->snd_queuelen < SEG_SMALL ? SEG_SMALL : SEG_RESERVE + 2 * SEG_SMALL;
}

/* ---- ops ---- */

dl_conn *glue_conn_new(int family, int *err)
{
    if (family != 4 && family != 6) {
        tc_fail(err, DL_E_INVAL);
        return NULL;
    }
    struct tcp_pcb *pcb = tcp_new_ip_type(family == 6 ? IPADDR_TYPE_V6 : IPADDR_TYPE_V4);
    if (!pcb) {
        tc_fail(err, DL_E_NOMEM);
        return NULL;
    }
    conn *c = tc_conn_alloc(pcb, family);
    if (!c) {
        tcp_close(pcb); /* a fresh pcb is freed at once */
        tc_fail(err, DL_E_NOMEM);
        return NULL;
    }
    /* as nginx does for its listeners: reopen a port with TIME_WAIT leftovers */
    ip_set_option(pcb, SOF_REUSEADDR);
    tc_attach(c, pcb);
    return &c->pub;
}

int glue_bind(dl_conn *dc, const uint8_t *addr, uint16_t port, int *err)
{
    conn *c = (conn *)dc;
    if (!c->pub.pcb)
        return tc_fail(err, tc_closed_error(c));
    if (c->bound || c->pub.listening)
        return tc_fail(err, DL_E_INVAL);
    ip_addr_t ip;
    if (!tc_to_ipaddr(c->pub.family, addr, &ip))
        return tc_fail(err, DL_E_INVAL);
    if (!ip_addr_isany(&ip) && !st_addr_is_local(&ip))
        return tc_fail(err, DL_E_ADDRNOTAVAIL);
    if (port == 0 && st_inst.env.steer) { /* connect or listen picks the port */
        ip_addr_set(&((struct tcp_pcb *)c->pub.pcb)->local_ip, &ip);
        c->bound = true;
        return DL_OK;
    }
    switch (tcp_bind(c->pub.pcb, &ip, port)) {
    case ERR_OK:
        break;
    case ERR_USE:
    case ERR_BUF: /* no free ephemeral port */
        return tc_fail(err, DL_E_ADDRINUSE);
    default:
        return tc_fail(err, DL_E_INVAL);
    }
    c->bound = true;
    tc_snapshot(c);
    return DL_OK;
}

int glue_listen(dl_conn *dc, int backlog, int *err)
{
    conn *c = (conn *)dc;
    if (c->pub.listening)
        return DL_OK;
    if (!c->pub.pcb)
        return tc_fail(err, tc_closed_error(c));
    if (c->connecting || c->pub.connected)
        return tc_fail(err, DL_E_INVAL);
    if (!c->bound) {
        uint8_t any[16] = {0};
        if (glue_bind(dc, any, 0, err) != DL_OK)
            return DL_ERROR;
    }
    struct tcp_pcb *bound = c->pub.pcb;
    if (bound->local_port == 0 && tcp_bind(bound, &bound->local_ip, 0) != ERR_OK)
        return tc_fail(err, DL_E_ADDRINUSE);
    int cap = backlog < 1 ? 1 : backlog > MAX_BACKLOG ? MAX_BACKLOG : backlog;
    conn **acc = calloc((size_t)cap, sizeof *acc);
    if (!acc)
        return tc_fail(err, DL_E_NOMEM);
    err_t e;
    /* lwIP frees the bound pcb and returns a smaller listening one */
    struct tcp_pcb *lpcb = tcp_listen_with_backlog_and_err(c->pub.pcb, (u8_t)cap, &e);
    if (!lpcb) {
        free(acc);
        return tc_fail(err, e == ERR_USE ? DL_E_ADDRINUSE : DL_E_NOMEM);
    }
    c->pub.pcb = lpcb;
    c->pub.listening = true;
    c->acc = acc;
    c->acc_cap = cap;
    tcp_arg(lpcb, c);
    tcp_accept(lpcb, tc_on_accept);
    tc_snapshot(c);
    return DL_OK;
}

int glue_accept(dl_conn *dl, dl_conn **out, uint32_t token, int *err)
{
    conn *l = (conn *)dl;
    *out = NULL;
    if (!l->pub.listening)
        return tc_fail(err, DL_E_INVAL);
    if (l->acc_n) {
        conn *c = l->acc[l->acc_head];
        l->acc_head = (l->acc_head + 1) % l->acc_cap;
        l->acc_n--;
        c->listener = NULL;
        if (c->pub.pcb)
            tcp_backlog_accepted(c->pub.pcb);
        *out = &c->pub; /* ownership: the host's now (conn_free) */
        return DL_OK;
    }
    if (!l->pub.pcb)
        return tc_fail(err, tc_closed_error(l));
    l->pub.read_token = token;
    return DL_AGAIN;
}

/* An IPv4 destination we could never reach: off-link with no gateway. */
static bool unreachable4(const ip_addr_t *src, const ip_addr_t *dst)
{
    if (!IP_IS_V4(dst))
        return false;
    struct netif *n = ip4_route_src(ip_2_ip4(src), ip_2_ip4(dst));
    if (!n)
        return true;
    return !ip4_addr_net_eq(ip_2_ip4(dst), netif_ip4_addr(n), netif_ip4_netmask(n)) &&
           ip4_addr_isany_val(*netif_ip4_gw(n));
}

/* dst is an address of this instance: lwIP would send the SYN out of the
 * port to itself (there is no loopback here) and time out after ~30 s. */
static bool own_address(const ip_addr_t *dst)
{
    struct netif *n;
    NETIF_FOREACH(n)
    {
        if (IP_IS_V4(dst) ? ip4_addr_eq(ip_2_ip4(dst), netif_ip4_addr(n))
                          : netif_get_ip6_addr_match(n, ip_2_ip6(dst)) >= 0)
            return true;
    }
    return false;
}

int glue_connect(dl_conn *dc, const uint8_t *addr, uint16_t port, uint32_t token, int *err)
{
    conn *c = (conn *)dc;
    if (c->pub.error)
        return tc_fail(err, c->pub.error);
    if (c->pub.connected)
        return DL_OK;
    if (!c->pub.pcb)
        return tc_fail(err, DL_E_CLOSED);
    if (c->pub.listening)
        return tc_fail(err, DL_E_INVAL);
    if (c->connecting) {
        c->pub.read_token = token;
        return DL_AGAIN;
    }
    ip_addr_t ip;
    if (!tc_to_ipaddr(c->pub.family, addr, &ip) || ip_addr_isany(&ip) || port == 0)
        return tc_fail(err, DL_E_INVAL);
    struct tcp_pcb *pcb = c->pub.pcb;
    if (unreachable4(&pcb->local_ip, &ip))
        return tc_fail(err, DL_E_UNREACH);
    if (own_address(&ip))
        return tc_fail(err, DL_E_SELF);
    st_steer_bind(pcb, &ip, port); /* a local port whose flow this worker owns */
    switch (tcp_connect(pcb, &ip, port, tc_on_connected)) {
    case ERR_OK:
        break;
    case ERR_RTE:
        return tc_fail(err, DL_E_UNREACH);
    case ERR_USE:
        return tc_fail(err, DL_E_ADDRINUSE);
    case ERR_BUF: /* no free local port */
        return tc_fail(err, DL_E_ADDRNOTAVAIL);
    case ERR_MEM:
        return tc_fail(err, DL_E_NOMEM);
    default:
        return tc_fail(err, DL_E_INVAL);
    }
    c->connecting = true;
    c->bound = true;
    c->pub.read_token = token;
    return DL_AGAIN;
}

int glue_send(dl_conn *dc, const char *data, size_t len, size_t *sent, uint32_t token, int *err)
{
    conn *c = (conn *)dc;
    struct tcp_pcb *pcb = c->pub.pcb;
    *sent = 0;
    if (c->pub.error)
        return tc_fail(err, c->pub.error);
    if (!pcb || c->wr_shut || c->pub.listening || (!c->pub.connected && !c->connecting))
        return tc_fail(err, DL_E_CLOSED);
    size_t done = 0;
    bool shared_short = false; /* the worker's segments, not this connection's buffer */
    while (done < len) {
        size_t chunk = len - done;
        if (chunk > pcb->snd_buf)
            chunk = pcb->snd_buf;
        if (chunk > 0xffff) /* tcp_write takes a u16 */
            chunk = 0xffff;
        if (chunk == 0)
            break;
        if (segs_short(pcb)) {
            shared_short = true;
            break;
        }
        u8_t flags = TCP_WRITE_FLAG_COPY | (done + chunk < len ? TCP_WRITE_FLAG_MORE : 0);
        err_t e = tcp_write(pcb, data + done, (u16_t)chunk, flags); /* copies */
        if (e == ERR_MEM) { /* segments or heap exhausted: take what went in */
            shared_short = pcb->snd_queuelen < TCP_SND_QUEUELEN - 1;
            break;
        }
        if (e != ERR_OK) {
            if (done)
                break;
            return tc_fail(err, DL_E_CLOSED);
        }
        done += chunk;
    }
    if (done) {
        *sent = done;
        tc_mark_dirty(c);
        return DL_OK;
    }
    if (len == 0 && pcb->snd_buf > 0 && pcb->snd_queuelen < TCP_SND_QUEUELEN) {
        if (!segs_short(pcb))
            return DL_OK; /* only asked for send space */
        shared_short = true;
    }
    /* Wait: this connection's sent callback frees its own buffer; a shared
     * shortage may last while it has nothing in flight, so the writer also
     * parks until the pool has room again (glue_poll_resources). */
    c->pub.write_token = token;
    if (shared_short)
        tc_res_park(c, segs_wanted(pcb));
    return DL_AGAIN;
}

/* The host consumed n bytes: free whole pbufs, re-open the window. */
static void consume(conn *c, size_t n)
{
    size_t left = n;
    while (c->rx_head) {
        struct pbuf *p = c->rx_head;
        size_t avail = (size_t)(p->len - c->rx_off);
        if (left < avail) {
            c->rx_off = (u16_t)(c->rx_off + left);
            break;
        }
        left -= avail;
        c->rx_head = p->next;
        c->rx_off = 0;
        p->next = NULL;
        pbuf_free(p); /* ownership: the queue's reference → lwIP (mbuf back to its pool) */
    }
    if (!c->rx_head)
        c->rx_tail = NULL;
    c->rx_bytes -= n;
    tc_count.rx_unread -= n;
    if (c->pub.pcb) {
        size_t give = n;
        if (c->rx_withheld && tc_count.rx_unread < RX_BUDGET) { /* a reader earns window */
            size_t more = c->rx_withheld < n ? c->rx_withheld : n;
            c->rx_withheld -= (u32_t)more;
            give += more;
        }
        tc_return_window(c, give, true);
    }
}

int glue_recv(dl_conn *dc, char *buf, size_t len, size_t *got, uint32_t token, int *err)
{
    conn *c = (conn *)dc;
    *got = 0;
    if (c->pub.listening)
        return tc_fail(err, DL_E_INVAL);
    if (c->rx_bytes) {
        size_t n = 0;
        u16_t off = c->rx_off;
        for (struct pbuf *p = c->rx_head; p && n < len; p = p->next, off = 0) {
            size_t take = (size_t)(p->len - off);
            if (take > len - n)
                take = len - n;
            memcpy(buf + n, (const char *)p->payload + off, take);
            n += take;
        }
        consume(c, n);
        *got = n;
        return DL_OK;
    }
    if (c->pub.peer_closed)
        return DL_OK; /* EOF */
    if (c->pub.error)
        return tc_fail(err, c->pub.error);
    if (!c->pub.pcb)
        return tc_fail(err, DL_E_CLOSED);
    c->pub.read_token = token;
    /* The reader parks: what it sent goes out now, not at the next turn's
     * poll (a request-response peer waits for it; the sends of the task's
     * run are batched up to here). Not while a TX queue is backlogged: then
     * it waits its turn in glue_output_dirty, as do segments lwIP kept for
     * want of an mbuf (ERR_MEM; nothing else would send them). */
    if (c->dirty && !st_netif_tx_backlogged()) {
        tc_unmark_dirty(c);
        if (tcp_output(c->pub.pcb) == ERR_MEM)
            tc_mark_dirty(c);
        st_flush_now();
    }
    return DL_AGAIN;
}

int glue_state(const dl_conn *dc)
{
    const conn *c = (const conn *)dc;
    int s = 0;
    if (c->pub.connected && !c->pub.error && c->pub.pcb)
        s |= DL_TCP_CONNECTED;
    if (c->pub.peer_closed)
        s |= DL_TCP_PEER_CLOSED;
    if (c->pub.error || (!c->pub.pcb && !c->pub.peer_closed))
        s |= DL_TCP_FAILED;
    if (c->rx_bytes)
        s |= DL_TCP_UNREAD;
    return s;
}

int glue_shutdown_send(dl_conn *dc, int *err)
{
    conn *c = (conn *)dc;
    if (c->wr_shut)
        return DL_OK;
    if (!c->pub.pcb)
        return tc_fail(err, tc_closed_error(c));
    if (c->pub.listening)
        return tc_fail(err, DL_E_INVAL);
    /* FIN after the queued data; tcp_shutdown runs tcp_output itself. If the
     * peer's FIN came already, lwIP frees the pcb after the last ACK and
     * on_err reports ERR_CLSD. */
    err_t e = tcp_shutdown(c->pub.pcb, 0, 1);
    if (e != ERR_OK)
        return tc_fail(err, e == ERR_MEM ? DL_E_NOMEM : DL_E_INVAL);
    c->wr_shut = true;
    tc_unmark_dirty(c);
    tc_wake(&c->pub.write_token, DL_E_CLOSED);
    return DL_OK;
}

int glue_close(dl_conn *dc, int *err)
{
    conn *c = (conn *)dc;
    LWIP_UNUSED_ARG(err);
    if (c->closed)
        return DL_OK;
    c->closed = true;
    tc_snapshot(c);
    if (c->pub.listening) {
        tc_close_listener(c);
    } else if (c->pub.pcb) {
        if (c->rx_withheld && !c->rx_bytes) /* a full window: FIN, not the RST of unread data */
            tc_return_window(c, c->rx_withheld, false);
        c->rx_withheld = 0;
        struct tcp_pcb *pcb = c->pub.pcb;
        c->pub.pcb = NULL;
        tc_unmark_dirty(c);
        tc_res_unlink(c);
        tc_orphan(pcb); /* bounded by linger_ms; retries a FIN that found no memory */
        /* Unread data makes lwIP send RST instead of FIN, as Linux does. */
        tcp_close(pcb);
        /* ownership: pcb → lwIP, which finishes the close on its own */
    }
    tc_free_rx(c);
    if (!c->pub.error)
        c->pub.error = DL_E_CLOSED;
    tc_wake(&c->pub.read_token, DL_E_CLOSED);
    tc_wake(&c->pub.write_token, DL_E_CLOSED);
    return DL_OK;
}

int glue_setopt(dl_conn *dc, int opt, int value, int *err)
{
    conn *c = (conn *)dc;
    struct tcp_pcb *pcb = c->pub.pcb;
    if (opt == DL_OPT_SNDBUF || opt == DL_OPT_RCVBUF)
        return DL_OK; /* fixed at build time (lwipopts.h); getopt reports them */
    if (!pcb)
        return tc_fail(err, tc_closed_error(c));
    switch (opt) {
    case DL_OPT_NODELAY:
        if (c->pub.listening) /* a listening pcb has no flags field */
            c->nodelay = value != 0;
        else if (value)
            tcp_nagle_disable(pcb);
        else
            tcp_nagle_enable(pcb);
        return DL_OK;
    case DL_OPT_TTL:
        if (value < 1 || value > 255)
            return tc_fail(err, DL_E_INVAL);
        pcb->ttl = (u8_t)value;
        return DL_OK;
    case DL_OPT_KEEPALIVE: /* inherited by accepted connections */
        if (value)
            ip_set_option(pcb, SOF_KEEPALIVE);
        else
            ip_reset_option(pcb, SOF_KEEPALIVE);
        return DL_OK;
    case DL_OPT_REUSEADDR:
        if (value)
            ip_set_option(pcb, SOF_REUSEADDR);
        else
            ip_reset_option(pcb, SOF_REUSEADDR);
        return DL_OK;
    case DL_OPT_KEEPINTVL:
    case DL_OPT_KEEPCNT:
        if (c->pub.listening || value < 1 || value > (opt == DL_OPT_KEEPCNT ? 127 : 32767))
            return tc_fail(err, DL_E_INVAL);
        if (opt == DL_OPT_KEEPINTVL)
            pcb->keep_intvl = (u32_t)value * 1000;
        else
            pcb->keep_cnt = (u32_t)value;
        return DL_OK;
    default:
        return tc_fail(err, DL_E_INVAL);
    }
}

int glue_getopt(const dl_conn *dc, int opt, int *value, int *err)
{
    const conn *c = (const conn *)dc;
    const struct tcp_pcb *pcb = c->pub.pcb;
    if (opt == DL_OPT_SNDBUF) {
        *value = TCP_SND_BUF;
        return DL_OK;
    }
    if (opt == DL_OPT_RCVBUF) {
        *value = TCP_WND;
        return DL_OK;
    }
    if (!pcb)
        return tc_fail(err, tc_closed_error(c));
    switch (opt) {
    case DL_OPT_NODELAY:
        *value = c->pub.listening ? c->nodelay : tcp_nagle_disabled(pcb) != 0;
        return DL_OK;
    case DL_OPT_TTL:
        *value = pcb->ttl;
        return DL_OK;
    case DL_OPT_KEEPALIVE:
        *value = ip_get_option(pcb, SOF_KEEPALIVE) != 0;
        return DL_OK;
    case DL_OPT_REUSEADDR:
        *value = ip_get_option(pcb, SOF_REUSEADDR) != 0;
        return DL_OK;
    case DL_OPT_KEEPINTVL:
    case DL_OPT_KEEPCNT:
        if (c->pub.listening)
            return tc_fail(err, DL_E_INVAL);
        *value = (int)(opt == DL_OPT_KEEPINTVL ? pcb->keep_intvl / 1000 : pcb->keep_cnt);
        return DL_OK;
    default:
        return tc_fail(err, DL_E_INVAL);
    }
}

int glue_local_addr(const dl_conn *dc, int *family, uint8_t addr[16], uint16_t *port)
{
    const conn *c = (const conn *)dc;
    const struct tcp_pcb *pcb = c->pub.pcb;
    tc_from_ipaddr(pcb ? &pcb->local_ip : &c->local_ip, family, addr);
    *port = pcb ? pcb->local_port : c->local_port;
    if (*family != c->pub.family) /* never bound: the unspecified address */
        *family = c->pub.family;
    return DL_OK;
}

int glue_peer_addr(const dl_conn *dc, int *family, uint8_t addr[16], uint16_t *port)
{
    const conn *c = (const conn *)dc;
    const struct tcp_pcb *pcb = c->pub.pcb;
    if (c->pub.listening || (!c->pub.connected && !(pcb && c->connecting)))
        return DL_ERROR;
    tc_from_ipaddr(pcb ? &pcb->remote_ip : &c->remote_ip, family, addr);
    *port = pcb ? pcb->remote_port : c->remote_port;
    return DL_OK;
}

/* ---- the instance's hooks (poll, busy, shutdown) and the ends of conns ---- */

/* Once per loop turn: one tcp_output per connection that queued data, oldest
 * first, until a TX queue holds seven eighths of what it may or is out of
 * mbufs: the rest stay dirty for the next turn rather than overflow the queue
 * (a dropped frame costs an RTO). */
void glue_output_dirty(void)
{
    while (tc_dirty_head) {
        if (st_netif_tx_nearly_full())
            return;
        conn *c = tc_dirty_head;
        tc_unmark_dirty(c);
        if (c->pub.pcb && tcp_output(c->pub.pcb) == ERR_MEM) {
            tc_mark_dirty(c); /* lwIP kept the segment: again next turn */
            return;
        }
    }
}

void glue_conn_free(dl_conn *dc)
{
    conn *c = (conn *)dc;
    if (!c)
        return;
    if (!c->pub.orphaned) {
        if (c->pub.listening)
            tc_close_listener(c);
        else
            tc_abort_pcb(c); /* still open: RST, as close() on Linux with SO_LINGER 0 */
        tc_free_rx(c);
        tc_unmark_dirty(c);
        tc_unlink_all(c);
    }
    free(c->acc);
    free(c);
}

/* Connections still delivering queued data or a FIN: a clean shutdown waits
 * for them (TIME_WAIT and FIN_WAIT_2 need nothing more from us). */
int glue_busy(void)
{
    int n = 0;
    for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next)
        if (p->unsent || p->unacked || p->state == FIN_WAIT_1 || p->state == CLOSING ||
            p->state == LAST_ACK)
            n++;
    return n;
}

/* A runtime stops: every listener, then every connection still open, is
 * closed (FIN after its queued data) whether Lua still holds it or only a
 * pending finalizer does; the drain that follows lets the FINs out. */
void glue_close_all(void)
{
    bool again = true;
    while (again) { /* closing a listener frees its queue: walk the list anew */
        again = false;
        for (conn *c = tc_all_head; c; c = c->all_next)
            if (c->pub.listening && !c->closed) {
                glue_close(&c->pub, NULL);
                again = true;
                break;
            }
    }
    for (conn *c = tc_all_head; c; c = c->all_next)
        if (!c->closed && !c->listener)
            glue_close(&c->pub, NULL);
}

/* End of a runtime: every connection fails with DL_E_ABORTED, lets go of its
 * buffers (they hold mbufs of pools about to go) and becomes an orphan that
 * only conn_free may touch (a Lua finalizer may run much later); then every
 * pcb left in lwIP (closing, TIME_WAIT) is dropped so that the next runtime
 * starts clean. */
void glue_abort_all(void)
{
    bool again = true;
    while (again) { /* connections nobody accepted go with their listener's queue */
        again = false;
        for (conn *c = tc_all_head; c; c = c->all_next)
            if (c->pub.listening && c->acc_n) {
                tc_close_listener(c);
                again = true;
                break;
            }
    }
    while (tc_all_head) {
        conn *c = tc_all_head;
        tc_abort_pcb(c);
        tc_free_rx(c);
        tc_unmark_dirty(c);
        c->connecting = false;
        if (!c->pub.error || c->pub.error == DL_E_CLOSED)
            c->pub.error = c->closed ? DL_E_CLOSED : DL_E_ABORTED;
        tc_wake(&c->pub.read_token, DL_E_ABORTED);
        tc_wake(&c->pub.write_token, DL_E_ABORTED);
        tc_unlink_all(c);
        c->pub.orphaned = true;
    }
    while (tcp_active_pcbs) {
        tc_detach(tcp_active_pcbs);
        tcp_abort(tcp_active_pcbs);
    }
    while (tcp_tw_pcbs)
        tcp_abort(tcp_tw_pcbs);
    while (tcp_bound_pcbs)
        tcp_close(tcp_bound_pcbs);
    while (tcp_listen_pcbs.listen_pcbs)
        tcp_close((struct tcp_pcb *)tcp_listen_pcbs.listen_pcbs);
    tc_res_head = NULL; /* every conn was unlinked above */
    release_ballast();
}

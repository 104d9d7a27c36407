/*
 * tcp_glue.c — the TCP members of stack_ops over lwIP's raw API.
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

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"

#include "internal.h"

/* A waiting writer is woken once this much send buffer is free again (or
 * everything sent was acknowledged): fewer, larger writes. */
#define WRITE_WAKE_BYTES (TCP_SND_BUF / 4)
/* lwIP's poll callback interval, in coarse ticks (2 x TCP_TMR_INTERVAL). */
#define POLL_TICKS 2
/* lwIP counts accept backlogs in a u8. */
#define MAX_BACKLOG 255

typedef struct conn conn;
struct conn {
    dl_conn pub; /* first: a dl_conn* is a conn* */
    conn *all_prev, *all_next;     /* every connection of the instance */
    conn *dirty_prev, *dirty_next; /* queued tcp_output */
    bool dirty;
    bool bound, connecting, wr_shut, closed;
    /* receive queue: pbufs linked through ->next, each holding one reference */
    struct pbuf *rx_head, *rx_tail;
    u16_t rx_off; /* bytes of rx_head already read */
    size_t rx_bytes;
    /* listener: accepted connections not yet taken by accept() */
    conn **acc;
    int acc_head, acc_n, acc_cap;
    conn *listener; /* while in a listener's queue */
    bool nodelay;   /* listener: given to accepted connections */
    /* addresses, kept for local_addr/peer_addr after lwIP let go of the pcb */
    ip_addr_t local_ip, remote_ip;
    u16_t local_port, remote_port;
};

static conn *all_head;
static conn *dirty_head;

static int fail(int *err, int code)
{
    if (err)
        *err = code;
    return DL_ERROR;
}

static void wake(uint32_t *token, int64_t arg)
{
    uint32_t t = *token;
    if (t) {
        *token = 0;
        st_inst.env.wake(st_inst.env.worker, t, arg);
    }
}

static void link_all(conn *c)
{
    c->all_next = all_head;
    if (all_head)
        all_head->all_prev = c;
    all_head = c;
}

static void unlink_all(conn *c)
{
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else if (all_head == c)
        all_head = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = NULL;
}

static void mark_dirty(conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_prev = NULL;
    c->dirty_next = dirty_head;
    if (dirty_head)
        dirty_head->dirty_prev = c;
    dirty_head = c;
}

static void unmark_dirty(conn *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        dirty_head = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty = false;
    c->dirty_prev = c->dirty_next = NULL;
}

void glue_output_dirty(void)
{
    while (dirty_head) {
        conn *c = dirty_head;
        unmark_dirty(c);
        if (c->pub.pcb)
            tcp_output(c->pub.pcb);
    }
}

static void free_rx(conn *c)
{
    while (c->rx_head) {
        struct pbuf *p = c->rx_head;
        c->rx_head = p->next;
        p->next = NULL;
        pbuf_free(p); /* ownership: the queue's reference → lwIP (mbuf back to its pool) */
    }
    c->rx_tail = NULL;
    c->rx_off = 0;
    c->rx_bytes = 0;
}

static void snapshot(conn *c)
{
    struct tcp_pcb *pcb = c->pub.pcb;
    if (!pcb)
        return;
    ip_addr_copy(c->local_ip, pcb->local_ip);
    c->local_port = pcb->local_port;
    if (!c->pub.listening) {
        ip_addr_copy(c->remote_ip, pcb->remote_ip);
        c->remote_port = pcb->remote_port;
    }
}

static int family_of(const ip_addr_t *a)
{
    return IP_IS_V6(a) ? 6 : 4;
}

static bool to_ipaddr(int family, const uint8_t *addr, ip_addr_t *out)
{
    if (family == 4) {
        ip4_addr_t a;
        memcpy(&a.addr, addr, 4);
        ip_addr_copy_from_ip4(*out, a);
        return true;
    }
    if (family == 6) {
        ip6_addr_t a;
        memcpy(a.addr, addr, 16);
        ip6_addr_clear_zone(&a);
        /* a link-local address means our (first) link */
        if (ip6_addr_lacks_zone(&a, IP6_UNICAST) && st_first_netif())
            ip6_addr_assign_zone(&a, IP6_UNICAST, st_first_netif());
        ip_addr_copy_from_ip6(*out, a);
        return true;
    }
    return false;
}

static void from_ipaddr(const ip_addr_t *a, int *family, uint8_t addr[16])
{
    *family = family_of(a);
    if (*family == 6)
        memcpy(addr, ip_2_ip6(a)->addr, 16);
    else
        memcpy(addr, &ip_2_ip4(a)->addr, 4);
}

/* ---- lwIP callbacks: record, wake, nothing else ---- */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err);
static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len);
static void on_err(void *arg, err_t err);
static err_t on_poll(void *arg, struct tcp_pcb *pcb);

static void attach(conn *c, struct tcp_pcb *pcb)
{
    tcp_arg(pcb, c);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_poll(pcb, on_poll, POLL_TICKS);
}

/* After this lwIP never calls back for pcb: it may outlive the conn. */
static void detach(struct tcp_pcb *pcb)
{
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL);
    tcp_sent(pcb, NULL);
    tcp_err(pcb, NULL);
    tcp_poll(pcb, NULL, 0);
}

static bool writable_again(const struct tcp_pcb *pcb)
{
    if (pcb->snd_queuelen >= TCP_SND_QUEUELEN / 2)
        return false;
    return pcb->snd_buf >= WRITE_WAKE_BYTES || (!pcb->unsent && !pcb->unacked);
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    conn *c = arg;
    LWIP_UNUSED_ARG(pcb);
    LWIP_UNUSED_ARG(err); /* always ERR_OK in lwIP 2.x */
    if (!p) { /* FIN */
        c->pub.peer_closed = true;
        if (c->wr_shut) {
            /* Both directions are done: lwIP finishes (TIME_WAIT) on its own
             * and may free the pcb without telling us, so let go of it now. */
            snapshot(c);
            detach(c->pub.pcb);
            unmark_dirty(c);
            c->pub.pcb = NULL;
        }
        wake(&c->pub.read_token, 0);
        return ERR_OK;
    }
    /* The queue links pbufs through ->next: only sole references may be linked. */
    struct pbuf *last = p;
    for (struct pbuf *q = p; q; q = q->next) {
        if (q->ref != 1) {
            struct pbuf *copy = pbuf_clone(PBUF_RAW, PBUF_RAM, p);
            if (!copy)
                return ERR_MEM; /* lwIP keeps p and offers it again later */
            pbuf_free(p);
            p = last = copy;
            break;
        }
        last = q;
    }
    c->rx_bytes += p->tot_len;
    /* ownership: lwIP → the connection's receive queue */
    if (c->rx_tail)
        c->rx_tail->next = p;
    else
        c->rx_head = p;
    c->rx_tail = last;
    wake(&c->pub.read_token, 0);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    conn *c = arg;
    if (c->pub.write_token && writable_again(pcb))
        wake(&c->pub.write_token, len);
    return ERR_OK;
}

static int error_code(const conn *c, err_t err)
{
    switch (err) {
    case ERR_RST:
        return c->pub.connected ? DL_E_RESET : DL_E_REFUSED;
    case ERR_ABRT: /* our own aborts are detached: this is lwIP giving up */
        return DL_E_TIMEDOUT;
    case ERR_CLSD:
        return DL_E_CLOSED;
    case ERR_MEM:
        return DL_E_NOMEM;
    default:
        return DL_E_ABORTED;
    }
}

/* lwIP has already freed the pcb. */
static void on_err(void *arg, err_t err)
{
    conn *c = arg;
    c->pub.pcb = NULL;
    unmark_dirty(c);
    c->connecting = false;
    if (!c->pub.error)
        c->pub.error = error_code(c, err);
    wake(&c->pub.read_token, c->pub.error);
    wake(&c->pub.write_token, c->pub.error);
}

static err_t on_poll(void *arg, struct tcp_pcb *pcb)
{
    conn *c = arg;
    if (!c) {
        /* A closed pcb whose FIN found no memory: try again. */
        tcp_poll(pcb, NULL, 0);
        if (tcp_close(pcb) != ERR_OK)
            tcp_poll(pcb, on_poll, POLL_TICKS);
        return ERR_OK;
    }
    /* A writer that met ERR_MEM with nothing in flight has no sent callback
     * coming: retry from here. */
    if (c->pub.write_token && pcb->snd_buf > 0 && pcb->snd_queuelen < TCP_SND_QUEUELEN)
        wake(&c->pub.write_token, 0);
    return ERR_OK;
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    conn *c = arg;
    LWIP_UNUSED_ARG(pcb);
    LWIP_UNUSED_ARG(err); /* always ERR_OK */
    c->connecting = false;
    c->pub.connected = true;
    snapshot(c);
    wake(&c->pub.read_token, 0);
    return ERR_OK;
}

static conn *conn_alloc(struct tcp_pcb *pcb, int family)
{
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->pub.pcb = pcb;
    c->pub.family = family;
    c->pub.stack_data = c;
    link_all(c);
    return c;
}

static err_t on_accept(void *arg, struct tcp_pcb *newpcb, err_t err)
{
    conn *l = arg;
    if (!newpcb || err != ERR_OK)
        return ERR_VAL; /* lwIP ran out of pcbs: nothing to record */
    if (l->acc_n == l->acc_cap)
        return ERR_MEM; /* lwIP aborts newpcb */
    conn *c = conn_alloc(newpcb, family_of(&newpcb->local_ip));
    if (!c)
        return ERR_MEM;
    c->pub.owner = l->pub.owner;
    c->pub.connected = true;
    c->bound = true;
    attach(c, newpcb);
    /* what Linux sockets inherit from their listener */
    newpcb->ttl = ((struct tcp_pcb_listen *)l->pub.pcb)->ttl;
    if (l->nodelay)
        tcp_nagle_disable(newpcb);
    snapshot(c);
    /* counts against the backlog until accept() takes it */
    tcp_backlog_delayed(newpcb);
    c->listener = l;
    l->acc[(l->acc_head + l->acc_n++) % l->acc_cap] = c; /* ownership: in l's queue */
    wake(&l->pub.read_token, 0);
    return ERR_OK;
}

/* ---- ops ---- */

dl_conn *glue_conn_new(int family, int *err)
{
    if (family != 4 && family != 6) {
        fail(err, DL_E_INVAL);
        return NULL;
    }
    struct tcp_pcb *pcb = tcp_new_ip_type(family == 6 ? IPADDR_TYPE_V6 : IPADDR_TYPE_V4);
    if (!pcb) {
        fail(err, DL_E_NOMEM);
        return NULL;
    }
    conn *c = conn_alloc(pcb, family);
    if (!c) {
        tcp_close(pcb); /* a fresh pcb is freed at once */
        fail(err, DL_E_NOMEM);
        return NULL;
    }
    /* as nginx does for its listeners: reopen a port with TIME_WAIT leftovers */
    ip_set_option(pcb, SOF_REUSEADDR);
    attach(c, pcb);
    return &c->pub;
}

static void abort_pcb(conn *c)
{
    struct tcp_pcb *pcb = c->pub.pcb;
    if (!pcb)
        return;
    c->pub.pcb = NULL;
    unmark_dirty(c);
    if (c->pub.listening) {
        tcp_arg(pcb, NULL);
        tcp_accept(pcb, NULL);
        tcp_close(pcb); /* a listener closes at once */
    } else {
        detach(pcb);
        tcp_abort(pcb); /* RST; lwIP frees the pcb */
    }
}

/* Close a listener and drop the connections nobody accepted. */
static void close_listener(conn *l)
{
    abort_pcb(l);
    while (l->acc_n) {
        conn *c = l->acc[l->acc_head];
        l->acc_head = (l->acc_head + 1) % l->acc_cap;
        l->acc_n--;
        abort_pcb(c);
        free_rx(c);
        unlink_all(c);
        free(c);
    }
}

void glue_conn_free(dl_conn *dc)
{
    conn *c = (conn *)dc;
    if (!c)
        return;
    if (c->pub.listening)
        close_listener(c);
    else
        abort_pcb(c); /* still open: RST, as close() on Linux with SO_LINGER 0 */
    free_rx(c);
    unmark_dirty(c);
    unlink_all(c);
    free(c->acc);
    free(c);
}

static int closed_error(const conn *c)
{
    return c->pub.error ? c->pub.error : DL_E_CLOSED;
}

int glue_bind(dl_conn *dc, const uint8_t *addr, uint16_t port, int *err)
{
    conn *c = (conn *)dc;
    if (!c->pub.pcb)
        return fail(err, closed_error(c));
    if (c->bound || c->pub.listening)
        return fail(err, DL_E_INVAL);
    ip_addr_t ip;
    if (!to_ipaddr(c->pub.family, addr, &ip))
        return fail(err, DL_E_INVAL);
    if (!ip_addr_isany(&ip) && !st_addr_is_local(&ip))
        return fail(err, DL_E_ADDRNOTAVAIL);
    switch (tcp_bind(c->pub.pcb, &ip, port)) {
    case ERR_OK:
        break;
    case ERR_USE:
    case ERR_BUF: /* no free ephemeral port */
        return fail(err, DL_E_ADDRINUSE);
    default:
        return fail(err, DL_E_INVAL);
    }
    c->bound = true;
    snapshot(c);
    return DL_OK;
}

int glue_listen(dl_conn *dc, int backlog, int *err)
{
    conn *c = (conn *)dc;
    if (c->pub.listening)
        return DL_OK;
    if (!c->pub.pcb)
        return fail(err, closed_error(c));
    if (c->connecting || c->pub.connected)
        return fail(err, DL_E_INVAL);
    if (!c->bound) {
        uint8_t any[16] = {0};
        if (glue_bind(dc, any, 0, err) != DL_OK)
            return DL_ERROR;
    }
    int cap = backlog < 1 ? 1 : backlog > MAX_BACKLOG ? MAX_BACKLOG : backlog;
    conn **acc = calloc((size_t)cap, sizeof *acc);
    if (!acc)
        return fail(err, DL_E_NOMEM);
    err_t e;
    /* lwIP frees the bound pcb and returns a smaller listening one */
    struct tcp_pcb *lpcb = tcp_listen_with_backlog_and_err(c->pub.pcb, (u8_t)cap, &e);
    if (!lpcb) {
        free(acc);
        return fail(err, e == ERR_USE ? DL_E_ADDRINUSE : DL_E_NOMEM);
    }
    c->pub.pcb = lpcb;
    c->pub.listening = true;
    c->acc = acc;
    c->acc_cap = cap;
    tcp_arg(lpcb, c);
    tcp_accept(lpcb, on_accept);
    snapshot(c);
    return DL_OK;
}

int glue_accept(dl_conn *dl, dl_conn **out, uint32_t token, int *err)
{
    conn *l = (conn *)dl;
    *out = NULL;
    if (!l->pub.listening)
        return fail(err, DL_E_INVAL);
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
        return fail(err, closed_error(l));
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

int glue_connect(dl_conn *dc, const uint8_t *addr, uint16_t port, uint32_t token, int *err)
{
    conn *c = (conn *)dc;
    if (c->pub.connected)
        return DL_OK;
    if (c->pub.error)
        return fail(err, c->pub.error);
    if (!c->pub.pcb)
        return fail(err, DL_E_CLOSED);
    if (c->pub.listening)
        return fail(err, DL_E_INVAL);
    if (c->connecting) {
        c->pub.read_token = token;
        return DL_AGAIN;
    }
    ip_addr_t ip;
    if (!to_ipaddr(c->pub.family, addr, &ip) || ip_addr_isany(&ip) || port == 0)
        return fail(err, DL_E_INVAL);
    struct tcp_pcb *pcb = c->pub.pcb;
    if (unreachable4(&pcb->local_ip, &ip))
        return fail(err, DL_E_UNREACH);
    switch (tcp_connect(pcb, &ip, port, on_connected)) {
    case ERR_OK:
        break;
    case ERR_RTE:
        return fail(err, DL_E_UNREACH);
    case ERR_USE:
        return fail(err, DL_E_ADDRINUSE);
    case ERR_BUF: /* no free local port */
        return fail(err, DL_E_ADDRNOTAVAIL);
    case ERR_MEM:
        return fail(err, DL_E_NOMEM);
    default:
        return fail(err, DL_E_INVAL);
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
        return fail(err, c->pub.error);
    if (!pcb || c->wr_shut || c->pub.listening || (!c->pub.connected && !c->connecting))
        return fail(err, DL_E_CLOSED);
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done;
        if (chunk > pcb->snd_buf)
            chunk = pcb->snd_buf;
        if (chunk > 0xffff) /* tcp_write takes a u16 */
            chunk = 0xffff;
        if (chunk == 0)
            break;
        u8_t flags = TCP_WRITE_FLAG_COPY | (done + chunk < len ? TCP_WRITE_FLAG_MORE : 0);
        err_t e = tcp_write(pcb, data + done, (u16_t)chunk, flags); /* copies */
        if (e == ERR_MEM)
            break; /* segments or heap exhausted: take what went in */
        if (e != ERR_OK) {
            if (done)
                break;
            return fail(err, DL_E_CLOSED);
        }
        done += chunk;
    }
    if (done || len == 0) {
        *sent = done;
        if (done)
            mark_dirty(c);
        return DL_OK;
    }
    c->pub.write_token = token;
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
    if (c->pub.pcb) {
        while (n) {
            u16_t k = n > 0xffff ? 0xffff : (u16_t)n; /* tcp_recved takes a u16 */
            tcp_recved(c->pub.pcb, k);
            n -= k;
        }
    }
}

int glue_recv(dl_conn *dc, char *buf, size_t len, size_t *got, bool peek, uint32_t token,
              int *err)
{
    conn *c = (conn *)dc;
    *got = 0;
    if (c->pub.listening)
        return fail(err, DL_E_INVAL);
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
        if (!peek)
            consume(c, n);
        *got = n;
        return DL_OK;
    }
    if (c->pub.peer_closed)
        return DL_OK; /* EOF */
    if (c->pub.error)
        return fail(err, c->pub.error);
    if (!c->pub.pcb)
        return fail(err, DL_E_CLOSED);
    c->pub.read_token = token;
    return DL_AGAIN;
}

size_t glue_readable_bytes(const dl_conn *dc)
{
    const conn *c = (const conn *)dc;
    return c->pub.listening ? (size_t)c->acc_n : c->rx_bytes;
}

size_t glue_writable_bytes(const dl_conn *dc)
{
    const conn *c = (const conn *)dc;
    const struct tcp_pcb *pcb = c->pub.pcb;
    if (!pcb || c->pub.listening || c->wr_shut || c->pub.error ||
        pcb->snd_queuelen >= TCP_SND_QUEUELEN)
        return 0;
    return pcb->snd_buf;
}

int glue_shutdown_send(dl_conn *dc, int *err)
{
    conn *c = (conn *)dc;
    if (c->wr_shut)
        return DL_OK;
    if (!c->pub.pcb)
        return fail(err, closed_error(c));
    if (c->pub.listening)
        return fail(err, DL_E_INVAL);
    /* FIN after the queued data; tcp_shutdown runs tcp_output itself. If the
     * peer's FIN came already, lwIP frees the pcb after the last ACK and
     * on_err reports ERR_CLSD. */
    err_t e = tcp_shutdown(c->pub.pcb, 0, 1);
    if (e != ERR_OK)
        return fail(err, e == ERR_MEM ? DL_E_NOMEM : DL_E_INVAL);
    c->wr_shut = true;
    unmark_dirty(c);
    wake(&c->pub.write_token, DL_E_CLOSED);
    return DL_OK;
}

int glue_close(dl_conn *dc, int *err)
{
    conn *c = (conn *)dc;
    LWIP_UNUSED_ARG(err);
    if (c->closed)
        return DL_OK;
    c->closed = true;
    snapshot(c);
    if (c->pub.listening) {
        close_listener(c);
    } else if (c->pub.pcb) {
        struct tcp_pcb *pcb = c->pub.pcb;
        c->pub.pcb = NULL;
        unmark_dirty(c);
        detach(pcb);
        /* Unread data makes lwIP send RST instead of FIN, as Linux does. */
        if (tcp_close(pcb) != ERR_OK)
            tcp_poll(pcb, on_poll, POLL_TICKS); /* no memory for the FIN: retried */
        /* ownership: pcb → lwIP, which finishes the close on its own */
    }
    free_rx(c);
    if (!c->pub.error)
        c->pub.error = DL_E_CLOSED;
    wake(&c->pub.read_token, DL_E_CLOSED);
    wake(&c->pub.write_token, DL_E_CLOSED);
    return DL_OK;
}

int glue_setopt(dl_conn *dc, int opt, int value, int *err)
{
    conn *c = (conn *)dc;
    struct tcp_pcb *pcb = c->pub.pcb;
    if (opt == DL_OPT_SNDBUF || opt == DL_OPT_RCVBUF)
        return DL_OK; /* fixed at build time (lwipopts.h); getopt reports them */
    if (!pcb)
        return fail(err, closed_error(c));
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
            return fail(err, DL_E_INVAL);
        pcb->ttl = (u8_t)value;
        return DL_OK;
    case DL_OPT_KEEPALIVE: /* inherited by accepted connections */
        if (value)
            ip_set_option(pcb, SOF_KEEPALIVE);
        else
            ip_reset_option(pcb, SOF_KEEPALIVE);
        return DL_OK;
    default:
        return fail(err, DL_E_INVAL);
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
        return fail(err, closed_error(c));
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
    default:
        return fail(err, DL_E_INVAL);
    }
}

int glue_local_addr(const dl_conn *dc, int *family, uint8_t addr[16], uint16_t *port)
{
    const conn *c = (const conn *)dc;
    const struct tcp_pcb *pcb = c->pub.pcb;
    from_ipaddr(pcb ? &pcb->local_ip : &c->local_ip, family, addr);
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
    from_ipaddr(pcb ? &pcb->remote_ip : &c->remote_ip, family, addr);
    *port = pcb ? pcb->remote_port : c->remote_port;
    return DL_OK;
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

/* End of a runtime: every connection fails with DL_E_ABORTED and lets go of
 * its buffers (they hold mbufs of pools about to go); then every pcb left in
 * lwIP (closing, TIME_WAIT) is dropped so that the next runtime starts clean. */
void glue_abort_all(void)
{
    for (conn *c = all_head; c; c = c->all_next) {
        abort_pcb(c);
        free_rx(c);
        c->connecting = false;
        if (!c->pub.error || c->pub.error == DL_E_CLOSED)
            c->pub.error = c->closed ? DL_E_CLOSED : DL_E_ABORTED;
        wake(&c->pub.read_token, DL_E_ABORTED);
        wake(&c->pub.write_token, DL_E_ABORTED);
    }
    while (tcp_active_pcbs) {
        detach(tcp_active_pcbs);
        tcp_abort(tcp_active_pcbs);
    }
    while (tcp_tw_pcbs)
        tcp_abort(tcp_tw_pcbs);
    while (tcp_bound_pcbs)
        tcp_close(tcp_bound_pcbs);
    while (tcp_listen_pcbs.listen_pcbs)
        tcp_close((struct tcp_pcb *)tcp_listen_pcbs.listen_pcbs);
}

/*
 * tcp_conn.c — connections of one instance: their lists (all, dirty), the
 * lwIP callbacks (record state, wake the waiting coroutine, nothing else),
 * and the helpers their ends share (close of a listener, abort).
 * Every op the host calls (glue_*) lives in tcp_glue.c.
 */
#include <stdlib.h>
#include <string.h>

#include "lwip/memp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/sys.h"
#include "lwip/tcp.h"

#include "tcp_conn.h"

static err_t tc_on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err);
static err_t tc_on_sent(void *arg, struct tcp_pcb *pcb, u16_t len);
static void tc_on_err(void *arg, err_t err);

conn *tc_all_head;
conn *tc_dirty_head, *tc_dirty_tail;
conn *tc_res_head;
tc_counts tc_count;

int tc_fail(int *err, int code)
{
    if (err)
        *err = code;
    return DL_ERROR;
}

void tc_wake(uint32_t *token, int64_t arg)
{
    uint32_t t = *token;
    if (t) {
        *token = 0;
        st_inst.env.wake(st_inst.env.worker, t, arg);
    }
}

static void tc_link_all(conn *c)
{
    c->all_next = tc_all_head;
    if (tc_all_head)
        tc_all_head->all_prev = c;
    tc_all_head = c;
}

void tc_unlink_all(conn *c)
{
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else if (tc_all_head == c)
        tc_all_head = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = NULL;
    tc_res_unlink(c);
}

/* ---- writers waiting for shared segments ---- */

u16_t tc_segs_used(void)
{
    return memp_pools[MEMP_TCP_SEG]->stats->used;
}

/* c's write_token is armed: wake it once `need` segments are free
 * (glue_wake_waiters, once per loop turn). */
void tc_res_park(conn *c, u16_t need)
{
    c->res_need = need;
    if (c->res_waiting)
        return;
    c->res_waiting = true;
    c->res_prev = NULL;
    c->res_next = tc_res_head;
    if (tc_res_head)
        tc_res_head->res_prev = c;
    tc_res_head = c;
    tc_count.segment_waits++;
}

void tc_res_unlink(conn *c)
{
    if (!c->res_waiting)
        return;
    if (c->res_prev)
        c->res_prev->res_next = c->res_next;
    else
        tc_res_head = c->res_next;
    if (c->res_next)
        c->res_next->res_prev = c->res_prev;
    c->res_waiting = false;
    c->res_prev = c->res_next = NULL;
}

void tc_mark_dirty(conn *c)
{
    if (c->dirty)
        return;
    /* at the tail: when a full TX queue stops a turn's output, the
     * connections left over go first next turn (glue_output_dirty) */
    c->dirty = true;
    c->dirty_next = NULL;
    c->dirty_prev = tc_dirty_tail;
    if (tc_dirty_tail)
        tc_dirty_tail->dirty_next = c;
    else
        tc_dirty_head = c;
    tc_dirty_tail = c;
}

void tc_unmark_dirty(conn *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        tc_dirty_head = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    else
        tc_dirty_tail = c->dirty_prev;
    c->dirty = false;
    c->dirty_prev = c->dirty_next = NULL;
}

void tc_free_rx(conn *c)
{
    while (c->rx_head) {
        struct pbuf *p = c->rx_head;
        c->rx_head = p->next;
        p->next = NULL;
        pbuf_free(p); /* ownership: the queue's reference → lwIP (mbuf back to its pool) */
    }
    c->rx_tail = NULL;
    c->rx_off = 0;
    tc_count.rx_unread -= c->rx_bytes;
    c->rx_bytes = 0;
}

/* Give n bytes of window back to lwIP. tcp_recved takes a u16 and sends a
 * window update from every call that opens ~35 KiB or more (a 1 MiB window
 * returned at close was 15 updates): all but the last 64 KiB go straight into
 * rcv_wnd, capped as tcp_recved caps it, so one call decides on one update.
 * announce false: no update, the next segment (a FIN) carries the window. */
void tc_return_window(conn *c, size_t n, bool announce)
{
    struct tcp_pcb *pcb = c->pub.pcb;
    size_t direct = announce && n > 0xffff ? n - 0xffff : announce ? 0 : n;
    if (direct) {
        size_t wnd = (size_t)pcb->rcv_wnd + direct;
        pcb->rcv_wnd = wnd > TCP_WND_MAX(pcb) ? TCP_WND_MAX(pcb) : (tcpwnd_size_t)wnd;
        tcp_update_rcv_ann_wnd(pcb);
    }
    if (n > direct)
        tcp_recved(pcb, (u16_t)(n - direct));
}

/* A new connection's window: RX_GRANT (RX_GRANT_MIN when the worker holds
 * much unread data), the rest withheld. Nothing larger was promised yet: a
 * SYN carries at most 65 535 bytes (unscaled), so the announced edge is
 * moved back too, or lwIP would keep announcing the full window. */
static void tc_grant_window(conn *c, struct tcp_pcb *pcb)
{
    tcpwnd_size_t grant = tc_count.rx_unread < RX_BUDGET / 2 ? RX_GRANT : RX_GRANT_MIN;
    if (pcb->rcv_wnd <= grant) /* no window scaling: 64 KiB at most anyway */
        return;
    c->rx_withheld = pcb->rcv_wnd - grant;
    pcb->rcv_wnd = grant;
    if (pcb->rcv_ann_wnd > grant)
        pcb->rcv_ann_wnd = grant;
    pcb->rcv_ann_right_edge = pcb->rcv_nxt + pcb->rcv_ann_wnd;
}

void tc_snapshot(conn *c)
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

static int tc_family_of(const ip_addr_t *a)
{
    return IP_IS_V6(a) ? 6 : 4;
}

bool tc_to_ipaddr(int family, const uint8_t *addr, ip_addr_t *out)
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

void tc_from_ipaddr(const ip_addr_t *a, int *family, uint8_t addr[16])
{
    *family = tc_family_of(a);
    if (*family == 6)
        memcpy(addr, ip_2_ip6(a)->addr, 16);
    else
        memcpy(addr, &ip_2_ip4(a)->addr, 4);
}

/* ---- lwIP callbacks: record, tc_wake, nothing else ---- */

void tc_attach(conn *c, struct tcp_pcb *pcb)
{
    tcp_arg(pcb, c);
    tcp_recv(pcb, tc_on_recv);
    tcp_sent(pcb, tc_on_sent);
    tcp_err(pcb, tc_on_err);
    tcp_poll(pcb, tc_on_poll, POLL_TICKS);
}

/* After this lwIP never calls back for pcb: it may outlive the conn. */
void tc_detach(struct tcp_pcb *pcb)
{
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL);
    tcp_sent(pcb, NULL);
    tcp_err(pcb, NULL);
    tcp_poll(pcb, NULL, 0);
}

static bool tc_writable_again(const struct tcp_pcb *pcb)
{
    if (pcb->snd_queuelen >= TCP_SND_QUEUELEN / 2)
        return false;
    return pcb->snd_buf >= WRITE_WAKE_BYTES || (!pcb->unsent && !pcb->unacked);
}

static err_t tc_on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    conn *c = arg;
    LWIP_UNUSED_ARG(pcb);
    LWIP_UNUSED_ARG(err); /* always ERR_OK in lwIP 2.x */
    if (!p) {             /* FIN */
        c->pub.peer_closed = true;
        if (c->wr_shut) {
            /* Both directions are done: lwIP finishes (TIME_WAIT) on its own
             * and may free the pcb without telling us, so let go of it now. */
            tc_snapshot(c);
            tc_orphan(c->pub.pcb);
            tc_unmark_dirty(c);
            c->pub.pcb = NULL;
        }
        tc_wake(&c->pub.read_token, 0);
        return ERR_OK;
    }
    /* The queue links pbufs through ->next: only sole references may be
     * linked. Unread data must not pin the buffers every connection needs
     * for input: the driver's copy pool never, the port's mbufs not once
     * its pool runs low (a slow reader's data moves to the heap). */
    struct pbuf *last = p;
    for (struct pbuf *q = p; q; q = q->next) {
        bool pins = pbuf_get_allocsrc(q) == PBUF_TYPE_ALLOC_SRC_MASK_STD_MEMP_PBUF_POOL ||
                    ((q->flags & PBUF_FLAG_IS_CUSTOM) && st_inst.rx_pool_low);
        if (q->ref != 1 || pins) {
            struct pbuf *copy = pbuf_clone(PBUF_RAW, PBUF_RAM, p);
            if (!copy)
                return ERR_MEM; /* lwIP keeps p and offers it again later */
            if (pins)
                tc_count.rx_compacted++;
            pbuf_free(p);
            p = last = copy;
            break;
        }
        last = q;
    }
    c->rx_bytes += p->tot_len;
    tc_count.rx_unread += p->tot_len;
    /* ownership: lwIP → the connection's receive queue */
    if (c->rx_tail)
        c->rx_tail->next = p;
    else
        c->rx_head = p;
    c->rx_tail = last;
    tc_wake(&c->pub.read_token, 0);
    return ERR_OK;
}

static err_t tc_on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    conn *c = arg;
    if (c->pub.write_token && tc_writable_again(pcb))
        tc_wake(&c->pub.write_token, len);
    return ERR_OK;
}

static int tc_error_code(const conn *c, err_t err)
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
static void tc_on_err(void *arg, err_t err)
{
    conn *c = arg;
    c->pub.pcb = NULL;
    tc_unmark_dirty(c);
    tc_res_unlink(c);
    c->connecting = false;
    if (!c->pub.error)
        c->pub.error = tc_error_code(c, err);
    tc_wake(&c->pub.read_token, c->pub.error);
    tc_wake(&c->pub.write_token, c->pub.error);
}

/* The application let go of pcb (close, or both FINs exchanged) but lwIP
 * still finishes it: queued data, FIN, retransmissions, zero-window probes.
 * It may live linger_ms more, then it is reset and freed (tc_on_poll). Call
 * before tcp_close, which may free the pcb at once. */
void tc_orphan(struct tcp_pcb *pcb)
{
    tc_detach(pcb);
    u32_t deadline = sys_now() + st_inst.env.linger_ms;
    tcp_arg(pcb, (void *)(((uintptr_t)deadline << 1) | 1));
    tcp_poll(pcb, tc_on_poll, POLL_TICKS);
}

static err_t tc_orphan_poll(uintptr_t tag, struct tcp_pcb *pcb)
{
    u32_t deadline = (u32_t)(tag >> 1);
    if ((s32_t)(sys_now() - deadline) >= 0) {
        tc_count.orphans_aborted++;
        /* tcp_abort's RST carries snd_nxt, which a zero-window probe moved
         * past what the peer took; Linux drops a RST that is not exactly at
         * its rcv_nxt, so one more at the last acknowledged byte */
        if (pcb->snd_nxt != pcb->lastack)
            tcp_rst(pcb, pcb->lastack, pcb->rcv_nxt, &pcb->local_ip, &pcb->remote_ip,
                    pcb->local_port, pcb->remote_port);
        tcp_abort(pcb); /* RST; lwIP frees it and all it holds */
        return ERR_ABRT;
    }
    /* still open: its FIN found no memory at close, try again */
    if (pcb->state == ESTABLISHED || pcb->state == CLOSE_WAIT)
        tcp_close(pcb);
    return ERR_OK;
}

err_t tc_on_poll(void *arg, struct tcp_pcb *pcb)
{
    if (tc_is_orphan(arg))
        return tc_orphan_poll((uintptr_t)arg, pcb);
    conn *c = arg;
    if (!c)
        return ERR_OK;
    /* A writer that met ERR_MEM with nothing in flight has no sent callback
     * coming: retry from here (shared shortages wake from tc_res_head). */
    if (c->pub.write_token && !c->res_waiting && pcb->snd_buf > 0 &&
        pcb->snd_queuelen < TCP_SND_QUEUELEN)
        tc_wake(&c->pub.write_token, 0);
    return ERR_OK;
}

err_t tc_on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    conn *c = arg;
    LWIP_UNUSED_ARG(err); /* always ERR_OK */
    c->connecting = false;
    c->pub.connected = true;
    tc_grant_window(c, pcb);
    tc_snapshot(c);
    tc_wake(&c->pub.read_token, 0);
    return ERR_OK;
}

conn *tc_conn_alloc(struct tcp_pcb *pcb, int family)
{
    /* on a line: the fields a request touches are in the two lines
     * prefetch_pcbs fetches (struct conn) */
    enum { LINE = 64 };
    conn *c = aligned_alloc(LINE, (sizeof *c + LINE - 1) / LINE * LINE);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    c->pub.pcb = pcb;
    c->pub.family = family;
    c->pub.stack_data = c;
    tc_link_all(c);
    return c;
}

/* lwIP found no pcb for a SYN (max_connections reached): refuse it with a
 * RST from the segment being input, so the client fails at once with
 * "connection refused" rather than retrying its SYN for a minute. */
static void tc_refuse_syn(void)
{
    /* tcp_input checked its length and turned its fields to host order */
    const struct tcp_hdr *th = ip_next_header_ptr();
    tcp_rst_netif(ip_current_input_netif(), 0, th->seqno + 1, ip_current_dest_addr(),
                  ip_current_src_addr(), th->dest, th->src);
    tc_count.refused++;
}

err_t tc_on_accept(void *arg, struct tcp_pcb *newpcb, err_t err)
{
    conn *l = arg;
    if (!newpcb || err != ERR_OK) {
        if (!newpcb && err == ERR_MEM)
            tc_refuse_syn();
        return ERR_VAL;
    }
    if (l->acc_n == l->acc_cap)
        return ERR_MEM; /* lwIP aborts newpcb */
    conn *c = tc_conn_alloc(newpcb, tc_family_of(&newpcb->local_ip));
    if (!c)
        return ERR_MEM;
    c->pub.owner = l->pub.owner;
    c->pub.connected = true;
    c->bound = true;
    tc_attach(c, newpcb);
    tc_grant_window(c, newpcb);
    /* what Linux sockets inherit from their listener */
    newpcb->ttl = ((struct tcp_pcb_listen *)l->pub.pcb)->ttl;
    if (l->nodelay)
        tcp_nagle_disable(newpcb);
    tc_snapshot(c);
    /* counts against the backlog until accept() takes it */
    tcp_backlog_delayed(newpcb);
    c->listener = l;
    l->acc[(l->acc_head + l->acc_n++) % l->acc_cap] = c; /* ownership: in l's queue */
    tc_wake(&l->pub.read_token, 0);
    return ERR_OK;
}

void tc_abort_pcb(conn *c)
{
    struct tcp_pcb *pcb = c->pub.pcb;
    if (!pcb)
        return;
    c->pub.pcb = NULL;
    tc_unmark_dirty(c);
    if (c->pub.listening) {
        tcp_arg(pcb, NULL);
        tcp_accept(pcb, NULL);
        tcp_close(pcb); /* a listener closes at once */
    } else {
        tc_detach(pcb);
        tcp_abort(pcb); /* RST; lwIP frees the pcb */
    }
}

/* Close a listener and drop the connections nobody accepted. */
void tc_close_listener(conn *l)
{
    tc_abort_pcb(l);
    while (l->acc_n) {
        conn *c = l->acc[l->acc_head];
        l->acc_head = (l->acc_head + 1) % l->acc_cap;
        l->acc_n--;
        tc_abort_pcb(c);
        tc_free_rx(c);
        tc_unlink_all(c);
        free(c);
    }
}

int tc_closed_error(const conn *c)
{
    return c->pub.error ? c->pub.error : DL_E_CLOSED;
}

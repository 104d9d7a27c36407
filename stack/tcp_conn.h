/*
 * tcp_conn.h — the connection record of tcp_glue.c and tcp_conn.c, and the
 * helpers they share (instance-internal: hidden like every stack symbol).
 */
#ifndef DL_TCP_CONN_H
#define DL_TCP_CONN_H

#include "lwip/tcp.h"

#include "internal.h"

/* A waiting writer is woken once this much send buffer is free again (or
 * everything sent was acknowledged): fewer, larger writes. */
#define WRITE_WAKE_BYTES (TCP_SND_BUF / 4)
/* lwIP's poll callback interval (linger deadlines, writers short of memory):
 * 400 ms, in slow-timer ticks (2 x TCP_TMR_INTERVAL; at most 255). */
#define POLL_TICKS (400 / (2 * TCP_TMR_INTERVAL))
_Static_assert(POLL_TICKS >= 1 && POLL_TICKS <= 255, "tcp_poll takes a u8_t interval");
/* lwIP counts accept backlogs in a u8. */
#define MAX_BACKLOG 255
/* The shared send segments (MEMP_NUM_TCP_SEG): a connection that holds
 * SEG_SMALL or more may not take the last SEG_RESERVE, so that handshakes,
 * FINs and small replies of the others always find one. */
#define SEG_RESERVE (MEMP_NUM_TCP_SEG / 8)
#define SEG_SMALL 64
/* Receive windows: a connection starts with RX_GRANT of its TCP_WND (the
 * rest withheld from lwIP: rx_withheld) and earns the rest byte for byte as
 * the application reads, while the worker's unread bytes stay below
 * RX_BUDGET; past half of it new connections start with RX_GRANT_MIN. So a
 * peer of a server that does not read fills its grant, not 1 MiB. */
#define RX_GRANT (128 * 1024)
#define RX_GRANT_MIN (64 * 1024)
#define RX_BUDGET (64 * 1024 * 1024)

typedef struct conn conn;
/* 64-byte aligned (tc_conn_alloc): what a request reads and writes (pub, the
 * receive queue, the flags, the dirty links) is in the first two lines,
 * the ones the driver prefetches for each received frame (prefetch_pcbs). */
struct conn {
    dl_conn pub; /* first: a dl_conn* is a conn* */
    /* receive queue: pbufs linked through ->next, each holding one reference */
    struct pbuf *rx_head, *rx_tail;
    size_t rx_bytes;
    u16_t rx_off; /* bytes of rx_head already read */
    bool dirty;
    bool bound, connecting, wr_shut, closed;
    bool res_waiting;
    u32_t rx_withheld; /* window not given back to lwIP yet (RX_GRANT) */
    u16_t res_need;
    conn *dirty_prev, *dirty_next; /* queued tcp_output */
    /* parked on tc_res_head until res_need segments are free (write_token armed) */
    conn *res_prev, *res_next;
    conn *all_prev, *all_next; /* every connection of the instance */
    /* listener: accepted connections not yet taken by accept() */
    conn **acc;
    int acc_head, acc_n, acc_cap;
    conn *listener; /* while in a listener's queue */
    bool nodelay;   /* listener: given to accepted connections */
    /* addresses, kept for local_addr/peer_addr after lwIP let go of the pcb */
    ip_addr_t local_ip, remote_ip;
    u16_t local_port, remote_port;
};

/* every connection of the instance, those with queued tcp_output, and
 * writers waiting for shared segments */
extern conn *tc_all_head;
extern conn *tc_dirty_head, *tc_dirty_tail; /* oldest first */
extern conn *tc_res_head;

/* What the instance counts for stack_counters (tcp_glue.c). */
typedef struct tc_counts {
    uint64_t refused, orphans_aborted, segment_waits, rx_compacted;
    uint64_t timewait_reused; /* SYNs that reused a TIME_WAIT pair (patches 40, 85) */
    uint64_t rx_unread;       /* bytes in every connection's receive queue */
    uint32_t orphans;         /* recounted every ORPHAN_COUNT_MS */
} tc_counts;
extern tc_counts tc_count;

int tc_fail(int *err, int code);
void tc_wake(uint32_t *token, int64_t arg);
void tc_mark_dirty(conn *c);
void tc_unmark_dirty(conn *c);
void tc_free_rx(conn *c);
void tc_snapshot(conn *c);
bool tc_to_ipaddr(int family, const uint8_t *addr, ip_addr_t *out);
void tc_from_ipaddr(const ip_addr_t *a, int *family, uint8_t addr[16]);
void tc_attach(conn *c, struct tcp_pcb *pcb);
void tc_detach(struct tcp_pcb *pcb);
err_t tc_on_poll(void *arg, struct tcp_pcb *pcb);
err_t tc_on_connected(void *arg, struct tcp_pcb *pcb, err_t err);
conn *tc_conn_alloc(struct tcp_pcb *pcb, int family);
err_t tc_on_accept(void *arg, struct tcp_pcb *newpcb, err_t err);
void tc_close_listener(conn *l);
void tc_abort_pcb(conn *c);
void tc_unlink_all(conn *c);
int tc_closed_error(const conn *c);
void tc_res_park(conn *c, u16_t need);
void tc_res_unlink(conn *c);
u16_t tc_segs_used(void);
void tc_orphan(struct tcp_pcb *pcb);
/* An orphan's callback arg (tc_orphan): odd (a conn is aligned), with the
 * sys_now() deadline of its linger above the low bit. */
static inline bool tc_is_orphan(const void *arg)
{
    return ((uintptr_t)arg & 1) != 0;
}
void tc_return_window(conn *c, size_t n, bool announce);

#endif

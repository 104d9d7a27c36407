/*
 * stack.h — the contract between the host and one private lwIP instance.
 *
 * lwIP keeps its state in globals, so the build links MAX_WORKERS isolated
 * copies of lwIP + the stack/ sources (see stack/stack.mk): every symbol is made local
 * except the instance's function table, renamed stack_ops_<i> in copy i.
 * Worker i uses copy i, from its own thread only: no locks anywhere.
 *
 * Ownership: the stack owns pcbs and pbufs; the host owns dl_conn lifetimes
 * through ops->conn_free. RX mbufs passed to input() belong to the stack from
 * then on (it frees them, or keeps them wrapped in pbufs until the data is
 * read). TX frames are copied into mbufs of the port's pool and sent in one
 * burst per loop turn by poll().
 *
 * This header is included by host C files and by the stack's own files; it
 * must not include lwIP headers.
 */
#ifndef DL_STACK_H
#define DL_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

struct rte_mbuf;
struct rte_mempool;

typedef struct dl_conn dl_conn;

/* Flow steering as the stack needs it to pick a connect()'s local port (the
 * host's host/steer.c fills it in; stack/steer_port.c uses it). A flow's
 * owner is reta[(hash(remote, local, rport, 0) ^ port_bitsN[lport]) &
 * reta_mask]. */
typedef struct stack_steer {
    int n_workers; /* 1: every port is ours, nothing to choose */
    uint32_t reta_mask;
    const uint16_t *reta;
    const uint8_t *port_bits4, *port_bits6; /* the local port's share, masked */
    /* addresses in network order (4 or 16 bytes) */
    uint32_t (*hash)(int family, const uint8_t *remote, const uint8_t *local, uint16_t rport,
                     uint16_t lport);
} stack_steer;

/* Given to init(): how the instance reaches its worker. */
typedef struct stack_env {
    void *worker; /* the dl_worker*, passed back to wake() */
    int worker_index;
    /* Record a DL_EV_WAKE event for `token` (a waiting Lua coroutine) with arg. */
    void (*wake)(void *worker, uint32_t token, int64_t arg);
    uint32_t (*now_ms)(void); /* lwIP's sys_now() */
    void (*log)(int level, const char *msg);
    const stack_steer *steer; /* NULL: one worker, no steering */
    /* TCP resource limits (runtime options, checked by the host) */
    int max_connections; /* pcbs, 1..DL_TCP_MAX_CONNECTIONS */
    uint32_t linger_ms;  /* a closed connection still finishing is aborted after this */
    /* The TX burst when the host must see it (host/port.c, dl_port_tx_burst:
     * a memif port's link gate, packet capture); NULL: rte_eth_tx_burst. */
    uint16_t (*tx_burst)(uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
} stack_env;

/* One DPDK port (queue = worker index) as seen by one instance. */
typedef struct stack_port {
    int index; /* the port's index in the runtime (0..n_ports-1) */
    uint16_t port_id;
    uint16_t queue;
    struct rte_mempool *pool;
    uint8_t mac[6];
    int mtu;
    bool tx_ip_cksum, tx_tcp_cksum, rx_cksum; /* offloads the port offers */
    const dl_device_config *dev;              /* addresses, gateways */
    /* The fault injector (host/fault.c), NULL when off: takes every frame
     * the port would send and sends what is due itself; returns n. */
    uint16_t (*tx_hook)(void *arg, struct rte_mbuf **pkts, uint16_t n);
    void *tx_hook_arg;
} stack_port;

/*
 * A TCP connection or listener. Allocated by the stack (conn_new, or when a
 * listener accepts), freed by the host (conn_free) once Lua is done with it.
 * The host fills in `owner` and `ops` and reads the others; only the stack
 * writes them (wait state included: the tokens are the stack's alone).
 */
struct dl_conn {
    void *owner;                 /* dl_worker* of the worker that made it (F18 checks) */
    const struct stack_ops *ops; /* the copy it lives in: frees it after its runtime */
    void *pcb;                   /* struct tcp_pcb *, NULL once lwIP let go of it */
    int family;                  /* 4 or 6 */
    bool listening;
    bool orphaned;        /* its runtime stopped: only conn_free may touch it (memory only) */
    uint32_t read_token;  /* the coroutine waiting to read/accept/connect, 0: none */
    uint32_t write_token; /* the coroutine waiting to write, 0: none */
    int error;            /* sticky: 0 or a DL_E_* code (api.h) */
    bool peer_closed;     /* FIN received: reads end after the buffered data */
    bool connected;
    void *stack_data; /* the instance's private per-connection data */
};

/* Socket options: DL_OPT_* in api.h; error codes: DL_E_* in api.h. */

/* What the driver counts, summed over the instance's ports since init. */
typedef struct stack_counters {
    uint64_t tx_bytes;   /* bytes of the frames the NIC took */
    uint64_t rx_dropped; /* frames not for us, bad checksums, no buffer */
    uint64_t tx_dropped; /* frames lost before the NIC: queue full, no mbuf, too big */
    uint64_t rx_copied;  /* frames copied out of their mbuf (the port's pool ran low) */
    /* TCP resources (tcp_glue.c) */
    uint64_t tcp_connections;     /* pcbs in use: open, handshaking, closing, TIME_WAIT */
    uint64_t tcp_refused;         /* SYNs answered with RST: max_connections reached */
    uint64_t tcp_orphans;         /* closed by the application, still finishing in lwIP */
    uint64_t tcp_orphans_aborted; /* orphans reset after linger_timeout */
    uint64_t tcp_segments;        /* send segments queued (of DL_TCP_SEGMENTS) */
    uint64_t tcp_segment_waits;   /* sends parked because segments ran short */
    uint64_t tcp_rx_compacted;    /* received data moved off the port's buffers (slow reader) */
    uint64_t tcp_rx_unread;       /* received bytes the application has not read */
    uint64_t syncookies_sent, syncookies_ok, syncookies_bad; /* stack/syncookie.c */
    uint64_t tcp_timewait_reused; /* SYNs that reused a TIME_WAIT pair (patches 40, 85) */
    /* the same drops by cause */
    uint64_t rx_not_ours, rx_bad_cksum, rx_nobuf;
    uint64_t tx_full, tx_nombuf, tx_too_big;
} stack_counters;

/* TCP as the instance sees it: connections per state (a walk of lwIP's pcb
 * lists) and lwIP's MIB-2 / TCP counters since the copy was first used. */
typedef struct stack_tcp_stats {
    uint64_t listen, syn_sent, syn_rcvd, established, fin_wait_1, fin_wait_2, close_wait, closing,
        last_ack, time_wait;
    uint64_t active_opens, passive_opens, attempt_fails, estab_resets, in_segs, out_segs,
        retrans_segs, in_errs, out_rsts, drops, mem_errs;
} stack_tcp_stats;

typedef struct stack_ops {
    /* Once per runtime: (re)initialise the instance. lwip_init() itself runs
     * only the first time this copy is used in the process. */
    int (*init)(const stack_env *env);
    /* Add a port: one netif per IPv4 address (and IPv6 addresses), gateways. */
    int (*add_port)(const stack_port *port);
    /* RX: the frames received on port `port_index` (ownership passes). */
    void (*input)(int port_index, struct rte_mbuf **pkts, int n);
    /* RX of a copy of an ARP or neighbour discovery frame that another worker
     * answers: lwIP learns from it, its ARP reply / neighbour advertisement
     * in answer is dropped (exactly one worker answers). */
    void (*input_quiet)(int port_index, struct rte_mbuf **pkts, int n);
    /* Once per loop turn, after input: lwIP timers, deferred tcp_output,
     * then the TX burst of every port. Returns frames sent. */
    int (*poll)(void);
    /* End of a runtime: abort every pcb (wake their waiters), remove netifs,
     * free queued TX mbufs. The instance may be init()ed again later. */
    void (*shutdown)(void);
    /* Connections still sending queued data or their FIN: a runtime that
     * stops keeps polling (within its timeout) until this is 0. */
    int (*busy)(void);
    void (*counters)(stack_counters *out);
    /* Walks the pcb lists: call it now and then (stats), not per turn. */
    void (*tcp_stats)(stack_tcp_stats *out);

    /* Before the drain of a stopping runtime: close (FIN) every connection
     * still open and every listener, whoever holds them. */
    void (*close_all)(void);

    /* TCP — called on the owning worker only (the host checks). Each returns
     * DL_OK, DL_AGAIN (token recorded: a wake comes when it can progress) or
     * DL_ERROR with *err set to a DL_E_* code. */
    dl_conn *(*conn_new)(int family, int *err);
    /* Aborts the pcb if still open; frees buffers and the conn. An orphaned
     * conn (its runtime stopped) is only freed. */
    void (*conn_free)(dl_conn *c);
    int (*bind)(dl_conn *c, const uint8_t *addr, uint16_t port, int *err);
    int (*listen)(dl_conn *c, int backlog, int *err);
    int (*accept)(dl_conn *l, dl_conn **out, uint32_t token, int *err);
    /* Again after the wake: DL_OK once connected, or the error. */
    int (*connect)(dl_conn *c, const uint8_t *addr, uint16_t port, uint32_t token, int *err);
    /* Queue up to len bytes (copied); *sent = bytes taken, may be < len.
     * DL_AGAIN with *sent == 0 when the send buffer is full; len 0 asks
     * only for send space (DL_OK or DL_AGAIN). */
    int (*send)(dl_conn *c, const char *data, size_t len, size_t *sent, uint32_t token, int *err);
    /* Copy up to len buffered bytes. DL_OK with *got == 0 means the peer
     * closed (EOF). */
    int (*recv)(dl_conn *c, char *buf, size_t len, size_t *got, uint32_t token, int *err);
    int (*state)(const dl_conn *c); /* DL_TCP_* bits (api.h) */
    int (*shutdown_send)(dl_conn *c, int *err);
    /* Graceful close (FIN) that wakes every armed token with DL_E_CLOSED;
     * the pcb lives on inside lwIP until the close completes; c may be freed
     * right after. */
    int (*close)(dl_conn *c, int *err);
    int (*setopt)(dl_conn *c, int opt, int value, int *err);
    int (*getopt)(const dl_conn *c, int opt, int *value, int *err);
    /* family 4: 4 bytes of addr; 6: 16. */
    int (*local_addr)(const dl_conn *c, int *family, uint8_t addr[16], uint16_t *port);
    int (*peer_addr)(const dl_conn *c, int *family, uint8_t addr[16], uint16_t *port);
} stack_ops;

/* The MAX_WORKERS copies (generated by stack/stack.mk): worker i uses
 * dl_stack_instances[i]. */
extern const stack_ops *const dl_stack_instances[];
extern const int dl_stack_instance_count;

#endif

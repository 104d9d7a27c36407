/*
 * internal.h — what the files of one stack instance share (never included by
 * the host). Everything here is per copy: the build makes every symbol local
 * to its copy, so each worker's lwIP sees only its own st_inst.
 */
#ifndef DL_STACK_INTERNAL_H
#define DL_STACK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"

#include "stack.h"

/* Frames waiting for the NIC on one port, flushed once per loop turn (a ring:
 * a power of two). Deep enough for a timer's burst (lwIP's fast timer sends
 * every delayed ACK at once: one frame per connection), but never more than
 * half the port's mbuf pool (netif_dpdk.c: 4096 with the default 8192);
 * a reader about to park sends at once only while a queue holds fewer than
 * DL_TX_QUEUE_HIGH frames (glue_recv), the dirty list while it holds less
 * than seven eighths of what it may (glue_output_dirty). */
enum { DL_TX_QUEUE = 8192, DL_TX_QUEUE_HIGH = 512 };
_Static_assert((DL_TX_QUEUE & (DL_TX_QUEUE - 1)) == 0, "DL_TX_QUEUE: a power of two");

typedef struct st_port st_port;
struct tcp_pcb;

/* One lwIP netif on a port; netif->state points to the st_nif itself. */
typedef struct st_nif {
    struct netif netif;
    st_port *port;
    ip6_addr_t gw6; /* gateway_v6 with this netif's zone (a link-local gateway needs one) */
} st_nif;

struct st_port {
    bool used;
    uint16_t port_id, queue;
    struct rte_mempool *pool;
    uint8_t mac[6];
    int mtu;
    bool tx_ip_cksum, tx_tcp_cksum, rx_cksum;
    bool has_gw6;
    bool quiet; /* input of a copy another worker answers: drop ARP replies / NAs sent now */
    uint16_t (*tx_hook)(void *arg, struct rte_mbuf **pkts, uint16_t n); /* stack_port's */
    void *tx_hook_arg;
    int n_nifs;
    st_nif *nifs;           /* n_nifs, allocated by add_port */
    uint16_t n_tx, tx_head; /* frames queued, from slot tx_head on (a ring) */
    struct rte_mbuf *tx[DL_TX_QUEUE];
    uint16_t tx_len[DL_TX_QUEUE]; /* their lengths, counted in tx_bytes once sent */
    /* counters, reported at shutdown (debug log) */
    uint64_t tx_bytes;   /* bytes of the frames the NIC took */
    uint64_t rx_copied;  /* frames copied out of their mbuf: mempool running low */
    uint64_t rx_dropped; /* not for our MAC, bad checksum, no buffer (the sum of the next 3) */
    uint64_t rx_not_ours, rx_bad_cksum, rx_nobuf;
    uint64_t tx_nombuf;  /* no mbuf for a frame (lwIP retransmits) */
    uint64_t tx_dropped; /* TX queue full even after a burst */
    uint64_t tx_too_big; /* frame larger than the mbuf data room */
    uint64_t tx_quieted; /* answers to ARP / ND copies another worker answered */
};

typedef struct st_instance {
    stack_env env;
    bool lwip_ready;       /* lwip_init() ran in this copy */
    uint32_t clock_offset; /* sys_now() = env.now_ms() + clock_offset, monotonic across runtimes */
    uint32_t last_now;
    uint64_t rand_state;
    uint64_t isn_key;
    uint32_t cookie_last_ms; /* sys_now() of the last SYN cookie sent (syncookie.c) */
    uint64_t cookies_sent, cookies_ok, cookies_bad;
    st_port ports[DL_MAX_DEVICES];
    /* The used ports in index order: the loops of every turn and of a parked
     * reader's flush walk these, not all DL_MAX_DEVICES slots (each ~80 KiB
     * apart: a line and a TLB entry per slot). */
    st_port *live[DL_MAX_DEVICES];
    int n_live;
    struct netif *gw6_netif; /* where unbound pcbs send to off-link IPv6 destinations */
    bool rx_pool_low;        /* the last input burst's pool was below half free (tcp_conn.c) */
    int sent_early;          /* frames st_flush_now sent since the last poll (poll counts them) */
} st_instance;

extern st_instance st_inst;

/* instance.c */
void st_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Is addr one of this instance's configured addresses? */
bool st_addr_is_local(const ip_addr_t *addr);
/* The netif that gives link-local addresses without a zone their zone. */
struct netif *st_first_netif(void);
/* Every port's TX queue onto the wire now (a reader about to park). */
void st_flush_now(void);

/* steer_port.c: before tcp_connect of a pcb without a local port, bind it
 * to a port whose flow to remote:rport this worker owns. ERR_OK also when
 * there is nothing to steer (one worker, port already chosen). */
err_t st_steer_bind(struct tcp_pcb *pcb, const ip_addr_t *remote, u16_t rport);

/* netif_dpdk.c */
err_t st_netif_init(struct netif *netif);
void st_netif_input(st_port *port, struct rte_mbuf **pkts, int n);
int st_netif_flush(st_port *port);
/* A port's TX queue holds DL_TX_QUEUE_HIGH frames or more (the NIC is behind). */
bool st_netif_tx_backlogged(void);
/* A port's TX queue holds seven eighths of what it may, at least DL_TX_QUEUE_HIGH
 * frames (glue_output_dirty stops). */
bool st_netif_tx_nearly_full(void);
void st_netif_drop_tx(st_port *port);

/* tcp_glue.c: the TCP members of stack_ops, and the instance's hooks into TCP. */
void glue_init(void);
void glue_poll_resources(void);
void glue_counters(stack_counters *out);
void glue_output_dirty(void);
void glue_close_all(void);
void glue_abort_all(void);
int glue_busy(void);
dl_conn *glue_conn_new(int family, int *err);
void glue_conn_free(dl_conn *c);
int glue_bind(dl_conn *c, const uint8_t *addr, uint16_t port, int *err);
int glue_listen(dl_conn *c, int backlog, int *err);
int glue_accept(dl_conn *l, dl_conn **out, uint32_t token, int *err);
int glue_connect(dl_conn *c, const uint8_t *addr, uint16_t port, uint32_t token, int *err);
int glue_send(dl_conn *c, const char *data, size_t len, size_t *sent, uint32_t token, int *err);
int glue_recv(dl_conn *c, char *buf, size_t len, size_t *got, uint32_t token, int *err);
int glue_state(const dl_conn *c);
int glue_shutdown_send(dl_conn *c, int *err);
int glue_close(dl_conn *c, int *err);
int glue_setopt(dl_conn *c, int opt, int value, int *err);
/* Keyed hashing of a connection's addresses and ports: the ISNs (instance.c)
 * and the SYN cookies (syncookie.c), keyed with st_inst.isn_key. */
static inline uint64_t st_mix(uint64_t h, uint32_t v)
{
    h = (h ^ v) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

static inline uint64_t st_mix_addr(uint64_t h, const ip_addr_t *a)
{
    if (IP_IS_V6(a)) {
        for (int i = 0; i < 4; i++)
            h = st_mix(h, ip_2_ip6(a)->addr[i]);
        return h;
    }
    return st_mix(h, ip_2_ip4(a)->addr);
}

int glue_getopt(const dl_conn *c, int opt, int *value, int *err);
int glue_local_addr(const dl_conn *c, int *family, uint8_t addr[16], uint16_t *port);
int glue_peer_addr(const dl_conn *c, int *family, uint8_t addr[16], uint16_t *port);

#endif

/*
 * api.h — the one surface between the C host and Lua.
 *
 * lua/dpdk/cdef.lua mirrors every declaration between the DL_FFI_BEGIN and
 * DL_FFI_END markers (spec/cdef_spec.lua checks that they agree), so keep this
 * part free of macros and includes: plain C that LuaJIT's ffi.cdef accepts.
 *
 * Conventions (lua-resty-core style): functions return a status code
 * (DL_OK, DL_AGAIN, DL_ERROR); on DL_ERROR the reason is in dl_errmsg(), a
 * per-thread text that tells the user what went wrong and what to do.
 * C never calls into Lua: dl_poll() hands back events and Lua resumes the
 * coroutines that wait for them.
 */
#ifndef DL_API_H
#define DL_API_H

#include <stddef.h>
#include <stdint.h>

/* DL_FFI_BEGIN */
enum {
    DL_OK = 0,
    DL_AGAIN = 1,
    DL_ERROR = -1,
};

enum {
    DL_MAX_DEVICES = 16,
    DL_MAX_ADDRS = 128,
    DL_MAX_CORES = 256,
    DL_MAX_EAL_ARGS = 64,
    DL_EAL_ARG_LEN = 256,
    DL_NAME_LEN = 256,
};

enum { DL_ROLE_DPDK = 0, DL_ROLE_KERNEL = 1 };

/* The smallest MTU the TCP stack takes (IPv4 hosts must take 576-byte
 * datagrams): port.c refuses a device below it by name, the stack asserts it.
 * (config.c's own lower bound, 68, is only the JSON field's range.) */
enum { DL_MIN_MTU = 576 };

/* An address with its prefix length; family is 4 or 6, addr in network order. */
typedef struct dl_cidr {
    int family;
    int prefix;
    uint8_t addr[16];
} dl_cidr;

/* A device's "faults" (or DPDKLUA_FAULTS): the fault injector (host/fault.c).
 * Probabilities per frame, 0..1; direction: DL_FAULT_RX | DL_FAULT_TX. */
enum { DL_FAULT_RX = 1, DL_FAULT_TX = 2, DL_FAULT_MAX_DEPTH = 64 };
typedef struct dl_fault_config {
    int enabled;
    int direction;
    int reorder_depth; /* a reordered frame is overtaken by 1..depth frames (4) */
    double seed;       /* an integer 0..2^53 */
    double drop, duplicate, reorder, corrupt, truncate;
} dl_fault_config;

typedef struct dl_device_config {
    char pci_address[64];   /* "" when the device is a vdev */
    char vdev[DL_NAME_LEN]; /* e.g. "net_tap0,iface=dl0"; "" for PCI devices */
    char original_name[64];
    int has_mac;
    uint8_t mac[6];
    int mtu;  /* 1500 when absent */
    int role; /* DL_ROLE_DPDK or DL_ROLE_KERNEL */
    int has_gateway_v4;
    uint8_t gateway_v4[4];
    int has_gateway_v6;
    uint8_t gateway_v6[16];
    int n_addresses;
    dl_cidr addresses[DL_MAX_ADDRS];
    int n_peer_addresses; /* tap only: put on the kernel side of the tap */
    dl_cidr peer_addresses[DL_MAX_ADDRS];
    dl_fault_config faults;
} dl_device_config;

typedef struct dl_config {
    char path[4096]; /* where it was read from ("<built-in>" for the embedded default) */
    int n_cores;
    int cores[DL_MAX_CORES];
    int n_devices;
    dl_device_config devices[DL_MAX_DEVICES];
    int n_eal_args;
    char eal_args[DL_MAX_EAL_ARGS][DL_EAL_ARG_LEN];
} dl_config;

/* host/config.c: parse and validate an env.json. NULL on error (dl_errmsg names
 * the file, the field and what was expected). path NULL: the search order
 * DPDK_ENV_CONFIG, ./config/dpdk-env.json, /etc/dpdk/env.json, built-in default. */
dl_config *dl_config_load(const char *path);
/* Parse JSON text; origin names it in errors. */
dl_config *dl_config_parse(const char *text, size_t len, const char *origin);
void dl_config_free(dl_config *cfg);
/* The path the search order picks (or "<built-in>"), without reading it. */
const char *dl_config_search(void);
/* The embedded default config's JSON text (config/dpdk-env.json at build time). */
const char *dl_config_default(void);

typedef struct dl_runtime dl_runtime;
typedef struct dl_worker dl_worker;

typedef struct dl_runtime_opts {
    int workers;             /* 0: one per free core of dpdk_cores */
    const char *config_path; /* NULL: the search order */
    int n_eal_args;
    const char **eal_args; /* after env.json's eal_args */
    int mempool_size;      /* mbufs per port (8192) */
    int cache_size;        /* per-core mempool cache (256) */
    int queue_descriptors; /* RX and TX ring size (128) */
    int n_devices;
    const char **devices; /* filter: pci_address, vdev name or original_name */
    const char *lua_path; /* package.path / cpath for the worker states */
    const char *lua_cpath;
    int blocking_threads; /* the blocking pool's size (0: 4) */
    /* TCP per worker (0: the default): connections (pcbs, 1..DL_TCP_MAX_CONNECTIONS,
     * default the maximum); a closed connection still sending or closing is
     * reset after linger_timeout_ms (default 30000) */
    int max_connections;
    int linger_timeout_ms;
    int watchdog_ms; /* report a worker whose loop stops turning this long (<= 0: off) */
} dl_runtime_opts;

/* host/runtime.c: build a runtime (EAL on first use, locks, ports, worker
 * threads 1..n-1). Worker 0 is the calling thread, entered by dl_worker_enter. */
dl_runtime *dl_runtime_start(const dl_runtime_opts *opts);
/* Stop workers (each closes its Lua state), wait up to timeout_s, then stop the
 * ports and release the locks. DL_AGAIN: a worker did not stop in time. */
int dl_runtime_stop(dl_runtime *rt, double timeout_s);
int dl_runtime_worker_count(const dl_runtime *rt);
dl_worker *dl_runtime_worker(dl_runtime *rt, int index);
int dl_runtime_port_count(const dl_runtime *rt);

typedef struct dl_port_info {
    int port_id;
    int n_queues;
    int mtu;
    uint8_t mac[6];
    char name[DL_NAME_LEN]; /* the DPDK device name */
    char ifname[64];        /* kernel side of a tap, else "" */
    uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
    uint64_t mbufs_total, mbufs_in_use, mbufs_avail; /* the port's mempool */
} dl_port_info;
int dl_runtime_port_info(dl_runtime *rt, int index, dl_port_info *out);

/* host/worker.c */
enum {
    DL_EV_WAKE = 1,  /* token: a coroutine's wait ended */
    DL_EV_MAIL = 2,  /* messages wait in the mailbox: dl_mail_take */
    DL_EV_STOP = 3,  /* the runtime is stopping: leave the loop */
    DL_EV_STATS = 4, /* publish the Lua state's size: dl_stats_set_lua */
};

typedef struct dl_event {
    uint32_t kind;
    uint32_t token;
    int64_t arg;
} dl_event;

/* ---- statistics (host/stats.c; docs/observability.md says what each field
 * counts). Every field is a uint64_t: readers copy the struct word by word
 * and dl_stats_field names word i (telemetry and dpdk.stats use the same
 * list). A new field goes at the end of its group, its name at the same place
 * in host/stats.c's list. ---- */
typedef struct dl_worker_stats {
    /* traffic, live (host/worker.c); busy_ns: the wall time of the turns that
     * moved frames or handed Lua events (wakes, mail), its Lua work included */
    uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes, loops, busy_ns;
    /* drops, by cause (the stack's driver; moves when packets do) */
    uint64_t rx_dropped, rx_not_ours, rx_bad_cksum, rx_nobuf, rx_copied;
    uint64_t tx_dropped, tx_full, tx_nombuf, tx_too_big;
    /* flow steering (host/worker.c, live) */
    uint64_t forwarded_out, forwarded_in, forward_drops;
    /* TCP connections by state, published every DL_STATS_PERIOD_MS */
    uint64_t tcp_listen, tcp_syn_sent, tcp_syn_rcvd, tcp_established, tcp_fin_wait_1,
        tcp_fin_wait_2, tcp_close_wait, tcp_closing, tcp_last_ack, tcp_time_wait;
    /* TCP counters (lwIP's MIB-2 group), published with the states */
    uint64_t tcp_active_opens, tcp_passive_opens, tcp_attempt_fails, tcp_estab_resets, tcp_in_segs,
        tcp_out_segs, tcp_retrans_segs, tcp_in_errs, tcp_out_rsts, tcp_drops, tcp_mem_errs;
    /* the worker's Lua state (its loop publishes it with the TCP figures) */
    uint64_t lua_bytes;
    /* packet capture (host/pcap.c) */
    uint64_t pcap_packets, pcap_drops;
    /* TCP resources (host/tcp.c, stack/tcp_glue.c), published with the driver's
     * counters: connections (pcbs) in use of max_connections, SYNs refused,
     * orphans (closed, still finishing) and those reset after linger_timeout_ms,
     * send segments queued and sends parked for want of them, received data
     * moved off the port's buffers, bytes received and not read yet */
    uint64_t tcp_connections, tcp_max_connections, tcp_refused, tcp_orphans, tcp_orphans_aborted,
        tcp_segments, tcp_segment_waits, tcp_rx_compacted, tcp_rx_unread;
    /* SYN cookies (stack/syncookie.c): sent, accepted, rejected; SYNs that
     * reopened a pair in TIME_WAIT as a new connection (RFC 6191) */
    uint64_t syncookies_sent, syncookies_ok, syncookies_bad, tcp_timewait_reused;
    /* the fault injector (host/fault.c), both directions, read live */
    uint64_t fault_dropped, fault_duplicated, fault_reordered, fault_corrupted, fault_truncated;
    /* when the published part was taken: dl_now() in microseconds */
    uint64_t published_us;
} dl_worker_stats;

enum { DL_STATS_PERIOD_MS = 100 };

/* The name of word i of dl_worker_stats, NULL past the last. */
const char *dl_stats_field(int i);
/* One worker's figures into out (no allocation; any thread). On the worker's
 * own thread the published part is taken afresh first. */
void dl_worker_stats_get(dl_worker *w, dl_worker_stats *out);
/* The worker's Lua state reports its size (collectgarbage("count") * 1024). */
void dl_stats_set_lua(dl_worker *w, double bytes);

/* Pin the calling thread to the worker's core and make it the worker's
 * thread (dl_self). Worker 0 is entered by block_on on the main thread. */
int dl_worker_enter(dl_worker *w);
void dl_worker_leave(dl_worker *w);
dl_worker *dl_self(void);
int dl_worker_index(const dl_worker *w);
int dl_worker_core(const dl_worker *w);
dl_runtime *dl_worker_runtime(dl_worker *w);
/* The time (dl_now) this worker's current turn began: read once per turn and
 * read here without a call (the scheduler's timer check). */
const double *dl_worker_clock(const dl_worker *w);
/* One loop turn: rx burst on every port, stack input and timers, tx flush.
 * Fills at most max events; returns their number. */
int dl_poll(dl_worker *w, dl_event *events, int max);
/* host/watchdog.c: what the worker runs now, for the watchdog's report. The
 * scheduler stores the task's number and name at each resume (id 0: no task);
 * name points into a Lua string the scheduler keeps alive while the task
 * lives. */
typedef struct dl_task_slot {
    uint32_t id;
    const char *name;
} dl_task_slot;
dl_task_slot *dl_worker_task_slot(dl_worker *w);
/* Close (FIN) every connection and listener of the worker still open, then
 * keep polling (no events) until they have sent their data and FIN, or
 * timeout_s passes (< 0: the runtime's stop budget).
 * Returns the connections still busy. Runs on the worker's thread. */
int dl_worker_drain(dl_worker *w, double timeout_s);

/* Messages between workers (copied; any thread may post, only the owner takes).
 * dl_mail_post: DL_AGAIN when the mailbox is full; DL_ERROR when the runtime
 * is stopping or the worker's thread has ended. */
int dl_mail_post(dl_worker *to, const char *data, size_t len);
int dl_mail_take(dl_worker *w, const char **data, size_t *len);
void dl_mail_release(const char *data);

/* host/channel.c: named channels between workers (spec F19), each an
 * rte_ring of copied messages that any worker may send to and receive from,
 * freed (with what is still queued) when the runtime stops. Waiting calls take
 * a token, as TCP's do: on DL_AGAIN (empty or full) with a token, the calling
 * worker's dl_poll hands it back in a DL_EV_WAKE once the call may succeed;
 * token 0 only tries. dl_channel_cancel drops the calling worker's wait for a
 * token (after a timeout). */
typedef struct dl_channel dl_channel;

enum {
    DL_CHANNEL_NAME_LEN = 128,
    DL_CHANNEL_DEFAULT_CAPACITY = 1024,
    DL_CHANNEL_MAX_CAPACITY = 1048576
};

/* The runtime's channel of that name, made on first use. capacity 0: the
 * existing one's, or the default; another capacity than the existing one's
 * is an error. NULL: dl_errmsg. */
dl_channel *dl_channel_open(dl_runtime *rt, const char *name, int capacity);
int dl_channel_send(dl_channel *ch, const void *data, size_t len, uint32_t token);
/* DL_OK: *data (len bytes) is the caller's until dl_channel_release(*data). */
int dl_channel_recv(dl_channel *ch, const char **data, size_t *len, uint32_t token);
void dl_channel_release(const char *data);
void dl_channel_cancel(uint32_t token);
int dl_channel_count(const dl_channel *ch); /* messages queued now */
int dl_channel_capacity(const dl_channel *ch);
/* Changes whenever a runtime's channels are freed: a handle made under
 * another generation is stale. */
uint32_t dl_channel_generation(void);
int64_t dl_channel_messages_live(void); /* sent and not yet released, all channels */

/* host/tcp.c: TCP over the calling worker's private lwIP (stack/tcp_glue.c).
 * A dl_conn belongs to the worker that made it; using it on another thread
 * is misuse (F18).
 *
 * lua-resty-core style: the calls that can wait take the caller's token and
 * return a value >= 0 on success (bytes moved; 0 from dl_tcp_recv is EOF) or
 * a negated DL_E_* code. -DL_E_AGAIN: not yet; the stack armed the token,
 * which comes back in a DL_EV_WAKE event when the call can progress (then
 * make the same call again). -DL_E_MISUSE: the caller's mistake (wrong
 * worker, outside the runtime, a bad address); dl_errmsg() says what to fix.
 * Any other code is a condition of the connection (Lua returns its text). */
typedef struct dl_conn dl_conn;

enum {
    DL_E_AGAIN = 1,
    DL_E_MISUSE = 2,
    DL_E_CLOSED = 3,       /* "closed": after close, shutdown or the peer's FIN */
    DL_E_REFUSED = 4,      /* "connection refused" */
    DL_E_RESET = 5,        /* "connection reset by peer" */
    DL_E_ADDRNOTAVAIL = 6, /* "address not available" (not a configured address) */
    DL_E_ADDRINUSE = 7,    /* "address in use" */
    DL_E_TIMEDOUT = 8,     /* "connection timed out" (lwIP gave up retransmitting) */
    DL_E_ABORTED = 9,      /* "connection aborted" (runtime stopping) */
    DL_E_NOMEM = 10,       /* "out of memory" */
    DL_E_UNREACH = 11,     /* "network unreachable" (no route, no gateway) */
    DL_E_INVAL = 12,       /* "invalid argument" (an option value, a state lwIP refused) */
    DL_E_SELF = 13,        /* "own address" (a connect to this stack: it has no loopback) */
};

/* Per worker, fixed at build time (stack/lwipopts.h): the ceiling of the
 * max_connections option, and the send segments all connections share. */
enum { DL_TCP_MAX_CONNECTIONS = 16384, DL_TCP_SEGMENTS = 16384 };

enum {
    DL_OPT_NODELAY = 1,
    DL_OPT_TTL = 2,
    DL_OPT_SNDBUF = 3,
    DL_OPT_RCVBUF = 4,
    DL_OPT_KEEPALIVE = 5,
    DL_OPT_REUSEADDR = 6,
    DL_OPT_KEEPINTVL = 7, /* seconds */
    DL_OPT_KEEPCNT = 8,
};

/* dl_tcp_state bits */
enum {
    DL_TCP_CONNECTED = 1,   /* established and not failed (a peer's FIN alone keeps it) */
    DL_TCP_PEER_CLOSED = 2, /* the peer's FIN came */
    DL_TCP_FAILED = 4,      /* reset, refused, timed out, aborted or closed */
    DL_TCP_UNREAD = 8,      /* received bytes wait in the stack */
};

dl_conn *dl_tcp_new(int family); /* 4 or 6; NULL: dl_errmsg */
/* Close (gracefully when still open: FIN, then lwIP finishes the close on
 * its own), wake every token armed on it with DL_E_CLOSED, and free. Safe on
 * NULL, and after the runtime that made it has stopped. */
void dl_tcp_free(dl_conn *c);
int dl_tcp_bind(dl_conn *c, const char *ip, int port);
int dl_tcp_listen(dl_conn *c, int backlog);
/* 0 and *out: a connection; the listener keeps one armed token. */
int dl_tcp_accept(dl_conn *listener, dl_conn **out, uint32_t token);
/* 0: connected. -DL_E_AGAIN: connecting; after the wake call it again. */
int dl_tcp_connect(dl_conn *c, const char *ip, int port, uint32_t token);
/* Up to len bytes queued (copied; at most the send buffer, so an int).
 * len 0: 0 once there is send space. */
int dl_tcp_send(dl_conn *c, const char *data, size_t len, uint32_t token);
/* Up to len (<= INT_MAX) received bytes copied out (0: EOF). */
int dl_tcp_recv(dl_conn *c, char *buf, size_t len, uint32_t token);
int dl_tcp_state(dl_conn *c); /* DL_TCP_* bits; 0 for NULL */
int dl_tcp_shutdown_send(dl_conn *c);
int dl_tcp_setopt(dl_conn *c, int opt, int value);
int dl_tcp_getopt(dl_conn *c, int opt, int *value);
/* Address as text into ip (INET6_ADDRSTRLEN bytes) and port; peer = 1 for the remote end. */
int dl_tcp_addr(dl_conn *c, int peer, char *ip, size_t iplen, int *port);
int dl_tcp_worker(dl_conn *c); /* index of the owning worker */
int dl_tcp_core(dl_conn *c);   /* the core that worker is pinned to */

/* host/ktcp.c: TCP over non-blocking kernel sockets (spec F15) with the
 * calls and results of dl_tcp_* above, so that dpdk.ktcp runs dpdk.tcp's Lua
 * code. A dl_kconn belongs to the worker that made it (another thread's call
 * is -DL_E_MISUSE). A wait arms the token; the worker's dl_poll looks at its
 * epoll set (epoll_wait, timeout 0) only while a token is armed. Addresses
 * are any the kernel takes ("*": any). A kernel error that has no DL_E_* code
 * of its own is -DL_E_SYSTEM, with its text in dl_errmsg(). */
typedef struct dl_kconn dl_kconn;
enum { DL_E_SYSTEM = 32 };
dl_kconn *dl_ktcp_new(int family); /* 4 or 6; NULL: dl_errmsg */
void dl_ktcp_free(dl_kconn *c);    /* close (the kernel finishes it), wake its tokens, free */
int dl_ktcp_bind(dl_kconn *c, const char *ip, int port);
int dl_ktcp_listen(dl_kconn *c, int backlog);
int dl_ktcp_accept(dl_kconn *listener, dl_kconn **out, uint32_t token);
int dl_ktcp_connect(dl_kconn *c, const char *ip, int port, uint32_t token);
int dl_ktcp_send(dl_kconn *c, const char *data, size_t len, uint32_t token);
int dl_ktcp_recv(dl_kconn *c, char *buf, size_t len, uint32_t token);
int dl_ktcp_state(dl_kconn *c);
int dl_ktcp_shutdown_send(dl_kconn *c);
int dl_ktcp_setopt(dl_kconn *c, int opt, int value);
int dl_ktcp_getopt(dl_kconn *c, int opt, int *value);
int dl_ktcp_addr(dl_kconn *c, int peer, char *ip, size_t iplen, int *port);
int dl_ktcp_worker(dl_kconn *c);
int dl_ktcp_core(dl_kconn *c);
/* epoll_wait calls the worker's dl_poll made (they stop while no kernel socket waits) */
uint64_t dl_ktcp_polls(const dl_worker *w);

/* host/blocking.c: the blocking pool (spec F16). Threads off the workers'
 * cores (started on demand, up to blocking_threads), each with its own Lua
 * state, run jobs: bytes that dpdk.blocking encoded, decoded there by
 * dpdk.blocking.serve. dl_blocking_submit queues one (copied) for the calling
 * worker; its dl_poll hands token back in a DL_EV_WAKE once the job is done.
 * NULL: dl_errmsg. */
typedef struct dl_job dl_job;
dl_job *dl_blocking_submit(const char *data, size_t len, const char *label, uint32_t token);
/* DL_OK: done; *data (len bytes) is the encoded result, or an error text when
 * *failed, valid until dl_blocking_release. DL_AGAIN: queued or running. */
int dl_blocking_result(dl_job *j, const char **data, size_t *len, int *failed);
/* The task stops waiting: frees a finished job; one still queued never runs;
 * one running is freed by its thread when it ends (the result dropped). */
void dl_blocking_release(dl_job *j);
int dl_blocking_threads(dl_runtime *rt); /* the pool's size */
int dl_blocking_running(dl_runtime *rt); /* jobs running now */
/* Take no more jobs, fail the queued ones, wait up to timeout_s for the
 * running ones. DL_AGAIN: some did not finish (dl_errmsg names them). */
int dl_blocking_stop(dl_runtime *rt, double timeout_s);
/* Bit 1: the runtime's devices have an IPv4 address; bit 2: an IPv6 one. */
int dl_runtime_families(dl_runtime *rt);

/* host/log.c */
enum { DL_LOG_ERROR = 1, DL_LOG_WARN = 2, DL_LOG_INFO = 3, DL_LOG_DEBUG = 4 };
int dl_log_enabled(int level, const char *module);
void dl_log_write(int level, const char *module, const char *msg);

/* host/log.c (dl_errmsg), main.c (version, signals), runtime.c (dl_now), eal.c */
const char *dl_errmsg(void);
const char *dl_version(void);
double dl_now(void);      /* monotonic seconds */
int dl_interrupted(void); /* SIGINT/SIGTERM seen */
int dl_eal_initialized(void);
/* DL_FFI_END */

#endif

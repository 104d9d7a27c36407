/*
 * runtime.h — the runtime, its workers and ports, as the host's C files see them.
 */
#ifndef DL_RUNTIME_H
#define DL_RUNTIME_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "host.h"
#include "stack.h"

struct rte_mempool;
struct rte_mbuf;
struct rte_ring;

enum { DL_MAX_WORKERS_LIMIT = 64, DL_RX_BURST = 32, DL_MAILBOX_SIZE = 1024 };
/* Flow steering (host/steer.c): RETA entries (a power of two: the owner is
 * reta[hash & (DL_RETA_SIZE - 1)]), Toeplitz key bytes, and the size of each
 * worker's ring of frames forwarded to it by the others. */
enum { DL_RETA_SIZE = 128, DL_RSS_KEY_LEN = 40, DL_STEER_RING = 4096 };
enum { DL_STEER_HERE = -1, DL_STEER_ALL = -2 };
/* Queue pairs a memif port opens, whatever the worker count (more if more
 * workers): the two ends of a memif must open the same number (host/port.c). */
enum { DL_MEMIF_QUEUES = 4 };
/* How a port lands flows on workers. */
enum { DL_STEER_NONE = 0, DL_STEER_SOFTWARE = 1, DL_STEER_RSS = 2 };

/* A task of this worker waits on a channel (host/channel.c). */
typedef struct dl_ktcp dl_ktcp; /* host/ktcp_poll.c: a worker's kernel sockets */

typedef struct dl_chan_wait {
    dl_channel *ch;
    uint32_t token;
    bool send; /* waits for room; else for a message */
} dl_chan_wait;

typedef struct dl_port {
    uint16_t port_id;
    int n_queues; /* >= n_workers: worker w polls queues w, w + n_workers, ...; sends on w */
    int mtu;
    uint8_t mac[6];                           /* the stack's MAC on this port */
    char name[DL_NAME_LEN];                   /* DPDK device name: "net_tap0" or a PCI address */
    char ifname[64];                          /* kernel side of a tap, "" otherwise */
    bool hotplugged;                          /* we probed it, so we remove it at stop */
    bool tx_ip_cksum, tx_tcp_cksum, rx_cksum; /* offloads enabled on the port */
    bool started;
    int steer_mode; /* DL_STEER_*: one worker, software forwarding, or the NIC's RSS */
    int lock_fd;
    struct rte_mempool *pool;
    const dl_device_config *dev;
    atomic_int link_up; /* as the watchdog thread last saw it (host/watchdog.c) */
    bool memif;         /* bursts only while its link is up (dl_port_link_gate) */
} dl_port;

struct dl_worker {
    dl_runtime *rt;
    int index; /* its TX queue on every port, and the first RX queue it polls */
    int core;
    bool has_thread; /* workers 1..n-1 run on their own thread; worker 0 on the caller's */
    pthread_t thread;
    atomic_bool exited;
    int lock_fd; /* the core's lock */
    struct rte_ring *mailbox;
    cpu_set_t saved_affinity; /* worker 0: the caller's affinity, restored on leave */
    dl_worker_stats stats;    /* written by the owner only; read with relaxed loads */
    uint64_t stats_next_tsc;  /* when to publish the TCP / Lua figures (host/stats.c) */
    bool stats_lua_due;       /* dl_poll asks Lua for its size (DL_EV_STATS) */
    uint32_t busy_turns;      /* turns that moved packets since the counters went out */
    /* per port, bit q: queue q, past this worker's first, has had frames (poll_io) */
    uint32_t extra_hot[DL_MAX_DEVICES];
    stack_tcp_stats tcp_base; /* lwIP's counters at the start: they count from lwip_init */
    const stack_ops *stack;   /* this worker's private lwIP copy */
    bool stack_up;            /* init()ed for this runtime: shutdown() due */
    stack_env env;
    double turn_s;     /* dl_now at the start of this turn (dl_worker_clock) */
    bool turn_busy;    /* this turn moved frames or handed Lua events: its time is busy_ns */
    uint32_t turn_ms;  /* the same in ms: lwIP's sys_now for this turn (now_ms) */
    dl_event *pending; /* wakes recorded by stack callbacks, handed out by dl_poll */
    int n_pending, cap_pending;
    dl_chan_wait *chan_waits; /* channels this worker's tasks wait on; dl_poll checks them */
    int n_chan_waits, cap_chan_waits;
    dl_ktcp *ktcp;  /* made with the worker's first kernel socket */
    int ktcp_waits; /* its armed tokens and closed sockets' wakes: dl_poll asks when > 0 */
    struct rte_mbuf *rx[DL_RX_BURST];
    struct rte_ring *steer_in; /* frames other workers received for flows we own */
    struct rte_mbuf *mine[DL_RX_BURST];
    struct rte_mbuf **steer_out; /* n_workers rows of DL_RX_BURST: this burst's frames per owner */
    uint16_t *n_steer_out;
    struct dl_fault *fault_rx[DL_MAX_DEVICES], *fault_tx[DL_MAX_DEVICES]; /* host/fault.c */
};

typedef struct dl_pool dl_pool;
typedef struct dl_pcap dl_pcap;
/* host/steer.c: the flow → worker function (see there). */
typedef struct dl_steer {
    int n_workers;
    uint16_t reta[DL_RETA_SIZE];
    stack_steer pub; /* what the stack copies see */
} dl_steer;
extern const uint8_t dl_steer_key[DL_RSS_KEY_LEN];
void dl_steer_init(dl_steer *s, int n_workers);
/* The Toeplitz hash of a flow as received (addresses in network order),
 * with dl_steer_key or any 40-byte key. */
uint32_t dl_toeplitz(const uint8_t *key, int family, const uint8_t *src, const uint8_t *dst,
                     uint16_t sport, uint16_t dport);
uint32_t dl_steer_hash(int family, const uint8_t *src, const uint8_t *dst, uint16_t sport,
                       uint16_t dport);
int dl_steer_owner_of_hash(const dl_steer *s, uint32_t hash);
/* A worker index, DL_STEER_ALL (ARP / neighbour discovery) or DL_STEER_HERE. */
int dl_steer_classify(const dl_steer *s, const struct rte_mbuf *m);
int dl_steer_classify_frame(const dl_steer *s, const uint8_t *frame, uint32_t len);
struct rte_mbuf *dl_steer_copy(const struct rte_mbuf *m, struct rte_mempool *pool);

struct dl_runtime {
    dl_config *cfg;
    dl_pool *blocking;    /* host/blocking.c */
    dl_pcap *pcap;        /* host/pcap.c: NULL unless DPDKLUA_PCAP is set */
    dl_runtime_opts opts; /* scalar options; string lists are not kept */
    char lua_path[4096];
    char lua_cpath[4096];
    int seq; /* distinguishes the names of this runtime's rings and pools */
    atomic_int stopping;
    double drain_s; /* how long a stopping worker may drain its connections */
    int n_workers;
    dl_steer steer;
    dl_worker workers[DL_MAX_WORKERS_LIMIT];
    int n_ports;
    dl_port ports[DL_MAX_DEVICES];
    /* host/watchdog.c: its thread, woken early by dl_watchdog_stop */
    pthread_t wd_thread;
    pthread_mutex_t wd_lock;
    pthread_cond_t wd_cond;
    bool wd_quit, wd_running;
};

/* host/watchdog.c: one slot per worker index, outside any runtime (the EAL
 * interrupt thread reads them at any time). The worker bumps turns at the
 * top of every loop turn, where it is inside no rx/tx burst, and sets online
 * while its loop runs; sched.lua writes task (api.h) at each resume. Read by
 * the watchdog thread and by the memif guard (host/memif_guard.c). */
typedef struct dl_wd_slot {
    _Alignas(64) uint64_t turns;
    int online;
    dl_task_slot task;
} dl_wd_slot;
extern dl_wd_slot dl_wd_slots[DL_MAX_WORKERS_LIMIT];
/* After SIGTERM/SIGINT, the longest the graceful shutdown may take before
 * the watchdog ends the process. */
enum { DL_SIGNAL_EXIT_S = 10 };

static inline void dl_wd_turn(int index)
{
    uint64_t *t = &dl_wd_slots[index].turns; /* one writer: the worker */
    __atomic_store_n(t, *t + 1, __ATOMIC_RELEASE);
}
void dl_wd_online(int index, bool on);
int dl_watchdog_start(dl_runtime *rt); /* workers and ports up: the thread */
void dl_watchdog_stop(dl_runtime *rt); /* joins the thread */

/* host/memif_guard.c: munmap/sendmsg on the EAL interrupt thread wait for
 * the first n_workers slots while armed. */
void dl_memif_guard_arm(int n_workers); /* workers up, before any burst can race an unmap */
void dl_memif_guard_release(void);      /* after the last burst of any worker */
void dl_memif_guard_report(void);       /* logs what the guard did (info) */
/* Run fn(arg) on the EAL interrupt thread, where the memif PMD handles its
 * control channel, and wait for it to end (what names it in a warning). */
void dl_memif_on_intr_thread(const char *what, void (*fn)(void *), void *arg);
/* Close a memif server port (close_fn(arg)) there too, then retire the
 * listener fd the PMD leaves registered once it freed that socket. */
void dl_memif_server_close(const char *what, const char *socket_path, void (*close_fn)(void *),
                           void *arg);
/* At exit, before rte_eal_cleanup: park the EAL interrupt thread for good so
 * it cannot touch the memory the cleanup unmaps; false if it did not park. */
bool dl_intr_thread_park(double timeout);

/* host/eal.c */
int dl_eal_init(const dl_config *cfg, const dl_runtime_opts *opts);
/* host/runtime.c: dl_now reads the TSC once the EAL is up (called by dl_eal_init). */
void dl_clock_init(void);
void dl_eal_cleanup(void);

/* host/locks.c: advisory locks under the lock directory (/var/run/dpdk). */
int dl_lock_try(const char *kind, const char *name, int *fd_out); /* DL_OK, DL_AGAIN, DL_ERROR */
void dl_lock_release(int fd);
/* pid is gone, a zombie, exiting or about to (SIGKILL pending). */
bool dl_process_ending(int pid);
/* "pid 123 (cmdline)" of the holder, or "unknown". */
void dl_lock_holder(const char *kind, const char *name, char *buf, size_t len);
/* dl_lock_try that, when the resource is held, appends "; <label> is held by
 * <holder>" to why (for the error that lists every held resource). */
int dl_lock_take(const char *kind, const char *name, const char *label, int *fd_out, char *why,
                 size_t why_len);

/* host/port.c */
int dl_port_open(dl_port *port, const dl_device_config *dev, const dl_runtime *rt);
void dl_port_close(dl_port *port);
/* The device's DPDK name: its PCI address or its vdev name ("net_tap0"). */
void dl_device_key(const dl_device_config *dev, char *buf, size_t len);
/* The resource it stands for, its lock name: "tap:<iface>",
 * "memif:<socket>:<role>:<id>", "pci:<dddd:bb:dd.f>", "af_packet:<iface>",
 * else "vdev:<name>". */
void dl_device_lock_key(const dl_device_config *dev, char *buf, size_t len);

/* host/worker.c */
int dl_worker_init(dl_worker *w, dl_runtime *rt, int index);
int dl_worker_start_thread(dl_worker *w);
void dl_worker_destroy(dl_worker *w);

/* host/channel.c */
/* Add a DL_EV_WAKE to events[n..max) for each wait of w that may go on; returns the new n. */
int dl_channel_poll(dl_worker *w, dl_event *events, int n, int max);
void dl_channels_free(dl_runtime *rt); /* with the runtime: queued messages too */

/* host/blocking.c */
int dl_blocking_create(dl_runtime *rt); /* after the cores are chosen, before any pinning */
/* Add a DL_EV_WAKE to events[n..max) for each finished job of w; returns the new n. */
int dl_blocking_poll(dl_worker *w, dl_event *events, int n, int max);
void dl_blocking_free(dl_runtime *rt); /* the runtime's reference; threads keep theirs */

/* host/crash.c: report SIGSEGV/SIGBUS/SIGFPE/SIGILL/SIGABRT (signal, thread,
 * worker, task, backtrace) on stderr, then die of it as before. */
void dl_crash_install(void);
/* host/main.c: the first SIGINT/SIGTERM's number while it is pending, else 0 */
int dl_interrupt_signal(void);

/* host/ktcp_poll.c */
/* Add a DL_EV_WAKE to events[n..max) for each kernel socket wait of w that may go on. */
int dl_ktcp_poll(dl_worker *w, dl_event *events, int n, int max);
void dl_ktcp_worker_free(dl_worker *w); /* closes what is left; finalizers free it later */

/* host/pcap.c: DPDKLUA_PCAP (after the ports are up; close after the
 * workers are gone). RX: a worker's burst; TX: the stack's burst while
 * capturing (stack_env.tx_burst, dl_port_tx_burst). */
int dl_pcap_open(dl_runtime *rt);
void dl_pcap_close(dl_runtime *rt);
void dl_pcap_rx(dl_runtime *rt, uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts,
                uint16_t n);
uint16_t dl_pcap_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* host/port.c: a memif port's link gate. DPDK 22.11's memif bursts compute
 * their ring from the peer's region before they check that the port is
 * connected: a burst preempted between the two while the EAL interrupt
 * thread completed a new peer's handshake used a region not yet mapped
 * (SIGSEGV at NULL + the ring's offset). Its link goes up only after the
 * region is mapped, and down before it is unmapped (while the memif guard
 * waits for the bursts in flight): no burst starts while it is down. */
bool dl_port_link_gate(uint16_t port_id);
/* poll_io: the gate of a memif port, read once at the start of the turn; up
 * is remembered (per thread) until dl_port_link_gate_end at the end of
 * poll_io, and dl_port_link_gate answers from it meanwhile. */
bool dl_port_link_gate_turn(uint16_t port_id);
void dl_port_link_gate_end(void);
/* stack_env.tx_burst when a port is memif or capture is on: the gate, then
 * the capture or rte_eth_tx_burst. */
uint16_t dl_port_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* host/telemetry.c: the /dpdklua/... telemetry commands read this runtime
 * (attach once it runs; detach before it is freed). */
void dl_telemetry_attach(dl_runtime *rt);
void dl_telemetry_detach(dl_runtime *rt);

/* host/stats.c: on the worker's thread only. All the published figures
 * (TCP walk included); the driver's counters alone (cheap, per busy turn). */
void dl_stats_start(dl_worker *w); /* after the stack is up */
void dl_stats_publish(dl_worker *w);
void dl_stats_publish_counters(dl_worker *w);

/* host/worker.c */
int dl_runtime_loop_active(void); /* a worker loop runs on the main thread */

/* tcp.c: the TCP resource counters of dl_worker_stats (the owner publishes
 * them with the driver's; any thread reads them) */
void dl_tcp_stats_publish(dl_worker *w, const stack_counters *c);
/* host/runtime.c */
void dl_host_shutdown(void); /* at exit: stop a live runtime, clean up EAL */

#endif

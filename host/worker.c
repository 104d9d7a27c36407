/*
 * worker.c — one busy-polling worker per core.
 *
 * A worker owns queue `index` of every port and a mailbox. Workers 1..n-1 run
 * on their own pinned thread with their own LuaJIT state, whose loop
 * (lua/dpdk/worker.lua) calls dl_poll until the runtime stops; worker 0 is
 * the thread that calls rt:block_on / rt:run, pinned while it runs the loop.
 *
 * The turn, as in DPDK's l2fwd: rx burst → stack input and timers → tx flush
 * → the wake-ups the stack recorded, handed to Lua as events. With several
 * workers, frames of flows another worker owns go to that worker's steering
 * ring (host/steer.c says who owns what).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "fault.h"
#include "runtime.h"

static _Thread_local dl_worker *self;
static atomic_int main_loop_active;

typedef struct mail {
    size_t len;
    char data[];
} mail;

dl_worker *dl_self(void)
{
    return self;
}

int dl_runtime_loop_active(void)
{
    return atomic_load(&main_loop_active);
}

int dl_worker_index(const dl_worker *w)
{
    return w->index;
}

int dl_worker_core(const dl_worker *w)
{
    return w->core;
}

dl_runtime *dl_worker_runtime(dl_worker *w)
{
    return w->rt;
}

static inline void stat_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED); /* single writer */
}

/* Called by the stack's callbacks (inside dl_poll): remember the wake; dl_poll
 * hands it to Lua. The array grows only while more coroutines wait than ever
 * before, never per packet. */
static void worker_wake(void *worker, uint32_t token, int64_t arg)
{
    dl_worker *w = worker;
    if (token == 0)
        return;
    if (w->n_pending == w->cap_pending) {
        int cap = w->cap_pending ? w->cap_pending * 2 : 256;
        dl_event *grown = realloc(w->pending, (size_t)cap * sizeof *grown);
        if (!grown) {
            DL_ERR("worker", "worker %d: out of memory recording a wake-up", w->index);
            return;
        }
        w->pending = grown;
        w->cap_pending = cap;
    }
    w->pending[w->n_pending++] = (dl_event){.kind = DL_EV_WAKE, .token = token, .arg = arg};
}

static uint32_t clock_ms(void)
{
    return (uint32_t)(uint64_t)(dl_now() * 1000.0);
}

/* The one clock read of a turn, for lwIP (now_ms) and Lua's timer check. */
static inline void turn_clock(dl_worker *w)
{
    w->turn_s = dl_now();
    w->turn_ms = (uint32_t)(uint64_t)(w->turn_s * 1000.0);
}

const double *dl_worker_clock(const dl_worker *w)
{
    return &w->turn_s;
}

/* lwIP's clock (sys_now, called several times per turn): on the worker's own
 * thread, the time read once at the start of its turn (poll_io); elsewhere
 * (set-up on the main thread) the clock itself. */
static uint32_t now_ms(void)
{
    const dl_worker *w = self;
    return w ? w->turn_ms : clock_ms();
}

static void stack_log(int level, const char *msg)
{
    dl_log_write(level, "lwip", msg);
}

static bool has_memif(const dl_runtime *rt)
{
    for (int p = 0; p < rt->n_ports; p++)
        if (rt->ports[p].memif)
            return true;
    return false;
}

static int init_stack(dl_worker *w)
{
    dl_runtime *rt = w->rt;
    if (w->index >= dl_stack_instance_count)
        return dl_fail("worker %d: this build has %d stack copies; rebuild with "
                       "`make MAX_WORKERS=%d` or ask for fewer workers",
                       w->index, dl_stack_instance_count, w->index + 1);
    w->stack = dl_stack_instances[w->index];
    w->env = (stack_env){.worker = w,
                         .worker_index = w->index,
                         .wake = worker_wake,
                         .now_ms = now_ms,
                         .log = stack_log,
                         .steer = rt->n_workers > 1 ? &rt->steer.pub : NULL,
                         .max_connections = rt->opts.max_connections,
                         .linger_ms = (uint32_t)rt->opts.linger_timeout_ms,
                         .tx_burst = rt->pcap || has_memif(rt) ? dl_port_tx_burst : NULL};
    if (w->stack->init(&w->env) != DL_OK)
        return dl_fail("worker %d: the TCP stack failed to start (see the \"lwip\" error "
                       "logged just before)",
                       w->index);
    w->stack_up = true;
    if (dl_fault_setup(w) != DL_OK)
        return DL_ERROR;
    for (int p = 0; p < rt->n_ports; p++) {
        const dl_port *port = &rt->ports[p];
        stack_port sp = {
            .index = p,
            .port_id = port->port_id,
            .queue = (uint16_t)w->index,
            .pool = port->pool,
            .mtu = port->mtu,
            .tx_ip_cksum = port->tx_ip_cksum,
            .tx_tcp_cksum = port->tx_tcp_cksum,
            .rx_cksum = port->rx_cksum,
            .dev = port->dev,
            .tx_hook = w->fault_tx[p] ? dl_fault_tx : NULL,
            .tx_hook_arg = w->fault_tx[p],
        };
        memcpy(sp.mac, port->mac, 6);
        if (w->stack->add_port(&sp) != DL_OK) /* the stack logs its reason */
            return dl_fail("worker %d: port %s: the TCP stack refused the port (its reason is "
                           "in the \"lwip\" error logged just before)",
                           w->index, port->name);
    }
    return DL_OK;
}

int dl_worker_init(dl_worker *w, dl_runtime *rt, int index)
{
    w->rt = rt;
    w->index = index;
    atomic_init(&w->exited, false);
    char name[RTE_RING_NAMESIZE];
    snprintf(name, sizeof name, "dl%d_mail%d", rt->seq, index);
    w->mailbox = rte_ring_create(name, DL_MAILBOX_SIZE, SOCKET_ID_ANY, RING_F_SC_DEQ);
    if (!w->mailbox)
        return dl_fail("worker %d: cannot create its mailbox: %s", index, rte_strerror(rte_errno));
    if (rt->n_workers > 1 && rt->n_ports > 0) {
        snprintf(name, sizeof name, "dl%d_steer%d", rt->seq, index);
        /* many producers (the other workers), one consumer (this one) */
        w->steer_in = rte_ring_create(name, DL_STEER_RING, SOCKET_ID_ANY, RING_F_SC_DEQ);
        if (!w->steer_in)
            return dl_fail("worker %d: cannot create its steering ring: %s", index,
                           rte_strerror(rte_errno));
        w->steer_out = calloc((size_t)rt->n_workers * DL_RX_BURST, sizeof *w->steer_out);
        w->n_steer_out = calloc((size_t)rt->n_workers, sizeof *w->n_steer_out);
        if (!w->steer_out || !w->n_steer_out)
            return dl_fail("worker %d: out of memory for its steering buffers", index);
    }
    if (rt->n_ports > 0 && init_stack(w) != DL_OK)
        return DL_ERROR;
    dl_stats_start(w);
    return DL_OK;
}

void dl_worker_destroy(dl_worker *w)
{
    if (w->stack_up) {
        dl_wd_online(w->index, true); /* its RSTs go out in a tx burst (host/watchdog.c) */
        w->stack->shutdown();         /* before the ports go: returns its mbufs to their pools */
        dl_wd_online(w->index, false);
        w->stack_up = false;
    }
    dl_fault_teardown(w); /* after the stack's last flush through it */
    if (w->steer_in) {    /* frames forwarded after this worker's last turn */
        struct rte_mbuf *m;
        while (rte_ring_dequeue(w->steer_in, (void **)&m) == 0)
            rte_pktmbuf_free(m);
        rte_ring_free(w->steer_in);
        w->steer_in = NULL;
    }
    free(w->steer_out);
    free(w->n_steer_out);
    w->steer_out = NULL;
    w->n_steer_out = NULL;
    free(w->pending);
    w->pending = NULL;
    w->n_pending = w->cap_pending = 0;
    dl_ktcp_worker_free(w);
    free(w->chan_waits);
    w->chan_waits = NULL;
    w->n_chan_waits = w->cap_chan_waits = 0;
    if (w->mailbox) {
        void *m;
        while (rte_ring_dequeue(w->mailbox, &m) == 0)
            free(m);
        rte_ring_free(w->mailbox);
        w->mailbox = NULL;
    }
}

int dl_worker_enter(dl_worker *w)
{
    if (self == w)
        return dl_fail("worker %d is already running on this thread", w->index);
    if (self)
        return dl_fail("this thread already runs worker %d", self->index);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->core, &set);
    if (!w->has_thread)
        pthread_getaffinity_np(pthread_self(), sizeof w->saved_affinity, &w->saved_affinity);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
        return dl_fail("worker %d: cannot pin to core %d: %s", w->index, w->core, strerror(rc));
    turn_clock(w);
    w->turn_busy = false; /* a last turn of an earlier entry is not this one's busy time */
    self = w;
    dl_wd_online(w->index, true); /* before any burst: the memif guard waits for it */
    dl_log_set_worker(w->index);
    if (!w->has_thread)
        atomic_store(&main_loop_active, 1);
    return DL_OK;
}

void dl_worker_leave(dl_worker *w)
{
    if (self != w)
        return;
    self = NULL;
    dl_wd_online(w->index, false); /* after its last burst */
    dl_log_set_worker(-1);
    if (!w->has_thread) {
        pthread_setaffinity_np(pthread_self(), sizeof w->saved_affinity, &w->saved_affinity);
        atomic_store(&main_loop_active, 0);
    }
}

/* A forwarded frame carries the index of the port it arrived on, and whether
 * it is a quiet copy (ARP / ND that another worker answers), in hash.usr:
 * nothing below the host reads the RSS hash that field overlays. */
enum { FWD_QUIET = 1 };

static inline void fwd_tag(struct rte_mbuf *m, int port, bool quiet)
{
    m->hash.usr = (uint32_t)port << 1 | (quiet ? FWD_QUIET : 0);
}

/* Frames the other workers received for flows this worker owns, fed to the
 * stack in runs of the same port and kind. */
static bool take_forwarded(dl_worker *w)
{
    struct rte_mbuf *in[DL_RX_BURST];
    unsigned nb = rte_ring_dequeue_burst(w->steer_in, (void **)in, DL_RX_BURST, NULL);
    if (nb == 0)
        return false;
    stat_add(&w->stats.forwarded_in, nb);
    unsigned start = 0;
    while (start < nb) {
        uint32_t tag = in[start]->hash.usr;
        unsigned end = start + 1;
        while (end < nb && in[end]->hash.usr == tag)
            end++;
        int port = (int)(tag >> 1);
        if (tag & FWD_QUIET)
            w->stack->input_quiet(port, in + start, (int)(end - start));
        else
            w->stack->input(port, in + start, (int)(end - start));
        start = end;
    }
    return true;
}

/* Software steering: keep the frames this worker owns, hand the others to
 * their owners' rings; ARP / ND go to this worker and, as quiet copies, to
 * every other one. */
static void steer_burst(dl_worker *w, int p, struct rte_mbuf **pkts, uint16_t nb)
{
    dl_runtime *rt = w->rt;
    int n = rt->n_workers, n_mine = 0;
    uint64_t drops = 0;
    for (uint16_t i = 0; i < nb; i++) {
        struct rte_mbuf *m = pkts[i];
        int owner = dl_steer_classify(&rt->steer, m);
        if (owner == DL_STEER_HERE || owner == w->index) {
            w->mine[n_mine++] = m;
            continue;
        }
        if (owner >= 0) {
            fwd_tag(m, p, false);
            w->steer_out[owner * DL_RX_BURST + w->n_steer_out[owner]++] = m;
            continue;
        }
        for (int o = 0; o < n; o++) { /* DL_STEER_ALL */
            if (o == w->index)
                continue;
            struct rte_mbuf *c = dl_steer_copy(m, rt->ports[p].pool);
            if (!c) {
                drops++;
                continue;
            }
            fwd_tag(c, p, true);
            w->steer_out[o * DL_RX_BURST + w->n_steer_out[o]++] = c;
        }
        w->mine[n_mine++] = m;
    }
    if (n_mine)
        w->stack->input(p, w->mine, n_mine); /* the mbufs are the stack's now */
    uint64_t out = 0;
    for (int o = 0; o < n; o++) {
        unsigned k = w->n_steer_out[o];
        if (k == 0)
            continue;
        struct rte_mbuf **row = w->steer_out + o * DL_RX_BURST;
        /* ownership: the mbufs the ring took are the owner's now */
        unsigned sent = rte_ring_enqueue_burst(rt->workers[o].steer_in, (void **)row, k, NULL);
        if (sent < k) {
            rte_pktmbuf_free_bulk(row + sent, k - sent);
            drops += k - sent;
        }
        out += sent;
        w->n_steer_out[o] = 0;
    }
    if (out)
        stat_add(&w->stats.forwarded_out, out);
    if (drops)
        stat_add(&w->stats.forward_drops, drops);
}

/* One rx burst from queue `queue` of port p into the stack (or its owners). */
static bool poll_queue(dl_worker *w, int p, uint16_t queue)
{
    dl_runtime *rt = w->rt;
    uint16_t nb = rte_eth_rx_burst(rt->ports[p].port_id, queue, w->rx, DL_RX_BURST);
    struct rte_mbuf **rx = w->rx;
    if (__builtin_expect(w->fault_rx[p] != NULL, 0)) /* the fault injector (fault.c) */
        nb = dl_fault_rx(w->fault_rx[p], w->rx, nb, &rx);
    if (nb == 0)
        return false;
    if (__builtin_expect(rt->pcap != NULL, 0)) /* DPDKLUA_PCAP */
        dl_pcap_rx(rt, rt->ports[p].port_id, queue, rx, nb);
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < nb; i++)
        bytes += rte_pktmbuf_pkt_len(rx[i]);
    stat_add(&w->stats.rx_packets, nb);
    stat_add(&w->stats.rx_bytes, bytes);
    if (rt->ports[p].steer_mode == DL_STEER_NONE)
        w->stack->input(p, rx, nb); /* the mbufs are the stack's now */
    else
        steer_burst(w, p, rx, nb);
    return true;
}

/* (forwarded frames →) rx bursts → stack input → stack poll. A worker polls
 * the queues that are its index modulo the worker count: a port may have
 * more queues than workers (memif, host/port.c). True if frames moved. */
static bool poll_io(dl_worker *w)
{
    dl_runtime *rt = w->rt;
    bool busy = w->steer_in && take_forwarded(w);
    /* Queues past the first n_workers (memif: a peer with more workers than
     * this process sends on them) are burst every 16th turn until one
     * returns frames, then every turn until the link goes down: the frames
     * wait in the ring meanwhile, and a 1-worker pair makes 1 burst a turn
     * instead of 4. */
    bool sample = (w->stats.loops & 15) == 0;
    for (int p = 0; p < rt->n_ports; p++) {
        if (rt->ports[p].memif && !dl_port_link_gate_turn(rt->ports[p].port_id)) {
            w->extra_hot[p] = 0; /* the next peer may use other queues */
            continue;            /* no burst while its peer's region may be unmapped (runtime.h) */
        }
        busy |= poll_queue(w, p, (uint16_t)w->index);
        for (int q = w->index + rt->n_workers; q < rt->ports[p].n_queues; q += rt->n_workers) {
            uint32_t bit = q < 32 ? UINT32_C(1) << q : 0;
            if (sample || (w->extra_hot[p] & bit) || !bit) {
                if (poll_queue(w, p, (uint16_t)q)) {
                    w->extra_hot[p] |= bit;
                    busy = true;
                }
            }
        }
    }
    if (w->stack_up) {
        int sent = w->stack->poll(); /* timers, deferred tcp_output, TX bursts */
        if (sent > 0) {
            stat_add(&w->stats.tx_packets, (uint64_t)sent);
            busy = true;
        }
        /* The driver's counters move only when packets do. They go out on
         * the first turn without packets (the replies of this turn are on
         * the wire by then: no latency added to a request), and every 64th
         * busy turn under sustained load. */
        if (busy ? (++w->busy_turns & 63) == 0 : w->busy_turns != 0) {
            dl_stats_publish_counters(w);
            w->busy_turns = 0;
        }
    }
    dl_port_link_gate_end();
    stat_add(&w->stats.loops, 1);
    /* the clock only every 1024 turns: TCP and Lua figures every period */
    if ((w->stats.loops & 1023) == 0 && rte_rdtsc() >= w->stats_next_tsc)
        dl_stats_publish(w);
    return busy;
}

int dl_poll(dl_worker *w, dl_event *events, int max)
{
    int n = 0;
    dl_wd_turn(w->index); /* between turns: inside no burst (host/watchdog.c) */
    double last_turn_s = w->turn_s;
    turn_clock(w);
    if (w->turn_busy) /* the last turn ran from its clock read to this one */
        stat_add(&w->stats.busy_ns, (uint64_t)((w->turn_s - last_turn_s) * 1e9));
    if (atomic_load_explicit(&w->rt->stopping, memory_order_relaxed)) {
        events[n++] = (dl_event){.kind = DL_EV_STOP};
        w->turn_busy = false;
        return n;
    }
    bool moved = poll_io(w);
    if (w->n_pending > 0) {
        int take = w->n_pending < max - n ? w->n_pending : max - n;
        memcpy(events + n, w->pending, (size_t)take * sizeof *events);
        n += take;
        w->n_pending -= take;
        if (w->n_pending > 0)
            memmove(w->pending, w->pending + take, (size_t)w->n_pending * sizeof *events);
    }
    if (w->n_chan_waits > 0)
        n = dl_channel_poll(w, events, n, max);
    if (w->ktcp_waits > 0) /* kernel sockets (host/ktcp.c): only while one waits */
        n = dl_ktcp_poll(w, events, n, max);
    n = dl_blocking_poll(w, events, n, max);
    if (w->stats_lua_due && n < max) {
        events[n++] = (dl_event){.kind = DL_EV_STATS};
        w->stats_lua_due = false;
    }
    if (n < max && !rte_ring_empty(w->mailbox))
        events[n++] = (dl_event){.kind = DL_EV_MAIL, .arg = rte_ring_count(w->mailbox)};
    w->turn_busy = moved || n > 0;
    return n;
}

int dl_worker_drain(dl_worker *w, double timeout_s)
{
    if (!w->stack_up)
        return 0;
    if (timeout_s < 0)
        timeout_s = w->rt->drain_s;
    double deadline = dl_now() + timeout_s;
    /* whatever Lua did not close (a socket whose object is gone but whose
     * finalizer has not run) is closed here, not left to a later GC */
    w->stack->close_all();
    int busy;
    while ((busy = w->stack->busy()) > 0) {
        turn_clock(w);
        if (w->turn_s >= deadline)
            break;
        dl_wd_turn(w->index);
        poll_io(w);
        w->n_pending = 0; /* nobody waits any more */
    }
    if (busy > 0)
        DL_WARN("worker", "worker %d: %d connection(s) still sending at shutdown: reset", w->index,
                busy);
    return busy;
}

int dl_mail_post(dl_worker *to, const char *data, size_t len)
{
    /* Nobody would take it: a sender waiting for an answer must learn now. */
    if (atomic_load_explicit(&to->rt->stopping, memory_order_relaxed))
        return dl_fail("runtime stopping: worker %d takes no more messages", to->index);
    if (to->has_thread && atomic_load(&to->exited))
        return dl_fail("worker %d has stopped (see the error it logged): it takes no more "
                       "messages",
                       to->index);
    mail *m = malloc(sizeof *m + len);
    if (!m)
        return dl_fail("cannot post a message of %zu bytes: out of memory", len);
    m->len = len;
    memcpy(m->data, data, len);
    if (rte_ring_enqueue(to->mailbox, m) != 0) {
        free(m);
        return DL_AGAIN; /* full: the receiver is behind */
    }
    return DL_OK;
}

int dl_mail_take(dl_worker *w, const char **data, size_t *len)
{
    void *p;
    if (rte_ring_dequeue(w->mailbox, &p) != 0)
        return DL_AGAIN;
    mail *m = p;
    *data = m->data;
    *len = m->len;
    return DL_OK;
}

void dl_mail_release(const char *data)
{
    if (data)
        free((char *)data - offsetof(mail, data));
}

/* The thread of workers 1..n-1: a fresh Lua state runs dpdk.worker's loop. */
static void *worker_main(void *arg)
{
    dl_worker *w = arg;
    if (rte_thread_register() != 0) /* an lcore id: per-core mempool caches work */
        DL_WARN("worker", "worker %d: rte_thread_register failed: %s; mempool caches are off",
                w->index, rte_strerror(rte_errno));
    if (dl_worker_enter(w) != DL_OK) {
        DL_ERR("worker", "%s", dl_errmsg());
        goto out;
    }
    lua_State *L = luaL_newstate();
    if (!L) {
        DL_ERR("worker", "worker %d: cannot create a Lua state: out of memory", w->index);
        goto out;
    }
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, w->rt->lua_path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, w->rt->lua_cpath);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    /* The thread's whole life is this one call: the loop lives in Lua and
     * returns when dl_poll reports DL_EV_STOP. */
    if (luaL_dostring(L, "return require('dpdk.worker').main()") != 0)
        DL_ERR("worker", "worker %d stopped by an error: %s", w->index, lua_tostring(L, -1));
    lua_close(L);
    dl_worker_leave(w);
out:
    rte_thread_unregister();
    atomic_store(&w->exited, true);
    return NULL;
}

int dl_worker_start_thread(dl_worker *w)
{
    w->has_thread = true;
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        w->has_thread = false;
        return dl_fail("worker %d: cannot create its thread: %s", w->index, strerror(rc));
    }
    char name[16];
    snprintf(name, sizeof name, "dpdklua-w%d", w->index);
    pthread_setname_np(w->thread, name);
    return DL_OK;
}

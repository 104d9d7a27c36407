/*
 * runtime.c — build and tear down a runtime: config → core locks → EAL →
 * device locks and ports → workers. One runtime at a time per process; after
 * dl_runtime_stop a new one can be built (the EAL stays initialised).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <rte_cycles.h>

#include "runtime.h"

static dl_runtime *active;
static int next_seq;

int dl_runtime_worker_count(const dl_runtime *rt)
{
    return rt->n_workers;
}

dl_worker *dl_runtime_worker(dl_runtime *rt, int index)
{
    return index >= 0 && index < rt->n_workers ? &rt->workers[index] : NULL;
}

int dl_runtime_port_count(const dl_runtime *rt)
{
    return rt->n_ports;
}

int dl_runtime_port_info(dl_runtime *rt, int index, dl_port_info *out)
{
    if (index < 0 || index >= rt->n_ports)
        return dl_fail("no port %d: the runtime has %d", index, rt->n_ports);
    const dl_port *p = &rt->ports[index];
    memset(out, 0, sizeof *out);
    out->port_id = p->port_id;
    out->n_queues = p->n_queues;
    out->mtu = p->mtu;
    memcpy(out->mac, p->mac, 6);
    snprintf(out->name, sizeof out->name, "%s", p->name);
    snprintf(out->ifname, sizeof out->ifname, "%s", p->ifname);
    struct rte_eth_stats st;
    if (rte_eth_stats_get(p->port_id, &st) == 0) {
        out->ipackets = st.ipackets;
        out->opackets = st.opackets;
        out->ibytes = st.ibytes;
        out->obytes = st.obytes;
        out->imissed = st.imissed;
        out->ierrors = st.ierrors;
        out->oerrors = st.oerrors;
        out->rx_nombuf = st.rx_nombuf;
    }
    if (p->pool) { /* any thread: sums the per-core caches */
        out->mbufs_total = p->pool->size;
        out->mbufs_in_use = rte_mempool_in_use_count(p->pool);
        out->mbufs_avail = rte_mempool_avail_count(p->pool);
    }
    return DL_OK;
}

static bool core_usable(int core)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    return sched_getaffinity(0, sizeof set, &set) == 0 && core < CPU_SETSIZE &&
           CPU_ISSET(core, &set);
}

static int lock_cores(dl_runtime *rt, int wanted)
{
    const dl_config *cfg = rt->cfg;
    char why[2048] = "";
    for (int i = 0; i < cfg->n_cores && (wanted == 0 || rt->n_workers < wanted); i++) {
        int core = cfg->cores[i];
        char name[16], label[32];
        snprintf(name, sizeof name, "%d", core);
        snprintf(label, sizeof label, "core %d", core);
        if (!core_usable(core)) {
            size_t used = strlen(why);
            snprintf(why + used, sizeof why - used, "; %s is not in this process's CPU set", label);
            continue;
        }
        int fd;
        int rc = dl_lock_take("core", name, label, &fd, why, sizeof why);
        if (rc == DL_ERROR)
            return DL_ERROR;
        if (rc == DL_AGAIN)
            continue;
        dl_worker *w = &rt->workers[rt->n_workers++];
        w->core = core;
        w->lock_fd = fd;
    }
    if (rt->n_workers == 0 || (wanted > 0 && rt->n_workers < wanted))
        return dl_fail("no free core: %d worker(s) wanted, %d free in dpdk_cores of %s%s; stop "
                       "the process holding one, add cores to dpdk_cores or ask for fewer "
                       "workers",
                       wanted ? wanted : 1, rt->n_workers, cfg->path, why);
    return DL_OK;
}

static bool device_selected(const dl_device_config *dev, const dl_runtime_opts *o)
{
    char key[DL_NAME_LEN];
    dl_device_key(dev, key, sizeof key);
    if (o->n_devices > 0) {
        for (int i = 0; i < o->n_devices; i++)
            if (strcmp(o->devices[i], key) == 0 || strcmp(o->devices[i], dev->vdev) == 0 ||
                (dev->original_name[0] && strcmp(o->devices[i], dev->original_name) == 0))
                return true;
        return false;
    }
    const char *env = getenv("DPDK_DEVICE"); /* comma-separated filter */
    if (!env || !*env)
        return true;
    size_t klen = strlen(key);
    for (const char *s = env; *s;) {
        size_t n = strcspn(s, ",");
        if (n == klen && strncmp(s, key, n) == 0)
            return true;
        s += n + (s[n] == ',');
    }
    return false;
}

static int open_ports(dl_runtime *rt)
{
    const dl_config *cfg = rt->cfg;
    char why[2048] = "";
    int candidates = 0;
    for (int i = 0; i < cfg->n_devices; i++) {
        const dl_device_config *dev = &cfg->devices[i];
        if (dev->role != DL_ROLE_DPDK || !device_selected(dev, &rt->opts))
            continue;
        candidates++;
        char key[DL_NAME_LEN], lock[DL_NAME_LEN], label[2 * DL_NAME_LEN + 4];
        dl_device_key(dev, key, sizeof key);
        dl_device_lock_key(dev, lock, sizeof lock);
        snprintf(label, sizeof label, "%s (%s)", key, lock);
        int fd;
        int rc = dl_lock_take("dev", lock, label, &fd, why, sizeof why);
        if (rc == DL_ERROR)
            return DL_ERROR;
        if (rc == DL_AGAIN)
            continue;
        dl_port *port = &rt->ports[rt->n_ports++];
        if (dl_port_open(port, dev, rt) != DL_OK) {
            port->lock_fd = fd;
            return DL_ERROR;
        }
        port->lock_fd = fd;
    }
    if (candidates > 0 && rt->n_ports == 0)
        return dl_fail("no free device among the %d selected in %s%s; stop the process holding "
                       "one or configure another device",
                       candidates, cfg->path, why);
    if (candidates == 0 && (rt->opts.n_devices > 0 || getenv("DPDK_DEVICE")))
        return dl_fail("no device of %s matches the device filter (devices option or "
                       "DPDK_DEVICE)",
                       cfg->path);
    return DL_OK;
}

static void release(dl_runtime *rt)
{
    dl_telemetry_detach(rt);                  /* the telemetry thread reads no more of it */
    for (int i = 0; i < rt->n_workers; i++) { /* stacks first: they hold mbufs of the ports */
        dl_worker_destroy(&rt->workers[i]);
        dl_lock_release(rt->workers[i].lock_fd);
    }
    dl_pcap_close(rt);
    dl_channels_free(rt); /* after the workers: nobody waits on them any more */
    dl_blocking_free(rt);
    for (int i = 0; i < rt->n_ports; i++) {
        dl_port_close(&rt->ports[i]);
        dl_lock_release(rt->ports[i].lock_fd);
    }
    dl_memif_guard_release(); /* after the last burst of any worker */
    dl_config_free(rt->cfg);
    free(rt);
}

dl_runtime *dl_runtime_start(const dl_runtime_opts *o)
{
    if (active) {
        dl_fail("a runtime is already running in this process: call rt:shutdown() first");
        return NULL;
    }
    if (o->workers < 0 || o->workers > DL_MAX_WORKERS_LIMIT) {
        dl_fail("workers = %d: expected 0 (one per free core) to %d", o->workers,
                DL_MAX_WORKERS_LIMIT);
        return NULL;
    }
    if (o->max_connections < 0 || o->max_connections > DL_TCP_MAX_CONNECTIONS) {
        dl_fail("max_connections = %d: expected 1..%d per worker (0: the maximum; the "
                "ceiling is MEMP_NUM_TCP_PCB in stack/lwipopts.h)",
                o->max_connections, DL_TCP_MAX_CONNECTIONS);
        return NULL;
    }
    if (o->linger_timeout_ms < 0 || o->linger_timeout_ms > 3600000) {
        dl_fail("linger_timeout_ms = %d: expected 1..3600000 milliseconds (0: 30000)",
                o->linger_timeout_ms);
        return NULL;
    }
    dl_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        dl_fail("cannot allocate a runtime: out of memory");
        return NULL;
    }
    rt->opts = *o;
    rt->opts.eal_args = NULL;
    rt->opts.devices = NULL;
    rt->opts.n_eal_args = 0;
    rt->seq = next_seq++;
    atomic_init(&rt->stopping, 0);
    snprintf(rt->lua_path, sizeof rt->lua_path, "%s", o->lua_path ? o->lua_path : "");
    snprintf(rt->lua_cpath, sizeof rt->lua_cpath, "%s", o->lua_cpath ? o->lua_cpath : "");
    for (int i = 0; i < DL_MAX_WORKERS_LIMIT; i++)
        rt->workers[i].lock_fd = -1;

    rt->cfg = dl_config_load(o->config_path);
    if (!rt->cfg)
        goto fail;
    if (lock_cores(rt, o->workers) != DL_OK)
        goto fail;
    dl_steer_init(&rt->steer, rt->n_workers);
    if (dl_blocking_create(rt) != DL_OK)
        goto fail;
    if (dl_eal_init(rt->cfg, o) != DL_OK)
        goto fail;
    /* Device filter strings live only for this call. */
    rt->opts.n_devices = o->n_devices;
    rt->opts.devices = o->devices;
    int rc = open_ports(rt);
    rt->opts.n_devices = 0;
    rt->opts.devices = NULL;
    if (rc != DL_OK || dl_pcap_open(rt) != DL_OK)
        goto fail;
    for (int i = 0; i < rt->n_workers; i++)
        if (dl_worker_init(&rt->workers[i], rt, i) != DL_OK)
            goto fail;
    for (int i = 1; i < rt->n_workers; i++)
        if (dl_worker_start_thread(&rt->workers[i]) != DL_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", dl_errmsg());
            dl_runtime_stop(rt, 1.0);
            dl_fail("%s", msg);
            return NULL;
        }
    dl_memif_guard_arm(rt->n_workers);
    if (dl_watchdog_start(rt) != DL_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dl_errmsg());
        dl_runtime_stop(rt, 1.0);
        dl_fail("%s", msg);
        return NULL;
    }
    active = rt;
    dl_telemetry_attach(rt);
    DL_INFO("runtime", "started: %d worker(s), %d port(s), config %s", rt->n_workers, rt->n_ports,
            rt->cfg->path);
    return rt;
fail:
    release(rt);
    return NULL;
}

/* The clock. Once the EAL is up (dl_clock_init), the TSC scaled by a factor
 * taken once: the workers read the clock several times per turn, and here
 * clock_gettime (kvm-clock) costs 27 ns where rdtsc costs 11 ns. DPDK's busy
 * polling assumes an invariant TSC, synchronised across cores. The TSC clock
 * starts from CLOCK_MONOTONIC, so the two read the same at the switch. */
static uint64_t clock_base_tsc;
static double clock_base_s, clock_s_per_tick; /* 0: not calibrated, use clock_gettime */

static double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A (TSC, CLOCK_MONOTONIC) pair read within a microsecond of each other:
 * the TSC in the middle of the two clock reads. */
static int clock_pair(uint64_t *tsc, double *s)
{
    for (int tries = 0; tries < 100; tries++) {
        uint64_t a = rte_rdtsc();
        double t = monotonic_now();
        uint64_t b = rte_rdtsc();
        if (b - a < rte_get_tsc_hz() / 1000000) {
            *tsc = a + (b - a) / 2;
            *s = t;
            return 0;
        }
    }
    return -1;
}

/* The TSC's rate measured against CLOCK_MONOTONIC over 20 ms: DPDK's own
 * figure (rte_get_tsc_hz) was 0.19 % off on this VM, which a timer notices. */
void dl_clock_init(void)
{
    uint64_t c0, c1;
    double t0, t1;
    if (clock_s_per_tick != 0 || rte_get_tsc_hz() == 0 || clock_pair(&c0, &t0) != 0)
        return;
    do {
        if (clock_pair(&c1, &t1) != 0)
            return;
    } while (t1 - t0 < 0.02);
    clock_base_tsc = c1;
    clock_base_s = t1;
    clock_s_per_tick = (t1 - t0) / (double)(c1 - c0);
}

double dl_now(void)
{
    if (clock_s_per_tick == 0)
        return monotonic_now();
    return clock_base_s + (double)(rte_rdtsc() - clock_base_tsc) * clock_s_per_tick;
}

int dl_runtime_stop(dl_runtime *rt, double timeout_s)
{
    if (rt->workers[0].rt && dl_self() && dl_worker_runtime(dl_self()) == rt)
        return dl_fail("rt:shutdown() cannot run inside the runtime's own loop; call it after "
                       "block_on/run returns");
    rt->drain_s = timeout_s * 0.8; /* leaves the rest for the threads to end */
    /* (the watchdog keeps running until the workers have stopped: a stuck one
     * still gets reported, and a signal still ends the process) */
    atomic_store(&rt->stopping, 1);
    double deadline = dl_now() + timeout_s;
    for (int i = 1; i < rt->n_workers; i++) {
        dl_worker *w = &rt->workers[i];
        if (!w->has_thread)
            continue;
        while (!atomic_load(&w->exited) && dl_now() < deadline) {
            struct timespec nap = {0, 1000000};
            nanosleep(&nap, NULL);
        }
        if (!atomic_load(&w->exited)) {
            dl_fail("timeout: worker %d did not stop within %.3g s (a coroutine that never "
                    "yields keeps it busy)",
                    i, timeout_s);
            return DL_AGAIN;
        }
        pthread_join(w->thread, NULL);
        w->has_thread = false;
    }
    dl_watchdog_stop(rt);
    dl_memif_guard_report();
    if (active == rt)
        active = NULL;
    release(rt);
    return DL_OK;
}

void dl_host_shutdown(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    if (active && dl_runtime_stop(active, 2.0) != DL_OK) {
        DL_WARN("runtime", "at exit: %s", dl_errmsg());
        return; /* a worker still runs: tearing the EAL down under it would crash */
    }
    dl_eal_cleanup();
}

/*
 * telemetry.c — dpdklua's commands on DPDK's telemetry socket
 * (/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2; dpdk-telemetry.py reads it):
 *
 *   /dpdklua/stats[,W]   every dl_worker_stats field, summed over the
 *                        workers, or worker W's
 *   /dpdklua/workers     one array per key figure, indexed by worker
 *   /dpdklua/conns[,W]   TCP connections by state (all workers, or W's)
 *   /dpdklua/ports[,P]   port P's counters and mbufs (default port 0)
 *
 * The callbacks run in the EAL's telemetry thread: they only read what the
 * workers publish (host/stats.c: relaxed loads of uint64_t words) and the
 * ports' counters, never a worker's lwIP. The lock keeps the runtime from
 * being freed under a callback.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_telemetry.h>

#include "runtime.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dl_runtime *current;
static bool registered;

enum { N_WORDS = sizeof(dl_worker_stats) / sizeof(uint64_t) };

static int stats_word_index(const char *name)
{
    for (int i = 0; dl_stats_field(i); i++)
        if (strcmp(dl_stats_field(i), name) == 0)
            return i;
    return -1;
}

/* A command's index parameter: -1 when there is none, -2 when it is not a
 * whole number >= 0. */
static int index_param(const char *params)
{
    if (!params || !*params)
        return -1;
    char *end;
    long v = strtol(params, &end, 10);
    if (*end || v < 0 || v > INT32_MAX)
        return -2;
    return (int)v;
}

/* Worker w's words, or the sum over all workers (published_us: the latest). */
static void gather(dl_runtime *rt, int w, uint64_t words[N_WORDS])
{
    dl_worker_stats s;
    const uint64_t *src = (const uint64_t *)&s;
    int published = stats_word_index("published_us");
    memset(words, 0, N_WORDS * sizeof words[0]);
    for (int i = 0; i < rt->n_workers; i++) {
        if (w >= 0 && i != w)
            continue;
        dl_worker_stats_get(&rt->workers[i], &s);
        for (int k = 0; k < (int)N_WORDS; k++)
            words[k] = k == published ? (src[k] > words[k] ? src[k] : words[k]) : words[k] + src[k];
    }
}

/*
 * The commands' bodies: each fills d from rt, with the lock held and a
 * runtime attached; arg is the parameter (-1: none given; -2: not an index,
 * for the commands that take none). Returns 0, or -1 for a parameter that
 * names nothing (the telemetry client then gets an error).
 */
static int fill_stats(dl_runtime *rt, int w, struct rte_tel_data *d)
{
    if (w >= rt->n_workers)
        return -1;
    uint64_t words[N_WORDS];
    gather(rt, w, words);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_int(d, "workers", rt->n_workers);
    rte_tel_data_add_dict_int(d, "ports", rt->n_ports);
    if (w >= 0) {
        rte_tel_data_add_dict_int(d, "worker", w);
        rte_tel_data_add_dict_int(d, "core", rt->workers[w].core);
    }
    for (int k = 0; k < (int)N_WORDS; k++)
        rte_tel_data_add_dict_u64(d, dl_stats_field(k), words[k]);
    return 0;
}

static int fill_conns(dl_runtime *rt, int w, struct rte_tel_data *d)
{
    static const char *const states[] = {
        "tcp_listen",     "tcp_syn_sent",   "tcp_syn_rcvd", "tcp_established", "tcp_fin_wait_1",
        "tcp_fin_wait_2", "tcp_close_wait", "tcp_closing",  "tcp_last_ack",    "tcp_time_wait",
    };
    if (w >= rt->n_workers)
        return -1;
    uint64_t words[N_WORDS];
    gather(rt, w, words);
    rte_tel_data_start_dict(d);
    uint64_t total = 0;
    for (size_t i = 0; i < DL_ARRAY_SIZE(states); i++) {
        int k = stats_word_index(states[i]);
        rte_tel_data_add_dict_u64(d, states[i] + 4, words[k]); /* "established" */
        if (i > 0)
            total += words[k];
    }
    rte_tel_data_add_dict_u64(d, "total", total); /* connections, listeners aside */
    return 0;
}

static int fill_workers(dl_runtime *rt, int unused, struct rte_tel_data *d)
{
    static const char *const keys[] = {
        "rx_packets", "tx_packets", "loops", "tcp_established", "tcp_retrans_segs", "lua_bytes",
    };
    (void)unused;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_int(d, "workers", rt->n_workers);
    struct rte_tel_data *cores = rte_tel_data_alloc();
    if (cores) {
        rte_tel_data_start_array(cores, RTE_TEL_U64_VAL);
        for (int i = 0; i < rt->n_workers && i < RTE_TEL_MAX_ARRAY_ENTRIES; i++)
            rte_tel_data_add_array_u64(cores, (uint64_t)rt->workers[i].core);
        rte_tel_data_add_dict_container(d, "core", cores, 0);
    }
    for (size_t k = 0; k < DL_ARRAY_SIZE(keys); k++) {
        struct rte_tel_data *a = rte_tel_data_alloc();
        if (!a)
            break;
        int word = stats_word_index(keys[k]);
        rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
        for (int i = 0; i < rt->n_workers && i < RTE_TEL_MAX_ARRAY_ENTRIES; i++) {
            dl_worker_stats s;
            dl_worker_stats_get(&rt->workers[i], &s);
            rte_tel_data_add_array_u64(a, ((const uint64_t *)&s)[word]);
        }
        rte_tel_data_add_dict_container(d, keys[k], a, 0);
    }
    return 0;
}

static int fill_ports(dl_runtime *rt, int p, struct rte_tel_data *d)
{
    dl_port_info info;
    if (dl_runtime_port_info(rt, p == -1 ? 0 : p, &info) != DL_OK)
        return -1;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_int(d, "port_id", info.port_id);
    rte_tel_data_add_dict_string(d, "name", info.name);
    rte_tel_data_add_dict_string(d, "ifname", info.ifname);
    rte_tel_data_add_dict_int(d, "mtu", info.mtu);
    rte_tel_data_add_dict_int(d, "queues", info.n_queues);
    const struct {
        const char *name;
        uint64_t v;
    } f[] = {
        {"ipackets", info.ipackets},       {"opackets", info.opackets},
        {"ibytes", info.ibytes},           {"obytes", info.obytes},
        {"imissed", info.imissed},         {"ierrors", info.ierrors},
        {"oerrors", info.oerrors},         {"rx_nombuf", info.rx_nombuf},
        {"mbufs_total", info.mbufs_total}, {"mbufs_in_use", info.mbufs_in_use},
        {"mbufs_avail", info.mbufs_avail},
    };
    for (size_t i = 0; i < DL_ARRAY_SIZE(f); i++)
        rte_tel_data_add_dict_u64(d, f[i].name, f[i].v);
    return 0;
}

static const struct command {
    const char *path;
    int (*fill)(dl_runtime *rt, int arg, struct rte_tel_data *d);
    bool indexed; /* takes an index parameter (else its parameter is ignored) */
    const char *help;
} commands[] = {
    {"/dpdklua/stats", fill_stats, true,
     "dpdklua: every figure of dpdk.stats() summed over the workers; parameter: a worker index "
     "for that worker's"},
    {"/dpdklua/workers", fill_workers, false,
     "dpdklua: per worker (arrays indexed by worker): core, packets, loops, connections, "
     "retransmissions, Lua memory"},
    {"/dpdklua/conns", fill_conns, true,
     "dpdklua: TCP connections by state; parameter: a worker index (default: all workers)"},
    {"/dpdklua/ports", fill_ports, true,
     "dpdklua: a port's counters and mbufs; parameter: the runtime's port index (default 0)"},
};

/* The one telemetry callback: the command's body under the lock, or -1 with
 * no runtime attached (between runtimes) or a parameter that is not an index. */
static int command(const char *cmd, const char *params, struct rte_tel_data *d)
{
    const struct command *c = NULL;
    for (size_t i = 0; i < DL_ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].path, cmd) == 0)
            c = &commands[i];
    int arg = index_param(params);
    if (!c || (c->indexed && arg == -2))
        return -1;
    pthread_mutex_lock(&lock);
    int rc = current ? c->fill(current, arg, d) : -1;
    pthread_mutex_unlock(&lock);
    return rc;
}

void dl_telemetry_attach(dl_runtime *rt)
{
    pthread_mutex_lock(&lock);
    current = rt;
    if (!registered) { /* commands cannot be unregistered: once per process */
        registered = true;
        for (size_t i = 0; i < DL_ARRAY_SIZE(commands); i++)
            rte_telemetry_register_cmd(commands[i].path, command, commands[i].help);
    }
    pthread_mutex_unlock(&lock);
}

void dl_telemetry_detach(dl_runtime *rt)
{
    pthread_mutex_lock(&lock);
    if (current == rt)
        current = NULL;
    pthread_mutex_unlock(&lock);
}

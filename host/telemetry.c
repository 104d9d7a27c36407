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

/* The worker a parameter names, -1 for none (all), -2 for a bad one. */
static int worker_param(const dl_runtime *rt, const char *params)
{
    if (!params || !*params)
        return -1;
    char *end;
    long w = strtol(params, &end, 10);
    if (*end || w < 0 || w >= rt->n_workers)
        return -2;
    return (int)w;
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

static int cmd_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
    (void)cmd;
    pthread_mutex_lock(&lock);
    dl_runtime *rt = current;
    int w = rt ? worker_param(rt, params) : -1;
    if (!rt || w == -2) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
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
    pthread_mutex_unlock(&lock);
    return 0;
}

static int cmd_conns(const char *cmd, const char *params, struct rte_tel_data *d)
{
    (void)cmd;
    pthread_mutex_lock(&lock);
    dl_runtime *rt = current;
    int w = rt ? worker_param(rt, params) : -1;
    if (!rt || w == -2) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
    uint64_t words[N_WORDS];
    gather(rt, w, words);
    rte_tel_data_start_dict(d);
    static const char *const states[] = {
        "tcp_listen",     "tcp_syn_sent",   "tcp_syn_rcvd", "tcp_established", "tcp_fin_wait_1",
        "tcp_fin_wait_2", "tcp_close_wait", "tcp_closing",  "tcp_last_ack",    "tcp_time_wait",
    };
    uint64_t total = 0;
    for (size_t i = 0; i < DL_ARRAY_SIZE(states); i++) {
        int k = stats_word_index(states[i]);
        rte_tel_data_add_dict_u64(d, states[i] + 4, words[k]); /* "established" */
        if (i > 0)
            total += words[k];
    }
    rte_tel_data_add_dict_u64(d, "total", total); /* connections, listeners aside */
    pthread_mutex_unlock(&lock);
    return 0;
}

static int cmd_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
    (void)cmd;
    (void)params;
    static const char *const keys[] = {
        "rx_packets", "tx_packets", "loops", "tcp_established", "tcp_retrans_segs", "lua_bytes",
    };
    pthread_mutex_lock(&lock);
    dl_runtime *rt = current;
    if (!rt) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
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
    pthread_mutex_unlock(&lock);
    return 0;
}

static int cmd_ports(const char *cmd, const char *params, struct rte_tel_data *d)
{
    (void)cmd;
    pthread_mutex_lock(&lock);
    dl_runtime *rt = current;
    int p = 0;
    if (rt && params && *params) {
        char *end;
        p = (int)strtol(params, &end, 10);
        if (*end)
            p = -1;
    }
    dl_port_info info;
    if (!rt || dl_runtime_port_info(rt, p, &info) != DL_OK) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
    pthread_mutex_unlock(&lock);
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

void dl_telemetry_attach(dl_runtime *rt)
{
    pthread_mutex_lock(&lock);
    current = rt;
    if (!registered) { /* commands cannot be unregistered: once per process */
        registered = true;
        rte_telemetry_register_cmd("/dpdklua/stats", cmd_stats,
                                   "dpdklua: every figure of dpdk.stats() summed over the "
                                   "workers; parameter: a worker index for that worker's");
        rte_telemetry_register_cmd("/dpdklua/workers", cmd_workers,
                                   "dpdklua: per worker (arrays indexed by worker): core, "
                                   "packets, loops, connections, retransmissions, Lua memory");
        rte_telemetry_register_cmd("/dpdklua/conns", cmd_conns,
                                   "dpdklua: TCP connections by state; parameter: a worker "
                                   "index (default: all workers)");
        rte_telemetry_register_cmd("/dpdklua/ports", cmd_ports,
                                   "dpdklua: a port's counters and mbufs; parameter: the "
                                   "runtime's port index (default 0)");
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

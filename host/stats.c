/*
 * stats.c — what dpdk.stats() and the telemetry commands report, per worker.
 *
 * A worker's counters live in its dl_worker_stats, written only by the
 * worker's thread: the traffic counters every loop turn, the rest (TCP
 * states and counters, its Lua state's size) published by the worker itself
 * every DL_STATS_PERIOD_MS, because only the worker may walk its lwIP copy.
 * Readers on any thread (other workers, the telemetry thread) copy the
 * struct word by word with relaxed atomic loads: every field is a uint64_t,
 * so no reader ever sees half of one.
 */
#include <assert.h>
#include <string.h>

#include <rte_cycles.h>

#include "fault.h"
#include "runtime.h"

/* The fields of dl_worker_stats in order (api.h): one name per word. */
static const char *const field_names[] = {
    "rx_packets",
    "rx_bytes",
    "tx_packets",
    "tx_bytes",
    "loops",
    "busy_ns",
    "rx_dropped",
    "rx_not_ours",
    "rx_bad_cksum",
    "rx_nobuf",
    "rx_copied",
    "tx_dropped",
    "tx_full",
    "tx_nombuf",
    "tx_too_big",
    "forwarded_out",
    "forwarded_in",
    "forward_drops",
    "tcp_listen",
    "tcp_syn_sent",
    "tcp_syn_rcvd",
    "tcp_established",
    "tcp_fin_wait_1",
    "tcp_fin_wait_2",
    "tcp_close_wait",
    "tcp_closing",
    "tcp_last_ack",
    "tcp_time_wait",
    "tcp_active_opens",
    "tcp_passive_opens",
    "tcp_attempt_fails",
    "tcp_estab_resets",
    "tcp_in_segs",
    "tcp_out_segs",
    "tcp_retrans_segs",
    "tcp_in_errs",
    "tcp_out_rsts",
    "tcp_drops",
    "tcp_mem_errs",
    "lua_bytes",
    "pcap_packets",
    "pcap_drops",
    "tcp_connections",
    "tcp_max_connections",
    "tcp_refused",
    "tcp_orphans",
    "tcp_orphans_aborted",
    "tcp_segments",
    "tcp_segment_waits",
    "tcp_rx_compacted",
    "tcp_rx_unread",
    "syncookies_sent",
    "syncookies_ok",
    "syncookies_bad",
    "tcp_timewait_reused",
    "fault_dropped",
    "fault_duplicated",
    "fault_reordered",
    "fault_corrupted",
    "fault_truncated",
    "published_us",
};

enum { N_WORDS = sizeof(dl_worker_stats) / sizeof(uint64_t) };
static_assert(sizeof(dl_worker_stats) % sizeof(uint64_t) == 0, "dl_worker_stats: uint64_t only");
static_assert(DL_ARRAY_SIZE(field_names) == N_WORDS,
              "host/stats.c: one name per dl_worker_stats field, in order");

const char *dl_stats_field(int i)
{
    return i >= 0 && i < (int)N_WORDS ? field_names[i] : NULL;
}

static inline void put(uint64_t *field, uint64_t v)
{
    __atomic_store_n(field, v, __ATOMIC_RELAXED); /* single writer: the worker */
}

/* lwIP counts from lwip_init (once per copy and process): a runtime's
 * figures start from what its copy had counted before. */
void dl_stats_start(dl_worker *w)
{
    if (w->stack_up)
        w->stack->tcp_stats(&w->tcp_base);
}

void dl_stats_publish(dl_worker *w)
{
    dl_worker_stats *s = &w->stats;
    if (w->stack_up) {
        stack_tcp_stats t;
        w->stack->tcp_stats(&t);
        put(&s->tcp_listen, t.listen);
        put(&s->tcp_syn_sent, t.syn_sent);
        put(&s->tcp_syn_rcvd, t.syn_rcvd);
        put(&s->tcp_established, t.established);
        put(&s->tcp_fin_wait_1, t.fin_wait_1);
        put(&s->tcp_fin_wait_2, t.fin_wait_2);
        put(&s->tcp_close_wait, t.close_wait);
        put(&s->tcp_closing, t.closing);
        put(&s->tcp_last_ack, t.last_ack);
        put(&s->tcp_time_wait, t.time_wait);
        const stack_tcp_stats *b = &w->tcp_base;
        put(&s->tcp_active_opens, t.active_opens - b->active_opens);
        put(&s->tcp_passive_opens, t.passive_opens - b->passive_opens);
        put(&s->tcp_attempt_fails, t.attempt_fails - b->attempt_fails);
        put(&s->tcp_estab_resets, t.estab_resets - b->estab_resets);
        put(&s->tcp_in_segs, t.in_segs - b->in_segs);
        put(&s->tcp_out_segs, t.out_segs - b->out_segs);
        put(&s->tcp_retrans_segs, t.retrans_segs - b->retrans_segs);
        put(&s->tcp_in_errs, t.in_errs - b->in_errs);
        put(&s->tcp_out_rsts, t.out_rsts - b->out_rsts);
        put(&s->tcp_drops, t.drops - b->drops);
        put(&s->tcp_mem_errs, t.mem_errs - b->mem_errs);
        dl_stats_publish_counters(w);
    }
    put(&s->published_us, (uint64_t)(dl_now() * 1e6));
    w->stats_next_tsc = rte_rdtsc() + rte_get_tsc_hz() / 1000 * DL_STATS_PERIOD_MS;
    w->stats_lua_due = true; /* dl_poll asks the worker's Lua for its size */
}

void dl_stats_publish_counters(dl_worker *w)
{
    dl_worker_stats *s = &w->stats;
    stack_counters c;
    w->stack->counters(&c);
    put(&s->tx_bytes, c.tx_bytes);
    put(&s->rx_dropped, c.rx_dropped);
    put(&s->rx_not_ours, c.rx_not_ours);
    put(&s->rx_bad_cksum, c.rx_bad_cksum);
    put(&s->rx_nobuf, c.rx_nobuf);
    put(&s->rx_copied, c.rx_copied);
    put(&s->tx_dropped, c.tx_dropped);
    put(&s->tx_full, c.tx_full);
    put(&s->tx_nombuf, c.tx_nombuf);
    put(&s->tx_too_big, c.tx_too_big);
    dl_tcp_stats_publish(w, &c);
    put(&s->syncookies_sent, c.syncookies_sent);
    put(&s->syncookies_ok, c.syncookies_ok);
    put(&s->syncookies_bad, c.syncookies_bad);
    put(&s->tcp_timewait_reused, c.tcp_timewait_reused);
}

void dl_stats_set_lua(dl_worker *w, double bytes)
{
    if (w && w == dl_self())
        put(&w->stats.lua_bytes, bytes > 0 ? (uint64_t)bytes : 0);
}

void dl_worker_stats_get(dl_worker *w, dl_worker_stats *out)
{
    if (w == dl_self())
        dl_stats_publish(w);
    const uint64_t *src = (const uint64_t *)&w->stats;
    uint64_t *dst = (uint64_t *)out;
    for (int i = 0; i < (int)N_WORDS; i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    /* the fault injector's counters live in its per-port state (host/fault.c) */
    out->fault_dropped = out->fault_duplicated = out->fault_reordered = 0;
    out->fault_corrupted = out->fault_truncated = 0;
    dl_fault_stats(w, out);
}

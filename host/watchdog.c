/*
 * watchdog.c — one monitor thread per runtime that reports a worker whose
 * loop has stopped turning.
 *
 * Every worker bumps its slot's turn counter at the top of each loop turn (a
 * point where it is inside no rx/tx burst) and marks itself online while its
 * loop runs. That one store per turn serves two readers: this thread, and
 * the memif guard (host/memif_guard.c), which waits for a turn before it lets
 * the EAL interrupt thread unmap a departed peer's memory.
 *
 * A worker online whose counter has not moved for watchdog_ms is stuck (a
 * task that never yields). The thread logs the worker, how long, and the task
 * the scheduler published into the slot, once, and again when the loop turns
 * again. After SIGTERM/SIGINT it ends the process with the same message when
 * a worker is stuck, or when the graceful shutdown has not ended the process
 * within DL_SIGNAL_EXIT_S: a stuck worker never makes the process ignore the
 * signal. It also logs the ports' link changes.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>

#include "runtime.h"

dl_wd_slot dl_wd_slots[DL_MAX_WORKERS_LIMIT];

void dl_wd_online(int index, bool on)
{
    __atomic_store_n(&dl_wd_slots[index].online, on ? 1 : 0, __ATOMIC_RELEASE);
    if (!on)
        __atomic_store_n(&dl_wd_slots[index].task.id, 0, __ATOMIC_RELAXED);
}

dl_task_slot *dl_worker_task_slot(dl_worker *w)
{
    return &dl_wd_slots[w->index].task;
}

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- the watchdog thread ---- */

typedef struct wd_worker {
    uint64_t turns;
    double since;   /* when turns last moved (or the worker came online) */
    bool reported;  /* "stuck" logged, "turns again" due */
    char task[128]; /* the task named in the report */
} wd_worker;

static void task_text(const dl_task_slot *t, char *buf, size_t len)
{
    uint32_t id = __atomic_load_n(&t->id, __ATOMIC_ACQUIRE);
    const char *name = __atomic_load_n(&t->name, __ATOMIC_ACQUIRE);
    if (id == 0)
        snprintf(buf, len, "outside any task (the scheduler, a timer callback or a C call)");
    else /* the scheduler keeps the name alive while the task runs */
        snprintf(buf, len, "task #%u (%.96s)", id, name ? name : "?");
}

/* The graceful path did not end the process: say why and end it with the
 * signal's default action (the parent sees "terminated by SIGTERM"). */
static void exit_now(int sig, const char *why)
{
    DL_ERR("watchdog", "%s %s: exiting without a clean shutdown",
           sig == SIGINT ? "SIGINT" : "SIGTERM", why);
    signal(sig, SIG_DFL);
    kill(getpid(), sig);
    nap_us(1000000);
    _exit(128 + sig);
}

static void check_links(dl_runtime *rt)
{
    for (int p = 0; p < rt->n_ports; p++) {
        dl_port *port = &rt->ports[p];
        struct rte_eth_link link;
        if (rte_eth_link_get_nowait(port->port_id, &link) != 0)
            continue;
        int up = link.link_status == RTE_ETH_LINK_UP;
        if (up == atomic_load(&port->link_up))
            continue;
        atomic_store(&port->link_up, up);
        DL_INFO("port", "%s: link %s", port->name,
                up ? "up" : "down (a memif peer left, or the device went down)");
    }
}

static void *watchdog_main(void *arg)
{
    dl_runtime *rt = arg;
    int n = rt->n_workers;
    int ms = rt->opts.watchdog_ms;
    wd_worker st[DL_MAX_WORKERS_LIMIT];
    double now = dl_now(), signal_at = 0;
    for (int i = 0; i < n; i++)
        st[i] = (wd_worker){.turns = dl_wd_slots[i].turns, .since = now};
    long period_ms = ms > 0 ? ms / 4 : 100;
    if (period_ms > 100)
        period_ms = 100;
    if (period_ms < 5)
        period_ms = 5;
    pthread_mutex_lock(&rt->wd_lock);
    while (!rt->wd_quit) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += period_ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&rt->wd_cond, &rt->wd_lock, &until);
        if (rt->wd_quit)
            break;
        now = dl_now();
        int stuck = -1;
        for (int i = 0; i < n; i++) {
            dl_wd_slot *s = &dl_wd_slots[i];
            uint64_t t = __atomic_load_n(&s->turns, __ATOMIC_ACQUIRE);
            bool online = __atomic_load_n(&s->online, __ATOMIC_ACQUIRE) != 0;
            if (!online || t != st[i].turns) {
                if (st[i].reported)
                    DL_WARN("watchdog",
                            "worker %d (core %d): its loop turns again after %.1f s (%s)", i,
                            rt->workers[i].core, now - st[i].since, st[i].task);
                st[i].turns = t;
                st[i].since = now;
                st[i].reported = false;
                continue;
            }
            if (ms <= 0 || (now - st[i].since) * 1000 < ms)
                continue;
            if (!st[i].reported) {
                task_text(&s->task, st[i].task, sizeof st[i].task);
                DL_WARN("watchdog",
                        "worker %d (core %d): its loop has not turned for %.1f s: %s does not "
                        "yield (no packets, timers or other tasks run on this worker meanwhile)",
                        i, rt->workers[i].core, now - st[i].since, st[i].task);
                st[i].reported = true;
            }
            stuck = i;
        }
        check_links(rt);
        int sig = dl_interrupt_signal();
        if (sig) {
            if (signal_at == 0)
                signal_at = now;
            char why[256];
            if (stuck >= 0) {
                snprintf(why, sizeof why, "while worker %d has been stuck for %.1f s in %s", stuck,
                         now - st[stuck].since, st[stuck].task);
                exit_now(sig, why);
            }
            if (now - signal_at > DL_SIGNAL_EXIT_S) {
                snprintf(why, sizeof why, "%d s ago and the graceful shutdown has not ended",
                         DL_SIGNAL_EXIT_S);
                exit_now(sig, why);
            }
        }
    }
    pthread_mutex_unlock(&rt->wd_lock);
    return NULL;
}

int dl_watchdog_start(dl_runtime *rt)
{
    for (int i = 0; i < rt->n_workers; i++) {
        dl_wd_slots[i].task.id = 0;
        dl_wd_slots[i].task.name = NULL;
    }
    for (int p = 0; p < rt->n_ports; p++) {
        struct rte_eth_link link;
        int up = rte_eth_link_get_nowait(rt->ports[p].port_id, &link) == 0 &&
                 link.link_status == RTE_ETH_LINK_UP;
        atomic_store(&rt->ports[p].link_up, up);
    }
    pthread_mutex_init(&rt->wd_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    rt->wd_quit = false;
    int rc = pthread_create(&rt->wd_thread, NULL, watchdog_main, rt);
    if (rc != 0)
        return dl_fail("cannot start the watchdog thread: %s", strerror(rc));
    pthread_setname_np(rt->wd_thread, "dpdklua-wd");
    rt->wd_running = true;
    return DL_OK;
}

void dl_watchdog_stop(dl_runtime *rt)
{
    if (!rt->wd_running)
        return;
    pthread_mutex_lock(&rt->wd_lock);
    rt->wd_quit = true;
    pthread_cond_signal(&rt->wd_cond);
    pthread_mutex_unlock(&rt->wd_lock);
    pthread_join(rt->wd_thread, NULL);
    pthread_cond_destroy(&rt->wd_cond);
    pthread_mutex_destroy(&rt->wd_lock);
    rt->wd_running = false;
}

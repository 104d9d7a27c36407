/*
 * watchdog.c — one monitor thread per runtime, and the guard that keeps a
 * memif peer's memory mapped while a worker may still touch it.
 *
 * Every worker bumps its slot's turn counter at the top of each loop turn (a
 * point where it is inside no rx/tx burst) and marks itself online while its
 * loop runs. That one store per turn serves two readers:
 *
 * - The watchdog thread: a worker online whose counter has not moved for
 *   watchdog_ms is stuck (a task that never yields). It logs the worker, how
 *   long, and the task the scheduler published into the slot, once, and again
 *   when the loop turns again. After SIGTERM/SIGINT it ends the process with
 *   the same message when a worker is stuck, or when the graceful shutdown
 *   has not ended the process within DL_SIGNAL_EXIT_S: a stuck worker never
 *   makes the process ignore the signal.
 *
 * - The EAL interrupt thread: DPDK 22.11's memif PMD handles a peer's
 *   departure there (memif_disconnect: clear the CONNECTED flag, close the
 *   fds, munmap the peer's regions) while a worker may be inside
 *   rte_eth_rx_burst / tx_burst on that port, past the flag check, reading the
 *   ring: SIGSEGV. The PMD calls no ethdev callback before the unmap, so we
 *   interpose munmap: called from the interrupt thread, it first waits for a
 *   grace period (membarrier, then every online worker passes a turn or goes
 *   offline). A burst that started before the flag was cleared has then
 *   ended, and any later burst sees the flag clear and returns 0 without
 *   touching the ring.
 *
 * - The same thread accepts memif control connections. If the HELLO it
 *   sends to a fresh one fails (the client died between connect() and our
 *   accept: a churn of short-lived clients), the PMD's error path closes the
 *   socket but leaves its callback registered; the interrupt thread then
 *   panics ("Error adding fd N epoll_ctl, Bad file descriptor") when it
 *   rebuilds its epoll set. We interpose sendmsg too: on the interrupt
 *   thread, a send that fails because the peer is gone (EPIPE, ECONNRESET)
 *   reports success. Nothing is lost: the socket's EOF follows at once, and
 *   the PMD's receive path (memif_intr_handler) unregisters and closes it
 *   properly.
 */
#include <dlfcn.h>
#include <errno.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_interrupts.h>

#include "runtime.h"

dl_wd_slot dl_wd_slots[DL_MAX_WORKERS_LIMIT];

/* Workers whose slots the munmap guard waits on (0: no runtime). */
static atomic_int guard_workers;
static int membarrier_cmd = -1;      /* the membarrier command we registered for, or -1 */
static atomic_ulong grace_waits;     /* grace periods the guard waited for (tests, docs) */
static atomic_ulong peer_gone_sends; /* control messages to a departed memif peer */

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

unsigned long dl_wd_grace_waits(void)
{
    return atomic_load(&grace_waits);
}

/* ---- the munmap guard ---- */

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Wait until every worker that was online has passed a quiescent point (its
 * turn counter moved) or gone offline. The membarrier makes the worker-side
 * stores plain: after it, a worker whose counter we read as unchanged sees
 * every store the PMD made before (the cleared CONNECTED flag) in its next
 * burst. Bounded: a worker that does not turn within 1 s (a stuck task; it
 * is inside no burst then) is not waited for longer. */
static void grace_period(int n)
{
    if (membarrier_cmd >= 0)
        syscall(SYS_membarrier, membarrier_cmd, 0, 0);
    else
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t snap[DL_MAX_WORKERS_LIMIT];
    bool wait[DL_MAX_WORKERS_LIMIT];
    int pending = 0;
    for (int i = 0; i < n; i++) {
        wait[i] = __atomic_load_n(&dl_wd_slots[i].online, __ATOMIC_ACQUIRE) != 0;
        snap[i] = __atomic_load_n(&dl_wd_slots[i].turns, __ATOMIC_ACQUIRE);
        pending += wait[i];
    }
    if (pending == 0)
        return;
    atomic_fetch_add(&grace_waits, 1);
    double deadline = dl_now() + 1.0;
    for (;;) {
        pending = 0;
        for (int i = 0; i < n; i++) {
            if (!wait[i])
                continue;
            if (__atomic_load_n(&dl_wd_slots[i].online, __ATOMIC_ACQUIRE) == 0 ||
                __atomic_load_n(&dl_wd_slots[i].turns, __ATOMIC_ACQUIRE) != snap[i])
                wait[i] = false;
            else
                pending++;
        }
        if (pending == 0)
            return;
        if (dl_now() > deadline) {
            DL_WARN("watchdog",
                    "a memif peer left while %d worker(s) did not turn for 1 s; "
                    "unmapping its memory without waiting longer",
                    pending);
            return;
        }
        nap_us(20); /* this thread may share a core with the worker it waits for */
    }
}

typedef int (*munmap_fn)(void *, size_t);
static munmap_fn next_munmap;

/* Interposes libc's munmap for the whole process (the executable is linked
 * with -Wl,-E): one atomic load on every other path. */
int munmap(void *addr, size_t len)
{
    int n = atomic_load_explicit(&guard_workers, memory_order_acquire);
    if (n > 0 && rte_thread_is_intr())
        grace_period(n);
    munmap_fn next = __atomic_load_n(&next_munmap, __ATOMIC_RELAXED);
    if (!next) {
        next = (munmap_fn)dlsym(RTLD_NEXT, "munmap");
        __atomic_store_n(&next_munmap, next, __ATOMIC_RELAXED);
    }
    if (next)
        return next(addr, len);
    return (int)syscall(SYS_munmap, addr, len);
}

typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
static sendmsg_fn next_sendmsg;
/* Under AddressSanitizer (its runtime is linked into the executable) the
 * next sendmsg after ours is libc's: go through its interceptor instead. */
extern ssize_t __interceptor_sendmsg(int, const struct msghdr *, int) __attribute__((weak));

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    sendmsg_fn next = __atomic_load_n(&next_sendmsg, __ATOMIC_RELAXED);
    if (!next) {
        next =
            __interceptor_sendmsg ? __interceptor_sendmsg : (sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");
        __atomic_store_n(&next_sendmsg, next, __ATOMIC_RELAXED);
    }
    ssize_t n = next ? next(fd, msg, flags) : syscall(SYS_sendmsg, fd, msg, flags);
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET) &&
        atomic_load_explicit(&guard_workers, memory_order_relaxed) > 0 && rte_thread_is_intr()) {
        atomic_fetch_add(&peer_gone_sends, 1);
        size_t len = 0;
        for (size_t i = 0; i < msg->msg_iovlen; i++)
            len += msg->msg_iov[i].iov_len;
        return (ssize_t)len; /* the EOF that follows cleans up (see the top) */
    }
    return n;
}

static void membarrier_setup(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0) {
        DL_WARN("watchdog", "membarrier unavailable (%s): the memif unmap guard uses a fence only",
                strerror(errno));
        return;
    }
    if ((cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
        membarrier_cmd = MEMBARRIER_CMD_PRIVATE_EXPEDITED;
    else if (cmds & MEMBARRIER_CMD_GLOBAL)
        membarrier_cmd = MEMBARRIER_CMD_GLOBAL;
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
    membarrier_setup();
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
    atomic_store(&guard_workers, rt->n_workers);
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
    unsigned long waits = atomic_load(&grace_waits), sends = atomic_load(&peer_gone_sends);
    if (waits || sends)
        DL_INFO("watchdog",
                "memif guard: %lu unmap(s) of a departed peer's memory waited for the workers, "
                "%lu control message(s) to a departed peer",
                waits, sends);
    pthread_cond_destroy(&rt->wd_cond);
    pthread_mutex_destroy(&rt->wd_lock);
    rt->wd_running = false;
}

void dl_watchdog_release(void)
{
    atomic_store(&guard_workers, 0);
}

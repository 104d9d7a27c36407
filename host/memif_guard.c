/*
 * memif_guard.c — keep a departed memif peer's memory mapped while a worker
 * may still touch it, and keep the PMD's listener from closing a socket whose
 * callback is still registered.
 *
 * - DPDK 22.11's memif PMD handles a peer's departure in the EAL interrupt
 *   thread (memif_disconnect: clear the CONNECTED flag, close the fds, munmap
 *   the peer's regions) while a worker may be inside rte_eth_rx_burst /
 *   tx_burst on that port, past the flag check, reading the ring: SIGSEGV.
 *   The PMD calls no ethdev callback before the unmap, so we interpose
 *   munmap: called from the interrupt thread, it first waits for a grace
 *   period (membarrier, then every online worker passes a turn or goes
 *   offline). A burst that started before the flag was cleared has then
 *   ended, and any later burst sees the flag clear and returns 0 without
 *   touching the ring. The turn counters and online flags are the workers'
 *   watchdog slots (runtime.h, dl_wd_slots): one store per turn serves both
 *   the watchdog thread and this guard.
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
 *
 * - The PMD's control channel (handshake messages, their queue, the
 *   channel itself) is used by its handler on the interrupt thread without a
 *   lock, while rte_eth_dev_stop / close on another thread (memif_disconnect,
 *   memif_dev_close) free that queue and channel. A runtime stopped during
 *   the handshake (client runtimes that live a few ms) made the handler send
 *   a freed message: SIGSEGV on the interrupt thread (issue 11, the client
 *   side). dl_port_close therefore stops and closes a memif port on the
 *   interrupt thread itself (dl_memif_on_intr_thread, through an EAL alarm,
 *   whose callbacks that thread runs one at a time with the PMD's handlers).
 *
 * - The PMD's close of the last device on a listener socket frees that
 *   socket (memif_socket_remove_device) but neither unregisters the
 *   listener's interrupt callback nor closes its fd. A client connecting
 *   then makes the interrupt thread call the handler on the freed socket
 *   ("Failed to accept connection request on socket fd -1", hundreds of
 *   times), and once rte_eal_cleanup unmaps the EAL's memory at exit that
 *   thread dies (SIGSEGV in rte_intr_fd_get). dl_memif_server_close closes
 *   a server port on the interrupt thread and then, if the PMD freed the
 *   listener, puts an eventfd in place of its fd (dup3): the listening
 *   socket is closed (its backlog reset, its name free again) and the fd the
 *   EAL still polls never becomes ready, so the handler is never called
 *   again. The handler's callback cannot be unregistered: it is static in
 *   the PMD.
 *
 * Both definitions interpose libc's for the whole process (the executable is
 * linked with -Wl,-E); they act only on the interrupt thread while a runtime
 * is armed, and cost one atomic load on every other call. Their log lines
 * keep the "watchdog" component they had before the guard had a file of its
 * own (DPDKLUA_LOG=watchdog=info shows them).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <errno.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_alarm.h>
#include <rte_hash.h>
#include <rte_interrupts.h>

#include "runtime.h"

/* Workers whose slots the munmap guard waits on (0: no runtime). */
static atomic_int guard_workers;
static int membarrier_cmd = -1;        /* the membarrier command we registered for, or -1 */
static atomic_ulong grace_waits;       /* grace periods the guard waited for (tests, docs) */
static atomic_ulong peer_gone_sends;   /* control messages to a departed memif peer */
static atomic_ulong retired_listeners; /* listener fds replaced after the PMD freed them */

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

void dl_memif_guard_arm(int n_workers)
{
    membarrier_setup();
    atomic_store(&guard_workers, n_workers);
}

void dl_memif_guard_release(void)
{
    atomic_store(&guard_workers, 0);
}

void dl_memif_guard_report(void)
{
    unsigned long waits = atomic_load(&grace_waits), sends = atomic_load(&peer_gone_sends),
                  retired = atomic_load(&retired_listeners);
    if (waits || sends || retired)
        DL_INFO("watchdog",
                "memif guard: %lu unmap(s) of a departed peer's memory waited for the workers, "
                "%lu control message(s) to a departed peer, %lu listener(s) retired",
                waits, sends, retired);
}

typedef struct intr_call {
    void (*fn)(void *);
    void *arg;
    atomic_int done;
} intr_call;

static void intr_call_run(void *arg)
{
    intr_call *c = arg;
    c->fn(c->arg);
    atomic_store_explicit(&c->done, 1, memory_order_release);
}

void dl_memif_on_intr_thread(const char *what, void (*fn)(void *), void *arg)
{
    intr_call c = {.fn = fn, .arg = arg, .done = 0};
    if (rte_thread_is_intr() || rte_eal_alarm_set(1, intr_call_run, &c) != 0) {
        fn(arg); /* already there, or no alarm: as before */
        return;
    }
    /* Bounded: the PMD's handlers are short (the munmap guard waits 1 s at
     * most). If the thread never ran it, run it here as before. */
    double deadline = dl_now() + 5.0;
    while (!atomic_load_explicit(&c.done, memory_order_acquire)) {
        if (dl_now() > deadline) {
            /* cancel waits for a callback that is running; >0: it never ran */
            if (rte_eal_alarm_cancel(intr_call_run, &c) > 0) {
                DL_WARN("watchdog",
                        "%s: the EAL interrupt thread did not run its stop within 5 s; "
                        "stopping it here",
                        what);
                fn(arg);
                return;
            }
            deadline = dl_now() + 5.0;
        }
        nap_us(50);
    }
}

/* The fd of this process's listening memif socket for `path` (the PMD binds
 * an abstract name by default, the file with socket-abstract=no), or -1. */
static int memif_listener_fd(const char *path)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    size_t plen = strlen(path);
    int found = -1;
    for (struct dirent *e; found < 0 && (e = readdir(d));) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == dirfd(d))
            continue;
        struct sockaddr_un un;
        socklen_t len = sizeof un;
        int on = 0;
        socklen_t olen = sizeof on;
        if (getsockname((int)fd, (struct sockaddr *)&un, &len) != 0 || un.sun_family != AF_UNIX ||
            getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) != 0 || !on)
            continue;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n > 1 && un.sun_path[0] == '\0') { /* abstract: the PMD may cut a long name */
            n--;
            if ((n == plen || (n >= sizeof un.sun_path - 2 && n < plen)) &&
                memcmp(un.sun_path + 1, path, n) == 0)
                found = (int)fd;
        } else if (n > 0 && strncmp(un.sun_path, path, sizeof un.sun_path) == 0) {
            found = (int)fd;
        }
    }
    closedir(d);
    return found;
}

/* Whether the PMD still holds a socket for `path` (another device on it):
 * its socket table is the rte_hash "memif-sh", keyed by the zero-padded name. */
static bool memif_socket_held(const char *path)
{
    struct rte_hash *h = rte_hash_find_existing("memif-sh");
    if (!h)
        return true; /* not the PMD we know: leave its listener alone */
    char key[sizeof(((struct sockaddr_un *)0)->sun_path)] = {0};
    snprintf(key, sizeof key, "%s", path);
    return rte_hash_lookup(h, key) >= 0;
}

typedef struct server_close {
    const char *path;
    void (*close)(void *);
    void *arg;
} server_close;

static void server_close_run(void *arg)
{
    server_close *sc = arg;
    int fd = memif_listener_fd(sc->path);
    sc->close(sc->arg);
    if (fd < 0 || memif_socket_held(sc->path))
        return;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0 || dup3(efd, fd, O_CLOEXEC) < 0) {
        DL_WARN("watchdog", "memif %s: cannot retire the freed listener's fd %d: %s", sc->path, fd,
                strerror(errno));
    } else {
        atomic_fetch_add(&retired_listeners, 1);
        DL_DEBUG("watchdog", "memif %s: listener fd %d retired after its close", sc->path, fd);
    }
    if (efd >= 0)
        close(efd);
}

void dl_memif_server_close(const char *what, const char *socket_path, void (*close_fn)(void *),
                           void *arg)
{
    server_close sc = {.path = socket_path, .close = close_fn, .arg = arg};
    dl_memif_on_intr_thread(what, server_close_run, &sc);
}

/* The EAL leaves its interrupt thread running through rte_eal_cleanup, which
 * unmaps the memory its source list points into (the PMDs' interrupt handles
 * are rte_malloc'd): a wake-up after that (a memif control channel's EOF from
 * a client still connecting, an epoll rebuild) faulted in rte_intr_fd_get. So
 * at exit the thread is parked for good in a callback of an eventfd source of
 * our own (malloc'd, not EAL memory). Not an alarm: rte_eal_cleanup
 * unregisters the alarm source synchronously and would wait for it forever. */
static atomic_int intr_parked;
/* Its source's handle: used until the process ends, and kept reachable so
 * LeakSanitizer does not count it (the EAL's list of sources is EAL memory). */
static struct rte_intr_handle *park_handle;

static void intr_park(void *arg)
{
    (void)arg;
    atomic_store_explicit(&intr_parked, 1, memory_order_release);
    for (;;)
        nap_us(1000000);
}

bool dl_intr_thread_park(double timeout)
{
    if (atomic_load(&intr_parked))
        return true;
    if (rte_thread_is_intr())
        return false;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct rte_intr_handle *h = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
    if (efd < 0 || !h || rte_intr_fd_set(h, efd) != 0 ||
        rte_intr_type_set(h, RTE_INTR_HANDLE_EXT) != 0 ||
        rte_intr_callback_register(h, intr_park, NULL) != 0) {
        if (h)
            rte_intr_instance_free(h);
        if (efd >= 0)
            close(efd);
        return false;
    }
    park_handle = h;
    uint64_t one = 1;
    if (write(efd, &one, sizeof one) != (ssize_t)sizeof one)
        return false;
    double deadline = dl_now() + timeout;
    while (!atomic_load_explicit(&intr_parked, memory_order_acquire)) {
        if (dl_now() > deadline)
            return false; /* busy elsewhere; it parks later, or the cleanup is skipped */
        nap_us(100);
    }
    return true;
}

/*
 * crash.c — say where the process died before it dies.
 *
 * On SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT the handler writes one line
 * naming the signal, the faulting address, the thread (its name and id) and,
 * on a worker, the worker, its core and the task that was running (the
 * watchdog slot), then a backtrace (glibc's backtrace_symbols_fd writes
 * straight to the fd, no malloc). It then restores the default action and
 * lets the signal end the process as before: the exit status stays 139 for
 * SIGSEGV, 134 for SIGABRT, and a core dump is made where enabled.
 *
 * Only async-signal-safe calls in the handler, besides backtrace(), which
 * may load libgcc_s on its first call: dl_crash_install calls it once, so
 * that the handler never does. The first thread to crash reports; another
 * that crashes meanwhile waits (2 s at most) for that report to end.
 *
 * Not installed in sanitizer builds: AddressSanitizer's own SEGV report
 * says more (the shadow state, the allocation).
 */
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#define DL_CRASH_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DL_CRASH_OFF 1
#endif
#endif

#ifndef DL_CRASH_OFF
static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static atomic_int reporting;
/* The main thread's alternate stack: a stack overflow there still reports. */
static char altstack[64 * 1024];

typedef struct line {
    char buf[512];
    size_t n;
} line;

static void put(line *l, const char *s)
{
    while (*s && l->n < sizeof l->buf - 1)
        l->buf[l->n++] = *s++;
}

static void put_u(line *l, unsigned long v)
{
    char d[24];
    int i = 0;
    do
        d[i++] = (char)('0' + v % 10);
    while ((v /= 10) && i < (int)sizeof d);
    while (i > 0 && l->n < sizeof l->buf - 1)
        l->buf[l->n++] = d[--i];
}

static void put_hex(line *l, unsigned long v)
{
    char d[20];
    int i = 0;
    do
        d[i++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) && i < (int)sizeof d);
    put(l, "0x");
    while (i > 0 && l->n < sizeof l->buf - 1)
        l->buf[l->n++] = d[--i];
}

static void flush(line *l)
{
    size_t off = 0;
    while (off < l->n) {
        ssize_t w = write(STDERR_FILENO, l->buf + off, l->n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    l->n = 0;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV (invalid memory access)";
    case SIGBUS:
        return "SIGBUS (bus error)";
    case SIGFPE:
        return "SIGFPE (arithmetic error)";
    case SIGILL:
        return "SIGILL (illegal instruction)";
    case SIGABRT:
        return "SIGABRT (abort)";
    default:
        return "signal";
    }
}

static void on_fatal(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    int expected = 0;
    if (atomic_compare_exchange_strong(&reporting, &expected, 1)) {
        int saved = errno;
        line l = {.n = 0};
        char name[17] = {0};
        prctl(PR_GET_NAME, name, 0, 0, 0);
        put(&l, "\ndpdklua: fatal ");
        put(&l, sig_name(sig));
        if (sig != SIGABRT && si) {
            put(&l, " at address ");
            put_hex(&l, (unsigned long)si->si_addr);
        }
        put(&l, " on thread ");
        put(&l, name[0] ? name : "?");
        put(&l, " (tid ");
        put_u(&l, (unsigned long)syscall(SYS_gettid));
        put(&l, ")");
        dl_worker *w = dl_self();
        if (w) {
            put(&l, ", worker ");
            put_u(&l, (unsigned long)w->index);
            put(&l, " (core ");
            put_u(&l, (unsigned long)w->core);
            put(&l, ")");
            const dl_task_slot *t = &dl_wd_slots[w->index].task;
            uint32_t id = __atomic_load_n(&t->id, __ATOMIC_ACQUIRE);
            const char *tn = __atomic_load_n(&t->name, __ATOMIC_ACQUIRE);
            if (id) {
                put(&l, ", in task #");
                put_u(&l, id);
                if (tn) {
                    put(&l, " (");
                    size_t keep = l.n;
                    put(&l, tn);
                    if (l.n - keep > 96)
                        l.n = keep + 96;
                    put(&l, ")");
                }
            } else {
                put(&l, ", outside any task");
            }
        } else {
            put(&l, ", not a worker");
        }
        put(&l, "; backtrace:\n");
        flush(&l);
        void *frames[64];
        int n = backtrace(frames, 64);
        backtrace_symbols_fd(frames, n, STDERR_FILENO);
        put(&l, "dpdklua: ending with the signal's default action\n");
        flush(&l);
        atomic_store(&reporting, 2);
        errno = saved;
    } else {
        for (int i = 0; i < 200 && atomic_load(&reporting) != 2; i++) {
            struct timespec ts = {0, 10 * 1000 * 1000}; /* let the report finish (2 s at most) */
            nanosleep(&ts, NULL);
        }
    }
    /* Default action: a fault re-executes and faults again, a sent or
     * raised signal is raised once more (blocked until we return). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (!si || si->si_code <= 0) /* from kill(), raise(), abort() */
        raise(sig);
}
#endif

void dl_crash_install(void)
{
#ifndef DL_CRASH_OFF
    void *warm[2];
    backtrace(warm, 2); /* loads libgcc_s now, not in the handler */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        sigaction(fatal[i], &sa, NULL);
#endif
}

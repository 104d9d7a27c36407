/*
 * locks.c — one process per core and per device, across processes.
 *
 * Each core and each device has a lock file under /var/run/dpdk (or
 * DPDKLUA_LOCK_DIR). A process holds an exclusive flock on it for as long as
 * it uses the resource; the kernel drops the lock when the process dies, so a
 * crashed process never leaves a resource taken. The file records the holder
 * for error messages; it is never deleted (deleting races with a new holder).
 *
 * The kernel drops a killed holder's locks only once the process has torn
 * itself down (39-55 ms after kill -9 measured here, more for a large
 * process): a lock whose recorded holder is dead or dying is waited for,
 * briefly, so that a replacement started right after a kill -9 starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime.h"

static const char *lock_dir(void)
{
    const char *dir = getenv("DPDKLUA_LOCK_DIR");
    return dir && *dir ? dir : "/var/run/dpdk";
}

static void lock_path(const char *kind, const char *name, char *buf, size_t len)
{
    char safe[DL_NAME_LEN];
    size_t i;
    for (i = 0; name[i] && i < sizeof safe - 1; i++)
        safe[i] = (name[i] == '/' || name[i] == ',' || name[i] == '=') ? '_' : name[i];
    safe[i] = '\0';
    snprintf(buf, len, "%s/dpdklua-%s-%s.lock", lock_dir(), kind, safe);
}

static void describe_self(char *buf, size_t len)
{
    char cmd[256] = "";
    FILE *f = fopen("/proc/self/cmdline", "r");
    if (f) {
        size_t n = fread(cmd, 1, sizeof cmd - 1, f);
        fclose(f);
        for (size_t i = 0; i + 1 < n; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[n] = '\0';
    }
    snprintf(buf, len, "pid %d (%s)\n", (int)getpid(), cmd);
}

enum { PF_EXITING = 0x4, SIGKILL_BIT = 1 << (SIGKILL - 1) };

static bool sigkill_pending(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool pending = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long long mask;
        if ((sscanf(line, "SigPnd: %llx", &mask) == 1 ||
             sscanf(line, "ShdPnd: %llx", &mask) == 1) &&
            (mask & SIGKILL_BIT))
            pending = true;
    }
    fclose(f);
    return pending;
}

bool dl_process_ending(int pid)
{
    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold anything */
    char state;
    unsigned long flags;
    if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2)
        return false;
    return state == 'Z' || state == 'X' || (flags & PF_EXITING) || sigkill_pending(pid);
}

static int holder_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int pid = 0;
    return sscanf(buf, "pid %d", &pid) == 1 ? pid : 0;
}

/* Held: wait (up to 2 s) only while the recorded holder is dead or dying. */
static int wait_for_ending_holder(int fd)
{
    double deadline = dl_now() + 2.0;
    while (dl_process_ending(holder_pid(fd)) && dl_now() < deadline) {
        struct timespec nap = {0, 2000000};
        nanosleep(&nap, NULL);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK)
            return -1;
    }
    errno = EWOULDBLOCK;
    return -1;
}

int dl_lock_try(const char *kind, const char *name, int *fd_out)
{
    const char *dir = lock_dir();
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return dl_fail("cannot create lock directory %s: %s (run as root, or set "
                       "DPDKLUA_LOCK_DIR to a writable directory)",
                       dir, strerror(errno));
    char path[4096];
    lock_path(kind, name, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return dl_fail("cannot open lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 &&
        (errno != EWOULDBLOCK || wait_for_ending_holder(fd) != 0)) {
        int err = errno;
        close(fd);
        if (err == EWOULDBLOCK)
            return DL_AGAIN;
        return dl_fail("cannot lock %s: %s", path, strerror(err));
    }
    char who[300];
    describe_self(who, sizeof who);
    if (ftruncate(fd, 0) == 0 && pwrite(fd, who, strlen(who), 0) < 0)
        DL_DEBUG("locks", "cannot record holder in %s: %s", path, strerror(errno));
    *fd_out = fd;
    return DL_OK;
}

void dl_lock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the only descriptor drops the flock */
}

void dl_lock_holder(const char *kind, const char *name, char *buf, size_t len)
{
    char path[4096];
    lock_path(kind, name, path, sizeof path);
    snprintf(buf, len, "unknown");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0) {
        snprintf(buf, len, "unknown");
        return;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
}

int dl_lock_take(const char *kind, const char *name, const char *label, int *fd_out, char *why,
                 size_t why_len)
{
    int rc = dl_lock_try(kind, name, fd_out);
    if (rc == DL_AGAIN) {
        char holder[300];
        dl_lock_holder(kind, name, holder, sizeof holder);
        size_t used = strlen(why);
        snprintf(why + used, why_len - used, "; %s is held by %s", label, holder);
    }
    return rc;
}

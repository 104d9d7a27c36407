/*
 * locks.c — one process per core and per device, across processes.
 *
 * Each core and each device has a lock file under /var/run/dpdk (or
 * DPDKLUA_LOCK_DIR). A process holds an exclusive flock on it for as long as
 * it uses the resource; the kernel drops the lock when the process dies, so a
 * crashed process never leaves a resource taken. The file records the holder
 * for error messages; it is never deleted (deleting races with a new holder).
 */
#include <errno.h>
#include <fcntl.h>
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
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
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

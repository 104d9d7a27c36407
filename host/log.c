/*
 * log.c — error texts and leveled logging.
 *
 * DPDKLUA_LOG sets the level: "debug", or a default plus per-module levels,
 * e.g. "warn,port=debug,sched=info". DPDK_DEBUG=1 makes the default "debug".
 * A line says when, how bad, which worker (on a worker's thread) and which
 * module: "12:00:01.234 [w1] [warn] port: ...".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "host.h"

enum { MAX_MODULE_LEVELS = 16, ERRMSG_LEN = 1024 };

static _Thread_local char errmsg[ERRMSG_LEN];
/* The worker this thread runs (dl_log_set_worker), -1: none. Kept here, not
 * read from worker.c, so that log.c links alone (the fuzz harnesses). */
static _Thread_local int log_worker = -1;

void dl_log_set_worker(int index)
{
    log_worker = index;
}

static int default_level = DL_LOG_WARN;
static struct {
    char module[32];
    int level;
} module_levels[MAX_MODULE_LEVELS];
static int n_module_levels;

const char *dl_errmsg(void)
{
    return errmsg;
}

int dl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return DL_ERROR;
}

int dl_fail_context(const char *fmt, ...)
{
    char previous[ERRMSG_LEN];
    snprintf(previous, sizeof previous, "%s", errmsg);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof errmsg)
        snprintf(errmsg + n, sizeof errmsg - n, ": %s", previous);
    return DL_ERROR;
}

static int parse_level(const char *s, size_t len)
{
    static const char *names[] = {"off", "error", "warn", "info", "debug"};
    for (size_t i = 0; i < DL_ARRAY_SIZE(names); i++)
        if (strlen(names[i]) == len && strncasecmp(s, names[i], len) == 0)
            return (int)i;
    return -1;
}

void dl_log_init(void)
{
    const char *dbg = getenv("DPDK_DEBUG");
    if (dbg && *dbg && strcmp(dbg, "0") != 0)
        default_level = DL_LOG_DEBUG;
    const char *spec = getenv("DPDKLUA_LOG");
    if (!spec)
        return;
    n_module_levels = 0;
    while (*spec) {
        size_t len = strcspn(spec, ",");
        const char *eq = memchr(spec, '=', len);
        if (eq) {
            int level = parse_level(eq + 1, len - (size_t)(eq + 1 - spec));
            size_t mlen = (size_t)(eq - spec);
            if (level >= 0 && n_module_levels < MAX_MODULE_LEVELS &&
                mlen < sizeof module_levels[0].module) {
                memcpy(module_levels[n_module_levels].module, spec, mlen);
                module_levels[n_module_levels].module[mlen] = '\0';
                module_levels[n_module_levels++].level = level;
            }
        } else {
            int level = parse_level(spec, len);
            if (level >= 0)
                default_level = level;
        }
        spec += len;
        if (*spec == ',')
            spec++;
    }
}

int dl_log_enabled(int level, const char *module)
{
    for (int i = 0; i < n_module_levels; i++)
        if (module && strcmp(module_levels[i].module, module) == 0)
            return level <= module_levels[i].level;
    return level <= default_level;
}

void dl_log_write(int level, const char *module, const char *msg)
{
    static const char *tags[] = {"", "error", "warn", "info", "debug"};
    if (level < DL_LOG_ERROR || level > DL_LOG_DEBUG || !dl_log_enabled(level, module))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    /* Which worker speaks: "[w1]"; other threads (main outside the loop,
     * the blocking pool, EAL threads) have no tag. */
    char who[16] = "";
    if (log_worker >= 0)
        snprintf(who, sizeof who, "[w%d] ", log_worker);
    /* One fprintf per line keeps lines from different workers whole. */
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s[%s] %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, who, tags[level], module ? module : "dpdklua", msg);
}

void dl_log(int level, const char *module, const char *fmt, ...)
{
    if (!dl_log_enabled(level, module))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dl_log_write(level, module, msg);
}

/*
 * host.h — what the host's C files share with each other (not with Lua:
 * that is api.h).
 */
#ifndef DL_HOST_H
#define DL_HOST_H

#include <stdarg.h>
#include <stdbool.h>

#include "api.h"

#define DL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* host/log.c: set this thread's error text (see dl_errmsg) and return DL_ERROR. */
int dl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prepend context to this thread's error text: "context: <previous text>". */
int dl_fail_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* host/log.c: leveled logging to stderr, filtered by DPDKLUA_LOG. */
void dl_log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void dl_log_init(void);
/* The worker index log lines of this thread carry ("[w1]"), -1: none. */
void dl_log_set_worker(int index);
#define DL_ERR(mod, ...) dl_log(DL_LOG_ERROR, mod, __VA_ARGS__)
#define DL_WARN(mod, ...) dl_log(DL_LOG_WARN, mod, __VA_ARGS__)
#define DL_INFO(mod, ...) dl_log(DL_LOG_INFO, mod, __VA_ARGS__)
#define DL_DEBUG(mod, ...)                                                                         \
    do {                                                                                           \
        if (dl_log_enabled(DL_LOG_DEBUG, mod))                                                     \
            dl_log(DL_LOG_DEBUG, mod, __VA_ARGS__);                                                \
    } while (0)

/* The embedded default config (config/dpdk-env.json, generated into the build). */
extern const char dl_default_config[];

#endif

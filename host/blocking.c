/*
 * blocking.c — the blocking pool (spec F16): threads off the workers' cores,
 * each with its own Lua state, that run jobs which may block (DNS, file I/O,
 * long computations).
 *
 * A job is the bytes Lua encoded (dpdk.blocking's message). A task submits it
 * and parks on a token; a pool thread runs it (in Lua: dpdk.blocking.serve,
 * which returns the encoded results) and pushes it on its worker's completion
 * stack; that worker's dl_poll pops the stack and hands the token back in a
 * DL_EV_WAKE. C never calls into a worker's Lua state. An empty stack costs
 * dl_poll one atomic load.
 *
 * Ownership: a job is freed by whoever sees it last. The task frees it after
 * reading the result (dl_blocking_release); a task that stops waiting
 * (timeout) marks it abandoned and the pool thread frees it when it ends. The
 * pool lives until the runtime has been released and its last thread has
 * ended (a job that outlives rt:shutdown keeps its thread and the pool).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "runtime.h"

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_ABANDONED };
enum { LABEL_LEN = 128, DEFAULT_THREADS = 4, MAX_THREADS = 256 };

struct dl_job {
    dl_job *next;      /* the pool's queue */
    dl_job *next_done; /* a worker's completion stack */
    int worker;
    uint32_t token;
    atomic_int state;
    bool delivered; /* popped by its worker's dl_poll (the owner's field) */
    bool released;  /* the owner let go before dl_poll popped it */
    bool failed;    /* out holds an error text, not an encoded result */
    char *out;
    size_t out_len;
    size_t in_len;
    char label[LABEL_LEN];
    char in[];
};

struct dl_pool {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or the pool stops */
    pthread_cond_t idle; /* a running job ended */
    dl_job *head, *tail;
    int max_threads, n_threads, n_idle, n_running;
    int refs; /* the runtime's + one per thread: the last one frees the pool */
    bool stopping;
    bool shared_cpus; /* no CPU is free of workers: threads share the workers' cores */
    cpu_set_t cpus;
    char (*current)[LABEL_LEN]; /* per thread slot: the job it runs ("" when idle) */
    char lua_path[4096];
    char lua_cpath[4096];
    _Atomic(dl_job *) done[DL_MAX_WORKERS_LIMIT];
};

typedef struct pool_thread {
    dl_pool *pool;
    int slot;
} pool_thread;

static void job_free(dl_job *j)
{
    free(j->out);
    free(j);
}

static void pool_free(dl_pool *p)
{
    for (dl_job *j = p->head, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    for (int i = 0; i < DL_MAX_WORKERS_LIMIT; i++)
        for (dl_job *j = atomic_load(&p->done[i]), *next; j; j = next) {
            next = j->next_done;
            job_free(j);
        }
    free(p->current);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    free(p);
}

/* Drop one reference (the pool's lock held); frees the pool after the last. */
static void pool_unref_locked(dl_pool *p)
{
    if (--p->refs > 0) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    pthread_mutex_unlock(&p->lock);
    pool_free(p);
}

int dl_blocking_create(dl_runtime *rt)
{
    dl_pool *p = calloc(1, sizeof *p);
    if (!p)
        return dl_fail("blocking pool: out of memory");
    int n = rt->opts.blocking_threads > 0 ? rt->opts.blocking_threads : DEFAULT_THREADS;
    if (n > MAX_THREADS) {
        free(p);
        return dl_fail("blocking_threads = %d: expected 1..%d", n, MAX_THREADS);
    }
    p->current = calloc((size_t)n, sizeof *p->current);
    if (!p->current) {
        free(p);
        return dl_fail("blocking pool: out of memory");
    }
    p->max_threads = n;
    p->refs = 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    snprintf(p->lua_path, sizeof p->lua_path, "%s", rt->lua_path);
    snprintf(p->lua_cpath, sizeof p->lua_cpath, "%s", rt->lua_cpath);
    /* The process's CPUs (this thread is not pinned yet) minus the workers'. */
    CPU_ZERO(&p->cpus);
    sched_getaffinity(0, sizeof p->cpus, &p->cpus);
    cpu_set_t rest = p->cpus;
    for (int i = 0; i < rt->n_workers; i++)
        if (rt->workers[i].core >= 0 && rt->workers[i].core < CPU_SETSIZE)
            CPU_CLR(rt->workers[i].core, &rest);
    if (CPU_COUNT(&rest) > 0)
        p->cpus = rest;
    else
        p->shared_cpus = true;
    rt->blocking = p;
    return DL_OK;
}

/* The encoded job's turn in a pool thread's Lua state; sets out/failed. */
static void run_job(lua_State *L, int serve, dl_job *j)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, serve);
    lua_pushlstring(L, j->in, j->in_len);
    int rc = lua_pcall(L, 1, 1, 0);
    size_t len = 0;
    const char *s = lua_tolstring(L, -1, &len);
    if (!s) {
        s = "dpdk.blocking.serve returned no result";
        len = strlen(s);
        rc = 1;
    }
    j->out = malloc(len ? len : 1);
    if (j->out) {
        memcpy(j->out, s, len);
        j->out_len = len;
    }
    j->failed = rc != 0 || !j->out;
    lua_settop(L, 0);
}

/* A finished job goes to its worker (or is freed when nobody waits). */
static void job_finish(dl_pool *p, dl_job *j)
{
    int expect = JOB_RUNNING;
    if (!atomic_compare_exchange_strong(&j->state, &expect, JOB_DONE)) {
        job_free(j); /* abandoned while it ran */
        return;
    }
    _Atomic(dl_job *) *top = &p->done[j->worker];
    dl_job *old = atomic_load_explicit(top, memory_order_relaxed);
    do
        j->next_done = old;
    while (!atomic_compare_exchange_weak_explicit(top, &old, j, memory_order_release,
                                                  memory_order_relaxed));
}

static lua_State *thread_state(dl_pool *p, int *serve)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, p->lua_path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, p->lua_cpath);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    if (luaL_dostring(L, "return require('dpdk.blocking').serve") != 0) {
        DL_ERR("blocking", "a pool thread cannot load dpdk.blocking: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    *serve = luaL_ref(L, LUA_REGISTRYINDEX);
    return L;
}

static void *pool_main(void *arg)
{
    pool_thread *t = arg;
    dl_pool *p = t->pool;
    int slot = t->slot;
    free(t);
    pthread_setaffinity_np(pthread_self(), sizeof p->cpus, &p->cpus);
    int serve = LUA_NOREF;
    lua_State *L = thread_state(p, &serve);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping) {
            p->n_idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->n_idle--;
        }
        if (p->stopping)
            break;
        dl_job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        int expect = JOB_QUEUED;
        if (!atomic_compare_exchange_strong(&j->state, &expect, JOB_RUNNING)) {
            job_free(j); /* its task stopped waiting before it started */
            continue;
        }
        snprintf(p->current[slot], LABEL_LEN, "%s", j->label);
        p->n_running++;
        pthread_mutex_unlock(&p->lock);
        if (L) {
            run_job(L, serve, j);
        } else {
            const char *why = "the pool thread has no Lua state (see the error it logged)";
            j->out = strdup(why);
            j->out_len = j->out ? strlen(why) : 0;
            j->failed = true;
        }
        job_finish(p, j);
        pthread_mutex_lock(&p->lock);
        p->current[slot][0] = '\0';
        p->n_running--;
        pthread_cond_broadcast(&p->idle);
    }
    p->n_threads--;
    pool_unref_locked(p); /* unlocks; p may be gone */
    if (L)
        lua_close(L);
    return NULL;
}

/* Start one more thread (the pool's lock held). */
static int start_thread(dl_pool *p)
{
    pool_thread *t = malloc(sizeof *t);
    if (!t)
        return dl_fail("blocking pool: out of memory");
    t->pool = p;
    t->slot = p->n_threads;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, pool_main, t);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(t);
        return dl_fail("blocking pool: cannot start a thread: %s", strerror(rc));
    }
    char name[16];
    snprintf(name, sizeof name, "dpdklua-b%d", p->n_threads);
    pthread_setname_np(th, name);
    if (p->n_threads == 0 && p->shared_cpus)
        DL_WARN("blocking",
                "every CPU of this process is a worker's core: the blocking pool's threads "
                "share them with the busy-polling workers (give the process a CPU outside "
                "dpdk_cores to keep jobs off the workers)");
    p->n_threads++;
    p->refs++;
    return DL_OK;
}

dl_job *dl_blocking_submit(const char *data, size_t len, const char *label, uint32_t token)
{
    dl_worker *w = dl_self();
    if (!w || !w->rt->blocking) {
        dl_fail("dpdk.blocking: call it from a task of a running runtime");
        return NULL;
    }
    dl_pool *p = w->rt->blocking;
    dl_job *j = calloc(1, sizeof *j + len);
    if (!j) {
        dl_fail("dpdk.blocking: cannot queue a job of %zu bytes: out of memory", len);
        return NULL;
    }
    j->worker = w->index;
    j->token = token;
    atomic_init(&j->state, JOB_QUEUED);
    j->in_len = len;
    memcpy(j->in, data, len);
    snprintf(j->label, sizeof j->label, "%s", label ? label : "?");
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        free(j);
        dl_fail("runtime stopping: the blocking pool takes no more jobs");
        return NULL;
    }
    if (p->n_idle == 0 && p->n_threads < p->max_threads && start_thread(p) != DL_OK &&
        p->n_threads == 0) {
        pthread_mutex_unlock(&p->lock);
        free(j);
        return NULL;
    }
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return j;
}

int dl_blocking_result(dl_job *j, const char **data, size_t *len, int *failed)
{
    if (atomic_load(&j->state) != JOB_DONE)
        return DL_AGAIN;
    *data = j->out;
    *len = j->out_len;
    *failed = j->failed;
    return DL_OK;
}

void dl_blocking_release(dl_job *j)
{
    if (!j)
        return;
    int s = atomic_load(&j->state);
    while (s == JOB_QUEUED || s == JOB_RUNNING) {
        if (atomic_compare_exchange_weak(&j->state, &s, JOB_ABANDONED))
            return; /* the pool frees it */
    }
    if (j->delivered)
        job_free(j);
    else
        j->released = true; /* on the completion stack: dl_poll frees it */
}

int dl_blocking_poll(dl_worker *w, dl_event *events, int n, int max)
{
    dl_pool *p = w->rt->blocking;
    if (!p || !atomic_load_explicit(&p->done[w->index], memory_order_relaxed))
        return n; /* the common case: one load */
    _Atomic(dl_job *) *top = &p->done[w->index];
    dl_job *j = atomic_exchange_explicit(top, NULL, memory_order_acquire);
    while (j) {
        dl_job *next = j->next_done;
        if (j->released) {
            job_free(j);
        } else if (n < max) {
            j->delivered = true;
            events[n++] = (dl_event){.kind = DL_EV_WAKE, .token = j->token};
        } else { /* no room this turn: back on the stack for the next */
            dl_job *old = atomic_load_explicit(top, memory_order_relaxed);
            do
                j->next_done = old;
            while (!atomic_compare_exchange_weak_explicit(top, &old, j, memory_order_release,
                                                          memory_order_relaxed));
        }
        j = next;
    }
    return n;
}

int dl_blocking_threads(dl_runtime *rt)
{
    return rt->blocking ? rt->blocking->max_threads : 0;
}

int dl_blocking_running(dl_runtime *rt)
{
    dl_pool *p = rt->blocking;
    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    int n = p->n_running;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int dl_blocking_stop(dl_runtime *rt, double timeout_s)
{
    dl_pool *p = rt->blocking;
    if (!p)
        return DL_OK;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    /* Queued jobs will not run: their tasks (if any still wait) learn it. */
    for (dl_job *j = p->head, *next; j; j = next) {
        next = j->next;
        int expect = JOB_QUEUED;
        if (!atomic_compare_exchange_strong(&j->state, &expect, JOB_RUNNING)) {
            job_free(j);
            continue;
        }
        const char *why = "runtime stopping: the job did not start";
        j->out = strdup(why);
        j->out_len = j->out ? strlen(why) : 0;
        j->failed = true;
        job_finish(p, j);
    }
    p->head = p->tail = NULL;
    pthread_cond_broadcast(&p->work);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double end =
        (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + (timeout_s > 0 ? timeout_s : 0);
    until.tv_sec = (time_t)end;
    until.tv_nsec = (long)((end - (double)until.tv_sec) * 1e9);
    while (p->n_running > 0)
        if (pthread_cond_timedwait(&p->idle, &p->lock, &until) == ETIMEDOUT)
            break;
    int rc = DL_OK;
    if (p->n_running > 0) {
        char names[1024] = "";
        size_t used = 0;
        for (int i = 0; i < p->max_threads; i++)
            if (p->current[i][0] && used < sizeof names)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                         used ? ", " : "", p->current[i]);
        rc = dl_fail("timeout: %d blocking job(s) did not finish within %.3g s: %s (their threads "
                     "run on until the functions return; the results are dropped)",
                     p->n_running, timeout_s, names);
    }
    pthread_mutex_unlock(&p->lock);
    return rc == DL_OK ? DL_OK : DL_AGAIN;
}

void dl_blocking_free(dl_runtime *rt)
{
    dl_pool *p = rt->blocking;
    if (!p)
        return;
    rt->blocking = NULL;
    pthread_mutex_lock(&p->lock);
    if (!p->stopping) { /* built but never stopped (a runtime that failed to start) */
        p->stopping = true;
        pthread_cond_broadcast(&p->work);
    }
    pool_unref_locked(p);
}

int dl_runtime_families(dl_runtime *rt)
{
    int fam = 0;
    for (int i = 0; i < rt->n_ports; i++) {
        const dl_device_config *dev = rt->ports[i].dev;
        if (!dev)
            continue;
        for (int a = 0; a < dev->n_addresses; a++)
            fam |= dev->addresses[a].family == 6 ? 2 : 1;
    }
    return fam;
}

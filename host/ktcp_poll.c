/*
 * ktcp_poll.c — the waiting half of dpdk.ktcp: each worker that made a
 * kernel socket has one epoll set; a socket joins it (edge triggered) the
 * first time it waits. dl_poll calls dl_ktcp_poll only while a token is
 * armed (or a closed socket's wake is due), and that calls epoll_wait with a
 * zero timeout: the worker never blocks, and a worker whose kernel sockets
 * do not wait pays one compare per turn.
 *
 * Edge triggering is enough because the Lua side always tries the call
 * before it waits: a token is armed only after the kernel said EAGAIN, and
 * a readiness edge after that comes out of the next epoll_wait. An edge
 * nobody waits for is dropped; a stale one is at worst a spurious wake, after
 * which Lua makes the same call again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <rte_cycles.h>

#include "ktcp.h"

/* POLL_GAP_US: while kernel sockets wait but the last epoll_wait found
 * nothing, the next comes after this many microseconds rather than the next
 * turn: one epoll_wait costs ~1.5 us here, 30x an idle turn (docs/design.md,
 * "Kernel sockets"). DPDKLUA_KTCP_POLL_US overrides it (0: every turn). */
enum { POLL_BATCH = 64, POLL_GAP_US = 10 };

/* A worker's kernel sockets, made with its first one. */
struct dl_ktcp {
    int epfd;
    dl_kconn *conns;
    uint32_t *woken; /* tokens of closed sockets, handed out by the next poll */
    int n_woken, cap_woken;
    uint64_t polls;          /* epoll_wait calls: read by dl_ktcp_polls on any thread */
    uint64_t next_poll, gap; /* TSC: no epoll_wait before next_poll */
};

dl_ktcp *dl_ktcp_setup(dl_worker *w)
{
    if (w->ktcp)
        return w->ktcp;
    dl_ktcp *k = calloc(1, sizeof *k);
    if (!k) {
        dl_fail("kernel tcp socket: out of memory");
        return NULL;
    }
    k->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (k->epfd < 0) {
        dl_fail("kernel tcp socket: epoll_create1: %s", strerror(errno));
        free(k);
        return NULL;
    }
    const char *env = getenv("DPDKLUA_KTCP_POLL_US");
    long us = env && *env ? strtol(env, NULL, 10) : POLL_GAP_US;
    k->gap = us > 0 ? rte_get_tsc_hz() / 1000000 * (uint64_t)us : 0;
    w->ktcp = k;
    return k;
}

int dl_ktcp_arm(dl_kconn *c, uint32_t *slot, uint32_t token)
{
    if (token == 0)
        return -DL_E_AGAIN;
    dl_worker *w = c->owner;
    if (!c->in_epoll) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (epoll_ctl(w->ktcp->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            return dl_ktcp_error(errno, "epoll_ctl");
        c->in_epoll = true;
    }
    if (*slot == 0)
        w->ktcp_waits++;
    *slot = token;
    return -DL_E_AGAIN;
}

dl_kconn *dl_ktcp_adopt(dl_worker *w, int fd, int family)
{
    dl_kconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->owner = w;
    c->fd = fd;
    c->family = family;
    dl_ktcp *k = w->ktcp;
    c->next = k->conns;
    if (k->conns)
        k->conns->prev = c;
    k->conns = c;
    return c;
}

static void unlink_conn(dl_ktcp *k, dl_kconn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        k->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Hand the armed tokens of c to the next poll (its tasks see "closed"). */
static void wake_closed(dl_ktcp *k, dl_kconn *c)
{
    uint32_t tokens[2] = {c->rd_token, c->wr_token};
    for (int i = 0; i < 2; i++) {
        if (!tokens[i])
            continue;
        if (k->n_woken == k->cap_woken) {
            int cap = k->cap_woken ? k->cap_woken * 2 : 16;
            uint32_t *grown = realloc(k->woken, (size_t)cap * sizeof *grown);
            if (!grown) { /* the task's timeout ends its wait instead */
                c->owner->ktcp_waits--;
                continue;
            }
            k->woken = grown;
            k->cap_woken = cap;
        }
        k->woken[k->n_woken++] = tokens[i]; /* still counted in ktcp_waits */
    }
    c->rd_token = c->wr_token = 0;
}

void dl_ktcp_forget(dl_kconn *c)
{
    dl_ktcp *k = c->owner->ktcp;
    if (c->in_epoll)
        epoll_ctl(k->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    wake_closed(k, c);
    unlink_conn(k, c);
}

int dl_ktcp_poll(dl_worker *w, dl_event *events, int n, int max)
{
    dl_ktcp *k = w->ktcp;
    while (k->n_woken > 0 && n < max) {
        events[n++] = (dl_event){.kind = DL_EV_WAKE, .token = k->woken[--k->n_woken]};
        w->ktcp_waits--;
    }
    int room = (max - n) / 2; /* an event may wake both directions */
    if (room > POLL_BATCH)
        room = POLL_BATCH;
    if (w->ktcp_waits == 0 || room == 0)
        return n;
    uint64_t now = k->gap ? rte_rdtsc() : 0;
    if (now < k->next_poll)
        return n;
    struct epoll_event ev[POLL_BATCH];
    int got = epoll_wait(k->epfd, ev, room, 0);
    __atomic_store_n(&k->polls, k->polls + 1, __ATOMIC_RELAXED); /* single writer */
    /* traffic: look again next turn; quiet: after the gap */
    k->next_poll = got > 0 ? 0 : now + k->gap;
    for (int i = 0; i < got; i++) {
        dl_kconn *c = ev[i].data.ptr;
        uint32_t e = ev[i].events;
        if (c->rd_token && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
            events[n++] = (dl_event){.kind = DL_EV_WAKE, .token = c->rd_token};
            c->rd_token = 0;
            w->ktcp_waits--;
        }
        if (c->wr_token && (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
            events[n++] = (dl_event){.kind = DL_EV_WAKE, .token = c->wr_token};
            c->wr_token = 0;
            w->ktcp_waits--;
        }
    }
    return n;
}

uint64_t dl_ktcp_polls(const dl_worker *w)
{
    const dl_ktcp *k = w->ktcp;
    return k ? __atomic_load_n(&k->polls, __ATOMIC_RELAXED) : 0;
}

void dl_ktcp_worker_free(dl_worker *w)
{
    dl_ktcp *k = w->ktcp;
    if (!k)
        return;
    while (k->conns) { /* only a pending finalizer still holds these */
        dl_kconn *c = k->conns;
        unlink_conn(k, c);
        close(c->fd);
        c->fd = -1;
        c->owner = NULL;
        c->orphaned = true;
    }
    close(k->epfd);
    free(k->woken);
    free(k);
    w->ktcp = NULL;
    w->ktcp_waits = 0;
}

/*
 * tcp.c — the TCP functions of api.h: check that the caller is the
 * connection's worker (spec F18), turn addresses from text, and hand over to
 * the worker's private lwIP copy (stack/tcp_glue.c), which alone keeps the
 * wait state (the armed tokens). Results follow api.h: >= 0, or a negated
 * DL_E_* code; misuse is -DL_E_MISUSE with the reason in dl_errmsg().
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "runtime.h"

/* Record the reason in dl_errmsg() and return -DL_E_MISUSE. */
#define MISUSE(...) (dl_fail(__VA_ARGS__), -DL_E_MISUSE)

/* The calling thread's worker, if it has a TCP stack. */
static dl_worker *current_worker(const char *what)
{
    dl_worker *w = dl_self();
    if (!w) {
        dl_fail("%s must run inside the runtime (rt:block_on, rt:run or a task)", what);
        return NULL;
    }
    if (w->rt->n_ports == 0) {
        dl_fail("%s: this runtime has no network device (add one to the config's devices)", what);
        return NULL;
    }
    return w;
}

/* F18: a connection is used by its own worker only. Worker 0's sockets live
 * in the main thread's Lua state, which may also touch them between
 * block_on calls, when no loop runs (closing them at shutdown, GC). NULL
 * with dl_errmsg set otherwise. An orphan (its runtime stopped) has no
 * worker left: callers check c->orphaned first. */
static dl_worker *owner_of(dl_conn *c, const char *what)
{
    dl_worker *owner = c->owner;
    dl_worker *w = dl_self();
    if (w == owner || (!w && !owner->has_thread && !dl_runtime_loop_active()))
        return owner;
    if (w)
        dl_fail("%s: this socket belongs to worker %d and cannot be used on worker %d", what,
                owner->index, w->index);
    else
        dl_fail("%s: this socket belongs to worker %d and cannot be used outside it", what,
                owner->index);
    return NULL;
}

/* The worker for an op on c, or NULL with *rc set (closed or misuse). */
static dl_worker *worker_for(dl_conn *c, const char *what, int *rc)
{
    if (!c) {
        *rc = -DL_E_CLOSED;
        return NULL;
    }
    if (c->orphaned) {
        *rc = -DL_E_CLOSED; /* its runtime stopped and closed it */
        return NULL;
    }
    dl_worker *w = owner_of(c, what);
    if (!w)
        *rc = -DL_E_MISUSE;
    return w;
}

static int parse_ip(const char *ip, int family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (!ip || !*ip || strcmp(ip, "*") == 0)
        return DL_OK; /* any */
    if (inet_pton(family == 6 ? AF_INET6 : AF_INET, ip, addr) != 1)
        return MISUSE("\"%s\" is not an IPv%d address", ip, family);
    return DL_OK;
}

static int check_port(int port)
{
    if (port < 0 || port > 65535)
        return MISUSE("port %d is out of range (0..65535)", port);
    return DL_OK;
}

/* A stack op's DL_OK/DL_AGAIN/DL_ERROR + err as api.h's result. */
static int result(int rc, int err)
{
    if (rc == DL_OK)
        return 0;
    if (rc == DL_AGAIN)
        return -DL_E_AGAIN;
    return -(err ? err : DL_E_INVAL);
}

dl_conn *dl_tcp_new(int family)
{
    dl_worker *w = current_worker("tcp socket");
    if (!w)
        return NULL;
    if (family != 4 && family != 6) {
        dl_fail("address family must be 4 or 6, got %d", family);
        return NULL;
    }
    int err = 0;
    dl_conn *c = w->stack->conn_new(family, &err);
    if (!c) {
        if (err == DL_E_NOMEM)
            dl_fail("tcp socket: no free connection on worker %d (max_connections = %d "
                    "reached, or out of memory): close some, or raise the runtime's "
                    "max_connections",
                    w->index,
                    w->rt->opts.max_connections ? w->rt->opts.max_connections
                                                : DL_TCP_MAX_CONNECTIONS);
        else
            dl_fail("tcp socket: the stack refused");
        return NULL;
    }
    c->owner = w;
    c->ops = w->stack;
    return c;
}

void dl_tcp_free(dl_conn *c)
{
    if (!c)
        return;
    if (c->orphaned) { /* closed when its runtime stopped: only memory is left */
        c->ops->conn_free(c);
        return;
    }
    dl_worker *owner = owner_of(c, "close");
    if (!owner) {
        DL_WARN("tcp", "a socket was garbage-collected away from its worker: %s; leaked",
                dl_errmsg());
        return;
    }
    int err = 0;
    if (owner->stack->close(c, &err) != DL_OK)
        DL_DEBUG("tcp", "graceful close failed (%d): the connection is aborted", err);
    owner->stack->conn_free(c);
}

int dl_tcp_bind(dl_conn *c, const char *ip, int port)
{
    int rc;
    dl_worker *w = worker_for(c, "bind", &rc);
    if (!w)
        return rc;
    uint8_t addr[16];
    if ((rc = parse_ip(ip, c->family, addr)) != DL_OK || (rc = check_port(port)) != DL_OK)
        return rc;
    int err = 0;
    rc = w->stack->bind(c, addr, (uint16_t)port, &err);
    return result(rc, err);
}

int dl_tcp_listen(dl_conn *c, int backlog)
{
    int rc;
    dl_worker *w = worker_for(c, "listen", &rc);
    if (!w)
        return rc;
    if (backlog < 1 || backlog > 65535)
        return MISUSE("listen: backlog must be 1..65535, got %d", backlog);
    int err = 0;
    rc = w->stack->listen(c, backlog, &err);
    return result(rc, err);
}

int dl_tcp_accept(dl_conn *l, dl_conn **out, uint32_t token)
{
    int rc;
    dl_worker *w = worker_for(l, "accept", &rc);
    if (!w)
        return rc;
    int err = 0;
    rc = w->stack->accept(l, out, token, &err);
    if (rc == DL_OK) {
        (*out)->owner = w;
        (*out)->ops = w->stack;
    }
    return result(rc, err);
}

int dl_tcp_connect(dl_conn *c, const char *ip, int port, uint32_t token)
{
    int rc;
    dl_worker *w = worker_for(c, "connect", &rc);
    if (!w)
        return rc;
    uint8_t addr[16];
    if ((rc = parse_ip(ip, c->family, addr)) != DL_OK || (rc = check_port(port)) != DL_OK)
        return rc;
    if (port == 0)
        return MISUSE("connect: port 0 is not a destination");
    int err = 0;
    rc = w->stack->connect(c, addr, (uint16_t)port, token, &err);
    return result(rc, err);
}

int dl_tcp_send(dl_conn *c, const char *data, size_t len, uint32_t token)
{
    int rc;
    dl_worker *w = worker_for(c, "send", &rc);
    if (!w)
        return rc;
    size_t sent = 0;
    int err = 0;
    if (len > INT_MAX)
        len = INT_MAX; /* the caller sends the rest next */
    rc = w->stack->send(c, data, len, &sent, token, &err);
    return rc == DL_OK ? (int)sent : result(rc, err);
}

int dl_tcp_recv(dl_conn *c, char *buf, size_t len, uint32_t token)
{
    int rc;
    dl_worker *w = worker_for(c, "receive", &rc);
    if (!w)
        return rc;
    size_t got = 0;
    int err = 0;
    if (len > INT_MAX)
        len = INT_MAX;
    rc = w->stack->recv(c, buf, len, &got, token, &err);
    return rc == DL_OK ? (int)got : result(rc, err);
}

int dl_tcp_state(dl_conn *c)
{
    int rc;
    dl_worker *w = worker_for(c, "state", &rc);
    return w ? w->stack->state(c) : 0;
}

int dl_tcp_shutdown_send(dl_conn *c)
{
    int rc;
    dl_worker *w = worker_for(c, "shutdown", &rc);
    if (!w)
        return rc;
    int err = 0;
    rc = w->stack->shutdown_send(c, &err);
    return result(rc, err);
}

int dl_tcp_setopt(dl_conn *c, int opt, int value)
{
    int rc;
    dl_worker *w = worker_for(c, "setoption", &rc);
    if (!w)
        return rc;
    int err = 0;
    rc = w->stack->setopt(c, opt, value, &err);
    return result(rc, err);
}

int dl_tcp_getopt(dl_conn *c, int opt, int *value)
{
    int rc;
    dl_worker *w = worker_for(c, "getoption", &rc);
    if (!w)
        return rc;
    int err = 0;
    rc = w->stack->getopt(c, opt, value, &err);
    return result(rc, err);
}

int dl_tcp_addr(dl_conn *c, int peer, char *ip, size_t iplen, int *port)
{
    int rc;
    dl_worker *w = worker_for(c, peer ? "peer_addr" : "local_addr", &rc);
    if (!w)
        return rc;
    int family = 0;
    uint8_t addr[16];
    uint16_t p = 0;
    rc = peer ? w->stack->peer_addr(c, &family, addr, &p)
              : w->stack->local_addr(c, &family, addr, &p);
    if (rc != DL_OK)
        return -DL_E_CLOSED; /* not connected */
    if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, ip, (socklen_t)iplen))
        return MISUSE("%s: cannot format the address", peer ? "peer_addr" : "local_addr");
    *port = p;
    return 0;
}

int dl_tcp_worker(dl_conn *c)
{
    return c && !c->orphaned ? ((dl_worker *)c->owner)->index : -1;
}

int dl_tcp_core(dl_conn *c)
{
    return c && !c->orphaned ? ((dl_worker *)c->owner)->core : -1;
}

void dl_tcp_stats_publish(dl_worker *w, const stack_counters *c)
{
    dl_worker_stats *s = &w->stats;
    int limit = w->rt->opts.max_connections;
    __atomic_store_n(&s->tcp_max_connections, (uint64_t)(limit ? limit : DL_TCP_MAX_CONNECTIONS),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&s->tcp_connections, c->tcp_connections, __ATOMIC_RELAXED);
    __atomic_store_n(&s->tcp_refused, c->tcp_refused, __ATOMIC_RELAXED);
    __atomic_store_n(&s->tcp_orphans, c->tcp_orphans, __ATOMIC_RELAXED);
    __atomic_store_n(&s->tcp_orphans_aborted, c->tcp_orphans_aborted, __ATOMIC_RELAXED);
    __atomic_store_n(&s->tcp_segments, c->tcp_segments, __ATOMIC_RELAXED);
    __atomic_store_n(&s->tcp_segment_waits, c->tcp_segment_waits, __ATOMIC_RELAXED);
    __atomic_store_n(&s->tcp_rx_compacted, c->tcp_rx_compacted, __ATOMIC_RELAXED);
    __atomic_store_n(&s->tcp_rx_unread, c->tcp_rx_unread, __ATOMIC_RELAXED);
}

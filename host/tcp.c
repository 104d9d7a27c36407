/*
 * tcp.c — the TCP functions of api.h: check that the caller is the
 * connection's worker (spec F18), turn addresses from text, and hand over to
 * the worker's private lwIP copy (stack/tcp_glue.c). Error codes become the
 * OpenResty-style texts Lua returns ("connection refused", ...).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "runtime.h"

static const char *const error_texts[] = {
    [DL_E_NONE] = "no error",
    [DL_E_REFUSED] = "connection refused",
    [DL_E_RESET] = "connection reset by peer",
    [DL_E_ADDRNOTAVAIL] = "address not available",
    [DL_E_ADDRINUSE] = "address in use",
    [DL_E_TIMEDOUT] = "connection timed out",
    [DL_E_ABORTED] = "connection aborted",
    [DL_E_NOMEM] = "out of memory",
    [DL_E_UNREACH] = "network unreachable",
    [DL_E_CLOSED] = "closed",
    [DL_E_INVAL] = "invalid argument",
};

static const char *error_text(int code)
{
    if (code < 0 || (size_t)code >= DL_ARRAY_SIZE(error_texts) || !error_texts[code])
        return "unknown error";
    return error_texts[code];
}

static int fail_code(int code)
{
    return dl_fail("%s", error_text(code));
}

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
 * block_on calls, when no loop runs (closing them at shutdown, GC). */
static dl_worker *owner_of(dl_conn *c, const char *what)
{
    if (!c) {
        dl_fail("%s: the socket is closed", what);
        return NULL;
    }
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

static int parse_ip(const char *ip, int family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (!ip || !*ip || strcmp(ip, "*") == 0)
        return DL_OK; /* any */
    if (inet_pton(family == 6 ? AF_INET6 : AF_INET, ip, addr) != 1)
        return dl_fail("\"%s\" is not an IPv%d address", ip, family);
    return DL_OK;
}

static int check_port(int port)
{
    if (port < 0 || port > 65535)
        return dl_fail("port %d is out of range (0..65535)", port);
    return DL_OK;
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
        fail_code(err ? err : DL_E_NOMEM);
        return NULL;
    }
    c->owner = w;
    return c;
}

void dl_tcp_free(dl_conn *c)
{
    if (!c)
        return;
    dl_worker *owner = owner_of(c, "close");
    if (!owner) {
        DL_WARN("tcp", "a socket was garbage-collected away from its worker: %s; leaked",
                dl_errmsg());
        return;
    }
    int err = 0;
    if (c->pcb && !c->listening && owner->stack->close(c, &err) != DL_OK)
        DL_DEBUG("tcp", "graceful close failed (%d): the connection is aborted", err);
    owner->stack->conn_free(c);
}

int dl_tcp_bind(dl_conn *c, const char *ip, int port)
{
    dl_worker *w = owner_of(c, "bind");
    uint8_t addr[16];
    if (!w || parse_ip(ip, c->family, addr) != DL_OK || check_port(port) != DL_OK)
        return DL_ERROR;
    int err = 0;
    if (w->stack->bind(c, addr, (uint16_t)port, &err) != DL_OK)
        return fail_code(err);
    return DL_OK;
}

int dl_tcp_listen(dl_conn *c, int backlog)
{
    dl_worker *w = owner_of(c, "listen");
    if (!w)
        return DL_ERROR;
    if (backlog < 1 || backlog > 65535)
        return dl_fail("backlog must be 1..65535, got %d", backlog);
    int err = 0;
    if (w->stack->listen(c, backlog, &err) != DL_OK)
        return fail_code(err);
    return DL_OK;
}

int dl_tcp_accept(dl_conn *l, dl_conn **out, uint32_t token)
{
    dl_worker *w = owner_of(l, "accept");
    if (!w)
        return DL_ERROR;
    int err = 0;
    int rc = w->stack->accept(l, out, token, &err);
    if (rc == DL_OK)
        (*out)->owner = w;
    return rc == DL_ERROR ? fail_code(err) : rc;
}

int dl_tcp_connect(dl_conn *c, const char *ip, int port, uint32_t token)
{
    dl_worker *w = owner_of(c, "connect");
    uint8_t addr[16];
    if (!w || parse_ip(ip, c->family, addr) != DL_OK || check_port(port) != DL_OK)
        return DL_ERROR;
    if (port == 0)
        return dl_fail("connect: port 0 is not a destination");
    int err = 0;
    int rc = w->stack->connect(c, addr, (uint16_t)port, token, &err);
    return rc == DL_ERROR ? fail_code(err) : rc;
}

int dl_tcp_connect_status(dl_conn *c, uint32_t token)
{
    if (!owner_of(c, "connect"))
        return DL_ERROR;
    if (c->error)
        return fail_code(c->error);
    if (c->connected)
        return DL_OK;
    c->read_token = token;
    return DL_AGAIN;
}

int64_t dl_tcp_send(dl_conn *c, const char *data, size_t len)
{
    dl_worker *w = owner_of(c, "send");
    if (!w)
        return -1;
    size_t sent = 0;
    int err = 0;
    /* token 0: the Lua side waits with dl_tcp_wait_writable */
    if (w->stack->send(c, data, len, &sent, 0, &err) == DL_ERROR) {
        fail_code(err);
        return -1;
    }
    return (int64_t)sent;
}

int64_t dl_tcp_recv(dl_conn *c, char *buf, size_t len)
{
    dl_worker *w = owner_of(c, "receive");
    if (!w)
        return -1;
    size_t got = 0;
    int err = 0;
    if (w->stack->recv(c, buf, len, &got, false, 0, &err) == DL_ERROR) {
        fail_code(err);
        return -1;
    }
    return (int64_t)got;
}

size_t dl_tcp_readable(dl_conn *c)
{
    dl_worker *w = owner_of(c, "readable");
    return w ? w->stack->readable_bytes(c) : 0;
}

size_t dl_tcp_writable(dl_conn *c)
{
    dl_worker *w = owner_of(c, "writable");
    return w ? w->stack->writable_bytes(c) : 0;
}

int dl_tcp_wait_readable(dl_conn *c, uint32_t token)
{
    dl_worker *w = owner_of(c, "receive");
    if (!w)
        return DL_ERROR;
    if (w->stack->readable_bytes(c) > 0 || c->peer_closed || c->error || !c->pcb)
        return DL_OK;
    c->read_token = token;
    return DL_AGAIN;
}

int dl_tcp_wait_writable(dl_conn *c, uint32_t token)
{
    dl_worker *w = owner_of(c, "send");
    if (!w)
        return DL_ERROR;
    if (c->error || !c->pcb || w->stack->writable_bytes(c) > 0)
        return DL_OK;
    c->write_token = token;
    return DL_AGAIN;
}

int dl_tcp_eof(dl_conn *c)
{
    return c && (c->peer_closed || c->error || !c->pcb);
}

const char *dl_tcp_error(dl_conn *c)
{
    if (!c || !c->error)
        return NULL;
    return error_text(c->error);
}

int dl_tcp_shutdown_send(dl_conn *c)
{
    dl_worker *w = owner_of(c, "shutdown");
    if (!w)
        return DL_ERROR;
    int err = 0;
    return w->stack->shutdown_send(c, &err) == DL_OK ? DL_OK : fail_code(err);
}

int dl_tcp_is_connected(dl_conn *c)
{
    return c && c->connected && !c->error && c->pcb;
}

int dl_tcp_setopt(dl_conn *c, int opt, int value)
{
    dl_worker *w = owner_of(c, "setoption");
    if (!w)
        return DL_ERROR;
    int err = 0;
    return w->stack->setopt(c, opt, value, &err) == DL_OK ? DL_OK : fail_code(err);
}

int dl_tcp_getopt(dl_conn *c, int opt, int *value)
{
    dl_worker *w = owner_of(c, "getoption");
    if (!w)
        return DL_ERROR;
    int err = 0;
    return w->stack->getopt(c, opt, value, &err) == DL_OK ? DL_OK : fail_code(err);
}

int dl_tcp_addr(dl_conn *c, int peer, char *ip, size_t iplen, int *port)
{
    dl_worker *w = owner_of(c, peer ? "peer_addr" : "local_addr");
    if (!w)
        return DL_ERROR;
    int family = 0;
    uint8_t addr[16];
    uint16_t p = 0;
    int rc = peer ? w->stack->peer_addr(c, &family, addr, &p)
                  : w->stack->local_addr(c, &family, addr, &p);
    if (rc != DL_OK)
        return dl_fail("%s", peer ? "not connected" : "not bound");
    if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, ip, (socklen_t)iplen))
        return dl_fail("cannot format the address");
    *port = p;
    return DL_OK;
}

int dl_tcp_worker(dl_conn *c)
{
    return c ? ((dl_worker *)c->owner)->index : -1;
}

int dl_tcp_core(dl_conn *c)
{
    return c ? ((dl_worker *)c->owner)->core : -1;
}

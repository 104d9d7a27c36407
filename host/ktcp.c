/*
 * ktcp.c — TCP over the kernel's sockets inside the runtime (spec F15): the
 * dl_ktcp_* calls of api.h, with the signatures and results of dl_tcp_*, so
 * that dpdk.ktcp runs the same Lua cosocket code as dpdk.tcp.
 *
 * Every socket is non-blocking. A call that would block arms the caller's
 * token (one per direction per socket) and returns -DL_E_AGAIN. Each worker
 * that made a kernel socket has one epoll set; a socket joins it (edge
 * triggered) the first time it waits. dl_poll calls dl_ktcp_poll only while
 * a token is armed (or a closed socket's wake is due), and that calls
 * epoll_wait with a zero timeout: the worker never blocks, and a worker
 * whose kernel sockets do not wait pays one compare per turn.
 *
 * Edge triggering is enough because the Lua side always tries the call
 * before it waits: a token is armed only after the kernel said EAGAIN, and
 * a readiness edge after that comes out of the next epoll_wait. An edge
 * nobody waits for is dropped; a stale one is at worst a spurious wake, after
 * which Lua makes the same call again.
 *
 * Ownership: a dl_kconn is its worker's (F18: another thread's call is
 * -DL_E_MISUSE). Lua frees it (close, GC); when the worker goes, the sockets
 * still open are closed and left as orphans that a later finalizer frees.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_cycles.h>

#include "runtime.h"

#define MISUSE(...) (dl_fail(__VA_ARGS__), -DL_E_MISUSE)

/* POLL_GAP_US: while kernel sockets wait but the last epoll_wait found
 * nothing, the next comes after this many microseconds rather than the next
 * turn: one epoll_wait costs ~1.5 us here, 30x an idle turn (docs/design.md,
 * "Kernel sockets"). DPDKLUA_KTCP_POLL_US overrides it (0: every turn). */
enum { POLL_BATCH = 64, POLL_GAP_US = 10 };

struct dl_kconn {
    dl_kconn *prev, *next; /* the worker's sockets */
    dl_worker *owner;      /* NULL once orphaned */
    int fd;
    int family;
    uint32_t rd_token, wr_token; /* armed waits: recv/accept, send/connect */
    bool in_epoll, connecting, orphaned;
};

/* A worker's kernel sockets, made with its first one. */
struct dl_ktcp {
    int epfd;
    dl_kconn *conns;
    uint32_t *woken; /* tokens of closed sockets, handed out by the next poll */
    int n_woken, cap_woken;
    uint64_t polls;          /* epoll_wait calls: read by dl_ktcp_polls on any thread */
    uint64_t next_poll, gap; /* TSC: no epoll_wait before next_poll */
};

static dl_ktcp *state_of(dl_worker *w)
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

/* The caller must be c's worker, or the main thread between block_on calls
 * for worker 0's sockets (as host/tcp.c). 0, or a negated DL_E_* code. */
static int check(dl_kconn *c, const char *what)
{
    if (!c || c->orphaned)
        return -DL_E_CLOSED;
    dl_worker *w = dl_self();
    if (w == c->owner || (!w && !c->owner->has_thread && !dl_runtime_loop_active()))
        return 0;
    if (w)
        return MISUSE("%s: this kernel socket belongs to worker %d and cannot be used on "
                      "worker %d",
                      what, c->owner->index, w->index);
    return MISUSE("%s: this kernel socket belongs to worker %d and cannot be used outside it", what,
                  c->owner->index);
}

/* A kernel error as a negated DL_E_* code; one without a code of its own
 * leaves its text ("what: permission denied") in dl_errmsg. */
static int kerr(int e, const char *what)
{
    switch (e) {
    case ECONNREFUSED:
        return -DL_E_REFUSED;
    case ECONNRESET:
        return -DL_E_RESET;
    case EPIPE: /* written after a reset already reported, or after our own shutdown */
    case ENOTCONN:
    case EBADF:
        return -DL_E_CLOSED;
    case ETIMEDOUT:
        return -DL_E_TIMEDOUT;
    case EADDRNOTAVAIL:
        return -DL_E_ADDRNOTAVAIL;
    case EADDRINUSE:
        return -DL_E_ADDRINUSE;
    case ECONNABORTED:
        return -DL_E_ABORTED;
    case ENOMEM:
    case ENOBUFS:
        return -DL_E_NOMEM;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
        return -DL_E_UNREACH;
    case EINVAL:
        return -DL_E_INVAL;
    default: {
        char text[128];
        snprintf(text, sizeof text, "%s", strerror(e));
        if (text[0] >= 'A' && text[0] <= 'Z') /* OpenResty's texts are lowercase */
            text[0] = (char)(text[0] - 'A' + 'a');
        dl_fail("%s: %s", what, text);
        return -DL_E_SYSTEM;
    }
    }
}

/* Arm token on slot (0: only a try) and put c in its worker's epoll set. */
static int arm(dl_kconn *c, uint32_t *slot, uint32_t token)
{
    if (token == 0)
        return -DL_E_AGAIN;
    dl_worker *w = c->owner;
    if (!c->in_epoll) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (epoll_ctl(w->ktcp->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            return kerr(errno, "epoll_ctl");
        c->in_epoll = true;
    }
    if (*slot == 0)
        w->ktcp_waits++;
    *slot = token;
    return -DL_E_AGAIN;
}

static int parse_addr(const dl_kconn *c, const char *ip, int port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    if (port < 0 || port > 65535)
        return MISUSE("port %d is out of range (0..65535)", port);
    memset(ss, 0, sizeof *ss);
    bool any = !ip || !*ip || strcmp(ip, "*") == 0;
    if (c->family == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (!any && inet_pton(AF_INET6, ip, &a->sin6_addr) != 1)
            return MISUSE("\"%s\" is not an IPv6 address", ip);
        *len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (!any && inet_pton(AF_INET, ip, &a->sin_addr) != 1)
            return MISUSE("\"%s\" is not an IPv4 address", ip);
        *len = sizeof *a;
    }
    return 0;
}

static dl_kconn *adopt(dl_worker *w, int fd, int family)
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

dl_kconn *dl_ktcp_new(int family)
{
    dl_worker *w = dl_self();
    if (!w) {
        dl_fail("kernel tcp socket must be made inside the runtime (rt:block_on, rt:run or a "
                "task)");
        return NULL;
    }
    if (family != 4 && family != 6) {
        dl_fail("address family must be 4 or 6, got %d", family);
        return NULL;
    }
    if (!state_of(w))
        return NULL;
    int fd =
        socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        dl_fail("kernel tcp socket: %s", strerror(errno));
        return NULL;
    }
    dl_kconn *c = adopt(w, fd, family);
    if (!c) {
        close(fd);
        dl_fail("kernel tcp socket: out of memory");
    }
    return c;
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

void dl_ktcp_free(dl_kconn *c)
{
    if (!c)
        return;
    if (c->orphaned) { /* closed when its worker went: only memory is left */
        free(c);
        return;
    }
    if (check(c, "close") != 0) {
        DL_WARN("ktcp", "a kernel socket was garbage-collected away from its worker: %s; leaked",
                dl_errmsg());
        return;
    }
    dl_ktcp *k = c->owner->ktcp;
    if (c->in_epoll)
        epoll_ctl(k->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd); /* the kernel finishes a graceful close on its own */
    wake_closed(k, c);
    unlink_conn(k, c);
    free(c);
}

int dl_ktcp_bind(dl_kconn *c, const char *ip, int port)
{
    int rc = check(c, "bind");
    if (rc)
        return rc;
    struct sockaddr_storage ss;
    socklen_t len;
    if ((rc = parse_addr(c, ip, port, &ss, &len)) != 0)
        return rc;
    if (bind(c->fd, (struct sockaddr *)&ss, len) != 0)
        return kerr(errno, "bind");
    return 0;
}

int dl_ktcp_listen(dl_kconn *c, int backlog)
{
    int rc = check(c, "listen");
    if (rc)
        return rc;
    if (backlog < 1 || backlog > 65535)
        return MISUSE("listen: backlog must be 1..65535, got %d", backlog);
    if (listen(c->fd, backlog) != 0)
        return kerr(errno, "listen");
    return 0;
}

int dl_ktcp_accept(dl_kconn *l, dl_kconn **out, uint32_t token)
{
    int rc = check(l, "accept");
    if (rc)
        return rc;
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            dl_kconn *c = adopt(l->owner, fd, l->family);
            if (!c) {
                close(fd);
                return -DL_E_NOMEM;
            }
            *out = c;
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return arm(l, &l->rd_token, token);
        /* a connection that went before we took it: take the next */
        if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO)
            return kerr(errno, "accept");
    }
}

int dl_ktcp_connect(dl_kconn *c, const char *ip, int port, uint32_t token)
{
    int rc = check(c, "connect");
    if (rc)
        return rc;
    struct sockaddr_storage ss;
    socklen_t len;
    if ((rc = parse_addr(c, ip, port, &ss, &len)) != 0)
        return rc;
    if (port == 0)
        return MISUSE("connect: port 0 is not a destination");
    if (c->connecting) { /* woken: did it fail? */
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err != 0) {
            c->connecting = false;
            return kerr(err, "connect");
        }
    }
    if (connect(c->fd, (struct sockaddr *)&ss, len) == 0 || errno == EISCONN) {
        c->connecting = false;
        return 0;
    }
    if (errno == EINPROGRESS || errno == EALREADY || errno == EINTR) {
        c->connecting = true;
        return arm(c, &c->wr_token, token);
    }
    c->connecting = false;
    return kerr(errno, "connect");
}

int dl_ktcp_send(dl_kconn *c, const char *data, size_t len, uint32_t token)
{
    int rc = check(c, "send");
    if (rc)
        return rc;
    if (len == 0) { /* only asks for send space */
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) < 0)
            return kerr(errno, "send");
        if (p.revents & POLLERR) {
            int err = 0;
            socklen_t elen = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
            return kerr(err ? err : EPIPE, "send");
        }
        if (p.revents & POLLOUT)
            return 0;
        return arm(c, &c->wr_token, token);
    }
    if (len > INT_MAX)
        len = INT_MAX; /* the caller sends the rest next */
    for (;;) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return arm(c, &c->wr_token, token);
        if (errno != EINTR)
            return kerr(errno, "send");
    }
}

int dl_ktcp_recv(dl_kconn *c, char *buf, size_t len, uint32_t token)
{
    int rc = check(c, "receive");
    if (rc)
        return rc;
    if (len > INT_MAX)
        len = INT_MAX;
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return (int)n;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return arm(c, &c->rd_token, token);
        if (errno != EINTR)
            return kerr(errno, "receive");
    }
}

int dl_ktcp_state(dl_kconn *c)
{
    if (check(c, "state") != 0)
        return 0;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return DL_TCP_FAILED;
    int bits = 0;
    switch (ti.tcpi_state) {
    case TCP_ESTABLISHED:
    case TCP_FIN_WAIT1:
    case TCP_FIN_WAIT2:
        bits = DL_TCP_CONNECTED;
        break;
    case TCP_CLOSE_WAIT:
        bits = DL_TCP_CONNECTED | DL_TCP_PEER_CLOSED;
        break;
    case TCP_LAST_ACK:
    case TCP_CLOSING:
    case TCP_TIME_WAIT:
        bits = DL_TCP_PEER_CLOSED;
        break;
    case TCP_CLOSE:
        bits = DL_TCP_FAILED;
        break;
    default: /* connecting, listening */
        break;
    }
    int unread = 0;
    if (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0)
        bits |= DL_TCP_UNREAD;
    return bits;
}

int dl_ktcp_shutdown_send(dl_kconn *c)
{
    int rc = check(c, "shutdown");
    if (rc)
        return rc;
    if (shutdown(c->fd, SHUT_WR) != 0)
        return kerr(errno, "shutdown");
    return 0;
}

/* The kernel option behind a DL_OPT_*: level and name; false if none. */
static bool sockopt_of(const dl_kconn *c, int opt, int *level, int *name)
{
    switch (opt) {
    case DL_OPT_NODELAY:
        *level = IPPROTO_TCP, *name = TCP_NODELAY;
        return true;
    case DL_OPT_TTL:
        if (c->family == 6)
            *level = IPPROTO_IPV6, *name = IPV6_UNICAST_HOPS;
        else
            *level = IPPROTO_IP, *name = IP_TTL;
        return true;
    case DL_OPT_SNDBUF:
        *level = SOL_SOCKET, *name = SO_SNDBUF;
        return true;
    case DL_OPT_RCVBUF:
        *level = SOL_SOCKET, *name = SO_RCVBUF;
        return true;
    case DL_OPT_KEEPALIVE:
        *level = SOL_SOCKET, *name = SO_KEEPALIVE;
        return true;
    case DL_OPT_REUSEADDR:
        *level = SOL_SOCKET, *name = SO_REUSEADDR;
        return true;
    case DL_OPT_KEEPINTVL:
        *level = IPPROTO_TCP, *name = TCP_KEEPINTVL;
        return true;
    case DL_OPT_KEEPCNT:
        *level = IPPROTO_TCP, *name = TCP_KEEPCNT;
        return true;
    }
    return false;
}

int dl_ktcp_setopt(dl_kconn *c, int opt, int value)
{
    int rc = check(c, "setoption");
    if (rc)
        return rc;
    int level, name;
    if (!sockopt_of(c, opt, &level, &name))
        return MISUSE("setoption: unknown option %d", opt);
    if (setsockopt(c->fd, level, name, &value, sizeof value) != 0)
        return kerr(errno, "setoption");
    return 0;
}

int dl_ktcp_getopt(dl_kconn *c, int opt, int *value)
{
    int rc = check(c, "getoption");
    if (rc)
        return rc;
    int level, name;
    if (!sockopt_of(c, opt, &level, &name))
        return MISUSE("getoption: unknown option %d", opt);
    socklen_t len = sizeof *value;
    if (getsockopt(c->fd, level, name, value, &len) != 0)
        return kerr(errno, "getoption");
    return 0;
}

int dl_ktcp_addr(dl_kconn *c, int peer, char *ip, size_t iplen, int *port)
{
    int rc = check(c, peer ? "peer_addr" : "local_addr");
    if (rc)
        return rc;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if ((peer ? getpeername(c->fd, (struct sockaddr *)&ss, &len)
              : getsockname(c->fd, (struct sockaddr *)&ss, &len)) != 0)
        return -DL_E_CLOSED; /* not connected */
    const void *a;
    if (ss.ss_family == AF_INET6) {
        a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        a = &((struct sockaddr_in *)&ss)->sin_addr;
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (!inet_ntop(ss.ss_family, a, ip, (socklen_t)iplen))
        return MISUSE("%s: cannot format the address", peer ? "peer_addr" : "local_addr");
    return 0;
}

int dl_ktcp_worker(dl_kconn *c)
{
    return c && !c->orphaned ? c->owner->index : -1;
}

int dl_ktcp_core(dl_kconn *c)
{
    return c && !c->orphaned ? c->owner->core : -1;
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

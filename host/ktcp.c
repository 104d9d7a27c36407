/*
 * ktcp.c — TCP over the kernel's sockets inside the runtime (spec F15): the
 * dl_ktcp_* calls of api.h, with the signatures and results of dl_tcp_*, so
 * that dpdk.ktcp runs the same Lua cosocket code as dpdk.tcp.
 *
 * Every socket is non-blocking. A call that would block arms the caller's
 * token (one per direction per socket, host/ktcp_poll.c) and returns
 * -DL_E_AGAIN; the worker's next polls hand the token back once the kernel
 * says the socket is ready.
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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ktcp.h"

#define MISUSE(...) (dl_fail(__VA_ARGS__), -DL_E_MISUSE)

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

int dl_ktcp_error(int e, const char *what)
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

/* check(c, what), then parse_addr: 0, or the first negated DL_E_* code. */
static int check_addr(dl_kconn *c, const char *what, const char *ip, int port,
                      struct sockaddr_storage *ss, socklen_t *len)
{
    int rc = check(c, what);
    return rc ? rc : parse_addr(c, ip, port, ss, len);
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
    if (!dl_ktcp_setup(w))
        return NULL;
    int fd =
        socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        dl_fail("kernel tcp socket: %s", strerror(errno));
        return NULL;
    }
    dl_kconn *c = dl_ktcp_adopt(w, fd, family);
    if (!c) {
        close(fd);
        dl_fail("kernel tcp socket: out of memory");
    }
    return c;
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
    dl_ktcp_forget(c);
    close(c->fd); /* the kernel finishes a graceful close on its own */
    free(c);
}

int dl_ktcp_bind(dl_kconn *c, const char *ip, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = check_addr(c, "bind", ip, port, &ss, &len);
    if (rc)
        return rc;
    if (bind(c->fd, (struct sockaddr *)&ss, len) != 0)
        return dl_ktcp_error(errno, "bind");
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
        return dl_ktcp_error(errno, "listen");
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
            dl_kconn *c = dl_ktcp_adopt(l->owner, fd, l->family);
            if (!c) {
                close(fd);
                return -DL_E_NOMEM;
            }
            *out = c;
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return dl_ktcp_arm(l, &l->rd_token, token);
        /* a connection that went before we took it: take the next */
        if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO)
            return dl_ktcp_error(errno, "accept");
    }
}

int dl_ktcp_connect(dl_kconn *c, const char *ip, int port, uint32_t token)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = check_addr(c, "connect", ip, port, &ss, &len);
    if (rc)
        return rc;
    if (port == 0)
        return MISUSE("connect: port 0 is not a destination");
    if (c->connecting) { /* woken: did it fail? */
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err != 0) {
            c->connecting = false;
            return dl_ktcp_error(err, "connect");
        }
    }
    if (connect(c->fd, (struct sockaddr *)&ss, len) == 0 || errno == EISCONN) {
        c->connecting = false;
        return 0;
    }
    if (errno == EINPROGRESS || errno == EALREADY || errno == EINTR) {
        c->connecting = true;
        return dl_ktcp_arm(c, &c->wr_token, token);
    }
    c->connecting = false;
    return dl_ktcp_error(errno, "connect");
}

int dl_ktcp_send(dl_kconn *c, const char *data, size_t len, uint32_t token)
{
    int rc = check(c, "send");
    if (rc)
        return rc;
    if (len == 0) { /* only asks for send space */
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) < 0)
            return dl_ktcp_error(errno, "send");
        if (p.revents & POLLERR) {
            int err = 0;
            socklen_t elen = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
            return dl_ktcp_error(err ? err : EPIPE, "send");
        }
        if (p.revents & POLLOUT)
            return 0;
        return dl_ktcp_arm(c, &c->wr_token, token);
    }
    if (len > INT_MAX)
        len = INT_MAX; /* the caller sends the rest next */
    for (;;) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return dl_ktcp_arm(c, &c->wr_token, token);
        if (errno != EINTR)
            return dl_ktcp_error(errno, "send");
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
            return dl_ktcp_arm(c, &c->rd_token, token);
        if (errno != EINTR)
            return dl_ktcp_error(errno, "receive");
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
        return dl_ktcp_error(errno, "shutdown");
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
        return dl_ktcp_error(errno, "setoption");
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
        return dl_ktcp_error(errno, "getoption");
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

/*
 * ktcp.h — what the two halves of dpdk.ktcp share (not part of api.h):
 * host/ktcp.c makes the dl_ktcp_* socket calls, host/ktcp_poll.c keeps each
 * worker's epoll set, arms the tokens and hands out the wakes.
 */
#ifndef DL_KTCP_H
#define DL_KTCP_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime.h"

struct dl_kconn {
    dl_kconn *prev, *next; /* the worker's sockets */
    dl_worker *owner;      /* NULL once orphaned */
    int fd;
    int family;
    uint32_t rd_token, wr_token; /* armed waits: recv/accept, send/connect */
    bool in_epoll, connecting, orphaned;
};

/* w's kernel-socket state (its epoll set), made with its first socket;
 * NULL with dl_errmsg set if it cannot be made. */
dl_ktcp *dl_ktcp_setup(dl_worker *w);

/* A dl_kconn for fd on w (dl_ktcp_setup done), first in w's list; NULL when
 * out of memory (fd is left to the caller). */
dl_kconn *dl_ktcp_adopt(dl_worker *w, int fd, int family);

/* Take c off its worker: out of the epoll set and the list, its armed
 * tokens handed to the next poll (its tasks see "closed"). c->fd stays open. */
void dl_ktcp_forget(dl_kconn *c);

/* Arm token on slot (0: only a try) and put c in its worker's epoll set:
 * -DL_E_AGAIN, or the error of epoll_ctl. */
int dl_ktcp_arm(dl_kconn *c, uint32_t *slot, uint32_t token);

/* A kernel error as a negated DL_E_* code; one without a code of its own
 * leaves its text ("what: permission denied") in dl_errmsg. */
int dl_ktcp_error(int e, const char *what);

#endif

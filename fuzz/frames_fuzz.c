/*
 * frames_fuzz.c — libFuzzer harness: raw Ethernet frames into one stack
 * copy through its netif input path (no EAL: fake_dpdk.c), with listeners on
 * port 80 (IPv4 and IPv6) whose connections are accepted, read and echoed.
 *
 * Input: records of
 *   u8 ctl   bits 0-4: advance the clock by that many × 50 ms before the frame
 *            bit 5: recompute the frame's IP/TCP/ICMP checksums first
 *            bit 6: receive it as two chained mbufs (split after byte u8 split)
 *            bit 7: the NIC takes no frames for this turn (TX queue fills)
 *   u16 len (little endian), [u8 split if bit 6], then len bytes of frame.
 * Each input starts a fresh runtime on the copy and ends with its shutdown,
 * after which every mbuf must be back in the pool.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_dpdk.h"

extern const stack_ops stack_ops_0;
static const stack_ops *const S = &stack_ops_0;

enum { MAX_CONNS = 16 };

static dl_conn *listen_on(int family)
{
    int err = 0;
    uint8_t any[16] = {0};
    dl_conn *l = S->conn_new(family, &err);
    if (l && (S->bind(l, any, 80, &err) != DL_OK || S->listen(l, 8, &err) != DL_OK)) {
        S->conn_free(l);
        return NULL;
    }
    return l;
}

/* The application: take new connections, echo what they sent, close at EOF. */
static void serve(dl_conn **ls, dl_conn **conns, int *n)
{
    int err;
    for (int i = 0; i < 2; i++) {
        dl_conn *c = NULL;
        while (ls[i] && *n < MAX_CONNS && S->accept(ls[i], &c, 1, &err) == DL_OK && c)
            conns[(*n)++] = c;
    }
    for (int i = 0; i < *n; i++) {
        dl_conn *c = conns[i];
        if (!c)
            continue;
        char buf[2048];
        size_t got = 0, sent = 0;
        int rc = S->recv(c, buf, sizeof buf, &got, 2, &err);
        if (rc == DL_OK && got > 0) {
            S->send(c, buf, got, &sent, 3, &err);
        } else if (rc == DL_ERROR || (rc == DL_OK && got == 0)) {
            S->close(c, &err);
            S->conn_free(c);
            conns[i] = NULL;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_start(S);
    dl_conn *ls[2] = {listen_on(4), listen_on(6)};
    dl_conn *conns[MAX_CONNS];
    int n_conns = 0;
    static uint8_t frame[FZ_MTU + 14];
    size_t at = 0;
    while (at + 3 <= size) {
        uint8_t ctl = data[at];
        size_t len = (size_t)(data[at + 1] | data[at + 2] << 8);
        at += 3;
        size_t split = 0;
        if (ctl & 0x40 && at < size)
            split = data[at++];
        if (len > size - at)
            len = size - at;
        if (len > sizeof frame)
            len = sizeof frame;
        memcpy(frame, data + at, len);
        at += len;
        if (ctl & 0x20)
            fz_fix_checksums(frame, len);
        fz_now += (ctl & 0x1f) * 50u;
        fz_tx_room = ctl & 0x80 ? 0 : -1;
        struct rte_mbuf *m = fz_frame(frame, len, split);
        if (m)
            S->input(0, &m, 1);
        S->poll();
        serve(ls, conns, &n_conns);
        S->poll();
    }
    /* Let the timers run: retransmits, TIME_WAIT, ARP/ND expiry. */
    fz_tx_room = -1;
    for (int i = 0; i < 4; i++) {
        fz_now += 1000;
        S->poll();
    }
    fz_stop(S);
    for (int i = 0; i < n_conns; i++)
        if (conns[i])
            S->conn_free(conns[i]);
    for (int i = 0; i < 2; i++)
        if (ls[i])
            S->conn_free(ls[i]);
    return 0;
}

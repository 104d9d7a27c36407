/*
 * ring_link.c — two stack copies back to back over a net_ring pair, driven
 * directly through stack_ops (no runtime, no kernel): copy 1 listens, copy 0
 * connects and sends 32 MiB over IPv4 and IPv6; the content is hashed on both
 * sides and the receiver's frame sizes show the MSS the MTU allows.
 *
 * It exercises what the vdevs of a runtime cannot on this machine: DPDK
 * 22.11's net_tap/net_memif refuse MTUs over 1504, net_ring takes 9001.
 *   MTU=9001 (default) or MTU=1500; SPLIT=1 chains every received frame
 *   into two mbufs (multi-segment RX).
 * Prints one line per transfer and exits non-zero on any failure.
 *
 * `ring_link timewait` runs instead the TIME-WAIT order check (timewait()
 * below: stack/patches/86-timewait-timer-order.patch) on a clock the test
 * moves itself, 5 ms a turn; `ring_link ooseq` the out-of-order hold
 * (ooseq() below), on a clock that moves only while the link is idle;
 * `ring_link ackretry` a delayed ACK refused by a full TX queue (ackretry()
 * below: stack/patches/89-fasttmr-ack-retry.patch).
 * Built by `make ring-link` (build/stack/ring_link); spec/tcp_stack_spec.lua runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "stack.h"

extern const stack_ops stack_ops_0, stack_ops_1;
static const stack_ops *S[2] = {&stack_ops_0, &stack_ops_1};

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t wakes;
static void wake(void *w, uint32_t t, int64_t a)
{
    (void)w;
    (void)t;
    (void)a;
    wakes++;
}
/* lwIP's clock: the real one, or (timewait()) one the test moves itself */
static bool fake_clock;
static uint32_t fake_ms;
static uint32_t now_ms(void)
{
    if (fake_clock)
        return fake_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}
static void slog(int level, const char *msg)
{
    if (level <= DL_LOG_WARN)
        fprintf(stderr, "[lwip %d] %s\n", level, msg);
}

static uint16_t pid[2];
static bool split;
static uint64_t splits;
static uint64_t frames[2], bytes[2], maxframe[2]; /* received by copy i */

/* timewait(): frames to copy 0 for this TCP port are dropped (0: none), and
 * the time a FIN from copy 0's port fin_port last reached copy 1 */
static uint16_t drop_to_port, fin_port;
static uint32_t fin_seen_ms;
/* ooseq(): TCP payload bytes from copy 0's port data_port that reached the
 * link to copy 1, and how many of its next data frames to drop */
static uint16_t data_port;
static uint64_t data_bytes;
static int drop_data;

/* An IPv4 TCP frame's ports and flags; false for anything else. */
static bool tcp_of(struct rte_mbuf *m, uint16_t *sport, uint16_t *dport, uint8_t *flags)
{
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    if (m->data_len < 54 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 6)
        return false;
    const uint8_t *t = f + 14 + (f[14] & 0x0f) * 4;
    if (t + 14 > f + m->data_len)
        return false;
    *sport = (uint16_t)(t[0] << 8 | t[1]);
    *dport = (uint16_t)(t[2] << 8 | t[3]);
    *flags = t[13];
    return true;
}

/* The TCP payload length of an IPv4 TCP frame (tcp_of said it is one). */
static uint32_t tcp_payload(struct rte_mbuf *m)
{
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    uint32_t ihl = (uint32_t)(f[14] & 0x0f) * 4, total = (uint32_t)(f[16] << 8 | f[17]);
    return total - ihl - (uint32_t)(f[14 + ihl + 12] >> 4) * 4;
}

/* Drops the frames drop_to_port asks for from rx[0..n) and notes FINs. */
static uint16_t filter(int to, struct rte_mbuf **rx, uint16_t n)
{
    uint16_t kept = 0;
    for (uint16_t k = 0; k < n; k++) {
        uint16_t sp, dp;
        uint8_t fl;
        bool tcp = tcp_of(rx[k], &sp, &dp, &fl);
        if (tcp && to == 1 && sp == fin_port && (fl & 0x01))
            fin_seen_ms = now_ms();
        uint32_t len = tcp && to == 1 && data_port && sp == data_port ? tcp_payload(rx[k]) : 0;
        data_bytes += len;
        if ((tcp && to == 0 && drop_to_port && dp == drop_to_port) || (len && drop_data > 0)) {
            drop_data -= len ? 1 : 0;
            rte_pktmbuf_free(rx[k]);
        } else
            rx[kept++] = rx[k];
    }
    return kept;
}

/* stack_env.tx_burst: copy 1's NIC takes nothing while stall_1 is set, so
 * its frames wait in its TX queue (ackretry()); copy 0's takes at most
 * meter_0 frames a turn when that is not negative (starve()). */
static bool stall_1;
static int meter_0 = -1, budget_0;
static uint16_t tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    if (stall_1 && port_id == pid[1])
        return 0;
    if (meter_0 >= 0 && port_id == pid[0]) {
        if (n > budget_0)
            n = (uint16_t)budget_0;
        n = rte_eth_tx_burst(port_id, queue, pkts, n);
        budget_0 -= n;
        return n;
    }
    return rte_eth_tx_burst(port_id, queue, pkts, n);
}

static void turn(void)
{
    struct rte_mbuf *rx[32];
    budget_0 = meter_0;
    for (int i = 0; i < 2; i++) {
        uint16_t n = rte_eth_rx_burst(pid[i], 0, rx, 32);
        for (uint16_t k = 0; k < n; k++) {
            frames[i]++;
            bytes[i] += rx[k]->pkt_len;
            if (rx[k]->pkt_len > maxframe[i])
                maxframe[i] = rx[k]->pkt_len;
        }
        if (split) /* multi-segment frames: head keeps 300 bytes, the rest in a chained mbuf */
            for (uint16_t k = 0; k < n; k++) {
                struct rte_mbuf *m = rx[k];
                if (m->pkt_len <= 600)
                    continue;
                struct rte_mbuf *t = rte_pktmbuf_alloc(m->pool);
                CHECK(t, "alloc");
                uint16_t rest = (uint16_t)(m->data_len - 300);
                memcpy(rte_pktmbuf_append(t, rest), rte_pktmbuf_mtod_offset(m, char *, 300), rest);
                rte_pktmbuf_trim(m, rest);
                CHECK(rte_pktmbuf_chain(m, t) == 0, "chain");
                splits++;
            }
        if (drop_to_port || fin_port || data_port)
            n = filter(i, rx, n);
        if (n)
            S[i]->input(0, rx, n);
    }
    S[0]->poll();
    S[1]->poll();
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* Copy 1 listens on port, any address. */
static dl_conn *listener(int family, uint16_t port)
{
    int err = 0;
    uint8_t any[16] = {0};
    dl_conn *l = S[1]->conn_new(family, &err);
    CHECK(S[1]->bind(l, any, port, &err) == DL_OK && S[1]->listen(l, 8, &err) == DL_OK, "listen %d",
          err);
    return l;
}

/* Copy 0 connects to dst:port, copy 1 accepts on l; step() moves the link
 * (and the scenario's clock) while either waits. */
static void connect_accept(dl_conn *l, int family, const char *dst, uint16_t port,
                           void (*step)(void), dl_conn **c, dl_conn **s)
{
    int err = 0, rc;
    uint8_t a[16] = {0};
    inet_pton(family == 6 ? AF_INET6 : AF_INET, dst, a);
    *c = S[0]->conn_new(family, &err);
    while ((rc = S[0]->connect(*c, a, port, 1, &err)) == DL_AGAIN)
        step();
    CHECK(rc == DL_OK, "connect err %d", err);
    *s = NULL;
    while (S[1]->accept(l, s, 2, &err) == DL_AGAIN)
        step();
    CHECK(*s, "accept");
}

/* Closes and frees both ends of a connection (c on copy 0, s on copy 1). */
static void close_pair(dl_conn *c, dl_conn *s)
{
    int err = 0;
    S[0]->close(c, &err);
    S[0]->conn_free(c);
    S[1]->close(s, &err);
    S[1]->conn_free(s);
}

/* Closes and frees both ends and the listener, then lets the closes finish. */
static void close_conns(dl_conn *l, dl_conn *c, dl_conn *s, void (*step)(void))
{
    close_pair(c, s);
    S[1]->conn_free(l);
    for (int i = 0; i < 200; i++)
        step();
}

static void transfer(int family, const char *dst, size_t total)
{
    int err = 0, rc;
    dl_conn *l = listener(family, 5000), *c, *s;
    connect_accept(l, family, dst, 5000, turn, &c, &s);
    static unsigned char out[1 << 16], in[1 << 16];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 131 + 7);
    uint64_t f0 = frames[1], b0 = bytes[1];
    size_t sent = 0, got = 0;
    uint64_t hs = 0xcbf29ce484222325ULL, hr = hs;
    bool shut = false, eof = false;
    uint32_t t0 = now_ms();
    while (!eof) {
        if (sent < total) {
            size_t want = total - sent < sizeof out - 7 ? total - sent : sizeof out - 7;
            size_t k = 0;
            if (S[0]->send(c, (char *)out + (sent % 7), want, &k, 3, &err) == DL_ERROR)
                CHECK(0, "send err %d", err);
            hs = fnv(hs, out + (sent % 7), k);
            sent += k;
        } else if (!shut) {
            CHECK(S[0]->shutdown_send(c, &err) == DL_OK, "shutdown %d", err);
            shut = true;
        }
        size_t k = 0;
        size_t rb = getenv("RBUF") ? (size_t)atoi(getenv("RBUF")) : sizeof in;
        rc = S[1]->recv(s, (char *)in, rb, &k, 4, &err);
        CHECK(rc != DL_ERROR, "recv err %d", err);
        if (rc == DL_OK && k == 0)
            eof = true;
        if (rc == DL_OK) {
            hr = fnv(hr, in, k);
            got += k;
        }
        turn();
        CHECK(now_ms() - t0 < 30000, "timeout sent %zu got %zu", sent, got);
    }
    uint32_t ms = now_ms() - t0;
    uint64_t nf = frames[1] - f0, nb = bytes[1] - b0;
    printf("IPv%d %s: %zu bytes sent, %zu received, hash %s, %u ms, %lu frames to the receiver, "
           "avg %lu B, max %lu B\n",
           family, dst, sent, got, hs == hr && sent == got ? "OK" : "MISMATCH", ms,
           (unsigned long)nf, (unsigned long)(nf ? nb / nf : 0), (unsigned long)maxframe[1]);
    CHECK(hs == hr && sent == got, "content differs");
    close_conns(l, c, s, turn);
}

/* The clock moves in steps of lwIP's fast timer, a turn each; 10 minutes of
 * it bound every wait of the scenario. */
static uint32_t fake_start;
static void advance(uint32_t ms)
{
    for (uint32_t t = 0; t < ms; t += 5) {
        fake_ms += 5;
        turn();
    }
    CHECK(fake_ms - fake_start < 600000, "stuck at %u ms", fake_ms - fake_start);
}
static void tick(void)
{
    advance(5);
}

static uint64_t time_wait_pcbs(void)
{
    stack_tcp_stats st;
    S[1]->tcp_stats(&st);
    return st.time_wait;
}

/* One connection to copy 1's port 5001 that copy 1 closes first, so copy 1
 * keeps the TIME-WAIT pcb; returns copy 0's port. drop: copy 0 never hears
 * the ACK of its FIN, so it keeps retransmitting the FIN. */
static uint16_t close_first(dl_conn *l, bool drop)
{
    int err = 0, family, rc;
    uint8_t a[16];
    uint16_t port;
    dl_conn *c, *s;
    connect_accept(l, 4, "10.88.0.2", 5001, tick, &c, &s);
    S[0]->local_addr(c, &family, a, &port);
    uint64_t tw = time_wait_pcbs();
    S[1]->close(s, &err); /* FIN from copy 1 first */
    S[1]->conn_free(s);
    char b[8];
    size_t got = 0;
    while ((rc = S[0]->recv(c, b, sizeof b, &got, 3, &err)) == DL_AGAIN)
        advance(5);
    CHECK(rc == DL_OK && got == 0, "want EOF: rc %d, %zu bytes, err %d", rc, got, err);
    if (drop)
        drop_to_port = port;
    S[0]->close(c, &err); /* copy 1 goes to TIME-WAIT on this FIN */
    S[0]->conn_free(c);
    while (time_wait_pcbs() == tw)
        advance(5);
    return port;
}

/* stack/patches/86-timewait-timer-order.patch keeps the TIME-WAIT list in
 * timer order and expires it from the tail, stopping at the first pcb to
 * keep. A FIN that restarts a pcb's 2 MSL must move it behind the newer ones:
 * left in place, the oldest entry with the newest timer would hold back every
 * pcb registered after it. Copy 1 gets A (whose final ACK copy 0 never hears)
 * into TIME-WAIT, then B; A's FIN retransmitted after B entered restarts A's
 * timer. Past B's 2 MSL only A may remain, past A's none. */
static void timewait(void)
{
    fake_start = fake_ms = now_ms();
    fake_clock = true;
    dl_conn *l = listener(4, 5001);
    uint16_t a = close_first(l, true);
    uint32_t a_entered = fake_ms;
    advance(2000);
    close_first(l, false);
    uint32_t b_entered = fake_ms;
    const uint32_t two_msl = 120000, margin = 300; /* lwIP counts it in 10 ms ticks */
    fin_port = a;
    fin_seen_ms = 0;
    while (fin_seen_ms < b_entered + 2 * margin) /* A's FIN retransmitted well after B */
        advance(5);
    drop_to_port = 0; /* now copy 0 hears the ACK: that FIN is A's last */
    uint32_t a_restarted = fin_seen_ms;
    advance(100);
    CHECK(time_wait_pcbs() == 2, "%lu TIME-WAIT pcbs, want A and B",
          (unsigned long)time_wait_pcbs());
    printf("timewait: A entered at %u ms, B at %u ms, A's FIN restarted it at %u ms\n", 0,
           b_entered - a_entered, a_restarted - a_entered);
    advance(b_entered + two_msl - margin - fake_ms);
    CHECK(time_wait_pcbs() == 2, "before B's 2 MSL: %lu TIME-WAIT pcbs, want 2",
          (unsigned long)time_wait_pcbs());
    advance(2 * margin);
    CHECK(time_wait_pcbs() == 1, "past B's 2 MSL: %lu TIME-WAIT pcbs, want 1 (A, restarted later)",
          (unsigned long)time_wait_pcbs());
    advance(a_restarted + two_msl + margin - fake_ms);
    CHECK(time_wait_pcbs() == 0, "past A's 2 MSL: %lu TIME-WAIT pcbs, want 0",
          (unsigned long)time_wait_pcbs());
    printf("timewait: B expired at its 2 MSL with A still kept, then A at its own\n");
    S[1]->conn_free(l);
    fake_clock = false;
}

/* A turn; the clock moves 5 ms only when no frame moved (an idle link), so
 * a window in flight is never late and a timer fires only on a stall. */
static uint64_t moved(void)
{
    return frames[0] + frames[1];
}
static void turn_or_tick(void)
{
    uint64_t before = moved();
    turn();
    if (moved() == before)
        fake_ms += 5;
    CHECK(fake_ms - fake_start < 600000, "stuck at %u ms", fake_ms - fake_start);
}

/* Moves n bytes from copy `from`'s conn a to the other copy's conn b, which
 * reads them as they come (their content is not checked). */
static void move(int from, dl_conn *a, dl_conn *b, size_t n)
{
    static unsigned char buf[1 << 16];
    size_t sent = 0, got = 0;
    int err = 0;
    while (got < n) {
        size_t k = 0;
        if (sent < n) {
            size_t want = n - sent < sizeof buf ? n - sent : sizeof buf;
            CHECK(S[from]->send(a, (char *)buf, want, &k, 3, &err) != DL_ERROR, "send err %d", err);
            sent += k;
        }
        k = 0;
        int rc = S[1 - from]->recv(b, (char *)buf, sizeof buf, &k, 4, &err);
        CHECK(rc != DL_ERROR && !(rc == DL_OK && k == 0), "recv rc %d err %d", rc, err);
        got += rc == DL_OK ? k : 0;
        turn_or_tick();
    }
}

/* A receiver that has earned its whole window (1 MiB) holds what arrives
 * after a hole, up to that window: one lost segment costs one resent
 * segment. With a fixed cap of 192 KiB (before) everything past it was
 * dropped and had to be sent again: one loss, hundreds of segments. */
static void ooseq(int mtu)
{
    fake_start = fake_ms = now_ms();
    fake_clock = true;
    dl_conn *l = listener(4, 5002), *c, *s;
    connect_accept(l, 4, "10.88.0.2", 5002, turn_or_tick, &c, &s);
    int family;
    uint8_t a[16];
    S[0]->local_addr(c, &family, a, &data_port);
    move(0, c, s, 4u << 20); /* read as it comes: the window grows to 1 MiB */
    const size_t burst = 900 * 1024;
    uint64_t before = data_bytes;
    stack_tcp_stats st0, st1;
    S[0]->tcp_stats(&st0);
    drop_data = 1; /* the burst's first segment */
    move(0, c, s, burst);
    S[0]->tcp_stats(&st1);
    uint64_t resent = data_bytes - before - burst;
    printf("ooseq: %zu bytes after one lost segment: %lu bytes resent, %lu segments\n", burst,
           (unsigned long)resent, (unsigned long)(st1.retrans_segs - st0.retrans_segs));
    CHECK(resent <= 4 * (uint64_t)(mtu - 40), "%lu bytes resent for one lost segment",
          (unsigned long)resent);
    data_port = 0;
    close_conns(l, c, s, turn_or_tick);
    fake_clock = false;
}

/* A delayed ACK that lwIP's fast timer cannot send because copy 1's TX queue
 * holds its share of the pool (ERR_MEM) is sent at a later tick, not lost:
 * lost, the peer (with nothing more to send) waits for its RTO and
 * retransmits. Copy 1 (a pool of ACK_POOL mbufs) fills its queue with a bulk
 * connection's frames while its NIC takes nothing; copy 0 sends 100 bytes on
 * a second connection that copy 1 only has to ACK; 20 ms (four fast timer
 * ticks, under the 50 ms RTO floor) later copy 1's NIC takes frames again. */
#define ACK_POOL 64
static void ackretry(void)
{
    fake_start = fake_ms = now_ms();
    fake_clock = true;
    dl_conn *l = listener(4, 5003), *c1, *s1, *c2, *s2;
    connect_accept(l, 4, "10.88.0.2", 5003, turn_or_tick, &c1, &s1);
    connect_accept(l, 4, "10.88.0.2", 5003, turn_or_tick, &c2, &s2);
    move(1, s1, c1, 4u << 20); /* copy 1's congestion window opens */
    stack_counters k0, k1;
    S[1]->counters(&k0);
    stall_1 = true;
    static char buf[1 << 16];
    size_t k = 0;
    int err = 0;
    for (int i = 0; i < 8; i++) { /* more than the queue may hold */
        CHECK(S[1]->send(s1, buf, sizeof buf, &k, 3, &err) != DL_ERROR, "send err %d", err);
        turn();
    }
    S[1]->counters(&k1);
    CHECK(k1.tx_nombuf > k0.tx_nombuf, "copy 1's TX queue never refused a frame");
    stack_tcp_stats t0, t1;
    S[0]->tcp_stats(&t0);
    CHECK(S[0]->send(c2, buf, 100, &k, 5, &err) == DL_OK && k == 100, "send err %d", err);
    for (int i = 0; i < 4; i++)
        tick(); /* the request arrives; the fast timer's ACKs are refused */
    S[1]->counters(&k0);
    stall_1 = false;
    for (int i = 0; i < 400; i++) /* 2 s of idle link at most */
        turn_or_tick();
    S[0]->tcp_stats(&t1);
    printf("ackretry: a delayed ACK refused %lu times by a full TX queue: the peer retransmitted "
           "%lu segments\n",
           (unsigned long)(k0.tx_nombuf - k1.tx_nombuf),
           (unsigned long)(t1.retrans_segs - t0.retrans_segs));
    CHECK(k0.tx_nombuf > k1.tx_nombuf, "the delayed ACK was never refused");
    CHECK(t1.retrans_segs == t0.retrans_segs, "the ACK was lost: %lu segments retransmitted",
          (unsigned long)(t1.retrans_segs - t0.retrans_segs));
    for (size_t got = 0; got < 8 * sizeof buf;) { /* copy 0 reads the bulk's rest */
        size_t n = 0;
        if (S[0]->recv(c1, buf, sizeof buf, &n, 4, &err) == DL_OK)
            got += n;
        turn_or_tick();
    }
    close_pair(c2, s2);
    close_conns(l, c1, s1, turn_or_tick);
    fake_clock = false;
}

/* The dirty list goes on while lwIP's own output holds a TX queue above
 * DL_TX_QUEUE_HIGH (512 frames). Copy 1 sends a byte on each of 256
 * connections every 5 ms; copy 0's fast timer queues a delayed ACK for each,
 * and its NIC takes 16 frames a turn, 256 a cycle: its queue (filled first
 * while the NIC took nothing) stays at 500-800 frames, under seven eighths of
 * the 2048 it may hold. A probe connection of copy 0 then sends 100 bytes,
 * which only the dirty list sends (no ACK is due on it, nothing is in flight,
 * so no timer runs). Before, the dirty list stopped at 512 frames and the
 * bytes waited as long as the load: the load generator's requests at 10 000
 * connections waited seconds, past the server's read timeout. */
#define STARVE_CONNS 256
static void starve_cycle(dl_conn **s)
{
    int err = 0;
    for (int i = 0; i < STARVE_CONNS; i++) {
        size_t k = 0;
        CHECK(S[1]->send(s[i], "x", 1, &k, 3, &err) == DL_OK && k == 1, "send err %d", err);
    }
    for (int t = 0; t < 15; t++)
        turn();
    tick();
}

static void starve(void)
{
    fake_start = fake_ms = now_ms();
    fake_clock = true;
    static dl_conn *c[STARVE_CONNS + 1], *s[STARVE_CONNS + 1];
    dl_conn *l = listener(4, 5004);
    int err = 0;
    for (int i = 0; i <= STARVE_CONNS; i++) {
        connect_accept(l, 4, "10.88.0.2", 5004, turn_or_tick, &c[i], &s[i]);
        CHECK(S[1]->setopt(s[i], DL_OPT_NODELAY, 1, &err) == DL_OK, "nodelay %d", err);
    }
    dl_conn *probe = c[STARVE_CONNS], *probe_s = s[STARVE_CONNS];
    stack_counters k0, k1;
    S[0]->counters(&k0);
    meter_0 = 0;
    for (int i = 0; i < 3; i++) /* 768 delayed ACKs queued */
        starve_cycle(s);
    meter_0 = 16;
    for (int i = 0; i < 4; i++)
        starve_cycle(s);
    static char buf[1 << 16];
    size_t k = 0, got = 0;
    int cycles = 0;
    CHECK(S[0]->send(probe, buf, 100, &k, 5, &err) == DL_OK && k == 100, "send err %d", err);
    for (; cycles < 40 && got < 100; cycles++) { /* 200 ms of load */
        starve_cycle(s);
        k = 0;
        if (S[1]->recv(probe_s, buf, sizeof buf, &k, 6, &err) == DL_OK)
            got += k;
    }
    S[0]->counters(&k1);
    printf("starve: the probe's 100 bytes: %zu arrived after %d cycles of 5 ms (TX queue refused "
           "%lu frames)\n",
           got, cycles, (unsigned long)(k1.tx_nombuf - k0.tx_nombuf));
    CHECK(got == 100, "the probe's bytes never left copy 0 while the load lasted");
    meter_0 = -1;
    for (int i = 0; i < 200; i++)
        turn_or_tick();
    for (int i = 0; i < STARVE_CONNS; i++)
        close_pair(c[i], s[i]);
    close_conns(l, probe, probe_s, turn_or_tick);
    fake_clock = false;
}

int main(int argc, char **argv)
{
    (void)argc;
    int mtu = getenv("MTU") ? atoi(getenv("MTU")) : 9001;
    split = getenv("SPLIT") != NULL;
    char prefix[64];
    /* dpdklua's naming: a dpdklua process removes the directory if this one dies */
    snprintf(prefix, sizeof prefix, "--file-prefix=dpdklua-%d", getpid());
    char *eal[] = {argv[0],          "--no-huge", "-m", "512", "--no-pci",
                   "--no-telemetry", prefix,      "-l", "0",   "--log-level=5"};
    CHECK(rte_eal_init(10, eal) >= 0, "eal");
    unsigned room = (unsigned)mtu + 26 + RTE_PKTMBUF_HEADROOM;
    if (room < RTE_MBUF_DEFAULT_BUF_SIZE)
        room = RTE_MBUF_DEFAULT_BUF_SIZE;
    struct rte_mempool *pool = rte_pktmbuf_pool_create("rp", 4096, 256, 64, (uint16_t)room, 0);
    CHECK(pool, "pool");
    bool ack = argc > 1 && strcmp(argv[1], "ackretry") == 0; /* copy 1 sends from a small pool */
    struct rte_mempool *pool1 =
        ack ? rte_pktmbuf_pool_create("rp1", ACK_POOL, 0, 64, (uint16_t)room, 0) : pool;
    CHECK(pool1, "pool1");
    struct rte_ring *r01 = rte_ring_create("r01", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    struct rte_ring *r10 = rte_ring_create("r10", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    int p0 = rte_eth_from_rings("ringA", &r10, 1, &r01, 1, 0); /* rx from r10, tx to r01 */
    int p1 = rte_eth_from_rings("ringB", &r01, 1, &r10, 1, 0);
    CHECK(p0 >= 0 && p1 >= 0, "from_rings");
    pid[0] = (uint16_t)p0;
    pid[1] = (uint16_t)p1;
    static dl_device_config dev[2];
    stack_env env = {.wake = wake, .now_ms = now_ms, .log = slog, .tx_burst = tx_burst};
    for (int i = 0; i < 2; i++) {
        struct rte_eth_conf conf;
        memset(&conf, 0, sizeof conf);
        CHECK(rte_eth_dev_configure(pid[i], 1, 1, &conf) == 0, "conf");
        CHECK(rte_eth_rx_queue_setup(pid[i], 0, 512, 0, NULL, pool) == 0, "rxq");
        CHECK(rte_eth_tx_queue_setup(pid[i], 0, 512, 0, NULL) == 0, "txq");
        CHECK(rte_eth_dev_start(pid[i]) == 0, "start");
        dev[i].mtu = mtu;
        dev[i].n_addresses = 2;
        dev[i].addresses[0].family = 4;
        dev[i].addresses[0].prefix = 24;
        char s[64];
        snprintf(s, sizeof s, "10.88.0.%d", i + 1);
        inet_pton(AF_INET, s, dev[i].addresses[0].addr);
        dev[i].addresses[1].family = 6;
        dev[i].addresses[1].prefix = 64;
        snprintf(s, sizeof s, "fd88::%d", i + 1);
        inet_pton(AF_INET6, s, dev[i].addresses[1].addr);
        env.worker_index = i;
        CHECK(S[i]->init(&env) == DL_OK, "init");
        stack_port sp = {
            .index = 0, .port_id = pid[i], .queue = 0, .pool = i ? pool1 : pool, .mtu = mtu, .dev = &dev[i]};
        uint8_t mac[6] = {0x02, 0, 0, 0, 0x88, (uint8_t)(i + 1)};
        memcpy(sp.mac, mac, 6);
        CHECK(S[i]->add_port(&sp) == DL_OK, "add_port");
    }
    printf("mtu %d\n", mtu);
    if (argc > 1 && strcmp(argv[1], "timewait") == 0) {
        timewait();
    } else if (argc > 1 && strcmp(argv[1], "ooseq") == 0) {
        ooseq(mtu);
    } else if (ack) {
        ackretry();
    } else if (argc > 1 && strcmp(argv[1], "starve") == 0) {
        starve();
    } else {
        transfer(4, "10.88.0.2", 32u << 20);
        transfer(6, "fd88::2", 32u << 20);
        printf("split frames: %lu\n", (unsigned long)splits);
    }
    S[0]->shutdown();
    S[1]->shutdown();
    /* net_ring holds no mbufs of its own: every one must be back */
    unsigned avail = rte_mempool_avail_count(pool);
    printf("pool: %u of 4096 mbufs back after shutdown\n", avail);
    CHECK(avail == 4096, "%u mbufs leaked", 4096 - avail);
    if (pool1 != pool) {
        printf("pool1: %u of %u mbufs back after shutdown\n", rte_mempool_avail_count(pool1),
               ACK_POOL);
        CHECK(rte_mempool_avail_count(pool1) == ACK_POOL, "copy 1's mbufs leaked");
    }
    printf("ring_link: ok\n");
    rte_eal_cleanup();
    char cmd[128]; /* --no-huge leaves the EAL's runtime directory behind */
    snprintf(cmd, sizeof cmd, "rm -rf /var/run/dpdk/dpdklua-%d", getpid());
    return system(cmd) == 0 ? 0 : 1;
}

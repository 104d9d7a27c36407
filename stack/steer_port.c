/*
 * steer_port.c — connect() picks a local port whose flow this worker owns,
 * so that the peer's answers (hashed by the NIC, or by the receiving worker
 * in software) land here without being forwarded.
 *
 * The owner of a flow is reta[(hash(remote, local, rport, 0) ^ bits(lport))
 * & mask] (host/steer.c): one hash per connect, then one table lookup per
 * candidate port. A per-copy cursor walks the ephemeral range; about one
 * candidate in n_workers is ours, so a connect tries ~n_workers ports.
 */
#include <string.h>

#include "lwip/ip.h"
#include "lwip/tcp.h"

#include "internal.h"

enum { PORT_FIRST = 0xc000, PORT_COUNT = 0x4000 }; /* lwIP's ephemeral range */

static uint16_t cursor; /* per copy, so per worker */

static void addr_bytes(const ip_addr_t *a, uint8_t out[16])
{
    if (IP_IS_V6(a))
        memcpy(out, ip_2_ip6(a)->addr, 16);
    else
        memcpy(out, &ip_2_ip4(a)->addr, 4);
}

err_t st_steer_bind(struct tcp_pcb *pcb, const ip_addr_t *remote, u16_t rport)
{
    const stack_steer *s = st_inst.env.steer;
    if (!s || s->n_workers <= 1 || pcb->local_port != 0)
        return ERR_OK; /* nothing to steer, or the user chose the port */
    /* the local address tcp_connect will pick (the same two steps) */
    const ip_addr_t *local = &pcb->local_ip;
    if (ip_addr_isany(local)) {
        struct netif *n = ip_route(&pcb->local_ip, remote);
        if (!n)
            return ERR_OK; /* tcp_connect reports the missing route */
        local = ip_netif_get_local_ip(n, remote);
        if (!local)
            return ERR_OK;
    }
    int family = IP_IS_V6(remote) ? 6 : 4;
    uint8_t lb[16], rb[16];
    addr_bytes(local, lb);
    addr_bytes(remote, rb);
    uint32_t base = s->hash(family, rb, lb, rport, 0);
    const uint8_t *bits = family == 6 ? s->port_bits6 : s->port_bits4;
    int self = st_inst.env.worker_index;
    for (int tries = 0; tries < PORT_COUNT; tries++) {
        uint16_t port = (uint16_t)(PORT_FIRST + cursor);
        cursor = (uint16_t)((cursor + 1) % PORT_COUNT);
        if (s->reta[(base ^ bits[port]) & s->reta_mask] != self)
            continue;
        /* ERR_USE: a live or TIME_WAIT pcb has it; try the next */
        if (tcp_bind(pcb, &pcb->local_ip, port) == ERR_OK)
            return ERR_OK;
    }
    return ERR_OK; /* every port of ours in use: lwIP picks one, its frames are forwarded */
}

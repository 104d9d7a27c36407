/*
 * port.c — bring a configured device up as a DPDK port with one RX/TX queue
 * pair per worker, and take it down again.
 *
 * Set-up is one linear sequence (as in DPDK's l2fwd): probe → configure →
 * queues → start → promiscuous → kernel-side addresses; each failure names
 * the device, the step and the reason.
 */
#include <errno.h>
#include <net/if.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "runtime.h"

extern char **environ;

/* Room in each mbuf's private area for the stack's per-packet bookkeeping
 * (an lwIP pbuf_custom wraps the mbuf there: zero-copy RX). */
enum { DL_MBUF_PRIV_SIZE = 64 };

void dl_device_key(const dl_device_config *dev, char *buf, size_t len)
{
    if (dev->pci_address[0]) {
        snprintf(buf, len, "%s", dev->pci_address);
        return;
    }
    size_t n = strcspn(dev->vdev, ",");
    snprintf(buf, len, "%.*s", (int)n, dev->vdev);
}

/* The resource a device stands for, as its lock name: two processes may
 * both call their memif net_memif0 (one server, one client on one socket),
 * but no two may drive the same tap interface, memif socket end or PCI
 * function. */
static const char *vdev_arg(const char *vdev, const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);
    for (const char *s = strchr(vdev, ','); s; s = strchr(s + 1, ',')) {
        if (strncmp(s + 1, key, klen) == 0 && s[1 + klen] == '=') {
            const char *v = s + 2 + klen;
            snprintf(buf, len, "%.*s", (int)strcspn(v, ","), v);
            return buf;
        }
    }
    return NULL;
}

void dl_device_lock_key(const dl_device_config *dev, char *buf, size_t len)
{
    char a[DL_NAME_LEN], b[DL_NAME_LEN], c[32];
    if (dev->pci_address[0]) {
        unsigned dom = 0, bus, slot, fn;
        if (sscanf(dev->pci_address, "%x:%x:%x.%x", &dom, &bus, &slot, &fn) == 4 ||
            sscanf(dev->pci_address, "%x:%x.%x", &bus, &slot, &fn) == 3)
            snprintf(buf, len, "pci:%04x:%02x:%02x.%x", dom, bus, slot, fn);
        else
            snprintf(buf, len, "pci:%s", dev->pci_address);
        return;
    }
    if (strncmp(dev->vdev, "net_tap", 7) == 0 && vdev_arg(dev->vdev, "iface", a, sizeof a)) {
        snprintf(buf, len, "tap:%s", a);
    } else if (strncmp(dev->vdev, "net_memif", 9) == 0) {
        snprintf(buf, len, "memif:%s:%s:%s",
                 vdev_arg(dev->vdev, "socket", a, sizeof a) ? a : "/run/memif.sock",
                 vdev_arg(dev->vdev, "role", b, sizeof b) ? b : "server",
                 vdev_arg(dev->vdev, "id", c, sizeof c) ? c : "0");
    } else if (strncmp(dev->vdev, "net_af_packet", 13) == 0 &&
               vdev_arg(dev->vdev, "iface", a, sizeof a)) {
        snprintf(buf, len, "af_packet:%s", a);
    } else { /* a tap without iface= gets a fresh kernel name; others: their name */
        dl_device_key(dev, a, sizeof a);
        snprintf(buf, len, "vdev:%s", a);
    }
}

/* Steering: ports with RSS over TCP and a programmable 40-byte key get the
 * symmetric key, so the NIC lands each flow where the software predicts;
 * the others (net_tap, net_memif, net_af_packet here) are steered in
 * software. The kernel picks a tap's queue, so a tap is always software. */
static void choose_steering(dl_port *port, const struct rte_eth_dev_info *info,
                            struct rte_eth_conf *conf, int n_workers)
{
    const uint64_t tcp_hf = RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV6_TCP;
    if (n_workers <= 1) {
        port->steer_mode = DL_STEER_NONE;
        return;
    }
    bool is_tap = strncmp(port->dev->vdev, "net_tap", 7) == 0;
    bool pow2 = info->reta_size >= DL_RETA_SIZE && (info->reta_size & (info->reta_size - 1)) == 0;
    if (is_tap || (info->flow_type_rss_offloads & tcp_hf) != tcp_hf ||
        info->hash_key_size != DL_RSS_KEY_LEN || !pow2) {
        port->steer_mode = DL_STEER_SOFTWARE;
        return;
    }
    port->steer_mode = DL_STEER_RSS;
    conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf->rx_adv_conf.rss_conf.rss_key = (uint8_t *)dl_steer_key;
    conf->rx_adv_conf.rss_conf.rss_key_len = DL_RSS_KEY_LEN;
    conf->rx_adv_conf.rss_conf.rss_hf =
        info->flow_type_rss_offloads &
        (tcp_hf | RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER |
         RTE_ETH_RSS_NONFRAG_IPV6_OTHER);
}

/* The NIC's RETA repeats ours: entry i = reta[i % DL_RETA_SIZE], the same
 * owner for hash & (reta_size - 1) as ours for hash & (DL_RETA_SIZE - 1). */
static int program_reta(dl_port *port, const struct rte_eth_dev_info *info, const dl_runtime *rt)
{
    uint16_t size = info->reta_size;
    struct rte_eth_rss_reta_entry64 *conf =
        calloc(size / RTE_ETH_RETA_GROUP_SIZE + 1, sizeof *conf);
    if (!conf)
        return DL_ERROR;
    for (uint16_t i = 0; i < size; i++) {
        conf[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
        conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] =
            rt->steer.reta[i % DL_RETA_SIZE];
    }
    int rc = rte_eth_dev_rss_reta_update(port->port_id, conf, size);
    free(conf);
    if (rc != 0) {
        DL_WARN("port", "%s: cannot program the RSS redirection table (%s); steering in software",
                port->name, rte_strerror(-rc));
        return DL_ERROR;
    }
    return DL_OK;
}

static int run_ip(const char *const args[])
{
    pid_t pid;
    int rc = posix_spawnp(&pid, "ip", NULL, NULL, (char *const *)args, environ);
    if (rc != 0)
        return dl_fail("cannot run ip (install iproute2): %s", strerror(rc));
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char cmd[512] = "";
        for (int i = 0; args[i]; i++) {
            strncat(cmd, args[i], sizeof cmd - strlen(cmd) - 2);
            strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
        }
        return dl_fail("'%s' failed (see its message above)", cmd);
    }
    return DL_OK;
}

/* Put peer_addresses on the kernel side of a tap and bring it up, so that
 * kernel programs (curl, nc) reach the service through it. */
static int configure_tap_peer(dl_port *port)
{
    const dl_device_config *dev = port->dev;
    if (!port->ifname[0])
        return DL_OK;
    const char *up[] = {"ip", "link", "set", "dev", port->ifname, "up", NULL};
    if (run_ip(up) != DL_OK)
        return DL_ERROR;
    for (int i = 0; i < dev->n_peer_addresses; i++) {
        const dl_cidr *c = &dev->peer_addresses[i];
        char text[INET6_ADDRSTRLEN], cidr[INET6_ADDRSTRLEN + 8];
        inet_ntop(c->family == 6 ? AF_INET6 : AF_INET, c->addr, text, sizeof text);
        snprintf(cidr, sizeof cidr, "%s/%d", text, c->prefix);
        const char *v4[] = {"ip", "addr", "replace", cidr, "dev", port->ifname, NULL};
        const char *v6[] = {"ip",  "-6",         "addr",  "replace", cidr,
                            "dev", port->ifname, "nodad", NULL};
        if (run_ip(c->family == 6 ? v6 : v4) != DL_OK)
            return dl_fail_context("%s: peer_addresses[%d]", port->name, i);
    }
    return DL_OK;
}

static int find_or_probe(dl_port *port, const dl_device_config *dev)
{
    uint16_t id;
    if (rte_eth_dev_get_port_by_name(port->name, &id) == 0) {
        port->port_id = id; /* already probed, e.g. by --vdev in eal_args */
        return DL_OK;
    }
    const char *bus = dev->pci_address[0] ? "pci" : "vdev";
    const char *args = dev->pci_address[0] ? "" : dev->vdev + strcspn(dev->vdev, ",");
    if (*args == ',')
        args++;
    if (rte_eal_hotplug_add(bus, port->name, args) != 0) {
        if (dev->pci_address[0])
            return dl_fail("device %s: probe failed: %s; bind it to vfio-pci with "
                           "dpdk-devbind.py --bind=vfio-pci %s (or scripts/dpdk/setup.sh "
                           "dpdk-bind %s, which also turns on vfio's no-IOMMU mode where "
                           "there is no IOMMU), run as root, and check that eal_args have no "
                           "--no-pci",
                           port->name, rte_strerror(rte_errno), port->name, port->name);
        return dl_fail("device %s: cannot create vdev \"%s\": %s (see the EAL messages above)",
                       port->name, dev->vdev, rte_strerror(rte_errno));
    }
    port->hotplugged = true;
    if (rte_eth_dev_get_port_by_name(port->name, &id) != 0)
        return dl_fail("device %s: probed but no ethdev port appeared", port->name);
    port->port_id = id;
    return DL_OK;
}

/* By port id (the stack's TX burst knows only that): memif ports. */
static bool link_gated[RTE_MAX_ETHPORTS];

/* The memif ports (bit = port id) whose gate said up at the start of this
 * worker's poll_io, while it is inside poll_io (else 0). Up then stays safe
 * to burst until that turn ends: the guard's unmap waits for the worker to
 * pass a turn (memif_guard.c), and a new peer's region comes only after the
 * old one is unmapped. So the stack's TX bursts of the turn skip the read. */
static _Thread_local uint32_t turn_up_mask;
_Static_assert(RTE_MAX_ETHPORTS <= 32, "turn_up_mask holds a bit per port id");

bool dl_port_link_gate(uint16_t port_id)
{
    if (!link_gated[port_id] || (turn_up_mask >> port_id) & 1)
        return true;
    struct rte_eth_link link;
    return rte_eth_link_get_nowait(port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

bool dl_port_link_gate_turn(uint16_t port_id)
{
    struct rte_eth_link link;
    if (rte_eth_link_get_nowait(port_id, &link) != 0 || link.link_status != RTE_ETH_LINK_UP)
        return false;
    turn_up_mask |= UINT32_C(1) << port_id;
    return true;
}

void dl_port_link_gate_end(void)
{
    turn_up_mask = 0;
}

uint16_t dl_port_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    if (!dl_port_link_gate(port_id))
        return 0; /* kept, as when the PMD finds the port not connected */
    return dl_pcap_tx_burst(port_id, queue, pkts, n);
}

int dl_port_open(dl_port *port, const dl_device_config *dev, const dl_runtime *rt)
{
    const dl_runtime_opts *o = &rt->opts;
    memset(port, 0, sizeof *port);
    port->lock_fd = -1;
    port->dev = dev;
    port->n_queues = rt->n_workers;
    /* DPDK 22.11's memif: the client decides how many rings there are; a
     * server accepts fewer than its queues and leaves the others pointing at
     * ring 0 (their bursts read and write ring 0's slots: frames stormed
     * between the workers), and disconnects a client with more. So both ends
     * open DL_MEMIF_QUEUES whatever their worker counts, and a worker polls
     * every queue that is its index modulo the worker count. */
    port->memif = strncmp(dev->vdev, "net_memif", 9) == 0;
    if (port->memif && port->n_queues < DL_MEMIF_QUEUES)
        port->n_queues = DL_MEMIF_QUEUES;
    port->mtu = dev->mtu;
    dl_device_key(dev, port->name, sizeof port->name);
    if (find_or_probe(port, dev) != DL_OK)
        return DL_ERROR;
    uint16_t pid = port->port_id;
    link_gated[pid] = port->memif;
    if (dev->mtu < DL_MIN_MTU)
        return dl_fail("port %s: mtu %d is below %d, the smallest the TCP stack takes; raise "
                       "\"mtu\" in the config",
                       port->name, dev->mtu, DL_MIN_MTU);

    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(pid, &info);
    if (rc != 0)
        return dl_fail("port %s: cannot read device info: %s", port->name, rte_strerror(-rc));
    if (port->n_queues > info.max_rx_queues || port->n_queues > info.max_tx_queues)
        return dl_fail("port %s: %d workers need %d queue pairs, the device has %u RX / %u TX; "
                       "ask for fewer workers",
                       port->name, rt->n_workers, port->n_queues, info.max_rx_queues,
                       info.max_tx_queues);
    if (info.if_index > 0)
        if_indextoname(info.if_index, port->ifname);
    /* Some PMDs (net_tap, net_af_packet) take a larger MTU through set_mtu than
     * their max_rx_pktlen lets configure take: configure within the limit,
     * then ask for the real MTU. */
    uint32_t configure_mtu = (uint32_t)dev->mtu;
    if (info.max_rx_pktlen > RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN &&
        configure_mtu > info.max_rx_pktlen - RTE_ETHER_HDR_LEN - RTE_ETHER_CRC_LEN)
        configure_mtu = info.max_rx_pktlen - RTE_ETHER_HDR_LEN - RTE_ETHER_CRC_LEN;
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    conf.rxmode.mtu = configure_mtu;
    /* Checksums: offloaded where the port offers it, else lwIP computes them. */
    const uint64_t tx_ip = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM, tx_tcp = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    const uint64_t rx_sums = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
    port->tx_ip_cksum = (info.tx_offload_capa & tx_ip) != 0;
    port->tx_tcp_cksum = (info.tx_offload_capa & tx_tcp) != 0;
    port->rx_cksum = (info.rx_offload_capa & rx_sums) == rx_sums;
    conf.txmode.offloads = (port->tx_ip_cksum ? tx_ip : 0) | (port->tx_tcp_cksum ? tx_tcp : 0);
    conf.rxmode.offloads = port->rx_cksum ? rx_sums : 0;
    choose_steering(port, &info, &conf, rt->n_workers);
    rc = rte_eth_dev_configure(pid, (uint16_t)port->n_queues, (uint16_t)port->n_queues, &conf);
    if (rc != 0)
        return dl_fail("port %s: configure (%d queues, mtu %u) failed: %s", port->name,
                       port->n_queues, configure_mtu, rte_strerror(-rc));
    rc = rte_eth_dev_set_mtu(pid, (uint16_t)dev->mtu);
    if (rc != 0 && !(rc == -ENOTSUP && configure_mtu == (uint32_t)dev->mtu))
        return dl_fail("port %s: the device does not take mtu %d: %s; set \"mtu\" in the "
                       "config to what it supports (%u works)",
                       port->name, dev->mtu, rte_strerror(-rc), configure_mtu);

    uint16_t nb_rxd = (uint16_t)o->queue_descriptors, nb_txd = (uint16_t)o->queue_descriptors;
    rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nb_rxd, &nb_txd);

    char pool_name[RTE_MEMPOOL_NAMESIZE];
    snprintf(pool_name, sizeof pool_name, "dl%d_p%u", rt->seq, pid);
    uint32_t room = RTE_MBUF_DEFAULT_BUF_SIZE;
    uint32_t frame = (uint32_t)dev->mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + 8;
    if (frame + RTE_PKTMBUF_HEADROOM > room)
        room = frame + RTE_PKTMBUF_HEADROOM;
    port->pool =
        rte_pktmbuf_pool_create(pool_name, (unsigned)o->mempool_size, (unsigned)o->cache_size,
                                DL_MBUF_PRIV_SIZE, (uint16_t)room, (int)rte_eth_dev_socket_id(pid));
    if (!port->pool)
        return dl_fail("port %s: cannot create a mempool of %d mbufs of %u bytes: %s; lower "
                       "mempool_size, or give the EAL more memory (-m in eal_args; with "
                       "hugepages, reserve more: scripts/dpdk/setup.sh hugepages N)",
                       port->name, o->mempool_size, room, rte_strerror(rte_errno));

    int socket = rte_eth_dev_socket_id(pid);
    for (int q = 0; q < port->n_queues; q++) {
        rc = rte_eth_rx_queue_setup(pid, (uint16_t)q, nb_rxd, (unsigned)socket, NULL, port->pool);
        if (rc != 0)
            return dl_fail("port %s: RX queue %d set-up failed: %s", port->name, q,
                           rte_strerror(-rc));
        rc = rte_eth_tx_queue_setup(pid, (uint16_t)q, nb_txd, (unsigned)socket, NULL);
        if (rc != 0)
            return dl_fail("port %s: TX queue %d set-up failed: %s", port->name, q,
                           rte_strerror(-rc));
    }

    /* A tap's port MAC is the kernel interface's own MAC: the stack keeps the
     * configured MAC in software instead (the port runs promiscuous), or the
     * kernel would see its own address on frames from the stack. */
    bool is_tap = strncmp(dev->vdev, "net_tap", 7) == 0;
    if (dev->has_mac && !is_tap) {
        struct rte_ether_addr mac;
        memcpy(mac.addr_bytes, dev->mac, 6);
        rc = rte_eth_dev_default_mac_addr_set(pid, &mac);
        if (rc != 0)
            DL_WARN("port", "%s: cannot set MAC from config: %s; using the device's", port->name,
                    rte_strerror(-rc));
    }

    if (port->steer_mode == DL_STEER_RSS && program_reta(port, &info, rt) != DL_OK)
        port->steer_mode = DL_STEER_SOFTWARE; /* the key still spreads flows; we forward */

    rc = rte_eth_dev_start(pid);
    if (rc != 0)
        return dl_fail("port %s: start failed: %s", port->name, rte_strerror(-rc));
    port->started = true;

    rc = rte_eth_promiscuous_enable(pid);
    if (rc != 0) /* harmless for a device that only sees its own MAC */
        DL_WARN("port", "%s: promiscuous mode unavailable (%s); continuing", port->name,
                rte_strerror(-rc));

    struct rte_ether_addr mac;
    rte_eth_macaddr_get(pid, &mac);
    memcpy(port->mac, dev->has_mac ? dev->mac : mac.addr_bytes, 6);
    if (is_tap && memcmp(port->mac, mac.addr_bytes, 6) == 0)
        port->mac[5] ^= 0x01; /* never share the kernel side's MAC */

    if (configure_tap_peer(port) != DL_OK)
        return DL_ERROR;
    static const char *const modes[] = {"none (one worker)",
                                        "software (forwarded to the owner's ring)",
                                        "rss (symmetric Toeplitz key and RETA programmed)"};
    DL_INFO("port",
            "%s (port %u%s%s) up: %d queue pairs, %u/%u descriptors, mtu %d, checksum "
            "offload tx ip %d tcp %d, rx %d, flow steering %s",
            port->name, pid, port->ifname[0] ? ", kernel side " : "", port->ifname, port->n_queues,
            nb_rxd, nb_txd, dev->mtu, port->tx_ip_cksum, port->tx_tcp_cksum, port->rx_cksum,
            modes[port->steer_mode]);
    return DL_OK;
}

static void stop_and_close(void *arg)
{
    dl_port *port = arg;
    uint16_t pid = port->port_id;
    if (port->started) {
        rte_eth_dev_stop(pid);
        port->started = false;
    }
    if (rte_eth_dev_is_valid_port(pid))
        rte_eth_dev_close(pid); /* returns the queues' mbufs to the pool */
}

void dl_port_close(dl_port *port)
{
    if (!port->dev)
        return;
    /* A memif client's stop and close free its control channel's message
     * queue and state, which the PMD's handler uses on the EAL interrupt
     * thread without a lock during the handshake: they run on that thread
     * (host/memif_guard.c). A server's too, and then its listener, which the
     * PMD frees but leaves registered, is retired there: a client still
     * connecting crashed that thread at exit (docs/reliability.md). */
    char role[16], sock[DL_NAME_LEN];
    bool memif = strncmp(port->dev->vdev, "net_memif", 9) == 0;
    const char *r = memif ? vdev_arg(port->dev->vdev, "role", role, sizeof role) : NULL;
    if (memif && r && (strcmp(r, "client") == 0 || strcmp(r, "slave") == 0))
        dl_memif_on_intr_thread(port->name, stop_and_close, port);
    else if (memif)
        dl_memif_server_close(
            port->name,
            vdev_arg(port->dev->vdev, "socket", sock, sizeof sock) ? sock : "/run/memif.sock",
            stop_and_close, port);
    else
        stop_and_close(port);
    if (port->hotplugged) {
        const char *bus = port->dev->pci_address[0] ? "pci" : "vdev";
        if (rte_eal_hotplug_remove(bus, port->name) != 0)
            DL_DEBUG("port", "%s: hotplug remove: %s", port->name, rte_strerror(rte_errno));
        port->hotplugged = false;
    }
    if (port->pool) {
        rte_mempool_free(port->pool);
        port->pool = NULL;
    }
    port->dev = NULL;
}

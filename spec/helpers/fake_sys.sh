# Test helper for spec/setup_spec.lua (sourced by bash): a sysfs/procfs/etc
# tree laid out as the kernel lays it out, for `setup.sh --root`, so that
# dpdk-bind and unbind run against files this test owns and never against
# this machine's NICs.
#
#   fake_tree DIR [iface...]   PCI NICs 0000:00:1f.0, 0000:00:1e.0, ... named
#                              after the ifaces (default dlu0 dlu1) on ixgbe,
#                              vfio-pci present, no IOMMU, 2M hugepages, 4 cores
#   fake_net                   in a fresh network namespace (unshare -n): the
#                              kernel side of dlu0/dlu1 as taps with addresses,
#                              gateways, and the default route on dlu1
#   fake_kernel_bind DIR PCI DRIVER IFACE   what the kernel does on a bind:
#                              the driver link moves, the netdev goes away

fake_nic() { # root pci ifname mac driver numa
    local F=$1 pci=$2 ifc=$3 mac=$4 drv=$5 numa=$6
    local d=$F/sys/devices/pci0000:00/$pci
    mkdir -p "$d/net/$ifc" "$F/sys/bus/pci/devices" "$F/sys/class/net" "$F/sys/bus/pci/drivers/$drv"
    echo 0x020000 >"$d/class"
    echo "$numa" >"$d/numa_node"
    echo "(null)" >"$d/driver_override"
    ln -s "../../../bus/pci/drivers/$drv" "$d/driver"
    ln -s "../../../devices/pci0000:00/$pci" "$F/sys/bus/pci/devices/$pci"
    ln -s "../../../$pci" "$d/net/$ifc/device"
    ln -s "../../devices/pci0000:00/$pci/net/$ifc" "$F/sys/class/net/$ifc"
    echo "$mac" >"$d/net/$ifc/address"
    echo 1500 >"$d/net/$ifc/mtu"
    echo up >"$d/net/$ifc/operstate"
    : >"$F/sys/bus/pci/drivers/$drv/bind"
    : >"$F/sys/bus/pci/drivers/$drv/unbind"
}

fake_tree() {
    local F=$1 i=0 ifc
    shift
    [ $# -gt 0 ] || set -- dlu0 dlu1
    for ifc in "$@"; do
        fake_nic "$F" "0000:00:$(printf %02x $((0x1f - i))).0" "$ifc" \
            "02:10:10:00:0$i:02" ixgbe 0
        i=$((i + 1))
    done
    mkdir -p "$F/sys/bus/pci/drivers/vfio-pci" "$F/sys/module/vfio/parameters" \
        "$F/sys/kernel/iommu_groups" "$F/sys/kernel/mm/hugepages/hugepages-2048kB" \
        "$F/sys/devices/system/cpu/cpu0" "$F/sys/devices/system/cpu/cpu1" \
        "$F/sys/devices/system/cpu/cpu2" "$F/sys/devices/system/cpu/cpu3" "$F/proc" "$F/etc/dpdk"
    : >"$F/sys/bus/pci/drivers/vfio-pci/bind"
    : >"$F/sys/bus/pci/drivers/vfio-pci/unbind"
    : >"$F/sys/bus/pci/drivers_probe"
    echo N >"$F/sys/module/vfio/parameters/enable_unsafe_noiommu_mode"
    echo 0 >"$F/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
    echo 0 >"$F/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
    echo 0-3 >"$F/sys/devices/system/cpu/online"
    : >"$F/proc/mounts"
}

fake_net() { # one ip process: forks are dear on a busy machine
    ip -batch - <<'EOF_IP'
tuntap add dlu0 mode tap
tuntap add dlu1 mode tap
link set dlu0 address 02:10:10:00:00:02
link set dlu1 address 02:10:10:00:01:02
link set dlu0 up
link set dlu1 up
addr add 10.10.0.2/24 dev dlu0
addr add fdb5::2/64 dev dlu0 nodad
addr add 10.10.1.2/24 dev dlu1
route add 10.10.9.0/24 via 10.10.0.1 dev dlu0
route add fdb6::/64 via fdb5::1 dev dlu0
route add default via 10.10.1.1 dev dlu1
EOF_IP
}

fake_kernel_bind() {
    local F=$1 pci=$2 drv=$3 ifc=$4
    ln -sfn "../../../bus/pci/drivers/$drv" "$F/sys/devices/pci0000:00/$pci/driver"
    rm -rf "$F/sys/class/net/$ifc" "$F/sys/devices/pci0000:00/$pci/net/$ifc"
    ip link del "$ifc" 2>/dev/null || true
}

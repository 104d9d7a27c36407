#!/usr/bin/env bash
# scripts/dpdk/setup.sh — from a fresh machine to a bound NIC and a working env.json.
#
#   setup.sh detect                     what this machine has (NICs, hugepages, IOMMU/IOVA, DPDK)
#   setup.sh hugepages [N] [size]       reserve N hugepages of size (2M or 1G) and mount hugetlbfs
#   setup.sh dpdk-bind <if|pci> [...]   record a NIC's kernel settings, bind it to vfio-pci or
#                                       igb_uio, write /etc/dpdk/env.json
#   setup.sh unbind <pci>               give a NIC back to its kernel driver and original name
#   setup.sh wizard [...]               all of the above, asked step by step (or given as flags)
#   setup.sh verify                     check env.json against this machine; each problem with its fix
#   setup.sh dev [...]                  write a development config (net_tap or net_memif, no hugepages)
#
# `setup.sh <command> --help` tells more. Global options (anywhere on the line):
#   --root DIR     sysfs, procfs and /etc under DIR (SETUP_ROOT): for tests, which build a fake
#                  tree; the network state (addresses, routes) is still the current namespace's
#   --config FILE  the env.json to write or check (SETUP_CONFIG; default /etc/dpdk/env.json)
#
# Never binds the interface that carries the default route or an SSH session (spec F21).
set -euo pipefail

PROG=setup.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${SETUP_ROOT:-}
CONFIG=${SETUP_CONFIG:-}
DPDK_DRIVERS="vfio-pci igb_uio uio_pci_generic"
# Drivers that DPDK drives while the kernel keeps the device (bifurcated):
# such a NIC needs no binding.
BIFURCATED_DRIVERS="mlx5_core mlx4_core"

# Debian's python3 first: a version manager's shim (pyenv) costs seconds per call.
PYTHON=$(command -v /usr/bin/python3 || command -v python3 || true)

# ---- output ----

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}
usage_error() {
    echo "$PROG: $*" >&2
    echo "run '$PROG --help' or '$PROG <command> --help'" >&2
    exit 2
}
note() { echo "$PROG: $*" >&2; }

# ---- the root prefix ----

live() { [ -z "$ROOT" ] || [ "$ROOT" = / ]; }
# The trees under the root prefix (set once the options are read); forks cost
# tens of milliseconds on a busy machine, so paths are plain variables.
set_root() {
    SYS=${ROOT%/}/sys PROC=${ROOT%/}/proc ETC=${ROOT%/}/etc
}
set_root
config_path() {
    if [ -n "$CONFIG" ]; then printf '%s' "$CONFIG"; else printf '%s' "$ETC/dpdk/env.json"; fi
}
rd() { # file [default]: REPLY = its first line, or the default (no subshell)
    if [ ! -r "$1" ] || ! IFS= read -r REPLY <"$1"; then REPLY=${2:-}; fi
}
read_file() { # file [default]: its first line, or the default
    local v
    if [ -r "$1" ] && IFS= read -r v <"$1"; then printf '%s' "$v"; else printf '%s' "${2:-}"; fi
}
write_sysfs() { # value file: what the kernel expects, a bare value and a newline
    [ -e "$2" ] || die "$2 does not exist (is the driver's module loaded?)"
    printf '%s\n' "$1" >"$2" || die "cannot write '$1' to $2 (run as root)"
}
is_root() { [ "$(id -u)" -eq 0 ]; }
need_root() {
    live || return 0
    is_root || die "$1 needs root: run 'sudo $0 ${*:2}'"
}

# ---- devices ----

PCI_RE='^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$'

# The PCI address of a network interface ("" for a virtual one). A virtio
# NIC's netdev hangs off virtio<N>, below its PCI function: the deepest path
# component that looks like a PCI address is the function.
# Read once per run (pci_map): every interface's PCI address, "" if virtual.
declare -A PCI_OF=()
PCI_MAPPED=0
pci_map() {
    [ "$PCI_MAPPED" = 1 ] && return 0
    PCI_OF=()
    local n dev part pci
    for n in "$SYS/class/net"/*; do
        [ -e "$n" ] || continue
        pci=""
        dev=$(readlink -f "$n/device" 2>/dev/null) || dev=""
        local IFS=/
        for part in $dev; do
            [[ $part =~ $PCI_RE ]] && pci=$part
        done
        unset IFS
        PCI_OF[${n##*/}]=$pci
    done
    PCI_MAPPED=1
}
pci_of_iface() {
    pci_map
    printf '%s' "${PCI_OF[$1]:-}"
}
ifaces_of_pci() { # the kernel interfaces of a PCI function, one per line
    pci_map
    local n
    for n in "${!PCI_OF[@]}"; do
        [ "${PCI_OF[$n]}" = "$1" ] && echo "$n"
    done
    return 0
}
driver_of() { # PCI address → its driver's name ("" when none)
    local link
    link=$(readlink "$SYS/bus/pci/devices/$1/driver" 2>/dev/null) || return 0
    printf '%s' "${link##*/}"
}
is_dpdk_driver() { [[ " $DPDK_DRIVERS " == *" $1 "* ]]; }
is_bifurcated() { [[ " $BIFURCATED_DRIVERS " == *" $1 "* ]]; }
numa_of() {
    rd "$SYS/bus/pci/devices/$1/numa_node" -1
    [ "$REPLY" = -1 ] && REPLY=-
    printf '%s' "$REPLY"
}
net_pci_devices() { # every PCI function of class "network controller" (0x02....)
    local d
    for d in "$SYS/bus/pci/devices"/*; do
        [ -e "$d" ] || continue
        [[ $(read_file "$d/class") == 0x02* ]] && echo "${d##*/}"
    done
    return 0
}
resolve_pci() { # an interface name or a PCI address → the PCI address
    local t=$1 pci
    if [[ $t =~ $PCI_RE ]]; then
        [ -e "$SYS/bus/pci/devices/$t" ] || die "no PCI device $t (see '$PROG detect')"
        printf '%s' "${t,,}"
        return
    fi
    [ -e "$SYS/class/net/$t" ] || die "no network interface '$t' (see '$PROG detect')"
    pci=$(pci_of_iface "$t")
    [ -n "$pci" ] || die "'$t' is not a PCI device (a virtual interface): DPDK reaches it through \
a vdev instead (net_tap, net_af_packet); for development, '$PROG dev' writes a net_tap config"
    printf '%s' "$pci"
}

# ---- the network state (the current network namespace) ----

iface_addresses() { # global IPv4 and IPv6 addresses of an interface, as CIDRs
    { ip -o addr show dev "$1" scope global 2>/dev/null || true; } | awk '{print $4}'
}
iface_gateway() { # family (4|6) iface → the first gateway of a route through it
    { ip -o "-$1" route show table all dev "$2" 2>/dev/null || true; } |
        awk '{for (i = 1; i < NF; i++) if ($i == "via") {print $(i + 1); exit}}'
}
default_route_ifaces() { # "iface gateway" per default route, IPv4 and IPv6
    { ip -o -4 route show default 2>/dev/null || true; ip -o -6 route show default 2>/dev/null || true; } |
        awk '{dev = ""; via = "-"
              for (i = 1; i < NF; i++) { if ($i == "dev") dev = $(i + 1); if ($i == "via") via = $(i + 1) }
              if (dev != "") print dev, via}'
}
iface_of_address() { # the interface that holds a local address
    [ -n "$1" ] || return 0
    { ip -o addr show to "$1" 2>/dev/null || true; } | awk '{print $2; exit}'
}
strip_addr() { # "[fd00::2]:22" / "10.0.0.2:22" / "::ffff:10.0.0.2" → the bare address
    local a=$1
    if [[ $a == \[* ]]; then a=${a#[}; a=${a%%]*}; else a=${a%:*}; fi
    a=${a#::ffff:}
    a=${a%%\%*}
    printf '%s' "$a"
}
# "iface from to" for each SSH session this machine serves: the session we
# run in (SSH_CONNECTION) and every established connection of sshd or to port 22.
ssh_sessions() {
    local client server sport ifc
    if [ -n "${SSH_CONNECTION:-}" ]; then
        read -r client _ server sport <<<"$SSH_CONNECTION" || true
        ifc=$(iface_of_address "$(strip_addr "$server")")
        [ -n "$ifc" ] && echo "$ifc $client $server:$sport"
    fi
    command -v ss >/dev/null || return 0
    { ss -Htnp state established 2>/dev/null || true; } | while read -r _ _ local peer rest; do
        [[ $local == *:22 || $rest == *'"sshd"'* ]] || continue
        ifc=$(iface_of_address "$(strip_addr "$local")")
        [ -n "$ifc" ] && echo "$ifc $peer $local"
    done
    return 0
}

# Refuse (exit 1) before touching anything when a kernel interface of the
# device carries the default route or an SSH session.
refuse_if_in_use() {
    local pci=$1 ifc dev via from to
    for ifc in $(ifaces_of_pci "$pci"); do
        while read -r dev via; do
            [ "$dev" = "$ifc" ] || continue
            die "refusing to bind $ifc ($pci): it carries the default route (default via $via \
dev $ifc). Binding it to a DPDK driver takes it away from the kernel and cuts this machine off the \
network. Bind a second NIC instead (one with no default route), or move the default route first."
        done < <(default_route_ifaces)
        while read -r dev from to; do
            [ "$dev" = "$ifc" ] || continue
            die "refusing to bind $ifc ($pci): it carries an SSH session (from $from to $to). \
Binding it would cut that session off. Bind another NIC, or connect through another interface first."
        done < <(ssh_sessions)
    done
}

# ---- hugepages, IOMMU, IOVA ----

hugepage_sizes() { # "2048kB" ... one per line
    local d
    for d in "$SYS/kernel/mm/hugepages"/hugepages-*; do
        [ -e "$d" ] && echo "${d##*/hugepages-}"
    done
    return 0
}
hugepages_total() { # over every size
    local s t=0
    for s in $(hugepage_sizes); do
        t=$((t + $(read_file "$SYS/kernel/mm/hugepages/hugepages-$s/nr_hugepages" 0)))
    done
    echo "$t"
}
hugetlbfs_mounts() { # "mountpoint pagesize" per hugetlbfs mount
    awk '$3 == "hugetlbfs" {ps = "default"; n = split($4, o, ",")
         for (i = 1; i <= n; i++) if (o[i] ~ /^pagesize=/) ps = substr(o[i], 10)
         print $2, ps}' "$PROC/mounts" 2>/dev/null || true
}
iommu_groups() {
    local n=0 g
    for g in "$SYS/kernel/iommu_groups"/*; do [ -e "$g" ] && n=$((n + 1)); done
    echo "$n"
}
vfio_noiommu() { [ "$(read_file "$SYS/module/vfio/parameters/enable_unsafe_noiommu_mode" N)" = Y ]; }

# The IOVA mode the EAL will pick and why (DPDK 22.11+ rte_eal_init logic):
# prints "MODE|reason". eal_args (one string) may force it or drop hugepages.
iova_mode() {
    local eal_args=${1:-} pci uio=0 vfio=0 groups
    if [[ $eal_args =~ --iova-mode[=\ ]([a-z]+) ]]; then
        echo "${BASH_REMATCH[1]^^}|forced by --iova-mode in eal_args"
        return
    fi
    for pci in $(net_pci_devices); do
        case $(driver_of "$pci") in
        igb_uio | uio_pci_generic) uio=1 ;;
        vfio-pci) vfio=1 ;;
        esac
    done
    groups=$(iommu_groups)
    if [ $uio = 1 ]; then
        echo "PA|a device is bound to a UIO driver (igb_uio/uio_pci_generic), which has no IOMMU \
mapping: DPDK hands the NIC physical addresses, which only root can read (/proc/self/pagemap)"
    elif [ $vfio = 1 ] && vfio_noiommu; then
        echo "PA|vfio-pci runs in no-IOMMU mode (no IOMMU here, as in a VM such as EC2): DPDK \
hands the NIC physical addresses, which only root can read (/proc/self/pagemap)"
    elif [[ $eal_args == *--no-huge* ]]; then
        echo "VA|--no-huge: no physical addresses to hand out (fine for vdevs such as net_tap and \
net_memif; a PCI NIC then needs an IOMMU)"
    elif ! is_root; then
        echo "VA|not root: physical addresses are unreadable, so the EAL falls back to VA (a \
PCI NIC without an IOMMU fails: run as root)"
    elif [ "$groups" -gt 0 ]; then
        echo "VA|an IOMMU is present ($groups groups): vfio-pci maps virtual addresses"
    else
        echo "PA|no IOMMU (no /sys/kernel/iommu_groups: a VM without vIOMMU, or intel_iommu/amd_iommu \
off): DPDK uses physical addresses, so it must run as root"
    fi
}

# ---- DPDK ----

dpdk_version() {
    pkg-config --modversion libdpdk 2>/dev/null ||
        dpkg-query -W -f='${Version}' dpdk 2>/dev/null ||
        echo "not found (install dpdk and libdpdk-dev: scripts/deps.sh)"
}
dpdk_pmd_dir() {
    local libdir d
    libdir=$(pkg-config --variable=libdir libdpdk 2>/dev/null) || libdir=/usr/lib/x86_64-linux-gnu
    for d in "$libdir"/dpdk/pmds-*; do [ -d "$d" ] && echo "$d" && return; done
    return 0
}
net_pmds() { # "tap memif ena ..." from the installed PMD libraries
    local dir f n out=""
    dir=$(dpdk_pmd_dir)
    [ -n "$dir" ] || return 0
    for f in "$dir"/librte_net_*.so; do
        [ -e "$f" ] || continue
        n=${f##*/librte_net_}
        out+="${n%.so} "
    done
    printf '%s' "${out% }"
}

online_cores() { # "0 1 2 ..." from the cpu list syntax "0-3,5"
    local list part a b out=""
    list=$(read_file "$SYS/devices/system/cpu/online")
    [ -n "$list" ] || list="0-$(($(nproc) - 1))"
    local IFS=,
    for part in $list; do
        if [[ $part == *-* ]]; then
            a=${part%-*} b=${part#*-}
            for ((; a <= b; a++)); do out+="$a "; done
        else
            out+="$part "
        fi
    done
    printf '%s' "${out% }"
}
# Workers busy-poll their cores: leave core 0 (interrupts, housekeeping,
# this shell) to the kernel when there is more than one.
default_cores() {
    local c=() x
    for x in $(online_cores); do c+=("$x"); done
    if [ ${#c[@]} -gt 1 ]; then c=("${c[@]:1}"); fi
    local IFS=,
    printf '%s' "${c[*]}"
}

# ---- env.json ----

# Python does the JSON: bash cannot, and every DPDK machine has python3
# (dpdk-devbind.py needs it).
json_tool() {
    [ -n "$PYTHON" ] || die "python3 is needed to read and write env.json (apt-get install python3)"
    "$PYTHON" - "$@" <<'PY'
import json, os, re, sys, tempfile, time

def load(path):
    with open(path) as f:
        return json.load(f)

def save(path, cfg):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".env.json.")
    text = json.dumps(cfg, indent=2)
    # arrays of numbers and strings on one line: [1, 2], ["10.0.0.2/24", "fd00::2/64"]
    text = re.sub(r'\[\s+([^\[\]{}]*?)\s+\]',
                  lambda m: "[" + re.sub(r',\s*\n\s*', ', ', m.group(1)) + "]", text)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)

def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

def new_config(platform, cores):
    return {"version": 1, "platform": platform, "generated_at": now(),
            "dpdk_cores": cores, "eal_args": [], "devices": []}

def cores_of(text):
    return [int(c) for c in text.split(",") if c != ""]

cmd, path = sys.argv[1], sys.argv[2]
a = dict(kv.split("=", 1) for kv in sys.argv[3:])

if cmd == "set-device":
    if os.path.exists(path):
        try:
            cfg = load(path)
        except ValueError as e:
            sys.exit("%s: not valid JSON (%s): fix or move it, then run again" % (path, e))
        if not isinstance(cfg, dict):
            sys.exit("%s: expected a JSON object: fix or move it, then run again" % path)
    else:
        cfg = new_config(a.get("platform", "unknown"), cores_of(a["cores"]))
    if a.get("cores_given") == "1":
        cfg["dpdk_cores"] = cores_of(a["cores"])
    devices = cfg.setdefault("devices", [])
    dev = next((d for d in devices if isinstance(d, dict)
                and d.get("pci_address", "").lower() == a["pci_address"]), None)
    if dev is None:
        dev = {"pci_address": a["pci_address"]}
        devices.append(dev)
    for key in ("mac", "original_name", "kernel_driver", "gateway_v4", "gateway_v6"):
        if a.get(key):
            dev[key] = a[key]
    if a.get("addresses"):
        dev["addresses"] = a["addresses"].split(",")
    if a.get("mtu"):
        dev["mtu"] = int(a["mtu"])
    if a.get("numa_node", "-") != "-":
        dev["numa_node"] = int(a["numa_node"])
    dev["role"] = a.get("role", "dpdk")
    cfg["generated_at"] = now()
    save(path, cfg)
elif cmd == "get-device":
    # key=value lines of the device with this PCI address (nothing if none)
    if not os.path.exists(path):
        sys.exit(0)
    for d in load(path).get("devices", []):
        if isinstance(d, dict) and d.get("pci_address", "").lower() == a["pci_address"]:
            for k, v in d.items():
                print("%s=%s" % (k, ",".join(v) if isinstance(v, list) else v))
elif cmd == "set-role":
    cfg = load(path)
    for d in cfg.get("devices", []):
        if isinstance(d, dict) and d.get("pci_address", "").lower() == a["pci_address"]:
            d["role"] = a["role"]
    cfg["generated_at"] = now()
    save(path, cfg)
elif cmd == "write-dev":
    cfg = {"version": 1, "platform": a["platform"], "generated_at": now(),
           "dpdk_cores": cores_of(a["cores"]),
           "eal_args": ["--no-huge", "-m", a.get("memory", "128"), "--no-pci", "--no-telemetry"],
           "devices": [{"vdev": a["vdev"], "mac": a["mac"],
                        "addresses": a["addresses"].split(","), "mtu": int(a["mtu"]),
                        "role": "dpdk"}]}
    if a.get("peer_addresses"):
        cfg["devices"][0]["peer_addresses"] = a["peer_addresses"].split(",")
    save(path, cfg)
elif cmd == "records":
    # The same line records verify reads from dpdklua's parser (below), for
    # a machine without dpdklua: the schema itself is not checked then.
    cfg = load(path)
    print("path %s" % path)
    for c in cfg.get("dpdk_cores", []):
        print("core %s" % c)
    for e in cfg.get("eal_args", []):
        print("eal %s" % e)
    for i, d in enumerate(cfg.get("devices", [])):
        for k in ("pci_address", "vdev", "original_name", "mac", "mtu", "role",
                  "gateway_v4", "gateway_v6"):
            if d.get(k) is not None:
                print("dev %d %s %s" % (i, k, d[k]))
        for k in ("addresses", "peer_addresses"):
            for x in d.get(k, []):
                print("dev %d %s %s" % (i, k, x))
else:
    sys.exit("json_tool: unknown command " + cmd)
PY
}

platform_name() {
    local p
    p=$(read_file "$SYS/class/dmi/id/product_name")
    [ -n "$p" ] || p=$(uname -m)
    printf '%s' "$p"
}

# ---- detect ----

usage_detect() {
    cat <<EOF
usage: $PROG detect

Shows what DPDK needs to know about this machine, changing nothing:
  - network interfaces: PCI address, driver, NUMA node, link state, MAC, MTU, addresses, and
    which carries the default route (that one is never bound);
  - PCI NICs already bound to a DPDK driver;
  - hugepages per size (reserved, free) and hugetlbfs mounts;
  - the IOMMU, and the IOVA mode DPDK will pick (VA or PA) and why (PA needs root);
  - CPU cores and a suggested dpdk_cores; the DPDK version and its network PMDs.
EOF
}

cmd_detect() {
    case ${1:-} in
    --help | -h) usage_detect; return ;;
    "") ;;
    *) usage_error "detect: unknown argument $1" ;;
    esac
    local defaults ssh n pci drv all_addrs
    defaults=$'\n'$(default_route_ifaces)
    ssh=$'\n'$(ssh_sessions)
    all_addrs=$({ ip -o addr show scope global 2>/dev/null || true; } | awk '{print $2, $4}')

    echo "== Network interfaces"
    printf '%-12s %-13s %-14s %-4s %-8s %-17s %-5s %s\n' \
        NAME PCI DRIVER NUMA LINK MAC MTU "ADDRESSES / NOTES"
    for n in "$SYS/class/net"/*; do
        [ -e "$n" ] || continue
        local ifc=${n##*/} notes="" addrs
        [ "$ifc" = lo ] && continue
        pci=$(pci_of_iface "$ifc")
        if [ -n "$pci" ]; then
            drv=$(driver_of "$pci")
        else
            pci=- drv=virtual
        fi
        local line numa=- state mac mtu
        addrs=""
        while read -r line; do
            [ "${line%% *}" = "$ifc" ] && addrs+="${line#* } "
        done <<<"$all_addrs"
        [[ $defaults == *$'\n'"$ifc "* ]] && notes+="[default route: never bound] "
        [[ $ssh == *$'\n'"$ifc "* ]] && notes+="[SSH session: never bound] "
        if [ "$pci" != - ]; then
            rd "$SYS/bus/pci/devices/$pci/numa_node" -1
            [ "$REPLY" = -1 ] || numa=$REPLY
        fi
        rd "$n/operstate" unknown; state=$REPLY
        rd "$n/address" -; mac=$REPLY
        rd "$n/mtu" -; mtu=$REPLY
        printf '%-12s %-13s %-14s %-4s %-8s %-17s %-5s %s\n' "$ifc" "$pci" "${drv:-none}" \
            "$numa" "$state" "$mac" "$mtu" "${addrs}${notes}"
    done

    echo
    echo "== PCI NICs without a kernel interface"
    local any=0
    for pci in $(net_pci_devices); do
        [ -z "$(ifaces_of_pci "$pci")" ] || continue
        any=1
        drv=$(driver_of "$pci")
        local how="not bound to any driver: '$PROG dpdk-bind $pci'"
        if is_dpdk_driver "$drv"; then how="bound to $drv: ready for DPDK"; fi
        [ -n "$drv" ] && ! is_dpdk_driver "$drv" && how="driver $drv (no interface)"
        printf '%-13s numa %-3s %s\n' "$pci" "$(numa_of "$pci")" "$how"
    done
    [ $any = 1 ] || echo "none"

    echo
    echo "== Hugepages"
    local s any_size=0
    for s in $(hugepage_sizes); do
        any_size=1
        local d
        d=$SYS/kernel/mm/hugepages/hugepages-"$s"
        printf '%-9s reserved %-6s free %s\n' "$s" "$(read_file "$d/nr_hugepages" 0)" \
            "$(read_file "$d/free_hugepages" 0)"
    done
    [ $any_size = 1 ] || echo "this kernel offers no hugepages (no /sys/kernel/mm/hugepages)"
    local mounts
    mounts=$(hugetlbfs_mounts)
    if [ -n "$mounts" ]; then
        echo "hugetlbfs mounted: $(tr '\n' ';' <<<"$mounts" | sed 's/;$//; s/;/; /g')"
    else
        echo "hugetlbfs: not mounted"
    fi
    if [ "$(hugepages_total)" -eq 0 ]; then
        echo "-> none reserved: '$PROG hugepages 1024' (2 GB of 2M pages) for a NIC; a development"
        echo "   config on net_tap/net_memif needs none (eal_args \"--no-huge\", '$PROG dev')"
    fi

    echo
    echo "== IOMMU and IOVA"
    local groups mode
    groups=$(iommu_groups)
    if [ "$groups" -gt 0 ]; then echo "IOMMU: present ($groups groups)"; else
        echo "IOMMU: none (no /sys/kernel/iommu_groups entries)"
    fi
    if [ -e "$SYS/module/vfio/parameters/enable_unsafe_noiommu_mode" ]; then
        echo "vfio no-IOMMU mode: $(vfio_noiommu && echo on || echo off)"
    fi
    mode=$(iova_mode "$(eal_args_of_config)")
    echo "IOVA mode DPDK will pick: ${mode%%|*}"
    echo "  why: ${mode#*|}"
    if [ "$groups" -eq 0 ]; then
        echo "  vfio-pci without an IOMMU needs its no-IOMMU mode (dpdk-bind turns it on); DPDK"
        echo "  then uses PA and must run as root (sudo), as on EC2 instances that are not metal"
    fi

    echo
    echo "== CPU cores"
    echo "online: $(online_cores)"
    local iso
    iso=$(read_file "$SYS/devices/system/cpu/isolated")
    echo "isolated (isolcpus): ${iso:-none}"
    echo "suggested dpdk_cores: [$(default_cores)] (core 0 stays with the kernel)"

    echo
    echo "== DPDK"
    echo "version: $(dpdk_version)"
    local t
    for t in dpdk-devbind.py dpdk-hugepages.py; do
        printf '%s: %s\n' "$t" "$(command -v "$t" || echo "not found (apt-get install dpdk)")"
    done
    echo "network PMDs: $(net_pmds)"
    echo "running as: $(is_root && echo root || echo "uid $(id -u) (DPDK with a NIC needs root)")"
}

# eal_args of the config dpdk-bind would write (for the IOVA explanation)
eal_args_of_config() {
    local p
    p=$(config_path)
    [ -r "$p" ] || return 0
    "$PYTHON" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1])).get("eal_args", [])))' \
        "$p" 2>/dev/null || true
}

# ---- hugepages ----

usage_hugepages() {
    cat <<EOF
usage: $PROG hugepages [N] [size]

Reserves N hugepages of size (2M or 1G; default 1024 of 2M = 2 GB) on each NUMA node and
mounts hugetlbfs at /dev/hugepages when none is mounted. Uses dpdk-hugepages.py when it is
installed, sysfs otherwise. Not kept across reboots: add hugepages=N to the kernel command line
(or a systemd unit running this) for that. A development config (net_tap, net_memif) needs none.
EOF
}

size_kb() { # 2M, 2048k, 1G, 2048kB → kB
    local s=${1,,}
    s=${s%b}
    case $s in
    *k) echo "${s%k}" ;;
    *m) echo $((${s%m} * 1024)) ;;
    *g) echo $((${s%g} * 1024 * 1024)) ;;
    *) usage_error "hugepages: size '$1': expected 2M or 1G" ;;
    esac
}

cmd_hugepages() {
    local n=1024 size=2M
    case ${1:-} in --help | -h) usage_hugepages; return ;; esac
    [ $# -ge 1 ] && n=$1
    [ $# -ge 2 ] && size=$2
    [ $# -le 2 ] || usage_error "hugepages: expected at most N and size, got: $*"
    [[ $n =~ ^[0-9]+$ ]] || usage_error "hugepages: N '$n': expected a number of pages"
    local kb
    kb=$(size_kb "$size")
    local dir
    dir=$SYS/kernel/mm/hugepages/hugepages-"$kb"kB
    [ -d "$dir" ] || die "this kernel has no ${size} hugepages (sizes: $(hugepage_sizes | tr '\n' ' ')); \
1G pages may need hugepagesz=1G on the kernel command line"
    need_root "hugepages" hugepages "$@"
    if live && command -v dpdk-hugepages.py >/dev/null; then
        local args=(-p "${kb}K" --reserve "$((n * kb))K")
        [ -n "$(hugetlbfs_mounts)" ] || args+=(--mount)
        dpdk-hugepages.py "${args[@]}"
    else
        local nodes=() node
        for node in "$SYS/devices/system/node"/node*/hugepages/hugepages-"$kb"kB; do
            [ -d "$node" ] && nodes+=("$node")
        done
        [ ${#nodes[@]} -gt 0 ] || nodes=("$dir")
        for node in "${nodes[@]}"; do write_sysfs "$n" "$node/nr_hugepages"; done
        if [ -z "$(hugetlbfs_mounts)" ] && live; then
            mkdir -p /dev/hugepages
            mount -t hugetlbfs -o "pagesize=${kb}K" nodev /dev/hugepages
        fi
    fi
    local got
    got=$(read_file "$dir/nr_hugepages" 0)
    echo "hugepages: $got of ${size} reserved (asked for $n per node)"
    if live && [ "$got" -lt "$n" ]; then
        note "the kernel found only $got free ${size} pages: memory is fragmented; reserve at boot \
(hugepages=$n on the kernel command line) or free memory and run again"
    fi
}

# ---- dpdk-bind ----

usage_bind() {
    cat <<EOF
usage: $PROG dpdk-bind <interface|pci-address> [options]

Records what the kernel knows of the NIC (original_name, MAC, global IPv4/IPv6 addresses,
gateways, MTU, kernel driver, NUMA node), binds it to a DPDK driver, then writes or updates
its entry in env.json (role "dpdk"). Refuses the interface that carries the default route
or an SSH session: binding takes the interface away from the kernel.
  --driver D       vfio-pci (default) or igb_uio (or uio_pci_generic)
  --address CIDR   an address to use (repeatable); needed when the NIC has none in the kernel
  --gateway4 IP, --gateway6 IP   gateways, when the kernel has no route through the NIC
  --cores LIST     dpdk_cores, e.g. 1,2,3 (a new env.json gets every core but 0)
  --config FILE    the env.json to write (default /etc/dpdk/env.json)
Without an IOMMU, vfio-pci's no-IOMMU mode is turned on (DPDK then uses IOVA PA: run as root).
'$PROG unbind <pci>' undoes it.
EOF
}

load_driver() { # make sure the driver is there; turn on vfio no-IOMMU mode when needed
    local drv=$1
    if [ ! -d "$SYS/bus/pci/drivers/$drv" ]; then
        live || die "no driver $drv in $SYS/bus/pci/drivers"
        case $drv in
        igb_uio) modprobe igb_uio 2>/dev/null || die "igb_uio is not loaded and cannot be: it is \
not part of the kernel; build it from dpdk-kmods (git://dpdk.org/dpdk-kmods, linux/igb_uio), or \
use vfio-pci" ;;
        *) modprobe "$drv" 2>/dev/null || die "cannot load the $drv module (modprobe $drv failed): \
install the kernel's extra modules (linux-modules-extra-\$(uname -r) on Ubuntu) or use another driver" ;;
        esac
    fi
    if [ "$drv" = vfio-pci ] && [ "$(iommu_groups)" -eq 0 ]; then
        local p
        p=$SYS/module/vfio/parameters/enable_unsafe_noiommu_mode
        if [ -e "$p" ] && ! vfio_noiommu; then
            write_sysfs Y "$p"
            note "no IOMMU on this machine: vfio no-IOMMU mode turned on (DPDK will use IOVA PA and must run as root)"
        fi
    fi
}

bind_device() { # pci driver
    local pci=$1 drv=$2 cur dev
    dev=$SYS/bus/pci/devices/"$pci"
    cur=$(driver_of "$pci")
    [ "$cur" = "$drv" ] && return 0
    if live && command -v dpdk-devbind.py >/dev/null; then
        # --force: our own checks (default route, SSH) ran above; dpdk-devbind.py's
        # would refuse any interface with a route, even a subnet's own.
        dpdk-devbind.py --force --bind="$drv" "$pci"
    else
        # What dpdk-devbind.py does: let only this driver take the device,
        # release it from its current one, and ask the kernel to probe it again.
        write_sysfs "$drv" "$dev/driver_override"
        [ -n "$cur" ] && write_sysfs "$pci" "$SYS/bus/pci/drivers/$cur/unbind"
        write_sysfs "$pci" "$SYS/bus/pci/drivers_probe"
    fi
    live || return 0 # a tree with no kernel behind it: nothing will move
    local i
    for ((i = 0; i < 50; i++)); do
        [ "$(driver_of "$pci")" = "$drv" ] && return 0
        sleep 0.1
    done
    die "$pci did not bind to $drv (it has '$(driver_of "$pci")'): see 'dmesg | tail' (a vfio-pci \
device needs an IOMMU or no-IOMMU mode; an IOMMU group shared with other devices must be bound whole)"
}

cmd_dpdk_bind() {
    local target="" drv=vfio-pci addresses=() gw4="" gw6="" cores="" cores_given=0
    while [ $# -gt 0 ]; do
        case $1 in
        --help | -h) usage_bind; return ;;
        --driver) drv=${2:?--driver needs a value}; shift ;;
        --driver=*) drv=${1#*=} ;;
        --address) addresses+=("${2:?--address needs a value}"); shift ;;
        --gateway4) gw4=${2:?--gateway4 needs a value}; shift ;;
        --gateway6) gw6=${2:?--gateway6 needs a value}; shift ;;
        --cores) cores=${2:?--cores needs a value}; cores_given=1; shift ;;
        -*) usage_error "dpdk-bind: unknown option $1" ;;
        *) [ -z "$target" ] || usage_error "dpdk-bind: one device at a time, got '$target' and '$1'"
           target=$1 ;;
        esac
        shift
    done
    [ -n "$target" ] || usage_error "dpdk-bind: which NIC? give an interface name or a PCI address"
    is_dpdk_driver "$drv" || usage_error "dpdk-bind: --driver $drv: expected one of $DPDK_DRIVERS"
    [[ -z $cores || $cores =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "dpdk-bind: --cores '$cores': expected a list like 1,2,3"

    local pci
    pci=$(resolve_pci "$target")
    refuse_if_in_use "$pci"
    need_root "dpdk-bind" dpdk-bind "$target"

    # What the kernel knows, before binding takes the interface away.
    local cur ifc="" mac="" mtu="" found=()
    cur=$(driver_of "$pci")
    ifc=$(ifaces_of_pci "$pci" | head -n1)
    local old
    old=$(json_tool get-device "$(config_path)" pci_address="$pci")
    if is_bifurcated "$cur"; then
        note "$pci runs $cur: DPDK drives it while the kernel keeps it (bifurcated); not binding it"
        drv=$cur
    fi
    if [ -n "$ifc" ]; then
        mac=$(read_file "$SYS/class/net/$ifc/address")
        mtu=$(read_file "$SYS/class/net/$ifc/mtu")
        mapfile -t found < <(iface_addresses "$ifc")
        [ -n "$gw4" ] || gw4=$(iface_gateway 4 "$ifc")
        [ -n "$gw6" ] || gw6=$(iface_gateway 6 "$ifc")
    elif is_dpdk_driver "$cur"; then
        note "$pci is already bound to $cur: updating its env.json entry only"
    fi
    [ ${#addresses[@]} -gt 0 ] || addresses=("${found[@]}")
    if [ ${#addresses[@]} -eq 0 ] && ! grep -q '^addresses=' <<<"$old"; then
        die "${ifc:-$pci} has no global address to record, and env.json needs one for a DPDK \
device: give it with --address 10.0.0.2/24 (repeatable)"
    fi
    [ -n "$cores" ] || cores=$(default_cores)
    local kdrv=$cur
    is_dpdk_driver "$cur" && kdrv=""

    load_driver "$drv"
    bind_device "$pci" "$drv"
    local IFS=,
    json_tool set-device "$(config_path)" pci_address="$pci" mac="$mac" mtu="$mtu" \
        original_name="$ifc" kernel_driver="$kdrv" addresses="${addresses[*]}" \
        gateway_v4="$gw4" gateway_v6="$gw6" numa_node="$(numa_of "$pci")" \
        cores="$cores" cores_given="$cores_given" platform="$(platform_name)" role=dpdk
    unset IFS
    echo "bound $pci${ifc:+ ($ifc)} to $drv; env.json: $(config_path)"
    [ -n "$gw4$gw6" ] || note "no gateway found for ${ifc:-$pci}: add gateway_v4/gateway_v6 to \
env.json if hosts off its subnet must be reached"
    echo "next: '$PROG verify', then run your service as root"
}

# ---- unbind ----

usage_unbind() {
    cat <<EOF
usage: $PROG unbind <pci-address> [--driver D]

Gives a NIC bound to a DPDK driver back to the kernel: to the kernel_driver env.json recorded
(or --driver D, or whichever the kernel picks), renames its interface back to original_name,
brings it up, and marks its env.json entry role "kernel". The addresses env.json recorded are
shown, not added: the system's network configuration (DHCP, netplan) normally restores them.
EOF
}

cmd_unbind() {
    local pci="" drv=""
    while [ $# -gt 0 ]; do
        case $1 in
        --help | -h) usage_unbind; return ;;
        --driver) drv=${2:?--driver needs a value}; shift ;;
        -*) usage_error "unbind: unknown option $1" ;;
        *) pci=$1 ;;
        esac
        shift
    done
    [ -n "$pci" ] || usage_error "unbind: which device? give its PCI address (see '$PROG detect')"
    [[ $pci =~ $PCI_RE ]] || usage_error "unbind: '$pci': expected a PCI address like 0000:28:00.0"
    pci=${pci,,}
    local dev cur rec name="" addrs=""
    dev=$SYS/bus/pci/devices/"$pci"
    [ -e "$dev" ] || die "no PCI device $pci"
    cur=$(driver_of "$pci")
    is_dpdk_driver "$cur" || die "$pci is not bound to a DPDK driver (it has '${cur:-none}'): nothing to undo"
    need_root "unbind" unbind "$pci"
    rec=$(json_tool get-device "$(config_path)" pci_address="$pci")
    [ -n "$drv" ] || drv=$(sed -n 's/^kernel_driver=//p' <<<"$rec")
    name=$(sed -n 's/^original_name=//p' <<<"$rec")
    addrs=$(sed -n 's/^addresses=//p' <<<"$rec")

    if live && [ -n "$drv" ] && command -v dpdk-devbind.py >/dev/null; then
        dpdk-devbind.py --bind="$drv" "$pci"
    else
        write_sysfs "$pci" "$SYS/bus/pci/drivers/$cur/unbind"
        # An empty driver_override lets the kernel match the device's own driver again.
        write_sysfs "" "$dev/driver_override"
        if [ -n "$drv" ] && [ -e "$SYS/bus/pci/drivers/$drv/bind" ]; then
            write_sysfs "$pci" "$SYS/bus/pci/drivers/$drv/bind"
        else
            write_sysfs "$pci" "$SYS/bus/pci/drivers_probe"
        fi
    fi
    if [ -e "$(config_path)" ] && [ -n "$rec" ]; then
        json_tool set-role "$(config_path)" pci_address="$pci" role=kernel
    fi
    if ! live; then
        echo "unbound $pci from $cur${drv:+ (for $drv)}; env.json: role kernel"
        return 0
    fi
    local i ifc=""
    for ((i = 0; i < 50; i++)); do
        PCI_MAPPED=0 # the kernel makes the interface now
        pci_map
        ifc=$(ifaces_of_pci "$pci" | head -n1)
        [ -n "$ifc" ] && break
        sleep 0.1
    done
    [ -n "$ifc" ] || die "$pci left $cur but no kernel interface appeared: see 'dmesg | tail'; \
bind it by hand with 'dpdk-devbind.py --bind=<its driver> $pci'"
    if [ -n "$name" ] && [ "$ifc" != "$name" ]; then
        ip link set dev "$ifc" down
        ip link set dev "$ifc" name "$name" && ifc=$name
    fi
    ip link set dev "$ifc" up || true
    echo "unbound $pci: $ifc on $(driver_of "$pci")"
    [ -z "$addrs" ] || echo "its recorded addresses: ${addrs//,/ } (if your network configuration \
does not restore them: ip addr add <address> dev $ifc)"
}

# ---- verify ----

usage_verify() {
    cat <<EOF
usage: $PROG verify [--config FILE]

Checks env.json against this machine and prints each problem with its fix; exits 1 when
there is a problem, 0 otherwise (warnings do not fail). Without --config it checks the file
dpdklua would read: DPDK_ENV_CONFIG, ./config/dpdk-env.json, /etc/dpdk/env.json, else the
built-in default (with --root: DIR/etc/dpdk/env.json; --config '<built-in>' checks the
built-in default). Checks: the file against dpdklua's own parser; each PCI device exists and
is bound to a DPDK driver; hugepages reserved and mounted (unless --no-huge); each core exists,
is online and is not core 0 (the kernel's); addresses and gateways sane; no address twice, in
the file or on a kernel interface; EAL arguments that cannot work together; root.
EOF
}

find_dpdklua() {
    local c
    for c in "${DPDKLUA:-}" "$HERE/../../dpdklua" "$HERE/dpdklua" "$(command -v dpdklua 2>/dev/null)"; do
        [ -n "$c" ] && [ -x "$c" ] && { printf '%s' "$c"; return; }
    done
    return 0
}

# Records of the config ("core N", "eal ARG", "dev I KEY VALUE") from dpdklua's own
# parser, so that verify judges the file by the runtime's rules.
config_records() { # path or <built-in>
    local dl
    dl=$(find_dpdklua)
    if [ -z "$dl" ]; then
        [ "$1" != "<built-in>" ] || die "no dpdklua found to read the built-in config: give --config"
        note "dpdklua not found: the schema is not checked by its parser (build it, or set DPDKLUA)"
        json_tool records "$1"
        return
    fi
    SETUP_VERIFY_CONFIG=$1 "$dl" -e '
local config = require "dpdk.config"
local path = os.getenv("SETUP_VERIFY_CONFIG")
local cfg, err
if path == "<built-in>" then
    cfg, err = config.parse(config.default_text(), path)
else
    cfg, err = config.load(path)
end
if not cfg then io.write("error ", (err:gsub("\n", " ")), "\n") return end
io.write("path ", cfg.path, "\n")
for _, c in ipairs(cfg.cores) do io.write("core ", c, "\n") end
for _, e in ipairs(cfg.eal_args) do io.write("eal ", e, "\n") end
for i, d in ipairs(cfg.devices) do
    for _, k in ipairs({ "pci_address", "vdev", "original_name", "mac", "mtu", "role",
                         "gateway_v4", "gateway_v6" }) do
        if d[k] ~= nil then io.write("dev ", i - 1, " ", k, " ", d[k], "\n") end
    end
    for _, k in ipairs({ "addresses", "peer_addresses" }) do
        for _, a in ipairs(d[k]) do io.write("dev ", i - 1, " ", k, " ", a, "\n") end
    end
end'
}

verify_config_path() {
    if [ -n "$CONFIG" ]; then printf '%s' "$CONFIG"
    elif ! live; then printf '%s' "$ETC/dpdk/env.json" # the tree stands for the whole machine
    elif [ -n "${DPDK_ENV_CONFIG:-}" ]; then printf '%s' "$DPDK_ENV_CONFIG"
    elif [ -e ./config/dpdk-env.json ]; then printf '%s' ./config/dpdk-env.json
    elif [ -e "$ETC/dpdk/env.json" ]; then printf '%s' "$ETC/dpdk/env.json"
    else printf '%s' "<built-in>"
    fi
}

# Address checks in python (ipaddress): one line per finding, "problem|text|fix"
# or "warning|text|fix". Input: the records, and the kernel's addresses.
check_addresses() {
    "$PYTHON" - "$1" "$2" <<'PY'
import ipaddress, sys
records, kernel = sys.argv[1], sys.argv[2]
devs = {}
for line in records.splitlines():
    p = line.split(" ", 3)
    if p[0] == "dev" and len(p) == 4:
        devs.setdefault(int(p[1]), []).append((p[2], p[3]))
kernel_addrs = {}
for line in kernel.splitlines():
    ifc, _, cidr = line.partition(" ")
    if cidr:
        kernel_addrs[str(ipaddress.ip_interface(cidr).ip)] = ifc
seen = {}
def out(kind, text, fix):
    print("%s|%s|%s" % (kind, text, fix))
for i, fields in sorted(devs.items()):
    d = dict((k, v) for k, v in fields if k not in ("addresses", "peer_addresses"))
    role = d.get("role", "dpdk")
    nets = []
    for key in ("addresses", "peer_addresses"):
        for cidr in (v for k, v in fields if k == key):
            field = "devices[%d].%s %s" % (i, key, cidr)
            itf = ipaddress.ip_interface(cidr)
            ip, net = itf.ip, itf.network
            if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local \
                    or (ip.version == 4 and ip == ipaddress.ip_address("255.255.255.255")):
                out("problem", "%s is not a unicast host address (loopback, multicast, "
                    "unspecified or link-local)" % field,
                    "use the address the NIC has on its network, like 10.0.0.2/24")
            elif ip.version == 4 and net.prefixlen < 31 and ip in (net.network_address,
                                                                    net.broadcast_address):
                out("problem", "%s is the %s address of %s" % (field,
                    "network" if ip == net.network_address else "broadcast", net),
                    "use a host address inside %s" % net)
            elif ip.version == 4 and net.prefixlen == 32 and key == "addresses":
                out("warning", "%s has prefix /32: no neighbour is on-link" % field,
                    "give the subnet's prefix length, like /24")
            key_ip = str(ip)
            if key_ip in seen:
                out("problem", "%s is used twice (also %s)" % (field, seen[key_ip]),
                    "give each address once: two stacks answering for one address break both")
            seen.setdefault(key_ip, field)
            if key == "addresses" and role == "dpdk" and key_ip in kernel_addrs:
                out("problem", "%s is also on the kernel interface %s" % (field,
                    kernel_addrs[key_ip]),
                    "remove it there (ip addr del %s dev %s) or pick another: the kernel and "
                    "dpdklua would both answer for it" % (cidr, kernel_addrs[key_ip]))
            if key == "addresses":
                nets.append(net)
    for key in ("gateway_v4", "gateway_v6"):
        if key in d:
            gw = ipaddress.ip_address(d[key])
            if not any(gw in n for n in nets if n.version == gw.version):
                out("problem", "devices[%d].%s %s is outside the device's subnets (%s)" % (
                    i, key, gw, ", ".join(sorted(set(str(n) for n in nets if n.version == gw.version)))
                    or "none of that family"),
                    "a gateway must be on-link: fix the address's prefix length or the gateway")
            elif str(gw) in seen:
                out("problem", "devices[%d].%s %s is also one of the config's own addresses (%s)"
                    % (i, key, gw, seen[str(gw)]), "the gateway is the router, not this host")
    mac = d.get("mac")
    if mac:
        first = int(mac.split(":")[0], 16)
        if first & 1 or mac.replace(":", "").strip("0") == "":
            out("problem", "devices[%d].mac %s is not a unicast MAC" % (i, mac),
                "use the NIC's own MAC (sysfs address) or a local one like 02:00:00:00:00:01")
PY
}

cmd_verify() {
    while [ $# -gt 0 ]; do
        case $1 in
        --help | -h) usage_verify; return ;;
        *) usage_error "verify: unknown argument $1" ;;
        esac
    done
    local path records problems=0 warnings=0
    path=$(verify_config_path)
    echo "verify: $path"
    problem() {
        problems=$((problems + 1))
        echo "problem: $1"
        echo "  fix: $2"
    }
    warning() {
        warnings=$((warnings + 1))
        echo "warning: $1"
        echo "  fix: $2"
    }
    records=$(config_records "$path")
    if [[ $records == error* ]]; then
        problem "${records#error }" "edit the file as the message says (scripts/dpdk/templates/env.example.json shows every field)"
        echo "verify: $problems problem(s), $warnings warning(s)"
        return 1
    fi
    local eal cores pcis vdevs has_pci=0
    eal=$(sed -n 's/^eal //p' <<<"$records" | tr '\n' ' ')
    cores=$(sed -n 's/^core //p' <<<"$records")
    pcis=$(awk '$1 == "dev" && $3 == "pci_address" {print $2, $4}' <<<"$records")
    vdevs=$(awk '$1 == "dev" && $3 == "vdev" {print $2, $4}' <<<"$records")
    [ -z "$pcis" ] || has_pci=1

    # devices
    local i pci drv role
    while read -r i pci; do
        [ -n "$pci" ] || continue
        role=$(awk -v i="$i" '$1 == "dev" && $2 == i && $3 == "role" {print $4}' <<<"$records")
        if [ ! -e "$SYS/bus/pci/devices/$pci" ]; then
            if [ "$role" = kernel ]; then # the runtime skips it
                warning "devices[$i].pci_address $pci (role \"kernel\"): no such PCI device on this machine" \
                    "correct the address or remove the entry"
            else
                problem "devices[$i].pci_address $pci: no such PCI device on this machine" \
                    "correct the address ('$0 detect' lists the NICs)"
            fi
            continue
        fi
        drv=$(driver_of "$pci")
        if [ "$role" = kernel ]; then
            is_dpdk_driver "$drv" && warning "devices[$i] ($pci) has role \"kernel\" but is bound to $drv" \
                "'$0 unbind $pci' gives it back to the kernel"
            continue
        fi
        if is_dpdk_driver "$drv" || is_bifurcated "$drv"; then
            echo "ok: devices[$i] $pci bound to $drv"
        else
            problem "devices[$i].pci_address $pci is bound to '${drv:-no driver}', not to a DPDK driver" \
                "'$0 dpdk-bind $pci' (vfio-pci), or use a bifurcated NIC driver"
        fi
    done <<<"$pcis"
    while read -r i drv; do
        [ -n "$drv" ] || continue
        case $drv in
        net_tap*)
            local tif
            tif=$(sed -n 's/.*iface=\([^,]*\).*/\1/p' <<<"$drv")
            if [ -n "$tif" ] && [ -e "/sys/class/net/$tif" ] && [ ! -e "/sys/class/net/$tif/tun_flags" ]; then
                problem "devices[$i].vdev $drv: interface $tif exists and is not a tap" \
                    "pick another iface= name, or remove $tif (ip link del $tif)"
            else
                echo "ok: devices[$i] vdev ${drv%%,*} (a tap${tif:+ named $tif})"
            fi ;;
        net_memif*)
            local sock
            sock=$(sed -n 's/.*socket=\([^,]*\).*/\1/p' <<<"$drv")
            sock=${sock:-/run/memif.sock}
            if [ -d "$(dirname "$sock")" ]; then
                echo "ok: devices[$i] vdev ${drv%%,*} (memif socket $sock)"
            else
                problem "devices[$i].vdev $drv: the memif socket's directory $(dirname "$sock") does not exist" \
                    "mkdir -p $(dirname "$sock"), or give socket= a path in an existing directory"
            fi ;;
        *) echo "ok: devices[$i] vdev ${drv%%,*}" ;;
        esac
    done <<<"$vdevs"
    if [ "$has_pci" = 1 ] && [[ " $eal " == *" --no-pci "* ]]; then
        problem "eal_args has --no-pci but devices name PCI addresses: the EAL would not see them" \
            "remove --no-pci from eal_args"
    fi

    # hugepages
    if [[ " $eal " == *" --no-huge "* ]]; then
        [[ " $eal " == *" --in-memory "* ]] && problem "eal_args has both --no-huge and --in-memory: the EAL refuses that pair" \
            "drop --in-memory"
        echo "ok: no hugepages needed (--no-huge)"
        [ "$has_pci" = 0 ] || warning "--no-huge with a PCI device: the NIC then needs an IOMMU (IOVA VA) and DMA memory is not pinned hugepages" \
            "drop --no-huge and reserve hugepages ('$0 hugepages 1024')"
    else
        local total
        total=$(hugepages_total)
        if [ "$total" -eq 0 ]; then
            problem "no hugepages are reserved, and eal_args has no --no-huge" \
                "'$0 hugepages 1024' (2 GB of 2M pages), or add \"--no-huge\" to eal_args for a vdev-only config"
        elif [ -z "$(hugetlbfs_mounts)" ]; then
            problem "$total hugepages are reserved but no hugetlbfs is mounted" \
                "'$0 hugepages $total' mounts it (or: mount -t hugetlbfs nodev /dev/hugepages)"
        else
            echo "ok: $total hugepages reserved, hugetlbfs mounted"
        fi
    fi

    # cores
    local online c n=0
    online=" $(online_cores) "
    for c in $cores; do
        n=$((n + 1))
        if [ ! -e "$SYS/devices/system/cpu/cpu$c" ]; then
            problem "dpdk_cores: core $c does not exist (this machine has cores${online% })" \
                "list existing cores in dpdk_cores, e.g. [$(default_cores)]"
        elif [[ $online != *" $c "* ]]; then
            problem "dpdk_cores: core $c is offline" \
                "bring it online (echo 1 > /sys/devices/system/cpu/cpu$c/online) or drop it"
        elif [ "$c" = 0 ] && [ "$(wc -w <<<"$online")" -gt 1 ]; then
            # A worker busy-polls its core at 100%: on core 0 it competes with
            # the kernel's interrupts and housekeeping (and with sshd).
            if [ "$has_pci" = 1 ]; then
                problem "dpdk_cores: core 0 is the kernel's (interrupts, housekeeping, your shell); a busy-polling worker there slows the whole machine" \
                    "drop 0 from dpdk_cores, e.g. [$(default_cores)]"
            else
                warning "dpdk_cores: core 0 is the kernel's; fine for development, not for a service" \
                    "drop 0 from dpdk_cores, e.g. [$(default_cores)]"
            fi
        fi
    done
    [ "$n" -gt 0 ] && echo "ok: $n core(s) in dpdk_cores: $(tr '\n' ' ' <<<"$cores")"

    # addresses
    local kernel kind text fix
    kernel=$(ip -o addr show 2>/dev/null | awk '{print $2, $4}')
    while IFS='|' read -r kind text fix; do
        [ -n "$kind" ] || continue
        if [ "$kind" = problem ]; then problem "$text" "$fix"; else warning "$text" "$fix"; fi
    done < <(check_addresses "$records" "$kernel")
    local naddr
    naddr=$(grep -c '^dev [0-9]* addresses ' <<<"$records" || true)
    echo "ok: $naddr address(es) checked"

    # root and IOVA
    local mode
    mode=$(iova_mode "$eal")
    if [ "$has_pci" = 1 ] && ! is_root; then
        problem "a PCI NIC needs root (device files, hugepages, physical addresses)" "run the service with sudo"
    fi
    if [ "$has_pci" = 1 ]; then
        echo "ok: IOVA mode will be ${mode%%|*}: ${mode#*|}"
    fi

    echo "verify: $problems problem(s), $warnings warning(s)"
    [ "$problems" -eq 0 ]
}

# ---- dev ----

usage_dev() {
    cat <<EOF
usage: $PROG dev [--tap | --memif] [options]

Writes a development config: no NIC, no hugepages (eal_args --no-huge --no-pci), like the
embedded default (config/dpdk-env.json).
  --tap              a net_tap device (default): the kernel side gets --peer, so curl and nc
                     on this machine reach the service
  --memif            a net_memif device, for two dpdklua processes on one machine
  --iface NAME       the tap's interface name (default dl0)
  --role server|client, --socket PATH, --id N    the memif's side, socket and id
  --address CIDR     the stack's address (default 10.99.0.2/24; memif client 10.98.0.3/24)
  --peer CIDR        the tap's kernel side (default 10.99.0.1/24)
  --mac MAC          the stack's MAC (default 02:d1:00:00:00:02)
  --cores LIST       dpdk_cores (default every online core)
  --output FILE      where to write (default ./config/dpdk-env.json); --force overwrites
EOF
}

cmd_dev() {
    local kind=tap iface=dl0 role=server sock=/run/dpdklua/memif.sock id=0 addr="" peer="" \
        mac=02:d1:00:00:00:02 cores="" out=./config/dpdk-env.json force=0
    [ -z "$CONFIG" ] || out=$CONFIG
    while [ $# -gt 0 ]; do
        case $1 in
        --help | -h) usage_dev; return ;;
        --tap) kind=tap ;;
        --memif) kind=memif ;;
        --iface) iface=${2:?--iface needs a value}; shift ;;
        --role) role=${2:?--role needs a value}; shift ;;
        --socket) sock=${2:?--socket needs a value}; shift ;;
        --id) id=${2:?--id needs a value}; shift ;;
        --address) addr=${2:?--address needs a value}; shift ;;
        --peer) peer=${2:?--peer needs a value}; shift ;;
        --mac) mac=${2:?--mac needs a value}; shift ;;
        --cores) cores=${2:?--cores needs a value}; shift ;;
        --output | -o) out=${2:?--output needs a value}; shift ;;
        --force | -f) force=1 ;;
        *) usage_error "dev: unknown argument $1" ;;
        esac
        shift
    done
    [[ $role == server || $role == client ]] || usage_error "dev: --role $role: expected server or client"
    [[ $iface =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || usage_error "dev: --iface '$iface': expected an interface name of at most 15 characters"
    [[ -z $cores || $cores =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "dev: --cores '$cores': expected a list like 0,1"
    if [ -z "$cores" ]; then
        cores=$(online_cores)
        cores=${cores// /,}
    fi
    local vdev peers=""
    if [ $kind = tap ]; then
        vdev="net_tap0,iface=$iface"
        addr=${addr:-10.99.0.2/24}
        peers=${peer:-10.99.0.1/24}
    else
        vdev="net_memif0,role=$role,socket=$sock,id=$id"
        if [ -z "$addr" ]; then
            if [ "$role" = server ]; then addr=10.98.0.2/24; else addr=10.98.0.3/24; fi
        fi
        [ -z "$peer" ] || usage_error "dev: --peer is for --tap (a memif has no kernel side)"
        mkdir -p "$(dirname "$sock")"
    fi
    if [ -e "$out" ] && [ $force = 0 ]; then
        die "$out exists: --force overwrites it, --output FILE writes elsewhere"
    fi
    json_tool write-dev "$out" vdev="$vdev" mac="$mac" addresses="$addr" peer_addresses="$peers" \
        mtu=1500 cores="$cores" platform="development: net_$kind (no NIC, no hugepages)"
    echo "wrote $out: $vdev, address $addr${peers:+, kernel side $peers}, dpdk_cores [$cores]"
    if [ $kind = tap ]; then
        echo "try: sudo DPDK_ENV_CONFIG=$out ./dpdklua examples/http.lua; curl http://${addr%/*}:8080/"
    else
        echo "the other side: '$PROG dev --memif --role $([ "$role" = server ] && echo client || echo server) --output other.json'"
    fi
}

# ---- wizard ----

usage_wizard() {
    cat <<EOF
usage: $PROG wizard [--yes] [--interface IF] [--driver D] [--cores LIST] [--hugepages N]
                    [--hugepage-size 2M|1G] [--address CIDR]... [--dev]

Walks through detect, hugepages, dpdk-bind and verify, asking at each step. With --yes (or
without a terminal) nothing is asked: the flags (or the defaults) answer, so scripts can run
it. --dev writes a development config (net_tap, no NIC) instead of binding a NIC.
EOF
}

ask() { # question default → the answer (the default with --yes)
    local answer
    if [ "$WIZ_YES" = 1 ]; then
        printf '%s' "$2"
        return
    fi
    read -r -p "$1 [$2]: " answer </dev/tty >&2 || answer=""
    printf '%s' "${answer:-$2}"
}

cmd_wizard() {
    WIZ_YES=0
    local ifc="" drv=vfio-pci cores="" huge="" hsize=2M addrs=() dev=0
    [ -t 0 ] || WIZ_YES=1
    while [ $# -gt 0 ]; do
        case $1 in
        --help | -h) usage_wizard; return ;;
        --yes | -y | --non-interactive) WIZ_YES=1 ;;
        --interface) ifc=${2:?--interface needs a value}; shift ;;
        --driver) drv=${2:?--driver needs a value}; shift ;;
        --cores) cores=${2:?--cores needs a value}; shift ;;
        --hugepages) huge=${2:?--hugepages needs a value}; shift ;;
        --hugepage-size) hsize=${2:?--hugepage-size needs a value}; shift ;;
        --address) addrs+=(--address "${2:?--address needs a value}"); shift ;;
        --dev) dev=1 ;;
        *) usage_error "wizard: unknown argument $1" ;;
        esac
        shift
    done
    echo "== 1/4 this machine"
    cmd_detect
    echo
    if [ $dev = 1 ]; then
        echo "== development config (net_tap, no NIC, no hugepages)"
        cmd_dev --output "$(config_path)" ${cores:+--cores "$cores"}
        cmd_verify_at "$(config_path)"
        return
    fi
    # the NICs that may be bound: PCI, not carrying the default route or SSH
    local candidates=() n pci
    for n in "$SYS/class/net"/*; do
        [ -e "$n" ] || continue
        pci=$(pci_of_iface "${n##*/}")
        [ -n "$pci" ] || continue
        (refuse_if_in_use "$pci" 2>/dev/null) || continue
        candidates+=("${n##*/}")
    done
    if [ -z "$ifc" ]; then
        if [ ${#candidates[@]} -eq 0 ]; then
            die "no NIC can be bound: every PCI NIC carries the default route or an SSH session \
(or there is none). Add a second NIC for DPDK, or use '$PROG wizard --dev' for a development config"
        fi
        ifc=$(ask "== 2/4 NIC to bind (${candidates[*]})" "${candidates[0]}")
    fi
    drv=$(ask "driver (vfio-pci, igb_uio)" "$drv")
    [ -n "$cores" ] || cores=$(ask "dpdk_cores" "$(default_cores)")
    [ -n "$huge" ] || huge=$(ask "== 3/4 hugepages of $hsize to reserve (0: none)" 1024)
    if [ "$huge" != 0 ]; then
        cmd_hugepages "$huge" "$hsize"
    fi
    echo "== 4/4 binding $ifc"
    cmd_dpdk_bind "$ifc" --driver "$drv" --cores "$cores" ${addrs[@]+"${addrs[@]}"}
    cmd_verify_at "$(config_path)"
}

cmd_verify_at() { # verify the file just written (a problem is reported, not fatal here)
    local saved=$CONFIG rc=0
    CONFIG=$1
    cmd_verify || rc=$?
    CONFIG=$saved
    return $rc
}

# ---- main ----

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

args=()
while [ $# -gt 0 ]; do
    case $1 in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --root=*) ROOT=${1#*=} ;;
    --config) CONFIG=${2:?--config needs a file}; shift ;;
    --config=*) CONFIG=${1#*=} ;;
    *) args+=("$1") ;;
    esac
    shift
done
set -- ${args[@]+"${args[@]}"}
if [ -n "$ROOT" ] && [ "$ROOT" != / ] && [ ! -d "$ROOT" ]; then
    usage_error "--root $ROOT: no such directory"
fi
set_root

cmd=${1:-}
[ $# -gt 0 ] && shift
# Here, not in the command substitutions that ask for it (a subshell's map is lost).
case $cmd in detect | dpdk-bind | bind | unbind | wizard) pci_map ;; esac
case $cmd in
detect) cmd_detect "$@" ;;
hugepages) cmd_hugepages "$@" ;;
dpdk-bind | bind) cmd_dpdk_bind "$@" ;;
unbind) cmd_unbind "$@" ;;
wizard) cmd_wizard "$@" ;;
verify) cmd_verify "$@" ;;
dev) cmd_dev "$@" ;;
"" | help | --help | -h) usage ;;
*) usage_error "unknown command '$cmd'" ;;
esac

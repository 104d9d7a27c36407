#!/bin/sh
# check-isolation.sh DIR N — prove that the N stack copies in DIR are isolated:
#  1. stack_inst_<i>.o defines exactly one global symbol, stack_ops_<i>
#     (undefined references to DPDK and libc are fine), and in a sanitizer
#     build (make asan) its renamed ASan ODR indicator, __odr_asan_gen_stack_ops_<i>;
#  2. linked together, the copies keep distinct lwIP state: lwIP's globals
#     (now local symbols) sit at N distinct addresses, one per copy.
set -eu
dir=$1
n=$2
fail() { echo "check-stack: FAIL: $*" >&2; exit 1; }

copies=
i=0
while [ "$i" -lt "$n" ]; do
    f=$dir/stack_inst_$i.o
    globals=$(nm -g --defined-only "$f" | awk -v odr="^__odr_asan(_gen_|[.])stack_ops_$i\$" \
        '$3 !~ odr { print $3 }')
    [ "$globals" = "stack_ops_$i" ] || fail "$f exports: $(echo $globals)"
    copies="$copies $f"
    i=$((i + 1))
done
echo "check-stack: each of $n copies exports only stack_ops_<i>"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A relocatable link resolves nothing external but lays every copy's
# sections side by side: a symbol's value is its offset in the merged section.
ld -r -o "$tmp/all.o" $copies
for sym in tcp_active_pcbs netif_list st_inst memp_memory_TCP_PCB_base; do
    got=$(nm "$tmp/all.o" | awk -v s="$sym" '$3 == s && $2 ~ /^[bBdD]$/ { print $1 }' | sort -u | wc -l)
    [ "$got" -eq "$n" ] || fail "$sym: $got distinct copies, expected $n"
done
echo "check-stack: tcp_active_pcbs, netif_list, st_inst and the pcb pool exist $n times at distinct addresses"
size "$dir/stack_inst_0.o" | awk 'NR == 2 { printf "check-stack: per copy: text %d, data %d, bss %d bytes\n", $1, $2, $3 }'

#!/usr/bin/env bash
# Installs what dpdklua needs on Debian 12 and fetches the lwIP source.
# Idempotent: a second run installs nothing and downloads nothing.
# Used by the Makefile (make deps / make test), .ci/run and the README.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build"
lwip_version="2.2.1+dfsg1-1+deb13u1"
lwip_dir="$build/lwip"

packages=(
  build-essential pkg-config git ca-certificates
  libdpdk-dev dpdk libnuma-dev libbsd-dev
  luajit2 libluajit2-5.1-dev libcjson-dev lua-busted luarocks
  curl iproute2 iputils-ping netcat-openbsd python3 procps util-linux kmod dpkg-dev
  clang libclang-rt-14-dev llvm
  # dpdk.ngx (ngx.re, digests) and the specs that run lua-resty libraries against
  # real peers and compare with nginx + lua module (which needs luajit2, above)
  libpcre2-8-0 libssl3 zlib1g redis-server memcached python3-websockets
  nginx-light libnginx-mod-http-lua
  # make bench: the kernel anchors' load generator
  wrk
  # observability and examples: tshark reads DPDKLUA_PCAP captures, dpdk-dev has
  # dpdk-telemetry.py, redis-tools drives examples/redis.lua (docs/observability.md)
  tshark dpdk-dev redis-tools
)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  as_root apt-get update -qq
  # redis-server, memcached and nginx must not start as services on install:
  # the specs start their own, bound to test addresses only (policy-rc.d 101).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# lwIP comes from Debian's source package (trixie has 2.2.1 with the post-2.1.3 TCP
# fixes). A deb-src line changes no installed package. LWIP_SRC overrides all this.
if [ -n "${LWIP_SRC:-}" ]; then
  echo "deps: using LWIP_SRC=$LWIP_SRC"; exit 0
fi
if [ ! -f "$lwip_dir/src/core/tcp.c" ]; then
  list=/etc/apt/sources.list.d/dpdklua-lwip-src.list
  if ! grep -qs "trixie" "$list"; then
    echo "deb-src http://deb.debian.org/debian trixie main" | as_root tee "$list" >/dev/null
  fi
  mkdir -p "$build/lwip-src"
  # The pinned version first; if trixie has moved on to a newer 2.2.x update,
  # take that one (the pinned file is gone from the index then).
  fetch_lwip() {
    (cd "$build/lwip-src" &&
      { apt-get source --download-only "lwip=$lwip_version" >/dev/null 2>&1 ||
        apt-get source --download-only lwip >/dev/null 2>&1; })
  }
  # A missing or stale source index (an earlier update that failed) gets one
  # apt-get update and a second try.
  if ! fetch_lwip; then
    as_root apt-get update -qq
    fetch_lwip || { echo "deps: apt-get source lwip failed (see apt's messages above)" >&2; exit 1; }
  fi
  tarball=$(ls "$build"/lwip-src/lwip_2.2.*.orig.tar.* 2>/dev/null | head -n1)
  if [ -z "$tarball" ]; then
    echo "deps: no lwIP 2.2.x source found (got: $(ls "$build/lwip-src"));" \
         "set LWIP_SRC=/path/to/lwip-2.2.1" >&2
    exit 1
  fi
  rm -rf "$lwip_dir" && mkdir -p "$lwip_dir"
  tar -xf "$tarball" -C "$lwip_dir" --strip-components=1
  echo "deps: lwIP source unpacked in $lwip_dir"
fi

-- luarocks --lua-version=5.1 make      builds ./dpdklua and installs it with its modules
-- (dpdklua is LuaJIT with the host linked in: the rock targets Lua 5.1, LuaJIT's dialect).
rockspec_format = "3.0"
package = "dpdklua"
version = "0.1.0-1"
source = {
   -- The project's repository; `luarocks make` builds from the working tree instead.
   url = "git+https://github.com/dpdklua/dpdklua.git",
   tag = "v0.1.0",
}
description = {
   summary = "Kernel-bypass TCP services in Lua: DPDK, lwIP and OpenResty-style cosockets",
   detailed = [[
dpdklua runs one busy-polling worker per CPU core; each owns a DPDK queue pair, a private
lwIP TCP/IP stack and a LuaJIT state whose coroutines do TCP I/O through cosockets
(require "dpdk", "dpdk.tcp", "dpdk.ngx"). The rock installs the dpdklua interpreter (LuaJIT
with the C host linked in), the Lua modules and dpdklua-setup (scripts/dpdk/setup.sh).
]],
   homepage = "https://github.com/dpdklua/dpdklua",
   -- The project has no LICENSE file yet: put its licence here when it has one.
   license = "unspecified",
   labels = { "dpdk", "networking", "tcp", "cosocket", "luajit" },
}
supported_platforms = { "linux" }
dependencies = {
   "lua >= 5.1, < 5.2",
}
-- Debian 12: libdpdk-dev, libcjson-dev, libluajit2-5.1-dev (scripts/deps.sh installs them).
external_dependencies = {
   DPDK = { header = "dpdk/rte_eal.h", library = "rte_eal" },
   CJSON = { header = "cjson/cJSON.h", library = "cjson" },
   LUAJIT = { header = "luajit-2.1/luajit.h", library = "luajit-5.1" },
}
build = {
   type = "make",
   -- No CFLAGS here: the Makefile adds its own to the user's (-Wall -Werror, DPDK's).
   build_variables = {
      PREFIX = "$(PREFIX)",
   },
   install_variables = {
      PREFIX = "$(PREFIX)",
      BINDIR = "$(BINDIR)",
      LUADIR = "$(LUADIR)",
   },
}
test = {
   type = "command",
   command = "bash scripts/test.sh",
}

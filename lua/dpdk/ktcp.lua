-- dpdk.ktcp — TCP cosockets over the kernel's sockets, inside the runtime
-- (spec F15): the interface of dpdk.tcp, run by the same Lua code
-- (dpdk.socket) over dl_ktcp_* (host/ktcp.c), for peers the DPDK device does
-- not reach, e.g. a server on 127.0.0.1.
--
--   local ktcp = require "dpdk.ktcp"
--   local up = assert(ktcp.connect("127.0.0.1", 6379, { timeout = 1000 }))
--   assert(up:send({ "PING", "\r\n" }))
--   local line = up:receive("*l")
--
-- The sockets are non-blocking; a task that waits parks as on a DPDK socket
-- and the worker's loop asks epoll (timeout 0) only while one of its kernel
-- sockets waits. A socket belongs to the worker that made it (another
-- worker's use raises). Listening takes any address the kernel has ("*":
-- all). Names resolve through dpdk.resolve. Pools (setkeepalive) are per
-- worker and apart from dpdk.tcp's; tcp.defaults and ktcp.defaults are one
-- set.
local transport = require "dpdk.transport"

return require("dpdk.tcp_api").new(transport.kernel, "ktcp")

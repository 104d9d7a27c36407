-- dpdk.tcp — TCP cosockets over the worker's private lwIP (OpenResty style).
--
--   local tcp = require "dpdk.tcp"
--   local l = assert(tcp.listen("10.99.0.2", 8080))
--   local c, peer_ip, peer_port = l:accept()
--   local line, err, partial = c:receive("*l")
--
-- tcp.socket(family), tcp.connect(host, port [, opts]), tcp.listen(ip, port
-- [, opts]) (ip: one of the device's configured addresses, or
-- "*"/"0.0.0.0"/"::"), tcp.defaults{...}. A thin façade (dpdk.tcp_api):
-- sockets live in dpdk.socket, listeners in dpdk.listener, pools in
-- dpdk.pool; dpdk.ktcp is the same over kernel sockets. Errors are returned
-- as nil, "timeout" | "closed" | "connection reset by peer" | …; misuse
-- (wrong argument types, a socket used on another worker) raises.
local transport = require "dpdk.transport"

return require("dpdk.tcp_api").new(transport.dpdk, "tcp")

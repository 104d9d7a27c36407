-- dpdk.transport — the C calls a cosocket runs on, one table per transport:
-- `dpdk` (dl_tcp_*: the worker's private lwIP) and `kernel` (dl_ktcp_*:
-- non-blocking kernel sockets, host/ktcp.c). Both sets have the same
-- signatures and the same results (host/api.h): bytes (or 0), 0 from recv for
-- EOF, -DL_E_AGAIN with the caller's token armed, or another negated DL_E_*
-- code. dpdk.socket keeps a socket's transport in sock.T and never calls C
-- by name, so the cosocket logic (framing, timeouts, buffers, pools) exists
-- once for both.
local ffi = require "ffi"
local C = require "dpdk.cdef"

local ffi_string, error = ffi.string, error

local M = {}

M.dpdk = {
    name = "dpdk tcp",
    new = C.dl_tcp_new, free = C.dl_tcp_free, bind = C.dl_tcp_bind, listen = C.dl_tcp_listen,
    accept = C.dl_tcp_accept, connect = C.dl_tcp_connect, send = C.dl_tcp_send,
    recv = C.dl_tcp_recv, state = C.dl_tcp_state, shutdown_send = C.dl_tcp_shutdown_send,
    setopt = C.dl_tcp_setopt, getopt = C.dl_tcp_getopt, addr = C.dl_tcp_addr,
    worker = C.dl_tcp_worker, core = C.dl_tcp_core,
    box = ffi.new("dl_conn *[1]"), -- accept's out parameter
    pool_prefix = "",              -- pool keys as OpenResty's ("ip:port" or connect's pool)
    listen_reuseaddr = false,
    spin_turns = 64, -- loop turns a reader may run itself before it parks (sched.spin)
}

M.kernel = {
    name = "kernel tcp",
    new = C.dl_ktcp_new, free = C.dl_ktcp_free, bind = C.dl_ktcp_bind, listen = C.dl_ktcp_listen,
    accept = C.dl_ktcp_accept, connect = C.dl_ktcp_connect, send = C.dl_ktcp_send,
    recv = C.dl_ktcp_recv, state = C.dl_ktcp_state, shutdown_send = C.dl_ktcp_shutdown_send,
    setopt = C.dl_ktcp_setopt, getopt = C.dl_ktcp_getopt, addr = C.dl_ktcp_addr,
    worker = C.dl_ktcp_worker, core = C.dl_ktcp_core,
    box = ffi.new("dl_kconn *[1]"),
    pool_prefix = "ktcp:", -- a kernel connection never lands in a DPDK socket's pool
    listen_reuseaddr = true, -- as nginx's listeners: a restart finds its port in TIME_WAIT
    spin_turns = 0, -- each attempt is a system call: park at once
}

local E_MISUSE, E_SYSTEM = C.DL_E_MISUSE, C.DL_E_SYSTEM

-- OpenResty's texts for the DL_E_* conditions.
local ERR_TEXT = {
    [C.DL_E_CLOSED] = "closed",
    [C.DL_E_REFUSED] = "connection refused",
    [C.DL_E_RESET] = "connection reset by peer",
    [C.DL_E_ADDRNOTAVAIL] = "address not available",
    [C.DL_E_ADDRINUSE] = "address in use",
    [C.DL_E_TIMEDOUT] = "connection timed out",
    [C.DL_E_ABORTED] = "connection aborted",
    [C.DL_E_NOMEM] = "no memory",
    [C.DL_E_UNREACH] = "network unreachable",
    [C.DL_E_INVAL] = "invalid argument",
    [C.DL_E_SELF] = "own address: this stack has no loopback (call the handler directly, "
        .. "or reach a kernel service with dpdk.ktcp)",
}

-- The text of a negated DL_E_* result; misuse raises with C's reason (level:
-- the caller's caller by default).
function M.err_text(rc, level)
    local code = -rc
    if code == E_MISUSE then error(ffi_string(C.dl_errmsg()), (level or 2) + 1) end
    if code == E_SYSTEM then return ffi_string(C.dl_errmsg()) end
    return ERR_TEXT[code] or "error"
end

-- setoption / getoption names → DL_OPT_*.
M.OPTIONS = {
    keepalive = C.DL_OPT_KEEPALIVE, reuseaddr = C.DL_OPT_REUSEADDR,
    ["tcp-nodelay"] = C.DL_OPT_NODELAY, sndbuf = C.DL_OPT_SNDBUF, rcvbuf = C.DL_OPT_RCVBUF,
    keepintvl = C.DL_OPT_KEEPINTVL, keepcnt = C.DL_OPT_KEEPCNT,
    ttl = C.DL_OPT_TTL, -- ours (IP_TTL)
}

return M

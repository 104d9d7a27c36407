-- dpdk.listener — a listening cosocket (what tcp.listen and ktcp.listen
-- make) over a transport (dpdk.transport), handing out dpdk.socket sockets.
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"
local socket = require "dpdk.socket"
local transport = require "dpdk.transport"

local E_AGAIN = C.DL_E_AGAIN
local new_token, wake, running_task = sched.token, sched.wake, sched.running_task
local now = C.dl_now
local type, tostring, error, pairs = type, tostring, error, pairs
local floor = math.floor
local attach, release, err_text, park, timeout_ms = socket.attach, socket.release,
    socket.err_text, socket.park, socket.timeout_ms
local accepting = socket.accepting
-- a listener has a socket's layout (dpdk.socket: T, CONN, GEN, USER); its
-- waiters (task -> token) and accept timeout (ms) live in its side table
local F = socket.SLOTS
local T_, CONN, GEN, USER, COLD = F.T, F.CONN, F.GEN, F.USER, F.COLD

local M = {}

local Listener = {}
Listener.__index = Listener

--- listen(T, ip, port [, { backlog = 511 }], what) → listener | nil, err
function M.listen(T, ip, port, opts, what)
    if type(ip) ~= "string" then
        error(what .. ": expected an IP address string, got " .. type(ip), 3)
    end
    if type(port) ~= "number" or port ~= floor(port) or port < 0 or port > 65535 then
        error(what .. ": expected a port number 0..65535, got " .. tostring(port), 3)
    end
    local backlog = opts and opts.backlog or 511
    local self = socket.new_object(T, Listener)
    self[COLD] = { accept_timeout = 0, waiters = {} }
    attach(self, socket.new_conn(T, socket.is_ipv6(ip) and 6 or 4, 3))
    local conn = self[CONN]
    local bind_ip = (ip == "0.0.0.0" or ip == "::") and "*" or ip
    local rc = 0
    if T.listen_reuseaddr then rc = T.setopt(conn, C.DL_OPT_REUSEADDR, 1) end
    if rc == 0 then rc = T.bind(conn, bind_ip, port) end
    if rc == 0 then rc = T.listen(conn, backlog) end
    if rc ~= 0 then
        local err = err_text(rc, 3)
        if rc == -C.DL_E_ADDRNOTAVAIL and T == transport.dpdk then
            err = err .. ": " .. ip .. " is not an address of this runtime's devices (env.json devices[].addresses)"
        end
        release(self)
        return nil, err
    end
    return self
end

--- listener:accept() → sock, peer_ip, peer_port | nil, err
-- Several tasks may wait in accept: each connection goes to one of them.
-- C keeps one armed token per listener, so a waiter that wakes (for a
-- connection, a timeout or its end) wakes the others to try again and one of
-- them re-arms it.
function Listener:accept()
    local conn = self[CONN]
    if not conn then return nil, "closed" end
    local task = running_task()
    self[USER] = task or false
    local T, c = self[T_], self[COLD]
    local gen, waiters, box, deadline = self[GEN], c.waiters, T.box, nil
    while true do
        local token = new_token()
        local rc = T.accept(conn, box, token)
        if rc == 0 then
            local sock = socket.new(T, box[0]) -- used (no `unused` mark)
            local ip, port = sock:peer_addr()
            return sock, ip, port
        end
        if rc ~= -E_AGAIN then return nil, err_text(rc) end
        if not deadline then
            local ms = c.accept_timeout
            deadline = ms > 0 and now() + ms / 1000 or 1e300
        end
        if not task then error("accept has to wait: call it from a task", 2) end
        waiters[task], accepting[task] = token, self
        local why = park(token, deadline)
        waiters[task], accepting[task] = nil, nil
        if self[GEN] ~= gen then return nil, "closed" end
        for _, tok in pairs(waiters) do wake(tok) end
        if why == "timeout" then return nil, "timeout" end
    end
end

--- listener:settimeout(ms): how long accept waits (nil or 0, the default: forever)
function Listener:settimeout(ms)
    self[COLD].accept_timeout = timeout_ms(ms, "settimeout")
end

function Listener:setoption(name, value) return socket.setoption(self, name, value) end
function Listener:getoption(name) return socket.getoption(self, name) end
function Listener:local_addr() return socket.addr(self, 0) end

function Listener:close()
    if not self[CONN] then return nil, "closed" end
    release(self)
    return 1
end

Listener.__tostring = function(self)
    return self[T_].name .. (self[CONN] and " listener" or " listener (closed)")
end

return M

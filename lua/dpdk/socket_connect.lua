-- dpdk.socket_connect — a cosocket's way to a peer and back into a pool:
-- bind, connect (names through dpdk.resolve, connect's pool / pool_size /
-- backlog options), setkeepalive and getreusedtimes. dpdk.socket installs
-- these methods on its Socket table (this module returns the installer), so
-- both transports share them; a pool key carries the transport's prefix.
local C = require "dpdk.cdef"
local pool = require "dpdk.pool"
local resolve = require "dpdk.resolve"
local sched = require "dpdk.sched"

local E_AGAIN = C.DL_E_AGAIN
local new_token, running_task = sched.token, sched.running_task
local now = C.dl_now
local type, tostring, tonumber, error = type, tostring, tonumber, error
local floor, max = math.floor, math.max
local band = bit.band

return function(Socket, S)
    local attach, release, fail, busy, park, seconds, timeout_ms, err_text, defaults, cold,
        join_pool, leave_pool = S.attach, S.release, S.fail, S.busy, S.park, S.seconds,
        S.timeout_ms, S.err_text, S.defaults, S.cold, S.join_pool, S.leave_pool
    local F = S.SLOTS
    local T_, CONN, GEN, READER, WRITER, CONNECTOR, USER, READ_CLOSED, WRITE_CLOSED, COLD =
        F.T, F.CONN, F.GEN, F.READER, F.WRITER, F.CONNECTOR, F.USER, F.READ_CLOSED,
        F.WRITE_CLOSED, F.COLD

    --- sock:bind(ip [, port]) before connect: the local address (and port) it connects from
    function Socket:bind(ip, port)
        if type(ip) ~= "string" then
            error("bind: expected an IP address string, got " .. type(ip), 2)
        end
        S.check_port(port or 0, "bind")
        local c = cold(self)
        c.bind_ip, c.bind_port = ip, port or 0
        local conn = self[CONN]
        if not conn then return true end -- applied by connect
        local rc = self[T_].bind(conn, ip, port or 0)
        if rc ~= 0 then return nil, err_text(rc) end
        return true
    end

    -- A fresh connection for connect: the socket's own if never used, else new.
    local function fresh_conn(self, host)
        local family = S.is_ipv6(host) and 6 or 4
        local c = cold(self)
        if self[CONN] and c.unused and c.family == family then return true end
        release(self)
        attach(self, S.new_conn(self[T_], family, 4))
        c.family, c.unused = family, true
        S.rbuf_reset(self)
        self[READ_CLOSED], self[WRITE_CLOSED], c.reused = false, false, 0
        if c.bind_ip then
            local rc = self[T_].bind(self[CONN], c.bind_ip, c.bind_port)
            if rc ~= 0 then
                local err = err_text(rc, 3)
                release(self)
                return nil, err
            end
        end
        return true
    end

    -- Make the TCP connection (no pool): 1 | nil, err.
    local function connect_new(self, host, port, deadline)
        local ok, err = fresh_conn(self, host)
        if not ok then return nil, err end
        cold(self).unused = false
        local conn, gen, connect = self[CONN], self[GEN], self[T_].connect
        while true do
            local token = new_token()
            local rc = connect(conn, host, port, token)
            if rc == 0 then return 1 end
            if rc ~= -E_AGAIN then return nil, fail(self, rc) end
            local why = park(token, deadline)
            if self[GEN] ~= gen then return nil, "closed" end
            if why == "timeout" then
                release(self)
                return nil, "timeout"
            end
        end
    end

    --- sock:connect(host, port [, opts]) → 1 | nil, err
    -- host: an IP address or a name (dpdk.resolve: the blocking pool, cached per
    -- worker; the first address, of the runtime's family first, within the
    -- connect timeout).
    -- opts: pool (name; default "ip:port"), pool_size, backlog (OpenResty), and
    -- timeout (ms, ours: this connect only). A connected socket is closed first;
    -- a closed one connects again.
    function Socket:connect(host, port, opts)
        if type(host) ~= "string" then
            error("connect: expected a host name or IP address string, got " .. type(host), 2)
        end
        if type(port) == "table" and opts == nil then port, opts = nil, port end
        if port == nil then return nil, "missing the port number" end
        port = tonumber(port)
        if not port or port < 0 or port > 65535 or port ~= floor(port) then
            return nil, "bad port number: " .. tostring(port)
        end
        if busy(self[CONNECTOR]) then return nil, "socket busy connecting" end
        if busy(self[READER]) then return nil, "socket busy reading" end
        if busy(self[WRITER]) then return nil, "socket busy writing" end
        local task = running_task() or false
        self[CONNECTOR], self[USER] = task, task
        local c = cold(self)
        local t = opts and opts.timeout
        local deadline = now() + (t and seconds(timeout_ms(t, "connect"), 0)
            or seconds(c.connect_timeout, defaults.connect_timeout))
        if not host:match("^[%x:.]+$") then -- a name
            local addrs, rerr = resolve.lookup(host, nil, max(0, deadline - now()), "connect")
            if not addrs then
                self[CONNECTOR] = false
                return nil, rerr
            end
            host = addrs[1]
        end
        local ok, err
        local key = opts and opts.pool
        if key ~= nil and type(key) ~= "string" and type(key) ~= "number" then
            self[CONNECTOR] = false
            error("connect: bad \"pool\" option type: " .. type(key), 2)
        end
        key = self[T_].pool_prefix .. (key and tostring(key) or (host .. ":" .. port))
        local spool, perr = pool.get(key, opts, defaults.pool_size)
        if perr then
            self[CONNECTOR] = false
            error("connect: " .. perr, 2)
        end
        c.key = key
        if self[CONN] and not c.unused then release(self) end -- reconnect: the old one goes first
        if spool then
            local conn, reused = pool.take(spool)
            if not conn then
                ok, err = pool.admit(spool, deadline)
                if not ok then
                    self[CONNECTOR] = false
                    return nil, err
                end
                conn, reused = pool.take(spool) -- a connection kept meanwhile
            end
            if conn then
                release(self) -- an unused fresh one
                attach(self, conn)
                c.unused, c.reused = false, reused
                self[READ_CLOSED], self[WRITE_CLOSED] = false, false
                S.rbuf_reset(self)
                join_pool(self, spool)
                self[CONNECTOR] = false
                return 1
            end
            join_pool(self, spool)
        end
        ok, err = connect_new(self, host, port, deadline)
        self[CONNECTOR] = false
        if not ok then
            leave_pool(self)
            return nil, err
        end
        return 1
    end

    local CONNECTED, GONE, UNREAD = C.DL_TCP_CONNECTED, C.DL_TCP_FAILED + C.DL_TCP_PEER_CLOSED,
        C.DL_TCP_UNREAD

    --- sock:setkeepalive([timeout_ms [, size]]) → 1 | nil, err
    -- Puts the connection into this worker's pool for its key (connect's "pool",
    -- else "ip:port"); the socket object is closed afterwards. timeout 0 keeps it
    -- idle forever; nil: tcp.defaults' keepalive_timeout.
    function Socket:setkeepalive(timeout, size)
        if timeout ~= nil and type(timeout) ~= "number" then
            error("setkeepalive: bad timeout argument (number expected, got " .. type(timeout)
                .. ")", 2)
        end
        if size ~= nil and type(size) ~= "number" then
            error("setkeepalive: bad size argument (number expected, got " .. type(size) .. ")", 2)
        end
        local conn = self[CONN]
        if not conn or self[READ_CLOSED] or self[WRITE_CLOSED] then return nil, "closed" end
        if busy(self[CONNECTOR]) then return nil, "socket busy connecting" end
        if busy(self[READER]) then return nil, "socket busy reading" end
        if busy(self[WRITER]) then return nil, "socket busy writing" end
        if S.unread(self) > 0 then return nil, "unread data in buffer" end
        local T = self[T_]
        local state = T.state(conn)
        if band(state, CONNECTED) == 0 or band(state, GONE) ~= 0 then
            release(self)
            return nil, "closed"
        end
        if band(state, UNREAD) ~= 0 then -- bytes came that nobody asked for
            release(self)
            return nil, "connection in dubious state"
        end
        local c = self[COLD] or nil
        local key = c and (c.pool_key or c.key)
        if not key then
            local ip, port = S.addr(self, 1)
            key = ip and (T.pool_prefix .. ip .. ":" .. port)
        end
        local ms = timeout and floor(timeout) or defaults.keepalive_timeout * 1000
        local ok, err = pool.put(key, T, conn, c and c.reused or 0, ms,
            size and floor(size) or defaults.pool_size)
        if not ok then
            if err == "bad size" then
                error("setkeepalive: bad \"pool_size\" option value: " .. size, 2)
            end
            release(self)
            return nil, err
        end
        -- ownership: the connection is the pool's now
        S.live[self] = nil
        self[CONN] = false
        self[GEN] = self[GEN] + 1
        leave_pool(self)
        return 1
    end

    --- sock:getreusedtimes() → how often this connection came from the pool (0: never)
    function Socket:getreusedtimes()
        if not self[CONN] then return nil, "closed" end
        local c = self[COLD]
        return c and c.reused or 0
    end
end

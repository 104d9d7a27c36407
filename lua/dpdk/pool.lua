-- dpdk.pool — the per-worker connection pools behind sock:setkeepalive and
-- connect's pool / pool_size / backlog options (OpenResty's cosocket pool).
--
-- A pool (one per key, "ip:port" or connect's `pool`, after the transport's
-- prefix: kernel connections have pools of their own) holds up to `size`
-- idle connections, most recently used first. Its count is its idle
-- connections plus the sockets connected through it (members) plus the
-- connects queued for a slot: with a backlog, a connect beyond `size` waits
-- for a slot (up to its connect timeout), beyond `size + backlog` it fails
-- with "too many waiting connect operations".
--
-- Idle connections are watched by one keeper task per worker: each is armed
-- with the keeper's token (a recv that takes nothing until something comes),
-- so a peer's FIN or data while idle closes it at once, and the keeper's
-- timed wait closes those whose idle timeout passed. No polling.
local ffi = require "ffi"
local C = require "dpdk.cdef"
local sched = require "dpdk.sched"

local E_AGAIN = C.DL_E_AGAIN
local now = C.dl_now
local ffi_gc = ffi.gc
local pairs, type, floor, setmetatable = pairs, type, math.floor, setmetatable

local scratch = ffi.new("char[1]")

local M = {}

local pools = {}  -- key -> pool
local n_idle = 0  -- over every pool
local keeper      -- the keeper task, nil when none runs
local keeper_token
local keeper_until = 1e300

-- e: an idle entry { T (its transport), conn, reused, expires }
local function close_conn(e)
    ffi_gc(e.conn, nil)
    e.T.free(e.conn)
end

local function count(p)
    local n = #p.idle + p.queued
    for _ in pairs(p.members) do n = n + 1 end
    return n
end

-- A slot came free: the first queued connect that still waits tries again.
local function resume_one(p)
    local q = p.queue
    while p.qhead <= p.qtail do
        local token = q[p.qhead]
        q[p.qhead] = nil
        p.qhead = p.qhead + 1
        if sched.wake(token, "slot") then return end
    end
end

local function drop_idle(p, i)
    local e = table.remove(p.idle, i)
    n_idle = n_idle - 1
    close_conn(e)
    resume_one(p)
end

-- Is the idle connection still quiet? Arms the keeper's token on it when it is.
local function quiet(T, conn)
    keeper_token = keeper_token or sched.token()
    return T.recv(conn, scratch, 1, keeper_token) == -E_AGAIN
end

local function keep()
    while n_idle > 0 do
        local t = now()
        local nearest = 1e300
        for _, p in pairs(pools) do
            local idle = p.idle
            for i = #idle, 1, -1 do
                local e = idle[i]
                if e.expires <= t or not quiet(e.T, e.conn) then
                    drop_idle(p, i)
                elseif e.expires < nearest then
                    nearest = e.expires
                end
            end
        end
        if n_idle == 0 then break end
        keeper_until = nearest
        sched.wait(keeper_token, nearest < 1e300 and nearest - t or nil)
    end
    keeper, keeper_until = nil, 1e300
end

local function watch(expires)
    if not keeper then
        keeper = sched.spawn(keep)
        keeper.quiet = true
    elseif expires < keeper_until then
        sched.wake(keeper_token, "sooner")
    end
end

-- The pool for key, made when opts ask for one (pool_size or backlog); nil
-- when there is none yet; nil, err for bad options.
function M.get(key, opts, default_size)
    local p = pools[key]
    if p then return p end
    if not opts then return nil end
    local size, backlog = opts.pool_size, opts.backlog
    if size ~= nil then
        if type(size) ~= "number" then return nil, "bad \"pool_size\" option type: " .. type(size) end
        size = floor(size)
        if size <= 0 then return nil, "bad \"pool_size\" option value: " .. size end
    end
    if backlog ~= nil then
        if type(backlog) ~= "number" then return nil, "bad \"backlog\" option type: " .. type(backlog) end
        backlog = floor(backlog)
        if backlog < 0 then return nil, "bad \"backlog\" option value: " .. backlog end
        size = size or default_size
    end
    if not size then return nil end
    p = { key = key, size = size, backlog = backlog, idle = {},
          members = setmetatable({}, { __mode = "k" }),
          queue = {}, qhead = 1, qtail = 0, queued = 0 }
    pools[key] = p
    return p
end

-- The most recently kept idle connection that is still quiet: conn, reused.
function M.take(p)
    local idle = p.idle
    while #idle > 0 do
        local e = idle[#idle]
        idle[#idle] = nil
        n_idle = n_idle - 1
        if quiet(e.T, e.conn) and e.expires > now() then
            return e.conn, e.reused + 1
        end
        close_conn(e)
        resume_one(p)
    end
    return nil
end

-- A new connection may be opened for p (true), after waiting in its backlog
-- queue when it is full; nil, err otherwise.
function M.admit(p, deadline)
    if not p.backlog then return true end
    local n = count(p)
    if n < p.size then return true end
    if n >= p.size + p.backlog then return nil, "too many waiting connect operations" end
    local token = sched.token()
    p.qtail = p.qtail + 1
    p.queue[p.qtail] = token
    p.queued = p.queued + 1
    while true do
        local remaining = deadline - now()
        local why = remaining > 0 and sched.wait(token, remaining) or "timeout"
        if why == "timeout" then
            p.queued = p.queued - 1
            for i = p.qhead, p.qtail do
                if p.queue[i] == token then p.queue[i] = false end
            end
            return nil, "timeout"
        end
        -- a connection kept meanwhile is ours to take; else a free slot (our
        -- own place in `queued` does not count)
        if #p.idle > 0 or count(p) - 1 < p.size then
            p.queued = p.queued - 1
            return true
        end
        p.qtail = p.qtail + 1 -- woken but the slot went elsewhere: queue again
        p.queue[p.qtail] = token
    end
end

-- sock now uses a connection counted by p (the socket keeps p.key).
function M.join(p, sock)
    p.members[sock] = true
end

-- sock's connection is no longer counted (closed or kept idle).
function M.leave(key, sock)
    local p = pools[key]
    if p and p.members[sock] then
        p.members[sock] = nil
        resume_one(p)
    end
end

-- Keep conn (of transport T, dpdk.transport) idle in key's pool for ms (0:
-- no limit): true | nil, err.
function M.put(key, T, conn, reused, ms, size)
    if not key then return nil, "key not found" end
    local p = pools[key]
    if not p then
        if size <= 0 then return nil, "bad size" end
        p = M.get(key, { pool_size = size })
    end
    if not quiet(T, conn) then return nil, "connection in dubious state" end
    local idle = p.idle
    if #idle >= p.size then -- full: the least recently used one goes
        local e = table.remove(idle, 1)
        n_idle = n_idle - 1
        close_conn(e)
    end
    local expires = ms > 0 and now() + ms / 1000 or 1e300
    idle[#idle + 1] = { T = T, conn = conn, reused = reused, expires = expires }
    n_idle = n_idle + 1
    watch(expires)
    return true
end

-- The runtime stops: every idle connection is closed, every pool forgotten.
function M.clear()
    for _, p in pairs(pools) do
        for i = 1, #p.idle do close_conn(p.idle[i]) end
    end
    pools, n_idle, keeper, keeper_until = {}, 0, nil, 1e300
end

-- For tests and diagnostics: idle connections and count of key's pool.
function M.stats(key)
    local p = pools[key]
    if not p then return nil end
    return #p.idle, count(p)
end

return M

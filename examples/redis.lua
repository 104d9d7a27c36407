-- A Redis server subset (RESP2): PING, ECHO, GET, SET [EX s | PX ms] [NX | XX],
-- DEL, EXISTS, INCR, DECR, EXPIRE, PEXPIRE, TTL, PTTL, MGET, MSET, DBSIZE,
-- FLUSHALL, QUIT, plus the handshake commands redis-cli and redis-benchmark
-- send (COMMAND, CONFIG GET, CLIENT, SELECT 0, HELLO 2). Pipelined requests
-- are answered in one send per read.
--
--   sudo ./dpdklua examples/redis.lua [port]     (default port 6379, 1 worker)
--   redis-cli -h 10.99.0.2 set greeting hello     → OK
--   redis-cli -h 10.99.0.2 get greeting           → "hello"
--   redis-benchmark -h 10.99.0.2 -q -n 100000 -P 16 -t ping,set,get,incr,mset
--
-- Prints "redis server on port <port>" once it listens. The data lives in the
-- one worker's Lua state (a store shared by several workers would shard keys
-- over them with dpdk.spawn_on; this example keeps to one). Keys expire
-- lazily, when a command touches them.
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local port = tonumber(arg and arg[1]) or 6379

local rt = assert(dpdk.runtime{ workers = 1 })

local store, expires, nkeys = {}, {}, 0
local now = dpdk.now

local function alive(key) -- the value, after dropping it if it expired
    local at = expires[key]
    if at and now() >= at then
        expires[key] = nil
        if store[key] ~= nil then store[key] = nil nkeys = nkeys - 1 end
    end
    return store[key]
end

local function put(key, value)
    if store[key] == nil then nkeys = nkeys + 1 end
    store[key] = value
end

local function del(key)
    if alive(key) == nil then return 0 end
    store[key], expires[key] = nil, nil
    nkeys = nkeys - 1
    return 1
end

-- Replies, appended to the connection's output (a table of strings).
local function simple(out, s) out[#out + 1] = "+" .. s .. "\r\n" end
local function err(out, s) out[#out + 1] = "-" .. s .. "\r\n" end
local function int(out, n) out[#out + 1] = ":" .. ("%d"):format(n) .. "\r\n" end
local function bulk(out, s)
    if s == nil then out[#out + 1] = "$-1\r\n" return end
    out[#out + 1] = "$" .. #s .. "\r\n"
    out[#out + 1] = s
    out[#out + 1] = "\r\n"
end

local function arity(out, name)
    err(out, "ERR wrong number of arguments for '" .. name:lower() .. "' command")
end

local function integer(s)
    if not s or not s:match("^%-?%d+$") or #s > 19 then return nil end
    return tonumber(s)
end

local commands = {}

function commands.PING(out, a)
    if #a == 1 then simple(out, "PONG") elseif #a == 2 then bulk(out, a[2]) else arity(out, "ping") end
end

function commands.ECHO(out, a)
    if #a ~= 2 then return arity(out, "echo") end
    bulk(out, a[2])
end

function commands.GET(out, a)
    if #a ~= 2 then return arity(out, "get") end
    bulk(out, alive(a[2]))
end

function commands.SET(out, a)
    if #a < 3 then return arity(out, "set") end
    local key, ttl, nx, xx = a[2], nil, false, false
    local i = 4
    while i <= #a do
        local opt = a[i]:upper()
        if (opt == "EX" or opt == "PX") and not ttl then
            local n = integer(a[i + 1])
            if not n then return err(out, "ERR value is not an integer or out of range") end
            if n <= 0 then return err(out, "ERR invalid expire time in 'set' command") end
            ttl = opt == "EX" and n or n / 1000
            i = i + 2
        elseif opt == "NX" and not xx then nx = true i = i + 1
        elseif opt == "XX" and not nx then xx = true i = i + 1
        else return err(out, "ERR syntax error") end
    end
    local exists = alive(key) ~= nil
    if (nx and exists) or (xx and not exists) then return bulk(out, nil) end
    put(key, a[3])
    expires[key] = ttl and now() + ttl or nil
    simple(out, "OK")
end

function commands.DEL(out, a)
    if #a < 2 then return arity(out, "del") end
    local n = 0
    for i = 2, #a do n = n + del(a[i]) end
    int(out, n)
end

function commands.EXISTS(out, a)
    if #a < 2 then return arity(out, "exists") end
    local n = 0
    for i = 2, #a do if alive(a[i]) ~= nil then n = n + 1 end end
    int(out, n)
end

local function add(out, a, by, name)
    if #a ~= 2 then return arity(out, name) end
    local v = alive(a[2])
    local n = v == nil and 0 or integer(v)
    if not n then return err(out, "ERR value is not an integer or out of range") end
    n = n + by
    put(a[2], ("%d"):format(n))
    int(out, n)
end
function commands.INCR(out, a) add(out, a, 1, "incr") end
function commands.DECR(out, a) add(out, a, -1, "decr") end

local function expire(out, a, scale, name)
    if #a ~= 3 then return arity(out, name) end
    local n = integer(a[3])
    if not n then return err(out, "ERR value is not an integer or out of range") end
    if alive(a[2]) == nil then return int(out, 0) end
    if n <= 0 then del(a[2]) else expires[a[2]] = now() + n * scale end
    int(out, 1)
end
function commands.EXPIRE(out, a) expire(out, a, 1, "expire") end
function commands.PEXPIRE(out, a) expire(out, a, 0.001, "pexpire") end

local function ttl(out, a, scale, name)
    if #a ~= 2 then return arity(out, name) end
    if alive(a[2]) == nil then return int(out, -2) end
    local at = expires[a[2]]
    if not at then return int(out, -1) end
    int(out, math.floor((at - now()) * scale + 0.5)) -- rounded, as Redis does
end
function commands.TTL(out, a) ttl(out, a, 1, "ttl") end
function commands.PTTL(out, a) ttl(out, a, 1000, "pttl") end

function commands.MGET(out, a)
    if #a < 2 then return arity(out, "mget") end
    out[#out + 1] = "*" .. (#a - 1) .. "\r\n"
    for i = 2, #a do bulk(out, alive(a[i])) end
end

function commands.MSET(out, a)
    if #a < 3 or #a % 2 == 0 then return arity(out, "mset") end
    for i = 2, #a, 2 do
        put(a[i], a[i + 1])
        expires[a[i]] = nil
    end
    simple(out, "OK")
end

function commands.DBSIZE(out)
    for k in pairs(expires) do alive(k) end
    int(out, nkeys)
end

function commands.FLUSHALL(out)
    store, expires, nkeys = {}, {}, 0
    simple(out, "OK")
end

-- The handshakes: redis-cli asks for COMMAND DOCS (an empty answer is fine),
-- redis-benchmark for CONFIG GET save / appendonly.
function commands.COMMAND(out) out[#out + 1] = "*0\r\n" end
local config = { save = "", appendonly = "no" } -- nothing is persisted
function commands.CONFIG(out, a)
    if #a ~= 3 or a[2]:upper() ~= "GET" then return err(out, "ERR only CONFIG GET <name>") end
    local v = config[a[3]:lower()]
    if not v then out[#out + 1] = "*0\r\n" return end
    out[#out + 1] = "*2\r\n"
    bulk(out, a[3]:lower())
    bulk(out, v)
end
function commands.CLIENT(out) simple(out, "OK") end
function commands.SELECT(out, a)
    if a[2] == "0" then simple(out, "OK") else err(out, "ERR DB index is out of range") end
end
function commands.HELLO(out, a)
    if a[2] and a[2] ~= "2" then return err(out, "NOPROTO unsupported protocol version") end
    out[#out + 1] = "*4\r\n$6\r\nserver\r\n$7\r\ndpdklua\r\n$5\r\nproto\r\n:2\r\n"
end

-- Parses the commands complete in buf from pos: returns the position after
-- the last one, or nil and a protocol error.
local function parse(buf, pos, out)
    local n = #buf
    while pos <= n do
        local args
        if buf:byte(pos) == 42 then -- '*': an array of bulk strings
            local eol = buf:find("\r\n", pos, true)
            if not eol then break end
            local count = tonumber(buf:sub(pos + 1, eol - 1))
            if not count or count > 1024 * 1024 then return nil, "invalid multibulk length" end
            args = {}
            local p = eol + 2
            for i = 1, count do
                if p > n then args = nil break end
                if buf:byte(p) ~= 36 then return nil, "expected '$', got '" .. buf:sub(p, p) .. "'" end
                local e = buf:find("\r\n", p, true)
                if not e then args = nil break end
                local len = tonumber(buf:sub(p + 1, e - 1))
                if not len or len < 0 or len > 512 * 1024 * 1024 then return nil, "invalid bulk length" end
                if e + 2 + len + 1 > n then args = nil break end
                args[i] = buf:sub(e + 2, e + 1 + len)
                p = e + 2 + len + 2
            end
            if not args then break end
            pos = p
        else -- an inline command: words on one line (telnet, nc, PING_INLINE)
            local eol = buf:find("\n", pos, true)
            if not eol then break end
            args = {}
            for word in buf:sub(pos, eol - 1):gmatch("[^%s]+") do args[#args + 1] = word end
            pos = eol + 1
        end
        if #args > 0 then
            local name = args[1]:upper()
            if name == "QUIT" then
                simple(out, "OK")
                return pos, "quit"
            end
            local fn = commands[name]
            if fn then
                fn(out, args)
            else
                err(out, "ERR unknown command '" .. args[1] .. "'")
            end
        end
    end
    return pos
end

local function serve(client)
    client:settimeout(60000)
    local buf, pos = "", 1
    local out = {}
    while true do
        local data, rerr = client:receiveany(65536)
        if not data then
            if rerr ~= "closed" then dpdk.log("info", "redis client:", rerr) end
            break
        end
        buf = pos > #buf and data or buf:sub(pos) .. data
        local next_pos, perr = parse(buf, 1, out)
        if not next_pos then
            err(out, "ERR Protocol error: " .. perr)
        end
        if #out > 0 then
            local ok = client:send(out)
            for i = #out, 1, -1 do out[i] = nil end
            if not ok then break end
        end
        if not next_pos or perr == "quit" then break end
        pos = next_pos
        if #buf - pos > 1024 * 1024 * 1024 then break end -- an endless command
    end
    client:close()
end

rt:block_on(function()
    local listener = assert(tcp.listen("*", port))
    print(("redis server on port %d: try redis-cli -h %s -p %d ping"):format(port,
        rt:addresses()[1] or "<address>", port))
    io.stdout:flush()
    while true do
        local client = assert(listener:accept())
        dpdk.spawn(serve, client)
    end
end)

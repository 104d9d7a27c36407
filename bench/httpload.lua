-- The HTTP/1.1 load generator over the DPDK device (rows http, cps, conns,
-- steer): dpdklua as the client, one worker on its own core.
--   dpdklua bench/httpload.lua <config> <ip> <port> <connections> <seconds> [ka|close|idle [hold]|owned <text>]
-- keep-alive: <connections> connections, each sends GET / and reads the whole
-- response before the next (no pipelining, as wrk). close: each task
-- connects, sends one request with "Connection: close", reads the response
-- and closes, again and again. idle: opens the connections, one request
-- each, prints IDLE and holds them for <hold> seconds (default <seconds>: the
-- server's memory per idle connection), then the keep-alive load on all of them.
-- owned: keep-alive on <connections> connections whose first response
-- contains <text>: a connection answered otherwise is closed and another
-- opened (the steer row loads only the flows one server worker owns, by the
-- worker named in bench/steer.lua's response).
-- Prints one line of key=value pairs: req_s, p50_us, p99_us (latency of a
-- request, connect included in close mode), errors, connect_s (opening the
-- connections, keep-alive and idle modes), opened (connections opened, all
-- but close mode), the generator's own frame counters; before it,
-- MEASURE when its measurement starts (after the warm-up); on stderr
-- each error message with its count and the phase of its first (connect,
-- hold, load).
local ffi = require "ffi"
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"

local config, ip, port = arg[1], arg[2], tonumber(arg[3])
local conns, seconds, mode = tonumber(arg[4]), tonumber(arg[5]), arg[6] or "ka"
local close_mode = mode == "close"
local holding = mode == "idle" -- idle: the connections wait after their first request
local hold = tonumber(arg[7]) or seconds
local owner_text = mode == "owned" and assert(arg[7], "owned: the text a response must contain")
local WARM = math.min(1, seconds / 4)

-- the worker's clock (the TSC, scaled: host/worker.c), not clock_gettime: two
-- reads per request, and the generator's own cost is the row's ceiling
local clock = dpdk.now

local CAP = 4 * 1024 * 1024
local lat = ffi.new("float[?]", CAP)
local n_lat, count, errors = 0, 0, 0
local measuring, done = false, false
local first_error
local phase = "connect" -- connect, hold (idle mode), load
local error_counts, error_phase = {}, {}

local REQUEST = ("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: dpdklua-bench\r\n%s\r\n"):format(ip,
    close_mode and "Connection: close\r\n" or "")

local function note(t0)
    if measuring then
        count = count + 1
        if n_lat < CAP then
            lat[n_lat] = clock() - t0
            n_lat = n_lat + 1
        end
    end
end

-- Reads one response's head; its total length (head + body) or nil, err.
local function read_head(c)
    local status, err = c:receive("*l")
    if not status then return nil, err end
    if status:sub(1, 12) ~= "HTTP/1.1 200" then return nil, "status: " .. status end
    local head, length = #status + 2, 0
    while true do
        local h, herr = c:receive("*l")
        if not h then return nil, herr end
        head = head + #h + 2
        if h == "" then break end
        local v = h:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
        if v then length = tonumber(v) end
    end
    return head, length
end

local function fail(err)
    errors = errors + 1
    err = tostring(err)
    first_error = first_error or err
    if not error_counts[err] then error_phase[err] = phase end
    error_counts[err] = (error_counts[err] or 0) + 1
end

-- idle mode: the connections wait here after their first request, all
-- released at once (one post each); a poll per connection every few ms
-- would cost the generator ~N wake-ups per poll period while it connects.
local gate = dpdk.semaphore.new(0)

-- The first request on c: its response's length (head and body) and its
-- body, or nil, err.
local function first_request(c)
    assert(c:send(REQUEST))
    local head, length = read_head(c)
    if not head then return nil, length end
    local body = ""
    if length > 0 then
        body = c:receive(length)
        if not body then return nil, "body" end
    end
    return head + length, body
end

-- keep-alive: the first response is parsed (unless the caller did: total);
-- the server's responses all have the same length, so each later one is read
-- in one receive and checked.
local function keepalive(c, total)
    if not total then
        local t0 = clock()
        local err
        total, err = first_request(c)
        if not total then return fail(err) end
        note(t0)
    end
    if holding then gate:wait(1e6) end
    while not done do
        local t0 = clock()
        local ok, err = c:send(REQUEST)
        if not ok then return fail(err) end
        local r, rerr = c:receive(total)
        if not r then return fail(rerr) end
        if r:sub(1, 12) ~= "HTTP/1.1 200" then return fail("response: " .. r:sub(1, 40)) end
        note(t0)
    end
    c:close()
end

-- owned: connects until the first response contains owner_text (closing
-- the connections other server workers answer), then the keep-alive load.
-- All tasks look at once: a server worker that shares its core answers a
-- round of them per time slice.
local opened = 0 -- connections opened (owned: more than kept)
local kept = dpdk.semaphore.new(0)
local function owned()
    local err
    while opened <= 100 * conns do
        local c, cerr = tcp.connect(ip, port, { timeout = 10000 })
        if not c then err = cerr break end
        opened = opened + 1
        local total, body = first_request(c)
        if total and body:find(owner_text, 1, true) then
            kept:post()
            return keepalive(c, total)
        end
        c:close()
        if not total then err = body break end
    end
    fail(err or "owned: no response contains " .. owner_text)
    kept:post() -- counted as an error; the load goes on without it
end

-- close: as keep-alive, the first response is parsed and later ones (all of
-- the same length) are read in one receive and checked.
local close_total
local CONNECT = { timeout = 5000 }
local function closing()
    while not done do
        local t0 = clock()
        local c, err = tcp.connect(ip, port, CONNECT)
        if not c then
            fail(err)
        else
            local ok, serr = c:send(REQUEST)
            if not ok then fail(serr)
            elseif close_total then
                local r, rerr = c:receive(close_total)
                if not r then fail(rerr)
                elseif r:sub(1, 12) ~= "HTTP/1.1 200" then fail("response: " .. r:sub(1, 40))
                else note(t0) end
            else
                local head, length = read_head(c)
                if not head then fail(length)
                elseif length > 0 and not c:receive(length) then fail("body")
                else close_total = head + length note(t0) end
            end
            c:close()
        end
    end
end

local rt = assert(dpdk.runtime{ workers = 1, config = config })
rt:block_on(function()
    local t_start = clock()
    local tasks = {}
    if close_mode then
        for i = 1, conns do tasks[i] = dpdk.spawn(closing) end
    elseif owner_text then
        for i = 1, conns do tasks[i] = dpdk.spawn(owned) end
        for _ = 1, conns do assert(kept:wait(60), "owned: connections not found in 60 s") end
    else
        for i = 1, conns do
            local c = assert(tcp.connect(ip, port, { timeout = 10000 }))
            opened = opened + 1
            tasks[i] = dpdk.spawn(keepalive, c)
            if mode == "idle" then dpdk.yield() end
        end
    end
    local connect_s = clock() - t_start
    if mode == "idle" then
        phase = "hold"
        dpdk.sleep(0.5) -- every first response in
        print("IDLE") io.stdout:flush()
        dpdk.sleep(hold)
        holding = false
        gate:post(conns)
    end
    phase = "load"
    dpdk.sleep(WARM)
    measuring = true
    print("MEASURE") io.stdout:flush() -- the conns and http rows read the server's worker from here
    local t0 = clock()
    dpdk.sleep(seconds)
    measuring = false
    local elapsed = clock() - t0
    done = true
    for i = 1, #tasks do tasks[i]:join() end
    local t = {}
    for i = 0, n_lat - 1 do t[i + 1] = lat[i] end
    table.sort(t)
    local function pct(p) return #t > 0 and t[math.floor(#t * p) + 1] * 1e6 or -1 end
    local w = dpdk.stats().workers[1] -- the generator's own frames lost and resent
    print(("req_s=%.1f p50_us=%.2f p99_us=%.2f requests=%d errors=%d seconds=%.3f tx_full=%d retransmitted=%d connect_s=%.2f tx_nombuf=%d rx_nobuf=%d tx_dropped=%d opened=%d"):format(
        count / elapsed, pct(0.5), pct(0.99), count, errors, elapsed, w.tx_full, w.tcp_retrans_segs,
        close_mode and 0 or connect_s, w.tx_nombuf, w.rx_nobuf, w.tx_dropped, opened))
    if first_error then io.stderr:write("first error: ", first_error, "\n") end
    for err, n in pairs(error_counts) do
        io.stderr:write(("errors: %d x %s (first while: %s)\n"):format(n, err, error_phase[err]))
    end
end)

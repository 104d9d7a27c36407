-- The benchmark driver (make bench; bench/README.md, docs/performance.md).
-- Runs each row's figure and its anchor in the same run, BENCH_RUNS times
-- each, prints one table of medians and ratios and writes
-- bench/results/<row>.json (median, min, max of every metric, the machine).
-- Cores: the server side on core 1, the client / load generator on core 0.
local ffi = require "ffi"
-- The test helpers' file, JSON, shell and nginx-config pieces (plain Lua and
-- ffi: the bench does not need busted). child.lua declares usleep and kill.
local child = require "spec.helpers.child"
local openresty = require "spec.helpers.openresty"

local QUICK = (os.getenv("BENCH_QUICK") or "") ~= ""
local RUNS = QUICK and 1 or tonumber(os.getenv("BENCH_RUNS") or "5")
local BIN = os.getenv("BENCH_BIN") or "build/bench"
local TMP = assert(os.getenv("BENCH_TMP"), "run through bench/run.sh (make bench)")
-- The raw memif programs' EAL --file-prefix names carry this run's temp-dir
-- suffix: two runs at once (make bench beside bench_spec) shared "ppraw-c"
-- and the second one's link never came up. bench/run.sh removes them.
local RUN_ID = TMP:match("([^./]+)$")
local DPDKLUA = os.getenv("DPDKLUA") or "./dpdklua"
local RESULTS = os.getenv("BENCH_RESULTS") or "bench/results"
local SERVER_CORE, CLIENT_CORE = 1, 0
local EAL = { "--no-huge", "-m", "256", "--no-pci", "--no-telemetry" }

-- ---- processes ----------------------------------------------------------

local q, read, sleep = child.quote, child.read, child.sleep

local function write(path, s)
    local f = assert(io.open(path, "w"))
    f:write(s)
    f:close()
    return path
end

local seq = 0
local function tmp(name)
    seq = seq + 1
    return ("%s/%d-%s"):format(TMP, seq, name)
end

-- Run a command to completion (bounded); its stdout, and stderr on failure.
local function run(cmd, timeout)
    local out, err = tmp("out"), tmp("err")
    local rc = os.execute(("timeout -s KILL %d %s > %s 2> %s < /dev/null"):format(
        timeout or 120, cmd, out, err))
    local ok = rc == 0 or rc == true
    if not ok then
        error(("bench: `%s` failed (%s)\nstdout:\n%s\nstderr:\n%s"):format(cmd, tostring(rc),
            read(out), read(err)), 2)
    end
    return read(out), read(err)
end

local Proc = {}
Proc.__index = Proc
local running = {} -- every background process a row started: stopped after the row

-- A background command in its own process group; its output in files.
local function start(cmd)
    local out, err = tmp("out"), tmp("err")
    local p = io.popen(("setsid sh -c %s > /dev/null 2>&1 & echo $!"):format(
        q(("exec %s > %s 2> %s < /dev/null"):format(cmd, out, err))))
    local pid = tonumber(p:read("*l"))
    p:close()
    local proc = setmetatable({ pid = pid, out = out, err = err, cmd = cmd }, Proc)
    running[#running + 1] = proc
    return proc
end

function Proc:alive() return ffi.C.kill(self.pid, 0) == 0 and
    not read("/proc/" .. self.pid .. "/stat"):match("^%d+ %b() Z") end
function Proc:stdout() return read(self.out) end

function Proc:wait_output(pattern, timeout)
    local deadline = os.time() + (timeout or 30)
    while os.time() <= deadline do
        if self:stdout():find(pattern, 1, true) then return self end
        if not self:alive() then break end
        sleep(0.02)
    end
    error(("bench: `%s` did not print %s\nstdout:\n%s\nstderr:\n%s"):format(self.cmd, pattern,
        self:stdout(), read(self.err)), 2)
end

function Proc:stop()
    ffi.C.kill(-self.pid, 15)
    for _ = 1, 100 do
        if not self:alive() then return end
        sleep(0.02)
    end
    ffi.C.kill(-self.pid, 9)
    for _ = 1, 100 do
        if not self:alive() then return end
        sleep(0.02)
    end
end

-- key=value pairs of a tool's last line that has them.
local function kv(s)
    local t = {}
    for k, v in s:gmatch("([%w_]+)=([%-%d%.e]+)") do t[k] = tonumber(v) end
    return t
end

-- ---- configs ------------------------------------------------------------

local json = child.json

-- A memif pair of dpdklua configs on 10.<net>.0.0/24: the server (.2, core 1)
-- and the client (.3, core 0).
local function memif_configs(tag, net, mtu)
    local sock = ("%s/%s.sock"):format(TMP, tag)
    local function cfg(role, core, host)
        return write(tmp(tag .. "-" .. role .. ".json"), json{
            dpdk_cores = { core },
            eal_args = EAL,
            devices = { {
                vdev = ("net_memif_%s%s,role=%s,socket=%s,id=0"):format(role:sub(1, 1), tag,
                    role, sock),
                mac = ("02:db:%02x:00:00:%02x"):format(net, host),
                addresses = { ("10.%d.0.%d/24"):format(net, host) },
                mtu = mtu,
            } },
        })
    end
    return cfg("server", SERVER_CORE, 2), cfg("client", CLIENT_CORE, 3), ("10.%d.0.2"):format(net)
end

-- The raw memif reflector (C, no stack) and its client's EAL arguments.
local function memif_raw(tag)
    local sock = ("%s/%s.sock"):format(TMP, tag)
    local eal = table.concat(EAL, " ")
    local server = ("%s/memif_pp -l %d %s --file-prefix=%s-%s-s --vdev=net_memif0,role=server,"
        .. "socket=%s,id=0 -- reflect"):format(BIN, SERVER_CORE, eal, tag, RUN_ID, sock)
    local client = ("%s/memif_pp -l %d %s --file-prefix=%s-%s-c --vdev=net_memif0,role=client,"
        .. "socket=%s,id=0 --"):format(BIN, CLIENT_CORE, eal, tag, RUN_ID, sock)
    return server, client
end

local function dpdklua(script, ...)
    local args = { DPDKLUA, q(script) }
    for _, a in ipairs({ ... }) do args[#args + 1] = q(a) end
    return table.concat(args, " ")
end

-- ---- the server worker's busy time (DPDK telemetry) -----------------------
-- The server stays the real examples/http.lua: started with DPDKLUA_TELEMETRY=1,
-- its worker's loop turns come from its telemetry socket (/dpdklua/stats,0:
-- live counters; host/telemetry.c), its thread's CPU time from schedstat
-- (worker 0 is the main thread: tid = pid). It busy-polls (100 % CPU), so its
-- busy time = CPU time - loop turns x the CPU of one idle turn.

for _, d in ipairs({
    "struct dl_bench_ts { long sec; long nsec; };",
    "struct dl_bench_sun { unsigned short family; char path[108]; };",
    "int clock_gettime(int clk, struct dl_bench_ts *ts);",
    "int socket(int domain, int type, int protocol);",
    "int connect(int fd, const void *addr, unsigned int len);",
    "int setsockopt(int fd, int level, int name, const void *value, unsigned int len);",
    "long send(int fd, const void *buf, size_t len, int flags);",
    "long recv(int fd, void *buf, size_t len, int flags);",
    "int close(int fd);",
    "unsigned int getuid(void);",
}) do pcall(ffi.cdef, d) end -- each alone: the host may have declared some

local function now()
    local ts = ffi.new("struct dl_bench_ts")
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.sec) + tonumber(ts.nsec) * 1e-9
end

-- DPDK's runtime directory: /var/run/dpdk for root, else under XDG_RUNTIME_DIR or /tmp.
local RUNTIME_DIR = ffi.C.getuid() == 0 and "/var/run/dpdk"
    or (os.getenv("XDG_RUNTIME_DIR") or "/tmp") .. "/dpdk"

-- One command on process pid's telemetry socket (dpdklua's file prefix is
-- dpdklua-<pid>); its JSON answer as a string.
local function telemetry(pid, cmd)
    local C = ffi.C
    local fd = C.socket(1, 5, 0) -- AF_UNIX, SOCK_SEQPACKET
    assert(fd >= 0, "telemetry: socket")
    local addr = ffi.new("struct dl_bench_sun")
    addr.family = 1
    ffi.copy(addr.path, ("%s/dpdklua-%d/dpdk_telemetry.v2"):format(RUNTIME_DIR, pid))
    local tv = ffi.new("long[2]", 2, 0) -- SO_RCVTIMEO 2 s: a hung server fails the row
    C.setsockopt(fd, 1, 20, tv, ffi.sizeof(tv))
    local buf = ffi.new("char[?]", 65536)
    local answer
    if C.connect(fd, addr, ffi.sizeof(addr)) == 0 and C.recv(fd, buf, 65536, 0) > 0 -- its greeting
        and C.send(fd, cmd, #cmd, 0) == #cmd then
        local n = C.recv(fd, buf, 65536, 0)
        if n > 0 then answer = ffi.string(buf, n) end
    end
    C.close(fd)
    if not answer then error(("telemetry: no answer to %s from %d"):format(cmd, pid), 2) end
    return answer
end

-- The server worker's counters now: t (s), cpu (ns), loops, frames received.
local function worker_snap(proc)
    local t = now()
    local cpu = tonumber(read(("/proc/%d/task/%d/schedstat"):format(proc.pid, proc.pid))
        :match("^(%d+)"))
    local a = telemetry(proc.pid, "/dpdklua/stats,0")
    local function field(k) return tonumber(a:match('"' .. k .. '":%s*(%d+)')) end
    local s = { t = t, cpu = cpu, loops = field("loops"), rx = field("rx_packets") }
    if not (s.cpu and s.loops and s.rx) then error("telemetry: " .. a, 2) end
    return s
end

-- CPU ns of one idle turn between two snapshots taken with no load (each
-- with cpu and loops: worker_snap's, or bench/steer.lua's per worker).
local function idle_turn(a, b)
    return (b.cpu - a.cpu) / math.max(1, b.loops - a.loops)
end

-- The server worker's idle turn now, over 0.5 s (its load generator holds
-- its connections idle), 0.2 s after the caller's last event.
local function idle_turn_now(server)
    sleep(0.2)
    local a = worker_snap(server)
    sleep(0.5)
    return idle_turn(a, worker_snap(server))
end

-- Until the load generator prints MEASURE (its measurement starts).
local function wait_measure(gen, deadline)
    while not gen:stdout():find("MEASURE", 1, true) do
        if not gen:alive() or os.time() > deadline then
            error(("load generator printed no MEASURE\nstdout:\n%s\nstderr:\n%s")
                :format(gen:stdout(), read(gen.err)), 3)
        end
        sleep(0.005)
    end
end

-- The worker over a load generator's measurement: a snapshot once it prints
-- MEASURE and one 0.1 s before its window of <seconds> ends; its figures once
-- it has exited (its req_s gives the requests served between the snapshots).
local function measure_worker(server, gen, seconds, timeout)
    local deadline = os.time() + timeout
    wait_measure(gen, deadline)
    local a = worker_snap(server)
    sleep(math.max(0, seconds - 0.1 - (now() - a.t)))
    local b = worker_snap(server)
    while gen:alive() and os.time() <= deadline do sleep(0.05) end
    return a, b
end

-- Work per request (busy CPU ns per request) between snapshots a and b, the
-- generator's rate req_s: and the busy share of the worker's CPU, the loop
-- turns and frames received per request, the worker's share of the core.
local function work_per_request(a, b, turn, req_s)
    local dt = b.t - a.t
    local requests = req_s * dt
    local cpu, loops = b.cpu - a.cpu, b.loops - a.loops
    local busy = cpu - loops * turn
    return { ns = busy / requests, busy_share = busy / cpu, cpu_share = cpu / (dt * 1e9),
        loops_per_request = loops / requests, rx_per_request = (b.rx - a.rx) / requests }
end

-- ---- statistics and output ----------------------------------------------

local function summary(values)
    local t = {}
    for i, v in ipairs(values) do t[i] = v end
    table.sort(t)
    local n = #t
    local median = n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
    return { median = median, min = t[1], max = t[n], runs = n, values = values }
end

local function machine()
    local model = read("/proc/cpuinfo"):match("model name%s*:%s*([^\n]+)") or "?"
    local nproc = tonumber((io.popen("nproc"):read("*l"))) or 0
    local kernel = io.popen("uname -r"):read("*l")
    return { cpu = model, nproc = nproc, kernel = kernel,
        load = read("/proc/loadavg"):match("^(%S+ %S+ %S+)") }
end

local function fmt(v)
    if v == nil then return "-" end
    if v >= 1e6 then return ("%.2f M"):format(v / 1e6) end
    if v >= 1e4 then return ("%.1f k"):format(v / 1e3) end
    if v >= 100 then return ("%.0f"):format(v) end
    return ("%.2f"):format(v)
end

local table_lines = {}
local function line(s)
    table_lines[#table_lines + 1] = s
    print(s)
    io.stdout:flush()
end

-- Record a row: metrics = { name = {values...} }, lines = table rows printed.
local function record(row, metrics, lines, extra)
    local out = { row = row, date = os.date("!%Y-%m-%dT%H:%M:%SZ"), machine = machine(),
        quick = QUICK, metrics = {} }
    for k, v in pairs(extra or {}) do out[k] = v end
    for name, values in pairs(metrics) do out.metrics[name] = summary(values) end
    os.execute("mkdir -p " .. q(RESULTS))
    write(("%s/%s.json"):format(RESULTS, row), json(out) .. "\n")
    for _, l in ipairs(lines(out.metrics)) do line(l) end
end

local function med(m, name) return m[name] and m[name].median end
local function ratio(a, b)
    if not a or not b or b == 0 then return "-" end
    return ("%.2f"):format(a / b)
end

-- ---- rows ---------------------------------------------------------------

local rows, order = {}, {}
local function row(name, fn) rows[name] = fn; order[#order + 1] = name end

row("pingpong", function()
    local n = QUICK and 5000 or 100000
    local m = { raw_p50 = {}, raw_p99 = {}, ours_p50 = {}, ours_p99 = {}, kernel_p50 = {},
        kernel_p99 = {} }
    -- (a) raw memif reflect, C, no stack
    local rs, rc = memif_raw("ppraw")
    for _ = 1, RUNS do -- a fresh reflector each run: memif reconnects are not what we time
        local reflector = start(rs):wait_output("READY")
        local ok, out = pcall(run, rc .. " ping " .. n)
        reflector:stop()
        if not ok then error(out .. "\nreflector stderr:\n" .. read(reflector.err), 0) end
        local r = kv(out)
        table.insert(m.raw_p50, r.p50_us); table.insert(m.raw_p99, r.p99_us)
    end
    -- ours: dpdklua ↔ dpdklua
    local scfg, ccfg, ip = memif_configs("pp", 2)
    local server = start(dpdklua("bench/pingpong.lua", "server", scfg, ip, 9000))
        :wait_output("READY")
    for _ = 1, RUNS do
        local r = kv(run(dpdklua("bench/pingpong.lua", "client", ccfg, ip, 9000, n)))
        table.insert(m.ours_p50, r.p50_us); table.insert(m.ours_p99, r.p99_us)
    end
    server:stop()
    -- (b) kernel loopback TCP, C
    for _ = 1, RUNS do
        local r = kv(run(("%s/tcp_pp ping %d 64 %d %d"):format(BIN, n, SERVER_CORE, CLIENT_CORE)))
        table.insert(m.kernel_p50, r.p50_us); table.insert(m.kernel_p99, r.p99_us)
    end
    record("pingpong", m, function(s)
        return {
            ("pingpong 64 B   p50 us  ours %-9s raw memif %-9s kernel %-9s ours/raw %s  kernel/ours %s  (target p50<=3, >=8x kernel)")
                :format(fmt(med(s, "ours_p50")), fmt(med(s, "raw_p50")), fmt(med(s, "kernel_p50")),
                    ratio(med(s, "ours_p50"), med(s, "raw_p50")),
                    ratio(med(s, "kernel_p50"), med(s, "ours_p50"))),
            ("pingpong 64 B   p99 us  ours %-9s raw memif %-9s kernel %-9s ours/raw %s  kernel/ours %s  (target p99<=8)")
                :format(fmt(med(s, "ours_p99")), fmt(med(s, "raw_p99")), fmt(med(s, "kernel_p99")),
                    ratio(med(s, "ours_p99"), med(s, "raw_p99")),
                    ratio(med(s, "kernel_p99"), med(s, "ours_p99"))),
        }
    end, { round_trips = n, unit = "microseconds" })
end)

-- nginx + lua module on 127.0.0.1:<port>, 1 worker pinned to the server
-- core, answering with the same body as examples/http.lua.
local function nginx(port)
    local dir = tmp("nginx")
    os.execute("mkdir -p " .. q(dir .. "/logs"))
    local conf = write(dir .. "/nginx.conf", openresty.conf({ dir = dir, port = port,
        worker_connections = 20000, error_level = "error", listen = "backlog=4096",
        http = "    keepalive_requests 100000000;", locations = [[
        location / {
            default_type text/plain;
            content_by_lua_block {
                ngx.print("Hello from nginx (worker 0, core 1): ", ngx.req.get_method(), " ",
                    ngx.var.uri, "\n")
            }
        }]] }))
    local p = start(("taskset -c %d nginx -p %s -c %s -e %s"):format(SERVER_CORE, q(dir), q(conf),
        q(dir .. "/logs/error.log")))
    for _ = 1, 250 do
        if os.execute(("curl -s -o /dev/null http://127.0.0.1:%d/"):format(port)) == 0 then
            return p
        end
        sleep(0.02)
    end
    p:stop()
    error("nginx did not start: " .. read(dir .. "/logs/error.log"))
end

-- wrk on the client core; req/s, p50, p99 (µs), errors.
local function us(v, unit)
    v = tonumber(v)
    if unit == "us" then return v elseif unit == "ms" then return v * 1e3 else return v * 1e6 end
end
local function wrk(url, conns, seconds, extra)
    seconds = math.max(1, math.ceil(seconds)) -- wrk counts whole seconds
    local out = run(("taskset -c %d wrk -t1 -c%d -d%ds --latency %s %s"):format(CLIENT_CORE,
        conns, seconds, extra or "", url), seconds + 60)
    local r = { req_s = tonumber(out:match("Requests/sec:%s*([%d%.]+)")) }
    local v, u = out:match("\n%s*50%%%s*([%d%.]+)(%a+)")
    r.p50_us = v and us(v, u)
    v, u = out:match("\n%s*99%%%s*([%d%.]+)(%a+)")
    r.p99_us = v and us(v, u)
    local e = 0
    for k in out:gmatch("Non%-2xx or 3xx responses:%s*(%d+)") do e = e + tonumber(k) end
    for k in out:gmatch("Socket errors:[^\n]*") do
        for x in k:gmatch("(%d+)") do e = e + tonumber(x) end
    end
    r.errors = e
    r.out = out
    return r
end

local HTTP_SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "") or (QUICK and 1 or 5)

-- examples/http.lua on a memif config, with its server core; its telemetry
-- socket open (measure_worker reads its worker's loop turns there).
local function http_server(cfg, port)
    return start(("env DPDK_ENV_CONFIG=%s DPDKLUA_TELEMETRY=1 %s"):format(q(cfg),
        dpdklua("examples/http.lua", port, 1))):wait_output("http server on port")
end

-- hold: idle mode's hold time (bench/httpload.lua); opening many connections
-- gets a longer bound.
local function load(ccfg, ip, port, conns, seconds, mode, hold)
    local out, err = run(dpdklua("bench/httpload.lua", ccfg, ip, port, conns, seconds, mode or "ka", hold),
        seconds + (hold and 300 or 120))
    local r = kv(out)
    if not r.req_s or r.requests == 0 then error("load generator: no requests") end
    r.stderr = err
    return r
end

-- the load generator's errors by message (its stderr's "errors:" lines)
local function error_lines(stderr)
    local t = {}
    for l in stderr:gmatch("errors: [^\n]*") do t[#t + 1] = l end
    return table.concat(t, "; ")
end

local function add(m, name, v)
    m[name] = m[name] or {}
    table.insert(m[name], v)
end

-- The keep-alive load of <conns> connections against an http_server, first
-- held idle 1 s (the worker's idle turn, link up, in the same process); the
-- generator's figures, the worker's over its measurement (work_per_request)
-- and the idle turn.
local function load_measured(server, ccfg, ip, port, conns)
    local gen = start(dpdklua("bench/httpload.lua", ccfg, ip, port, conns, HTTP_SECONDS, "idle", 1))
    gen:wait_output("IDLE", 60)
    local turn = idle_turn_now(server)
    local a, b = measure_worker(server, gen, HTTP_SECONDS, HTTP_SECONDS + 120)
    local r = kv(gen:stdout())
    if not r.req_s or r.requests == 0 then
        error("load generator: no requests\n" .. gen:stdout() .. read(gen.err), 2)
    end
    return r, work_per_request(a, b, turn, r.req_s), turn
end

-- A load's worker figures into m, each name ending in _<suffix>.
local function add_work(m, suffix, w)
    add(m, "work_ns_" .. suffix, w.ns)
    add(m, "busy_share_" .. suffix, w.busy_share)
    add(m, "cpu_share_" .. suffix, w.cpu_share)
    add(m, "loops_per_req_" .. suffix, w.loops_per_request)
    add(m, "rx_per_req_" .. suffix, w.rx_per_request)
end

-- The load generator's own ceiling: the same load against bench/nullhttp.lua
-- (no parsing; in close mode it closes after its reply), a fresh null server
-- each run; its rates go to m[key], its errors to m[errors_key] if given.
local function ceiling(m, key, errors_key, scfg, ccfg, ip, conns, mode, hold)
    for _ = 1, os.getenv("BENCH_NO_NGINX") and 0 or RUNS do
        local null = start(dpdklua("bench/nullhttp.lua", scfg, ip, 8081)):wait_output("READY")
        local ok, r = pcall(load, ccfg, ip, 8081, conns, HTTP_SECONDS, mode, hold)
        null:stop()
        if not ok then error(r, 0) end
        add(m, key, r.req_s)
        if errors_key then add(m, errors_key, r.errors) end
        if (r.errors or 0) > 0 then
            io.stderr:write(("generator ceiling (%s, %d connections): %s (generator: tx_nombuf %s, rx_nobuf %s)\n")
                :format(mode or "ka", conns, error_lines(r.stderr), r.tx_nombuf, r.rx_nobuf))
        end
    end
end

row("http", function()
    local levels = QUICK and { 32 } or { 1, 32, 256 }
    if os.getenv("BENCH_LEVELS") then -- e.g. BENCH_LEVELS=32 while tuning
        levels = {}
        for c in os.getenv("BENCH_LEVELS"):gmatch("%d+") do levels[#levels + 1] = tonumber(c) end
    end
    local m = {}
    local scfg, ccfg, ip = memif_configs("http", 3)
    -- the load generator's ceiling: against a null server (no parsing)
    local null = os.getenv("BENCH_NO_NGINX") and { stop = function() end } or start(dpdklua("bench/nullhttp.lua", scfg, ip, 8081)):wait_output("READY")
    for _ = 1, os.getenv("BENCH_NO_NGINX") and 0 or RUNS do
        local r = load(ccfg, ip, 8081, 32, HTTP_SECONDS)
        add(m, "null_req_s_c32", r.req_s)
    end
    null:stop()
    local server = http_server(scfg, 8080)
    for _, c in ipairs(levels) do
        for _ = 1, RUNS do
            local r, w, turn = load_measured(server, ccfg, ip, 8080, c)
            add_work(m, "c" .. c, w)
            add(m, "idle_turn_ns_c" .. c, turn)
            add(m, "ours_req_s_c" .. c, r.req_s)
            add(m, "ours_p50_us_c" .. c, r.p50_us)
            add(m, "ours_p99_us_c" .. c, r.p99_us)
            add(m, "ours_errors_c" .. c, r.errors)
        end
    end
    server:stop()
    local ngx = os.getenv("BENCH_NO_NGINX") and { stop = function() end } or nginx(18080)
    for _, c in ipairs(os.getenv("BENCH_NO_NGINX") and {} or levels) do
        for _ = 1, RUNS do
            local r = wrk("http://127.0.0.1:18080/", c, HTTP_SECONDS)
            add(m, "nginx_req_s_c" .. c, r.req_s)
            add(m, "nginx_p50_us_c" .. c, r.p50_us)
            add(m, "nginx_p99_us_c" .. c, r.p99_us)
            add(m, "nginx_errors_c" .. c, r.errors)
        end
    end
    ngx:stop()
    record("http", m, function(s)
        local out = {}
        for _, c in ipairs(levels) do
            out[#out + 1] = ("http keep-alive c=%-4d req/s ours %-9s nginx+lua %-9s ratio %-5s  p50/p99 us ours %s/%s nginx %s/%s  errors %s/%s%s")
                :format(c, fmt(med(s, "ours_req_s_c" .. c)), fmt(med(s, "nginx_req_s_c" .. c)),
                    ratio(med(s, "ours_req_s_c" .. c), med(s, "nginx_req_s_c" .. c)),
                    fmt(med(s, "ours_p50_us_c" .. c)), fmt(med(s, "ours_p99_us_c" .. c)),
                    fmt(med(s, "nginx_p50_us_c" .. c)), fmt(med(s, "nginx_p99_us_c" .. c)),
                    fmt(med(s, "ours_errors_c" .. c)), fmt(med(s, "nginx_errors_c" .. c)),
                    c == 32 and "  (target >=300k, >=4x)" or "")
        end
        local work = {}
        for _, c in ipairs(levels) do
            local busy = med(s, "busy_share_c" .. c)
            work[#work + 1] = ("c=%d %s ns (busy %s)"):format(c, fmt(med(s, "work_ns_c" .. c)),
                busy and ("%.0f%%"):format(100 * busy) or "-")
        end
        out[#out + 1] = ("http server work per request (busy CPU of its worker): %s; idle turn %s ns")
            :format(table.concat(work, ", "), fmt(med(s, "idle_turn_ns_c" .. levels[1])))
        out[#out + 1] = ("http load generator ceiling (null server, c=32): %s req/s")
            :format(fmt(med(s, "null_req_s_c32")))
        return out
    end, { seconds = HTTP_SECONDS })
end)

row("cps", function()
    local m = {}
    local scfg, ccfg, ip = memif_configs("cps", 4)
    -- A fresh server each run, so that each starts with an empty pcb pool
    -- (before 85-timewait-rst.patch a second client process, with a new ISN
    -- key, also stalled in connect on the first's TIME_WAIT pairs).
    for _ = 1, RUNS do
        local server = http_server(scfg, 8080)
        local r = load(ccfg, ip, 8080, 32, HTTP_SECONDS, "close")
        server:stop()
        add(m, "ours_conn_s", r.req_s)
        add(m, "ours_p50_us", r.p50_us)
        add(m, "ours_errors", r.errors)
    end
    ceiling(m, "null_conn_s", nil, scfg, ccfg, ip, 32, "close")
    local ngx = nginx(18081)
    for _ = 1, RUNS do
        local r = wrk("http://127.0.0.1:18081/", 32, HTTP_SECONDS, '-H "Connection: close"')
        add(m, "nginx_conn_s", r.req_s)
        add(m, "nginx_p50_us", r.p50_us)
        add(m, "nginx_errors", r.errors)
    end
    ngx:stop()
    record("cps", m, function(s)
        return { ("connections/s (1 request, close), 32 at a time: ours %-9s nginx+lua %-9s ratio %-5s  p50 us ours %s nginx %s  errors %s/%s  (target >=50k)")
            :format(fmt(med(s, "ours_conn_s")), fmt(med(s, "nginx_conn_s")),
                ratio(med(s, "ours_conn_s"), med(s, "nginx_conn_s")), fmt(med(s, "ours_p50_us")),
                fmt(med(s, "nginx_p50_us")), fmt(med(s, "ours_errors")), fmt(med(s, "nginx_errors"))),
            ("cps load generator ceiling (null server, close, c=32): %s connections/s")
                :format(fmt(med(s, "null_conn_s"))) }
    end, { seconds = HTTP_SECONDS, concurrency = 32 })
end)

row("bulk", function()
    local m = {}
    local secs = QUICK and 1 or 3
    local scfg, ccfg, ip = memif_configs("bulk", 5, 1500)
    for _ = 1, RUNS do -- a fresh pair each run: the server's stream ends with its client
        local server = start(dpdklua("bench/bulk.lua", "server", scfg, ip, 9001)):wait_output("READY")
        local ok, out = pcall(run, dpdklua("bench/bulk.lua", "client", ccfg, ip, 9001, secs), secs + 60)
        server:stop()
        if not ok then error(out, 0) end
        add(m, "ours_gbps", kv(out).gbps)
    end
    for _ = 1, RUNS do
        local r = kv(run(("%s/tcp_pp bulk %g %d %d"):format(BIN, secs, SERVER_CORE, CLIENT_CORE)))
        add(m, "kernel_gbps", r.gbps)
    end
    record("bulk", m, function(s)
        return { ("bulk one stream Gbit/s: ours (memif, MTU 1500) %-6s kernel loopback (MTU 65536) %-6s ratio %s  (target >=5)")
            :format(fmt(med(s, "ours_gbps")), fmt(med(s, "kernel_gbps")),
                ratio(med(s, "ours_gbps"), med(s, "kernel_gbps"))) }
    end, { seconds = secs, mtu = 1500 })
end)

local function rss_kb(pid)
    return tonumber(read("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+)")) or 0
end

-- Keep-alive rate at 100 and at many connections (10 000, BENCH_MANY; one
-- worker holds up to max_connections = MEMP_NUM_TCP_PCB = 16 384), and the
-- server's RSS growth per idle connection, all from one server process.
row("conns", function()
    local m = {}
    local many = tonumber(os.getenv("BENCH_MANY") or "") or (QUICK and 200 or 10000)
    local scfg, ccfg, ip = memif_configs("conns", 6)
    for _ = 1, RUNS do
        local server = http_server(scfg, 8080)
        local ok, err = pcall(function()
            -- 100 connections, held 1 s first: the idle turn, link up
            local r, w, turn = load_measured(server, ccfg, ip, 8080, 100)
            add(m, "ours_req_s_c100", r.req_s)
            add(m, "idle_turn_ns", turn)
            add_work(m, "c100", w)
            local before = rss_kb(server.pid)
            local gen = start(dpdklua("bench/httpload.lua", ccfg, ip, 8080, many, HTTP_SECONDS, "idle"))
            gen:wait_output("IDLE", 300)
            local during = rss_kb(server.pid)
            add(m, "idle_bytes_per_conn", (during - before) * 1024 / many)
            -- a turn with <many> idle connections: their timers' share, for the record
            add(m, "idle_turn_ns_many", idle_turn_now(server))
            local a, b = measure_worker(server, gen, HTTP_SECONDS, HTTP_SECONDS + 300)
            local r2 = kv(gen:stdout())
            if not r2.req_s then error("load generator: " .. gen:stdout() .. read(gen.err)) end
            if (r2.errors or 0) > 0 then -- say why (the generator's errors by message)
                io.stderr:write(("conns: %d errors at %d connections: %s (generator: tx_nombuf %s, rx_nobuf %s)\n")
                    :format(r2.errors, many, error_lines(read(gen.err)), r2.tx_nombuf, r2.rx_nobuf))
            end
            add(m, "ours_req_s_many", r2.req_s)
            add(m, "ours_errors_many", r2.errors)
            add(m, "gen_retransmitted_many", r2.retransmitted)
            add(m, "gen_connect_s_many", r2.connect_s)
            -- the idle turn of the 100's hold: the timers of <many> connections count as work
            local w2 = work_per_request(a, b, turn, r2.req_s)
            add_work(m, "many", w2)
            add(m, "capacity_ratio", w.ns / w2.ns)
        end)
        server:stop()
        if not ok then error(err, 0) end
    end
    -- the load generator's ceiling at as many connections: the same idle mode,
    -- held 0.5 s
    ceiling(m, "null_req_s_many", "null_errors_many", scfg, ccfg, ip, many, "idle", 0.5)
    local function pct(v) return v and ("%.0f%%"):format(100 * v) or "-" end
    record("conns", m, function(s)
        local w100, wmany = med(s, "work_ns_c100"), med(s, "work_ns_many")
        return { ("keep-alive at %d connections: %-9s req/s vs %-9s at 100: %s of it  (target >=80%%); errors %s; server memory per idle connection %s B")
            :format(many, fmt(med(s, "ours_req_s_many")), fmt(med(s, "ours_req_s_c100")),
                med(s, "ours_req_s_c100") and ("%.0f%%"):format(100 * med(s, "ours_req_s_many")
                    / med(s, "ours_req_s_c100")) or "-",
                fmt(med(s, "ours_errors_many")), fmt(med(s, "idle_bytes_per_conn"))),
            ("server work per request (busy CPU): %s ns at %d vs %s ns at 100: capacity at %d %s of it; busy %s of the worker's CPU at %d, %s at 100; idle turn %s ns (%s with %d idle)")
                :format(fmt(wmany), many, fmt(w100), many,
                    w100 and wmany and pct(w100 / wmany) or "-", pct(med(s, "busy_share_many")),
                    many, pct(med(s, "busy_share_c100")), fmt(med(s, "idle_turn_ns")),
                    fmt(med(s, "idle_turn_ns_many")), many),
            ("generator ceiling at %d: %s req/s (null server; errors %s); generator retransmitted %s segments per run; opened the %d in %s s")
                :format(many, fmt(med(s, "null_req_s_many")), fmt(med(s, "null_errors_many")),
                    fmt(med(s, "gen_retransmitted_many")), many, fmt(med(s, "gen_connect_s_many"))) }
    end, { connections = many, seconds = HTTP_SECONDS })
end)

-- The cost of forwarding a frame to the worker that owns its flow (host/steer.c,
-- host/worker.c), on 2 cores. A 1-worker load generator (one memif queue, core
-- 0) drives bench/steer.lua with STEER_CONNS keep-alive connections, run
-- three ways:
-- - anchor: 1 worker on core 1, nothing forwarded;
-- - sender: 2 workers, worker 0 on core 1, worker 1 beside the generator on
--   core 0;
-- - owner: the same with the cores swapped, worker 1 on core 1.
-- With 2 workers every connection is on a flow worker 1 owns (the generator's
-- owned mode keeps the connections worker 1 answers), so every frame arrives
-- on worker 0's queue (the generator sends on queue 0) and is forwarded to
-- worker 1, which serves it and sends on its own queue. Each figure is read
-- from a worker on a core of its own, as busy_ns (dpdk.stats(): the wall time
-- of its turns that had work; on a shared core that would count the other
-- thread's time slices too): the sender's worker 0 per forwarded frame
-- (receive, classify, hand over), the owner's worker 1 per frame it takes
-- (take from the ring, serve) and the anchor's worker per frame (receive,
-- serve). ns per forwarded frame = sender + owner - anchor: the receiving and
-- the serving cancel; the classification, the ring and the lines that cross
-- cores remain. The worker beside the generator shares core 0's
-- time slices with it, so the 2-worker rates are those of time slices, but
-- all connections wait on the same slices and the closed loop runs them alike
-- (with half the flows on each worker, worker 0's made thousands of requests
-- per slice to worker 1's one and ~1 % of the frames were forwarded).
local function snap(proc)
    local last
    for l in proc:stdout():gmatch("snap [^\n]+") do last = l end
    if not last then error("steer.lua printed no snapshot\n" .. read(proc.err), 2) end
    local s = { t = tonumber(last:match("t=([%d%.]+)")), workers = {} }
    for w, rx, fout, fin, busy in last:gmatch("w(%d+)=(%d+),(%d+),(%d+),(%d+)") do
        s.workers[tonumber(w)] = { rx = tonumber(rx), fout = tonumber(fout), fin = tonumber(fin),
            busy = tonumber(busy) }
    end
    return s
end

-- Wait for a snapshot taken after this moment (printed every 0.1 s).
local function fresh_snap(proc)
    local before = proc:stdout():len()
    for _ = 1, 150 do
        sleep(0.02)
        local out = proc:stdout()
        if out:len() > before and out:sub(before + 1):find("snap ", 1, true) then
            local nl = out:sub(before + 1):find("snap [^\n]+\n")
            if nl then return snap(proc) end
        end
    end
    error("steer.lua stopped printing snapshots\n" .. read(proc.err), 2)
end

local STEER_CONNS = tonumber(os.getenv("BENCH_STEER_CONNS") or "") or (QUICK and 32 or 1000)
row("steer", function()
    local m = {}
    local secs = HTTP_SECONDS
    local anchor_cfg, ccfg, ip = memif_configs("steer", 8) -- the server on core 1
    local function two(name, w0_core, w1_core)
        return write(tmp(name .. ".json"), read(anchor_cfg):gsub('"dpdk_cores":%[1%]',
            ('"dpdk_cores":[%d,%d]'):format(w0_core, w1_core)))
    end
    local locks = tmp("locks") -- the generator's: it may share core 0 with a server worker
    os.execute("mkdir -p " .. q(locks))
    local gen_env = ("env DPDKLUA_LOCK_DIR=%s "):format(q(locks))
    local cases = {
        { "anchor", anchor_cfg, 1, 0 },
        { "sender", two("steer-sender", SERVER_CORE, CLIENT_CORE), 2, 0 },
        { "owner", two("steer-owner", CLIENT_CORE, SERVER_CORE), 2, 1 },
    }
    for _ = 1, RUNS do
        for _, case in ipairs(cases) do
            local name, cfg, workers, measured = case[1], case[2], case[3], case[4]
            local server = start(dpdklua("bench/steer.lua", cfg, ip, 8090, workers))
                :wait_output("READY")
            local gen = start(gen_env .. (workers == 1
                and dpdklua("bench/httpload.lua", ccfg, ip, 8090, STEER_CONNS, secs, "ka")
                or dpdklua("bench/httpload.lua", ccfg, ip, 8090, STEER_CONNS, secs, "owned", "(worker 1,")))
            -- over the generator's measurement: not the connections it opened
            -- and closed to find worker 1's flows
            local deadline = os.time() + secs + 120
            wait_measure(gen, deadline)
            local before = fresh_snap(server)
            sleep(math.max(0, secs - 0.3))
            local after = fresh_snap(server)
            while gen:alive() and os.time() < deadline do sleep(0.05) end
            local r = kv(gen:stdout())
            server:stop()
            if not r.req_s or r.requests == 0 then error("load generator: no requests") end
            local function delta(w, field) return after.workers[w][field] - before.workers[w][field] end
            local frames = delta(0, "rx") -- every frame arrives on worker 0's queue
            add(m, name .. "_req_s", r.req_s)
            add(m, name .. "_errors", r.errors)
            if workers == 1 then
                add(m, "anchor_ns_per_frame", delta(0, "busy") / math.max(1, frames))
            else
                local fwd = delta(0, "fout")
                add(m, name .. "_forwarded_share", fwd / math.max(1, frames))
                add(m, name .. "_opened", tonumber(r.opened) or 0)
                if measured == 0 then
                    add(m, "sender_ns_per_forwarded", delta(0, "busy") / math.max(1, fwd))
                    add(m, "forwarded_per_s", fwd / (after.t - before.t))
                else
                    add(m, "owner_ns_per_frame", delta(1, "busy") / math.max(1, delta(1, "fin")))
                end
            end
        end
    end
    local function summarized(name) return m[name] and summary(m[name]).median end
    local sender, owner = summarized("sender_ns_per_forwarded"), summarized("owner_ns_per_frame")
    local anchor = summarized("anchor_ns_per_frame")
    if sender and owner and anchor then
        add(m, "owner_extra_ns", owner - anchor)
        add(m, "ns_per_forwarded", sender + owner - anchor)
    end
    record("steer", m, function(s)
        local share = math.min(med(s, "sender_forwarded_share") or 0, med(s, "owner_forwarded_share") or 0)
        local found = ("the generator opened %d connections to find %d on worker 1's flows; %.0f%% of the frames forwarded; req/s %s on 1 worker, %s and %s on 2 (sender, owner: one worker beside the generator on core 0); errors %s/%s/%s")
            :format(med(s, "owner_opened") or 0, STEER_CONNS, 100 * share, fmt(med(s, "anchor_req_s")),
                fmt(med(s, "sender_req_s")), fmt(med(s, "owner_req_s")), fmt(med(s, "anchor_errors")),
                fmt(med(s, "sender_errors")), fmt(med(s, "owner_errors")))
        -- A valid figure needs the load on worker 1's flows: nearly every
        -- frame forwarded (the rest: the handshakes and closes of the
        -- connections the generator did not keep).
        if share < 0.9 or not med(s, "ns_per_forwarded") then
            return { ("steering, 2 workers: no valid figure: %s"):format(found) }
        end
        return { ("steering, 2 workers: %s ns of CPU per forwarded frame = worker 0 (receive, classify, hand over) %s + worker 1 (take, serve) %s - 1 worker (receive, serve) %s; %s frames forwarded/s (time-sliced)")
            :format(fmt(med(s, "ns_per_forwarded")), fmt(med(s, "sender_ns_per_forwarded")),
                fmt(med(s, "owner_ns_per_frame")), fmt(med(s, "anchor_ns_per_frame")),
                fmt(med(s, "forwarded_per_s"))),
            ("steering: %s"):format(found) }
    end, { seconds = secs, connections = STEER_CONNS })
end)

-- A real kernel client: wrk → tap dlb1 → examples/http.lua, against wrk →
-- loopback → nginx+lua in the same run.
row("tap", function()
    local m = {}
    local cfg = write(tmp("tap.json"), json{
        dpdk_cores = { SERVER_CORE },
        eal_args = EAL,
        devices = { {
            vdev = "net_tap_dlb1,iface=dlb1",
            mac = "02:db:07:00:00:02",
            addresses = { "10.7.0.2/24" },
            peer_addresses = { "10.7.0.1/24" },
        } },
    })
    local server = http_server(cfg, 8080)
    for _ = 1, RUNS do
        local r = wrk("http://10.7.0.2:8080/", 32, HTTP_SECONDS)
        add(m, "ours_req_s", r.req_s)
        add(m, "ours_p50_us", r.p50_us)
        add(m, "ours_p99_us", r.p99_us)
        add(m, "ours_errors", r.errors)
    end
    server:stop()
    local ngx = nginx(18082)
    for _ = 1, RUNS do
        local r = wrk("http://127.0.0.1:18082/", 32, HTTP_SECONDS)
        add(m, "nginx_req_s", r.req_s)
        add(m, "nginx_p50_us", r.p50_us)
        add(m, "nginx_p99_us", r.p99_us)
    end
    ngx:stop()
    record("tap", m, function(s)
        return { ("wrk c=32 req/s: -> tap -> examples/http.lua %-9s -> loopback -> nginx+lua %-9s ratio %-5s  p50/p99 us %s/%s vs %s/%s")
            :format(fmt(med(s, "ours_req_s")), fmt(med(s, "nginx_req_s")),
                ratio(med(s, "ours_req_s"), med(s, "nginx_req_s")), fmt(med(s, "ours_p50_us")),
                fmt(med(s, "ours_p99_us")), fmt(med(s, "nginx_p50_us")), fmt(med(s, "nginx_p99_us"))) }
    end, { seconds = HTTP_SECONDS, connections = 32 })
end)

-- The cost of an idle turn of the loop (CPU ns per dl_poll turn, a memif
-- port whose peer, the raw reflector, sends nothing, one pending timer):
-- what every wake-up waits for at worst, and the tuning's first target.
row("turn", function()
    local m = {}
    local secs = QUICK and 0.5 or 2
    local scfg, _, _ = memif_configs("turn", 9)
    local sock = ("%s/turn.sock"):format(TMP)
    local peer = ("%s/memif_pp -l %d %s --file-prefix=turn-%s-c --vdev=net_memif0,role=client,"
        .. "socket=%s,id=0 -- reflect"):format(BIN, CLIENT_CORE, table.concat(EAL, " "),
        RUN_ID, sock)
    for _ = 1, RUNS do
        local worker = start(dpdklua("bench/idle.lua", scfg, secs))
        local reflector = start(peer)
        while worker:alive() do sleep(0.05) end
        reflector:stop()
        local r = kv(worker:stdout())
        if not r.ns_per_turn then error("idle.lua: " .. worker:stdout() .. read(worker.err), 0) end
        add(m, "ns_per_turn", r.ns_per_turn)
    end
    record("turn", m, function(s)
        return { ("idle turn of the loop: %s ns of CPU per turn (memif port, one pending timer)")
            :format(fmt(med(s, "ns_per_turn"))) }
    end, { seconds = secs })
end)

-- ---- main ---------------------------------------------------------------

local wanted = {}
for i = 1, #arg do wanted[#wanted + 1] = arg[i] end
if #wanted == 0 then wanted = order end
local m = machine()
print(("dpdklua bench %s: %s, nproc %d, runs %d%s, server core %d, client core %d, load %s")
    :format(os.date("!%Y-%m-%d %H:%M UTC"), m.cpu, m.nproc, RUNS, QUICK and " (QUICK)" or "",
        SERVER_CORE, CLIENT_CORE, m.load))
local failed = 0
for _, name in ipairs(wanted) do
    local fn = rows[name]
    if not fn then
        io.stderr:write(("bench: no row %q (rows: %s)\n"):format(name, table.concat(order, ", ")))
        os.exit(2)
    end
    local ok, err = xpcall(fn, debug.traceback)
    for _, p in ipairs(running) do -- what a failed row left running
        if p:alive() then p:stop() end
    end
    running = {}
    if not ok then
        failed = failed + 1
        line(("%s: FAILED: %s"):format(name, err))
    end
end
os.exit(failed == 0 and 0 or 1)

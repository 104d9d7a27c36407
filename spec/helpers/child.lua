-- Test helper: run Lua in a fresh `dpdklua` process (the EAL can be
-- initialised once per process, so every test that builds a runtime gets its
-- own), write configs, and manage background servers.
--
--   local child = require "spec.helpers.child"
--   local r = child.run([[ ...lua... ]], { env = { X = "1" }, args = {...} })
--   r.status, r.stdout, r.stderr
--   local p = child.start([[ ...lua... ]]); p:wait_output("READY"); p:kill()
local ffi = require "ffi"

pcall(ffi.cdef, [[
int usleep(unsigned int usec);
int kill(int pid, int sig);
]])

local M = {}

local ROOT = os.getenv("DPDKLUA_ROOT") or "."
-- DPDKLUA: another build to run children on (scripts/test.sh sets it, e.g.
-- ./dpdklua-asan); BUILD: that build's directory (build-asan for make asan).
M.DPDKLUA = os.getenv("DPDKLUA") or (ROOT .. "/dpdklua")
M.BUILD = ROOT .. "/" .. (os.getenv("DPDKLUA_BUILD") or "build")
M.SAN = os.getenv("DPDKLUA_SAN") -- "asan" for a sanitizer build, else nil

local tmpdir
function M.tmpdir()
    if not tmpdir then
        -- a directory of its own for each load of this module (busted reloads it
        -- per spec file): file names only count within one load. Under
        -- scripts/test.sh it lies inside the run's DPDKLUA_SPEC_TMP, which the
        -- run searches for leftover processes at its end.
        local parent = os.getenv("DPDKLUA_SPEC_TMP")
        local p = io.popen(parent and ("mktemp -d '" .. parent .. "/XXXXXX'")
            or "mktemp -d /tmp/dpdklua-spec.XXXXXX")
        tmpdir = p:read("*l")
        p:close()
    end
    return tmpdir
end

local counter = 0
function M.tmpfile(suffix, content)
    counter = counter + 1
    local path = ("%s/%d-%d%s"):format(M.tmpdir(), os.time(), counter, suffix or "")
    if content then
        local f = assert(io.open(path, "w"))
        f:write(content)
        f:close()
    end
    return path
end

function M.read(path)
    local f = io.open(path, "r")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

function M.sleep(seconds)
    ffi.C.usleep(math.floor(seconds * 1e6))
end

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = shell_quote

local function env_prefix(env)
    local parts = {}
    for k, v in pairs(env or {}) do
        parts[#parts + 1] = k .. "=" .. shell_quote(v)
    end
    table.sort(parts)
    return #parts > 0 and ("env " .. table.concat(parts, " ") .. " ") or ""
end

local function command(code, opts)
    local script = M.tmpfile(".lua", code)
    local args = {}
    for i, a in ipairs(opts.args or {}) do args[i] = shell_quote(a) end
    return env_prefix(opts.env) .. shell_quote(M.DPDKLUA) .. " " .. shell_quote(script) .. " "
        .. table.concat(args, " ")
end

-- Run code to completion (bounded by opts.timeout seconds, default 30).
function M.run(code, opts)
    opts = opts or {}
    local out, err, rc = M.tmpfile(".out"), M.tmpfile(".err"), M.tmpfile(".rc")
    local cmd = ("timeout -s KILL %d %s > %s 2> %s < /dev/null; echo $? > %s"):format(
        opts.timeout or 30, command(code, opts), out, err, rc)
    os.execute(cmd)
    return {
        status = tonumber(M.read(rc):match("%d+")),
        stdout = M.read(out),
        stderr = M.read(err),
    }
end

-- child.run for code that must exit 0: raises (at the caller's caller) with
-- the status and both outputs otherwise. Returns the same table.
function M.run_ok(code, opts)
    local r = M.run(code, opts)
    if r.status ~= 0 then
        error(("child exited %s\nstdout:\n%s\nstderr:\n%s"):format(tostring(r.status), r.stdout,
            r.stderr), 3)
    end
    return r
end

-- Run a shell command; returns its exit status and output (stdout+stderr).
function M.sh(cmd)
    local p = io.popen(cmd .. " 2>&1; echo \"__rc=$?\"")
    local s = p:read("*a")
    p:close()
    local rc = tonumber(s:match("__rc=(%d+)%s*$"))
    return rc, (s:gsub("__rc=%d+%s*$", ""))
end

local Proc = {}
Proc.__index = Proc

-- Start a shell command in the background, in its own process group
-- (setsid) so that kill() can end it and anything it started.
function M.start_shell(cmd)
    local out, err, rc = M.tmpfile(".out"), M.tmpfile(".err"), M.tmpfile(".rc")
    local inner = ("%s > %s 2> %s < /dev/null; echo $? > %s"):format(cmd, out, err, rc)
    local p = io.popen("setsid sh -c " .. shell_quote(inner) .. " > /dev/null 2>&1 & echo $!")
    local pid = tonumber(p:read("*l"))
    p:close()
    return setmetatable({ pid = pid, out = out, err = err, rcfile = rc }, Proc)
end

-- Start Lua code in a background dpdklua.
function M.start(code, opts)
    return M.start_shell(command(code, opts or {}))
end

-- Start a python3 program in the background (python -u: unbuffered output).
function M.start_python(code)
    return M.start_shell("python3 -u " .. shell_quote(M.tmpfile(".py", code)))
end

function Proc:stdout() return M.read(self.out) end
function Proc:stderr() return M.read(self.err) end

-- The process itself (the child of the sh wrapper).
function Proc:child_pid()
    local p = io.popen("pgrep -P " .. self.pid)
    local pid = tonumber(p:read("*l") or "")
    p:close()
    return pid
end

-- Wait until stdout contains pattern (plain text); true or false on timeout.
function Proc:wait_output(pattern, timeout)
    local deadline = os.time() + (timeout or 20)
    repeat
        if self:stdout():find(pattern, 1, true) then return true end
        if self:exited() then return self:stdout():find(pattern, 1, true) ~= nil end
        M.sleep(0.02)
    until os.time() > deadline
    return false
end

function Proc:exited()
    return M.read(self.rcfile):match("%d+") ~= nil
end

-- Wait for the process to end; its exit status, or nil on timeout.
function Proc:wait(timeout)
    local deadline = os.time() + (timeout or 20)
    repeat
        local rc = M.read(self.rcfile):match("%d+")
        if rc then return tonumber(rc) end
        M.sleep(0.02)
    until os.time() > deadline
    return nil
end

-- Signal the process (default SIGTERM) and wait for its end; if it
-- does not end, SIGKILL its whole process group.
function Proc:kill(sig)
    if not self:exited() then
        local pid = self:child_pid()
        if pid then ffi.C.kill(pid, sig or 15) end
    end
    local rc = self:wait(10)
    if not rc then
        ffi.C.kill(-self.pid, 9)
        rc = self:wait(5)
    end
    return rc
end

-- Wait until something accepts TCP connections on ip:port (a server this
-- process started); if it ends or does not listen within 15 s, kill it and
-- raise an error naming `what`, with its output, at the caller's caller.
function Proc:wait_listening(ip, port, what)
    local ok = M.wait_until(function()
        if self:exited() then return true end
        return (M.sh(("python3 -c 'import socket; socket.create_connection((%q, %d), 1)'")
            :format(ip, port))) == 0
    end, 15)
    if not ok or self:exited() then
        local out, err = self:stdout(), self:stderr()
        self:kill(9)
        error(("%s did not start on %s:%d\nstdout:\n%s\nstderr:\n%s"):format(what, ip, port, out,
            err), 3)
    end
end

-- A JSON config for a child runtime. spec = { cores = {0}, devices = { {vdev=…}, … },
-- eal_args = {…} }; eal_args default to the no-hugepage set every test uses.
local function json(v)
    local t = type(v)
    if t == "table" then
        if #v > 0 or next(v) == nil and getmetatable(v) == M.array_mt then
            local parts = {}
            for i = 1, #v do parts[i] = json(v[i]) end
            return "[" .. table.concat(parts, ",") .. "]"
        end
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        table.sort(keys)
        local parts = {}
        for i, k in ipairs(keys) do parts[i] = json(tostring(k)) .. ":" .. json(v[k]) end
        return "{" .. table.concat(parts, ",") .. "}"
    elseif t == "string" then
        return '"' .. v:gsub('[%c"\\]', function(c)
            return ("\\u%04x"):format(c:byte())
        end) .. '"'
    elseif t == "number" then -- NaN and infinities have no JSON form
        if v ~= v or v == math.huge or v == -math.huge then return "null" end
        return math.floor(v) == v and ("%d"):format(v) or ("%.10g"):format(v)
    else
        return tostring(v)
    end
end
M.json = json
M.array_mt = {}
function M.array(t) return setmetatable(t or {}, M.array_mt) end

M.EAL_ARGS = { "--no-huge", "-m", "128", "--no-pci", "--no-telemetry" }

function M.config(spec)
    spec = spec or {}
    local cfg = {
        dpdk_cores = spec.cores or { 0 },
        devices = spec.devices or M.array(),
        eal_args = spec.eal_args or M.EAL_ARGS,
    }
    return M.tmpfile(".json", json(cfg))
end

-- A tap's kernel peers (python, curl) reach its address through the tap's
-- /24; once the tap is gone their SYN would follow the default route out of
-- the uplink unless scripts/test-routes.sh's unreachable routes are in place
-- (scripts/test.sh adds them). Checked once per load, before the first tap.
-- Under scripts/test.sh a missing one is added: a /16 that a tap (a run
-- killed earlier, another run's spec) used when the run started got none.
local routes_checked = false
local function require_test_routes()
    if routes_checked then return end
    local script = ("bash %s/scripts/test-routes.sh "):format(M.quote(ROOT))
    local rc, out = M.sh(script .. "check")
    if rc ~= 0 and os.getenv("DPDKLUA_TEST_RUN") then
        M.sh(script .. "add")
        rc, out = M.sh(script .. "check")
    end
    if rc ~= 0 then
        error(out .. "the suite's test routes are not in place, so a kernel client could send to a"
            .. " test address through the default route once its tap is gone: run specs"
            .. " through `bash scripts/test.sh <spec>` (or `bash scripts/test-routes.sh run"
            .. " busted <spec>`)", 3)
    end
    routes_checked = true
end

-- A tap device config with its own interface name and /24 (10.<net>.0.0):
-- the stack is .2, the kernel side .1.
function M.tap_device(name, net, extra)
    require_test_routes()
    local d = {
        vdev = ("net_tap_%s,iface=%s"):format(name, name),
        mac = ("02:d1:%02x:00:00:02"):format(net % 256),
        addresses = { ("10.%d.0.2/24"):format(net) },
        peer_addresses = { ("10.%d.0.1/24"):format(net) },
    }
    for k, v in pairs(extra or {}) do d[k] = v end
    return d
end

-- The two ends of a net_memif link, each a config path: (server, client).
-- The socket is <tmpdir>/<tag>.sock; the server's stack is 10.<net>.0.2, the
-- client's .3, MACs 02:<opts.mac_byte, default d2>:<net>:00:00:<host>.
-- opts: names = { server = vdev name, client = vdev name } (default
-- net_memif_s<tag> and net_memif_c<tag>), ipv6 (also fd<net in hex>::<host>/64),
-- cores (default {0, 1}).
function M.memif_configs(tag, net, opts)
    opts = opts or {}
    local sock = ("%s/%s.sock"):format(M.tmpdir(), tag)
    local names = opts.names or { server = "net_memif_s" .. tag, client = "net_memif_c" .. tag }
    local function config(role, host)
        local addresses = { ("10.%d.0.%d/24"):format(net, host) }
        if opts.ipv6 then addresses[2] = ("fd%x::%d/64"):format(net, host) end
        return M.config({ cores = opts.cores or { 0, 1 }, devices = { {
            vdev = ("%s,role=%s,socket=%s,id=0"):format(names[role], role, sock),
            mac = ("02:%02x:%02x:00:00:%02x"):format(opts.mac_byte or 0xd2, net, host),
            addresses = addresses,
        } } })
    end
    return config("server", 2), config("client", 3)
end

-- /etc/hosts lines of this run: each ends with `marker` (a comment unique to
-- the run), and only lines with it are touched, so what another process
-- writes meanwhile stays. The file is rewritten in place: it may be a bind
-- mount. hosts_add(marker, { "10.1.2.3 name", ... }); hosts_remove(marker).
local function hosts_without(marker)
    local kept = {}
    for line in io.lines("/etc/hosts") do
        if not line:find(marker, 1, true) then kept[#kept + 1] = line end
    end
    return kept
end

local function write_hosts(lines)
    local f = assert(io.open("/etc/hosts", "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
end

function M.hosts_add(marker, entries)
    local lines = hosts_without(marker)
    for _, e in ipairs(entries) do lines[#lines + 1] = e .. " " .. marker end
    write_hosts(lines)
end

function M.hosts_remove(marker)
    write_hosts(hosts_without(marker))
end

function M.link_exists(ifname)
    return (M.sh("ip link show dev " .. shell_quote(ifname))) == 0
end

-- A test's cleanups, run last-first when it ends (busted keeps only the last
-- finally() of a test). busted's finally exists only in the spec's
-- environment and only while a test runs, so the spec passes a function that
-- calls it: `local defer = child.deferrer(function(fn) finally(fn) end)`;
-- then defer(fn) anywhere in a test.
function M.deferrer(on_end)
    local pending = {}
    return function(fn)
        pending[#pending + 1] = fn
        on_end(function()
            local list = pending
            pending = {}
            for i = #list, 1, -1 do pcall(list[i]) end
        end)
    end
end

-- Poll fn() until it is true or timeout seconds (default 5) pass; its last result.
function M.wait_until(fn, timeout)
    local deadline = os.time() + (timeout or 5)
    repeat
        if fn() then return true end
        M.sleep(0.05)
    until os.time() > deadline
    return fn() and true or false
end

return M

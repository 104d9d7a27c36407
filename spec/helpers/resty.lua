-- Test helper: Debian's packaged lua-resty libraries, fetched at test time
-- (`apt-get download` + `dpkg -x` into build/resty; never committed), and
-- the kernel-side peers they talk to (redis-server, memcached, a websocket
-- echo server), bound only to a tap's peer address.
--
--   local resty = require "spec.helpers.resty"
--   local path = resty.fetch()              -- a package.path entry, or error
--   local peer = resty.redis("10.170.0.1", 6379)   ... peer:stop()
local child = require "spec.helpers.child"

local M = {}

local ROOT = os.getenv("DPDKLUA_ROOT") or "."
M.DIR = ROOT .. "/build/resty"

-- Debian package → a file it must contain (module name in comments).
M.PACKAGES = {
    ["lua-nginx-redis"] = "nginx/redis.lua",                 -- require "nginx.redis"
    ["lua-nginx-memcached"] = "nginx/memcached.lua",         -- require "nginx.memcached"
    ["lua-nginx-websocket"] = "nginx/websocket/client.lua",  -- require "nginx.websocket.client"
    ["lua-resty-lrucache"] = "resty/lrucache.lua",           -- require "resty.lrucache"
}

local LUA_DIR = "/usr/share/lua/5.1"

-- Download and unpack what is missing (idempotent); the package.path
-- entries for the unpacked modules. Raises with apt's output on failure.
function M.fetch()
    local root = M.DIR .. "/root"
    local missing = {}
    for pkg, file in pairs(M.PACKAGES) do
        local f = io.open(root .. LUA_DIR .. "/" .. file)
        if f then f:close() else missing[#missing + 1] = pkg end
    end
    if #missing > 0 then
        table.sort(missing)
        local q = child.quote
        local debs = M.DIR .. "/debs"
        local cmd = ("mkdir -p %s %s && cd %s && chmod 777 . && apt-get download %s"):format(
            q(debs), q(root), q(debs), table.concat(missing, " "))
        local rc, out = child.sh(cmd)
        if rc ~= 0 then
            -- a stale package index: one update, then a second try
            child.sh("apt-get update -qq")
            rc, out = child.sh(cmd)
        end
        if rc ~= 0 then error("apt-get download failed:\n" .. out, 2) end
        for _, pkg in ipairs(missing) do
            rc, out = child.sh(("for d in %s/%s_*.deb; do dpkg -x \"$d\" %s || exit 1; done")
                :format(q(debs), pkg, q(root)))
            if rc ~= 0 then error("dpkg -x " .. pkg .. " failed:\n" .. out, 2) end
        end
    end
    return root .. LUA_DIR .. "/?.lua;" .. root .. LUA_DIR .. "/?/init.lua"
end

-- Peers --------------------------------------------------------------------

local Peer = {}
Peer.__index = Peer

function Peer:stop()
    return self.proc:kill(15)
end

local function start(cmd, ip, port, what)
    local proc = child.start_shell(cmd)
    proc:wait_listening(ip, port, what)
    return setmetatable({ proc = proc, ip = ip, port = port }, Peer)
end

-- redis-server on ip:port only (no persistence, no other address).
function M.redis(ip, port)
    local dir = child.tmpfile(".redis")
    os.execute("mkdir -p " .. child.quote(dir))
    return start(("redis-server --bind %s --port %d --save '' --appendonly no "
        .. "--protected-mode no --dir %s"):format(ip, port, child.quote(dir)), ip, port,
        "redis-server")
end

-- memcached on ip:port only (TCP, no UDP).
function M.memcached(ip, port)
    return start(("memcached -u root -l %s -p %d -U 0 -m 16"):format(ip, port), ip, port,
        "memcached")
end

-- A websocket echo server (Debian's python3-websockets) on ip:port: text
-- comes back as text, binary as binary.
M.PYTHON_WS = "/usr/bin/python3" -- Debian's python, which has python3-websockets
function M.websocket_echo(ip, port)
    local file = child.tmpfile(".py", ([[
import asyncio, websockets
async def echo(ws):
    async for msg in ws:
        await ws.send(msg)
async def main():
    async with websockets.serve(echo, %q, %d, max_size=None):
        print("LISTENING", flush=True)
        await asyncio.Future()
asyncio.run(main())
]]):format(ip, port))
    return start(M.PYTHON_WS .. " -u " .. child.quote(file), ip, port,
        "websocket echo server")
end


-- Run body (Lua, inside rt:block_on in a dpdklua child on tap ifname and
-- 10.<net>.0.0/24) against the peer that start_peer(peer_ip) starts on the
-- tap's kernel side once the tap exists. The body sees `ngx` (dpdk.ngx), PEER
-- (the peer's IP) and out(...) (prints one tab-separated line). Returns the
-- child's stdout lines after "GO" (a table) and its stderr.
function M.run(ifname, net_number, start_peer, body, opts)
    local net = require "spec.helpers.net"
    opts = opts or {}
    local path = M.fetch()
    local go = child.tmpfile(".go")
    local svc = net.service(ifname, net_number, ([[
package.path = %q .. ";" .. package.path
local ngx = require "dpdk.ngx"
local GO = %q
local PEER = ("10.%d.0.1")
local function out(...)
    local t = { ... }
    for i = 1, select("#", ...) do t[i] = tostring(t[i]) end
    io.stdout:write(table.concat(t, "\t", 1, select("#", ...)), "\n")
    io.stdout:flush()
end
local rt = assert(dpdk.runtime{ workers = 1, config = CONFIG })
print("READY") io.stdout:flush()
local ok, err = pcall(rt.block_on, rt, function()
    while not io.open(GO) do dpdk.sleep(0.02) end
    out("GO")
%s
end)
if not ok then out("FAILED", err) end
out("DONE")
]]):format(path, go, net_number, body))
    local peer
    local function cleanup()
        svc.stop()
        if peer then peer:stop() end
        os.remove(go)
    end
    local ok, err = pcall(function()
        peer = start_peer(svc.peer_ip)
        assert(io.open(go, "w")):close()
        if not svc.proc:wait_output("DONE", opts.timeout or 60) then
            error("the dpdklua child did not finish:\nstdout:\n" .. svc.proc:stdout()
                .. "\nstderr:\n" .. svc.proc:stderr())
        end
    end)
    local stdout, stderr = svc.proc:stdout(), svc.proc:stderr()
    cleanup()
    if not ok then error(err, 2) end
    if stdout:find("\nFAILED\t") then
        error("the body failed:\n" .. stdout .. "\nstderr:\n" .. stderr, 2)
    end
    local lines, started = {}, false
    for line in stdout:gmatch("[^\n]*") do
        if started and line ~= "" then lines[#lines + 1] = line end
        if line == "GO" then started = true end
    end
    return lines, stderr
end

return M

-- Test helper for the differential conformance spec: nginx + lua module
-- (Debian's nginx-light + libnginx-mod-http-lua) started on 127.0.0.1 with
-- its own prefix and config in a temp dir, and the scripted python peer that
-- the cosocket probe talks to (see spec/helpers/cosocket_probe.lua).
--
--   local openresty = require "spec.helpers.openresty"
--   local peer = openresty.peer("127.0.0.1", 47001)
--   local lines = openresty.run_probe("spec/helpers/cosocket_probe.lua",
--       { ip = "127.0.0.1", port = 47001 })
local child = require "spec.helpers.child"

local M = {}

local ROOT = os.getenv("DPDKLUA_ROOT") or "."
M.MODULES = "/usr/lib/nginx/modules"

function M.available()
    local f = io.open(M.MODULES .. "/ngx_http_lua_module.so")
    if f then f:close() end
    return f ~= nil and (child.sh("command -v nginx")) == 0
end

-- The scripted peer: one line of space-separated actions per connection
-- (s:<%-escaped bytes> send, w:<ms> wait, c close, r reset, e echo, d drain).
M.PEER = [[
import socket, struct, sys, threading, time, urllib.parse
ip, port = sys.argv[1], int(sys.argv[2])
def serve(c):
    try:
        f = c.makefile("rb")
        line = f.readline().decode().strip()
        for act in line.split(" "):
            if act.startswith("s:"):
                c.sendall(urllib.parse.unquote_to_bytes(act[2:]))
            elif act.startswith("w:"):
                time.sleep(int(act[2:]) / 1000)
            elif act == "c":
                break
            elif act == "r":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                break
            elif act in ("e", "d"):
                while True:
                    b = f.read1(65536)
                    if not b: break
                    if act == "e": c.sendall(b)
                break
    except OSError:
        pass
    finally:
        c.close()
l = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((ip, port)); l.listen(64)
print("LISTENING", flush=True)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
]]

local Proc = {}
Proc.__index = Proc
function Proc:stop() return self.proc:kill(15) end

-- The text of an nginx.conf for one nginx (no master, 1 worker) with the lua
-- module, its pid, logs and temp files under dir, listening on
-- 127.0.0.1:<port>: o = { dir, port, locations (text), worker_connections
-- (256), error_level ("info"), listen (extra listen parameters), http (extra
-- http-block lines) }. bench/run.lua's anchor uses it too.
function M.conf(o)
    return ([[
load_module %s/ndk_http_module.so;
load_module %s/ngx_http_lua_module.so;
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/logs/error.log %s;
events { worker_connections %d; }
http {
    access_log off;
    client_body_temp_path %s/body;
%s
    server {
        listen 127.0.0.1:%d%s;
%s
    }
}
]]):format(M.MODULES, M.MODULES, o.dir, o.dir, o.error_level or "info",
        o.worker_connections or 256, o.dir, o.http or "", o.port,
        o.listen and (" " .. o.listen) or "", o.locations)
end

-- Start the scripted peer on ip:port.
function M.peer(ip, port)
    local file = child.tmpfile(".py", M.PEER)
    local proc = child.start_shell(("python3 -u %s %s %d"):format(child.quote(file), ip, port))
    proc:wait_output("LISTENING", 15)
    proc:wait_listening(ip, port, "the probe peer")
    return setmetatable({ proc = proc }, Proc)
end

-- Run each probe file (a Lua file returning function(env)) in one nginx on
-- 127.0.0.1:http_port; env = { ip, port, out }. Returns each probe's lines.
function M.run_probes(probes, env, http_port)
    local dir = child.tmpfile(".nginx")
    assert(os.execute("mkdir -p " .. child.quote(dir .. "/logs")) == 0 or true)
    local locations = {}
    for i, probe in ipairs(probes) do
        locations[#locations + 1] = ([[
        location = /probe%d {
            content_by_lua_block {
                local lines = {}
                local probe = dofile(%q)
                probe({ ip = %q, port = %d, out = function(line) lines[#lines + 1] = line end })
                ngx.print(table.concat(lines, "\n"), "\n")
            }
        }]]):format(i, ROOT .. "/" .. probe, env.ip, env.port)
    end
    local conf = M.conf({ dir = dir, port = http_port, locations = table.concat(locations, "\n"),
        http = "    lua_socket_log_errors off;" })
    local conf_file = dir .. "/nginx.conf"
    local f = assert(io.open(conf_file, "w"))
    f:write(conf)
    f:close()
    local proc = child.start_shell(("nginx -p %s -c %s -e %s"):format(child.quote(dir),
        child.quote(conf_file), child.quote(dir .. "/logs/error.log")))
    local results = {}
    local ok, err = pcall(function()
        proc:wait_listening("127.0.0.1", http_port, "nginx")
        for i = 1, #probes do
            local rc, body = child.sh(("curl -sS --max-time 120 http://127.0.0.1:%d/probe%d")
                :format(http_port, i))
            if rc ~= 0 then error("curl to nginx failed: " .. body) end
            local lines = {}
            for line in body:gmatch("[^\n]+") do lines[#lines + 1] = line end
            results[i] = lines
        end
    end)
    local log = child.read(dir .. "/logs/error.log")
    proc:kill(15)
    if not ok then error(tostring(err) .. "\nnginx error.log:\n" .. log, 2) end
    return results, log
end

return M

-- Test helper: a dpdklua service on its own tap device, and kernel-side
-- peers (python sockets, curl) that talk to it through the tap.
--
--   local svc = net.service("dltc1", 61, [[ ...lua using CONFIG... ]])
--   svc.ip / svc.peer_ip       -- 10.61.0.2 (stack) and 10.61.0.1 (kernel)
--   net.python([[ ...python using IP... ]]) → rc, output
local child = require "spec.helpers.child"

local M = {}

-- Start `code` in a child dpdklua with a one-tap config; code sees CONFIG
-- (the config path) and must print "READY" (or opts.ready) once it listens.
function M.service(ifname, net, code, opts)
    opts = opts or {}
    local dev = child.tap_device(ifname, net, opts.device)
    local cfg = child.config({ cores = opts.cores or { 0 }, devices = { dev } })
    local prologue = ("local CONFIG = %q\nlocal dpdk = require 'dpdk'\nlocal tcp = require 'dpdk.tcp'\n")
        :format(cfg)
    local p = child.start(prologue .. code, { env = opts.env })
    local svc = {
        proc = p, config = cfg, ifname = ifname,
        ip = ("10.%d.0.2"):format(net), peer_ip = ("10.%d.0.1"):format(net),
    }
    local ready = p:wait_output(opts.ready or "READY", opts.ready_timeout or 20)
    if not ready then
        local out, err = p:stdout(), p:stderr()
        p:kill(9)
        error(("service did not get ready\nstdout:\n%s\nstderr:\n%s"):format(out, err), 2)
    end
    function svc.stop()
        local rc = p:kill(15)
        return rc
    end
    return svc
end

-- Run a python3 program; its stdout+stderr and exit status.
function M.python(code, timeout)
    local file = child.tmpfile(".py", code)
    return child.sh(("timeout -s KILL %d python3 %s"):format(timeout or 60, child.quote(file)))
end

return M

-- Runs a script under LuaJIT's sampling profiler (jit.p, what `luajit -jp`
-- uses) in the main Lua state, i.e. worker 0's: bench/profile.sh lua.
--   dpdklua bench/jitp.lua <output file> <script> [args...]
-- JITP_MODE: jit.p's mode (default F2: by function, two frames; v: by VM
-- state, i.e. compiled, interpreted, C, GC, JIT compiler)
package.path = package.path .. ";/usr/share/luajit-2.1.0-beta3/?.lua;/usr/share/luajit-2.1/?.lua"
local out, script = arg[1], arg[2]
local args = {}
for i = 3, #arg do args[#args + 1] = arg[i] end
_G.arg = args -- the script reads its own arguments from the global arg
local prof = require "jit.p"
prof.start(os.getenv("JITP_MODE") or "F2", out) -- by function, two frames of stack
local ok, err = pcall(dofile, script)
prof.stop()
if not ok then io.stderr:write(tostring(err), "\n") end

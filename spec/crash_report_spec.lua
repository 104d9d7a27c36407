-- A process that dies of a fatal signal says where (host/crash.c): one line
-- naming the signal, the thread and, on a worker, the worker, its core and
-- its task, then a backtrace; its exit status stays the signal's (139 for
-- SIGSEGV). Before, such a death printed nothing at all.
local child = require "spec.helpers.child"

-- AddressSanitizer reports faults itself; the reporter is not installed there.
local describe_native = child.SAN and pending or describe

describe_native("the crash reporter", function()
    it("names SIGSEGV, the main thread and a backtrace, and exits 139", function()
        local r = child.run([[
local ffi = require "ffi"
io.stdout:write("BEFORE\n") io.stdout:flush()
print(ffi.cast("volatile int *", 16)[0])
]])
        assert.are.equal(139, r.status, r.stderr)
        assert.are.equal("BEFORE\n", r.stdout)
        assert.matches("dpdklua: fatal SIGSEGV %(invalid memory access%) at address 0x10 on "
            .. "thread [^\n]* %(tid %d+%), not a worker; backtrace:\n", r.stderr)
        -- frames from the interpreter itself and from LuaJIT
        assert.matches("\n[^\n]*dpdklua%(main%+0x%x+%)", r.stderr)
        assert.matches("\n[^\n]*libluajit[^\n]*\n", r.stderr)
        assert.matches("dpdklua: ending with the signal's default action\n", r.stderr)
    end)

    it("names the worker, its core and the task that crashed on worker 1", function()
        local cfg = child.config({ cores = { 0, 1 } })
        local r = child.run(([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 2, config = %q })
rt:run(function()
    local dpdk = require "dpdk"
    local ffi = require "ffi"
    if dpdk.worker_id() == 1 then
        dpdk.spawn(function()
            dpdk.set_task_name("bad-pointer")
            dpdk.sleep(0.05)
            return ffi.cast("volatile int *", 0)[0]
        end)
    end
    dpdk.sleep(30)
end)
]]):format(cfg), { timeout = 60 })
        assert.are.equal(139, r.status, r.stderr)
        assert.matches("dpdklua: fatal SIGSEGV %(invalid memory access%) at address 0x0 on "
            .. "thread [^\n]* %(tid %d+%), worker 1 %(core 1%), in task #%d+ %(bad%-pointer%); "
            .. "backtrace:\n", r.stderr)
        -- one report, even though the process goes down with two workers
        local _, reports = r.stderr:gsub("dpdklua: fatal ", "")
        assert.are.equal(1, reports, r.stderr)
    end)

    it("names SIGABRT and keeps its status (134)", function()
        local r = child.run([[
local ffi = require "ffi"
ffi.cdef "void abort(void);"
ffi.C.abort()
]])
        assert.are.equal(134, r.status, r.stderr)
        assert.matches("dpdklua: fatal SIGABRT %(abort%) on thread [^\n]*; backtrace:\n",
            r.stderr)
        assert.matches("\n[^\n]*libc[^\n]*abort", r.stderr)
    end)
end)

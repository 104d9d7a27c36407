-- The dpdklua interpreter behaves like luajit for scripts and test runners.
local child = require "spec.helpers.child"

local function dpdklua(args, stdin)
    local cmd = child.quote(child.DPDKLUA) .. " " .. args
    if stdin then
        cmd = "printf %s " .. child.quote(stdin) .. " | " .. cmd
    end
    return child.sh(cmd)
end

describe("the dpdklua interpreter", function()
    it("prints its version with -v", function()
        local rc, out = dpdklua("-v")
        assert.are.equal(0, rc)
        assert.matches("^dpdklua %d+%.%d+%.%d+ %(LuaJIT 2%.1", out)
    end)

    it("prints usage with -h, naming every option", function()
        local rc, out = dpdklua("-h")
        assert.are.equal(0, rc)
        for _, opt in ipairs({ "-e", "-l", "-i", "-v", "--", "-" }) do
            assert.truthy(out:find("  " .. opt .. " ", 1, true), "usage lacks " .. opt)
        end
    end)

    it("runs a chunk given with -e", function()
        local rc, out = dpdklua("-e 'print(6 * 7)'")
        assert.are.equal(0, rc)
        assert.are.equal("42\n", out)
    end)

    it("requires a library with -l before running -e", function()
        local rc, out = dpdklua("-l dpdk -e 'print(type(dpdk.runtime))'")
        assert.are.equal(0, rc)
        assert.are.equal("function\n", out)
    end)

    it("passes script arguments in arg and as ...", function()
        local script = child.tmpfile(".lua", "print(arg[0] ~= nil, arg[1], arg[2], #arg, ...)")
        local rc, out = dpdklua(child.quote(script) .. " a 'b c'")
        assert.are.equal(0, rc)
        assert.are.equal("true\ta\tb c\t2\ta\tb c\n", out)
    end)

    it("puts the interpreter and options at negative arg indices", function()
        local script = child.tmpfile(".lua", "print(arg[-1], arg[-2] ~= nil)")
        local rc, out = dpdklua("-e 'x=1' " .. child.quote(script))
        assert.are.equal(0, rc)
        assert.are.equal("x=1\ttrue\n", out)
    end)

    it("runs stdin with -", function()
        local rc, out = dpdklua("- one", "print('from stdin', ...)")
        assert.are.equal(0, rc)
        assert.are.equal("from stdin\tone\n", out)
    end)

    it("stops option handling at --", function()
        local script = child.tmpfile(".lua", "print(...)")
        local rc, out = dpdklua("-- " .. child.quote(script) .. " -v")
        assert.are.equal(0, rc)
        assert.are.equal("-v\n", out)
    end)

    it("exits with status 1 and a traceback on an uncaught error", function()
        local script = child.tmpfile(".lua", "local function f() error('boom') end\nf()\n")
        local rc, out = dpdklua(child.quote(script))
        assert.are.equal(1, rc)
        assert.matches("boom", out)
        assert.matches("stack traceback", out)
    end)

    it("rejects an unknown option with usage", function()
        local rc, out = dpdklua("-Z")
        assert.are.equal(1, rc)
        assert.matches("unrecognized option '%-Z'", out)
    end)

    it("finds the dpdk modules without any environment set-up", function()
        local rc, out = child.sh("cd / && LUA_PATH= " .. child.quote(child.DPDKLUA)
            .. " -e 'print(require(\"dpdk\")._VERSION)'")
        assert.are.equal(0, rc)
        assert.matches("^%d+%.%d+%.%d+\n$", out)
    end)

    it("initialises no EAL until a runtime is built", function()
        local rc, out = dpdklua("-l dpdk.cdef -e 'print(require(\"ffi\").C.dl_eal_initialized())'")
        assert.are.equal(0, rc)
        assert.are.equal("0\n", out)
    end)
end)

describe("logging", function()
    local cfg = child.config({ cores = { 0 } })
    local code = ([[
local dpdk = require "dpdk"
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
    dpdk.log("info", "hello", 42)
    dpdk.log("debug", "details")
end)
]]):format(cfg)

    it("is quiet below warnings by default", function()
        local r = child.run(code)
        assert.are.equal(0, r.status, r.stderr)
        assert.is_nil(r.stderr:match("hello"))
    end)

    it("follows DPDKLUA_LOG levels, per module too", function()
        local r = child.run(code, { env = { DPDKLUA_LOG = "warn,lua=info" } })
        assert.matches("%[info%] lua: hello 42\n", r.stderr)
        assert.is_nil(r.stderr:match("details"))
        assert.is_nil(r.stderr:match("%[info%] runtime"))
        local all = child.run(code, { env = { DPDKLUA_LOG = "debug" } })
        assert.matches("%[debug%] lua: details\n", all.stderr)
        assert.matches("%[info%] runtime: started: 1 worker%(s%), 0 port%(s%)", all.stderr)
    end)

    it("turns debug on with DPDK_DEBUG=1", function()
        local r = child.run(code, { env = { DPDK_DEBUG = "1" } })
        assert.matches("%[debug%] lua: details\n", r.stderr)
    end)

    it("rejects an unknown level", function()
        local r = child.run([[print(pcall(require("dpdk").log, "loud", "x"))]])
        assert.matches("false\t.*level must be error, warn, info or debug, got loud", r.stdout)
    end)
end)

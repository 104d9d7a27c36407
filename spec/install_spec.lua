-- Installing dpdklua: `make install` / `make uninstall` (PREFIX, DESTDIR) and
-- the rock (`luarocks make --tree`). An installed interpreter must find its
-- modules and its embedded config from any directory, with no source tree
-- around. The builds reuse the objects already in build/.
local child = require "spec.helpers.child"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."
local q = child.quote
local ROCKSPEC = "dpdklua-0.1.0-1.rockspec"

local function sh(cmd)
    return child.sh("cd " .. q(ROOT) .. " && " .. cmd)
end

local function exists(path)
    return (child.sh("test -e " .. q(path))) == 0
end

-- A script run from / by the installed interpreter, with no LUA_PATH help
-- and no source tree in reach.
local PROBE = [[
local dpdk = require "dpdk"
local tcp = require "dpdk.tcp"
local config = require "dpdk.config"
assert(type(dpdk.runtime) == "function" and type(tcp.listen) == "function")
local cfg = assert(config.load())
print(package.searchpath("dpdk.tcp", package.path), cfg.path, cfg.devices[1].vdev)
]]

local function run_installed(bin, script, env)
    local file = child.tmpfile(".lua", script)
    return child.sh(("cd / && env -u LUA_PATH -u LUA_PATH_5_1 -u DPDK_ENV_CONFIG %s %s %s")
        :format(env or "", q(bin), q(file)))
end

describe("installing", function()
    it("make install PREFIX=… puts a working interpreter, the modules and dpdklua-setup there; "
        .. "make uninstall removes them", function()
        local prefix = child.tmpfile(".prefix")
        local rc, out = sh("make install PREFIX=" .. q(prefix))
        assert.are.equal(0, rc, out)
        local lua_dir = prefix .. "/share/lua/5.1/dpdk"
        assert.truthy(exists(prefix .. "/bin/dpdklua"))
        assert.truthy(exists(prefix .. "/bin/dpdklua-setup"))
        assert.truthy(exists(lua_dir .. "/init.lua"))
        assert.truthy(exists(lua_dir .. "/tcp.lua"))

        local prc, pout = run_installed(prefix .. "/bin/dpdklua", PROBE)
        assert.are.equal(0, prc, pout)
        assert.are.equal(prefix .. "/bin/../share/lua/5.1/dpdk/tcp.lua <built-in> "
            .. "net_tap0,iface=dl0\n", (pout:gsub("\t", " ")))

        -- dpdklua-setup finds the installed dpdklua beside itself
        local src, sout = child.sh(("cd / && env -u DPDKLUA PATH=/usr/bin:/bin %s verify "
            .. "--config '<built-in>'"):format(q(prefix .. "/bin/dpdklua-setup")))
        assert.are.equal(0, src, sout)
        assert.matches("verify: 0 problem(s)", sout, 1, true)

        local urc, uout = sh("make uninstall PREFIX=" .. q(prefix))
        assert.are.equal(0, urc, uout)
        assert.falsy(exists(prefix .. "/bin/dpdklua"))
        assert.falsy(exists(prefix .. "/bin/dpdklua-setup"))
        assert.falsy(exists(lua_dir))
    end)

    it("make install DESTDIR=… stages the files under DESTDIR for a package", function()
        local dest = child.tmpfile(".dest")
        local rc, out = sh(("make install DESTDIR=%s PREFIX=/opt/dpdklua"):format(q(dest)))
        assert.are.equal(0, rc, out)
        assert.truthy(exists(dest .. "/opt/dpdklua/bin/dpdklua"))
        assert.truthy(exists(dest .. "/opt/dpdklua/share/lua/5.1/dpdk/init.lua"))
        assert.falsy(exists("/opt/dpdklua/bin/dpdklua"))
        -- the staged tree runs where it lies, too
        local prc, pout = run_installed(dest .. "/opt/dpdklua/bin/dpdklua", PROBE)
        assert.are.equal(0, prc, pout)
        local urc = sh(("make uninstall DESTDIR=%s PREFIX=/opt/dpdklua"):format(q(dest)))
        assert.are.equal(0, urc)
        assert.falsy(exists(dest .. "/opt/dpdklua/share/lua/5.1/dpdk"))
    end)

    describe("the rock", function()
        it("passes luarocks lint", function()
            local rc, out = sh("luarocks --lua-version=5.1 lint " .. ROCKSPEC)
            assert.are.equal(0, rc, out)
        end)

        it("luarocks make --tree installs an interpreter that runs a service from anywhere", function()
            local tree = child.tmpfile(".tree")
            local rc, out = sh(("luarocks --lua-version=5.1 make --tree=%s %s"):format(q(tree),
                ROCKSPEC))
            assert.are.equal(0, rc, out)
            assert.matches("dpdklua 0.1.0%-1 is now installed", out)
            local bin = tree .. "/bin/dpdklua"
            assert.truthy(exists(tree .. "/bin/dpdklua-setup"))
            local prc, pout = run_installed(bin, PROBE)
            assert.are.equal(0, prc, pout)
            assert.matches("^" .. (tree .. "/bin/../share/lua/5.1/dpdk/tcp.lua"):gsub("%p", "%%%0"),
                pout)

            -- a runtime on a tap of its own, served by the installed interpreter
            local cfg = child.config({ cores = { 0 }, devices = { child.tap_device("dlu4", 14) } })
            local rrc, rout = run_installed(bin, [[
local dpdk, tcp = require "dpdk", require "dpdk.tcp"
local rt = assert(dpdk.runtime{ workers = 1 })
print(rt:block_on(function()
    local l = assert(tcp.listen("10.14.0.2", 7))
    l:close()
    return "served by worker " .. dpdk.worker_id()
end))
rt:shutdown()]], "DPDK_ENV_CONFIG=" .. q(cfg))
            assert.are.equal(0, rrc, rout)
            assert.matches("served by worker 0", rout, 1, true)

            local rm, rmout = sh(("luarocks --lua-version=5.1 remove --tree=%s dpdklua"):format(
                q(tree)))
            assert.are.equal(0, rm, rmout)
            assert.falsy(exists(bin))
        end)
    end)
end)

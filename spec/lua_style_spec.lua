-- The Lua modules use locals only: no global is written, and only the
-- standard library's globals are read. One exception: lua/dpdk/ngx.lua writes
-- the global `ngx` (and nothing else), which lua-resty libraries read.
local child = require "spec.helpers.child"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."

local STANDARD = {}
for name in ([[assert bit collectgarbage coroutine debug error getmetatable io ipairs jit
    loadstring math newproxy next os package pairs pcall print rawget rawset require select
    setmetatable string table tonumber tostring type unpack xpcall]]):gmatch("%S+") do
    STANDARD[name] = true
end

describe("the Lua modules", function()
    local _, listing = child.sh("ls " .. child.quote(ROOT .. "/lua/dpdk") .. "/*.lua")
    for path in listing:gmatch("[^\n]+") do
        it(path:match("lua/dpdk/.*") .. " writes no global and reads only standard ones", function()
            local rc, bytecode = child.sh("luajit -bl " .. child.quote(path))
            assert.are.equal(0, rc, bytecode)
            local writes, reads = {}, {}
            for op, name in bytecode:gmatch("(G[GS]ET)%s+%d+%s+%d+%s+; \"([^\"]+)\"") do
                if op == "GSET" then
                    writes[#writes + 1] = name
                elseif not STANDARD[name] then
                    reads[#reads + 1] = name
                end
            end
            local allowed = path:match("lua/dpdk/ngx%.lua$") and { "ngx" } or {}
            assert.are.same(allowed, writes)
            assert.are.same({}, reads)
        end)
    end
end)

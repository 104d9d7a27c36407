-- docs/api.md names every public function of the Lua modules: a function
-- added to a module without its line in the reference fails here.
local child = require "spec.helpers.child"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."
local DOC = child.read(ROOT .. "/docs/api.md")

-- Functions of a table, by name (sorted), minus the ones listed as internal.
local function functions(t, internal)
    local out = {}
    for name, v in pairs(t) do
        if type(v) == "function" and not (internal and internal[name]) then
            out[#out + 1] = name
        end
    end
    table.sort(out)
    return out
end

local function assert_documented(prefix, names)
    for _, name in ipairs(names) do
        local text = prefix .. name
        assert.truthy(DOC:find(text, 1, true), "docs/api.md does not document " .. text)
    end
end

describe("docs/api.md", function()
    it("documents every function of dpdk and its tables", function()
        local dpdk = require "dpdk"
        assert_documented("dpdk.", functions(dpdk))
        assert_documented("dpdk.timer.", functions(dpdk.timer))
        assert_documented("dpdk.semaphore.", functions(dpdk.semaphore))
        assert_documented("dpdk.queue.", functions(dpdk.queue))
        assert_documented("`dpdk._VERSION`", { "" })
    end)

    it("documents dpdk.tcp, every socket method and dpdk.config", function()
        assert_documented("tcp.", functions(require "dpdk.tcp"))
        local sock = require("dpdk.socket").new()
        local methods = getmetatable(sock).__index
        assert_documented("sock:", functions(methods, { __tostring = true }))
        assert_documented("config.", functions(require "dpdk.config"))
        -- the module functions the reference names as public
        assert_documented('require("dpdk.resolve").', { "flush" })
        assert_documented('require("dpdk.blocking").', { "threads" })
    end)

    it("documents every function of dpdk.ngx", function()
        local ngx = require "dpdk.ngx"
        assert_documented("ngx.", functions(ngx))
        for _, sub in ipairs({ "thread", "timer", "socket", "re" }) do
            for _, name in ipairs(functions(ngx[sub])) do
                local short = ("ngx.%s.%s"):format(sub, name)
                local grouped = ("ngx.%s."):format(sub)
                assert.truthy(DOC:find(short, 1, true) or (DOC:find(grouped, 1, true)
                    and DOC:find("/" .. name, 1, true)), "docs/api.md does not document " .. short)
            end
        end
        for _, name in ipairs(functions(ngx.worker)) do
            assert.truthy(DOC:find("." .. name .. "()", 1, true), "ngx.worker." .. name)
        end
    end)
end)

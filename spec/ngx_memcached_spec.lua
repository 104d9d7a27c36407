-- Debian's lua-resty-memcached (package lua-nginx-memcached, module
-- nginx.memcached), unmodified, on dpdk.ngx against a real memcached on the
-- tap's kernel side.
local resty = require "spec.helpers.resty"

local function memcached(ip) return resty.memcached(ip, 11211) end

describe("lua-resty-memcached on dpdk.ngx", function()
    it("sets, gets, adds, increments, deletes and reads several keys at once", function()
        local lines = resty.run("dln6", 176, memcached, [[
local memcached = require "nginx.memcached"
local memc = assert(memcached:new())
memc:set_timeout(5000)
out("connect", memc:connect(PEER, 11211))
out("set", memc:set("dog", "an animal", 0, 42))
out("get", memc:get("dog"))
out("missing", memc:get("cat"))
out("add again", memc:add("dog", "x"))
out("set n", memc:set("n", 10))
out("incr", memc:incr("n", 5))
out("decr", memc:decr("n", 3))
out("incr text", memc:incr("dog", 1))
local big = ("0123456789"):rep(20000) -- 200 KB, bigger than one TCP window
out("set big", memc:set("big", big))
local got = memc:get("big")
out("get big", got == big, #got)
out("odd key", memc:set("a key/with spaces", "v1"), memc:get("a key/with spaces"))
local res = memc:get({ "dog", "n", "cat" })
out("multi", res.dog[1], res.dog[2], res.n[1], res.cat)
out("delete", memc:delete("dog"), memc:get("dog"))
out("version", (memc:version():match("^%d+%.%d+")))
out("close", memc:close())
]])
        local version = lines[#lines - 2]
        assert.matches("^version\t%d+%.%d+$", version)
        lines[#lines - 2] = "version"
        assert.are.same({
            "connect\t1", "set\t1", "get\tan animal\t42", "missing\tnil\tnil\tnil",
            "add again\tnil\tNOT_STORED", "set n\t1", "incr\t15", "decr\t12",
            "incr text\tnil\tCLIENT_ERROR cannot increment or decrement non-numeric value",
            "set big\t1", "get big\ttrue\t200000", "odd key\t1\tv1\t0",
            "multi\tan animal\t42\t12\tnil", "delete\t1\tnil\tnil\tnil", "version", "close\t1",
            "DONE",
        }, lines)
    end)
end)

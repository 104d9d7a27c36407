-- Debian's lua-resty-lrucache (both implementations), unmodified, on
-- dpdk.ngx: ngx.now drives its expiry.
local child = require "spec.helpers.child"
local resty = require "spec.helpers.resty"

describe("lua-resty-lrucache on dpdk.ngx", function()
    for _, module in ipairs({ "resty.lrucache", "resty.lrucache.pureffi" }) do
        it(module .. " keeps, evicts the least recently used and expires entries", function()
            local path = resty.fetch()
            local r = child.run(([[
package.path = %q .. ";" .. package.path
local dpdk = require "dpdk"
local ngx = require "dpdk.ngx"
local lrucache = require %q
local rt = assert(dpdk.runtime{ workers = 1, config = %q })
rt:block_on(function()
    local c = assert(lrucache.new(2))
    c:set("a", 1) c:set("b", { x = 2 })
    print("get", (c:get("a")), c:get("b").x)
    c:set("c", 3) -- "a" is now the least recently used
    print("evicted", (c:get("a")), c:get("b").x, (c:get("c")))
    c:set("t", "soon stale", 0.05)
    print("fresh", (c:get("t")))
    ngx.sleep(0.1)
    local v, stale = c:get("t")
    print("expired", v, stale)
    c:delete("c")
    print("deleted", (c:get("c")))
end)
]]):format(path, module, child.config({ cores = { 0 } })))
            assert.are.equal(0, r.status, r.stderr)
            assert.are.equal("get\t1\t2\nevicted\tnil\t2\t3\nfresh\tsoon stale\n"
                .. "expired\tnil\tsoon stale\ndeleted\tnil\n", r.stdout)
        end)
    end
end)

-- A short run of scripts/soak.sh (the long one is `make soak`): mixed load
-- over memif (client processes coming and going) and through a tap (python
-- echo, curl keep-alive) against one server, which must survive with its
-- mbufs and Lua memory back to their idle figures.
local child = require "spec.helpers.child"

describe("scripts/soak.sh", function()
    it("passes a 12-second smoke run", function()
        local p = child.start_shell(("SOAK_S=12 SOAK_CYCLES=4 DPDKLUA=%s bash %s/scripts/soak.sh")
            :format(child.quote(child.DPDKLUA), child.quote(os.getenv("DPDKLUA_ROOT") or ".")))
        finally(function() p:kill(9) end)
        local rc = p:wait(120)
        local out = p:stdout() .. p:stderr()
        assert.are.equal(0, rc, out)
        assert.matches("soak: PASS", out)
        assert.matches("memif clients: [^\n]*processes=%d+", out)
        assert.matches("kernel echo: +ok=%d+", out)
        assert.is_nil(out:find("mismatch"), out)
    end)
end)

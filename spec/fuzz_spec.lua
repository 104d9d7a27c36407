-- The libFuzzer harnesses of fuzz/ (make fuzz runs them for FUZZ_S seconds):
-- each replays its regression corpus, fuzz/corpus/<harness>/ (the seeds and
-- every input that once made it fail), under ASan + UBSan. The harnesses
-- abort on a crash, a sanitizer report, an mbuf not back in the pool after a
-- shutdown, or data that differs from what the peer or application sent.
local child = require "spec.helpers.child"

local ROOT = os.getenv("DPDKLUA_ROOT") or "."

local function files_in(dir)
    local rc, out = child.sh("ls -A " .. child.quote(dir))
    assert.are.equal(0, rc, out)
    local n = 0
    for _ in out:gmatch("[^\n]+") do n = n + 1 end
    return n
end

describe("the fuzz harnesses #fuzz", function()
    setup(function()
        local rc, out = child.sh("make -s -C " .. child.quote(ROOT) .. " SAN=fuzz fuzzers")
        assert.are.equal(0, rc, out)
    end)

    for _, harness in ipairs({ "config", "frames", "tcp" }) do
        it(harness .. " replays fuzz/corpus/" .. harness .. "/ without a failure", function()
            local dir = ROOT .. "/fuzz/corpus/" .. harness
            local n = files_in(dir)
            assert.is_true(n > 0, dir .. " is empty")
            local rc, out = child.sh(child.quote(ROOT .. "/build-fuzz/fuzz/" .. harness .. "_fuzz")
                .. " -runs=0 " .. child.quote(dir))
            assert.are.equal(0, rc, out)
            -- libFuzzer runs each file once (and one empty input first)
            local runs = tonumber(out:match("Done (%d+) runs"))
            assert.is_true(runs and runs >= n, out)
        end)
    end
end)

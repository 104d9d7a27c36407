-- make bench QUICK=1 (issue 10): every row of bench/run.lua runs, with its
-- anchor, end to end, so the benchmarks never rot. The figures themselves
-- are not checked (2 shared cores): only that each row measured something
-- and wrote its results file. Tagged #bench: the sanitizer pass of make test
-- skips it (a smoke of the figures, not of memory safety; ~1 min).
local child = require "spec.helpers.child"

local ROWS = { "pingpong", "turn", "http", "cps", "bulk", "conns", "steer", "tap" }

describe("make bench QUICK=1 #bench", function()
    it("runs every row and its anchors and writes bench/results/<row>.json", function()
        local rc, out = child.sh("make -s bench-tools")
        assert(rc == 0, out)
        local results = child.tmpfile(".results")
        rc, out = child.sh(("env BENCH_QUICK=1 BENCH_SECONDS=0.5 BENCH_RESULTS=%s timeout -s KILL 170 "
            .. "bash bench/run.sh %s"):format(child.quote(results), table.concat(ROWS, " ")))
        assert(rc == 0, out)
        assert.is_nil(out:find("FAILED", 1, true), out)
        for _, row in ipairs(ROWS) do
            local json = child.read(("%s/%s.json"):format(results, row))
            assert(json:find('"row":"' .. row .. '"', 1, true), row .. ": no results file\n" .. out)
            -- every metric has a median, and the row's main figures are positive
            local medians = 0
            for v in json:gmatch('"median":([%-%d%.e]+)') do
                medians = medians + 1
                assert(tonumber(v), row .. ": median " .. v)
            end
            assert(medians >= 1, row .. ": no metric\n" .. json)
            for k, v in json:gmatch('"(work_ns_[%w_]+)":{[^}]-"median":([%-%d%.e]+)') do
                assert(tonumber(v) > 0, row .. ": " .. k .. " " .. v) -- busy CPU per request
            end
            assert(json:find('"nproc":2', 1, true) or json:find('"nproc":', 1, true), json)
        end
        for _, label in ipairs({ "pingpong 64 B   p50 us", "http keep-alive c=32",
            "http load generator ceiling", "connections/s", "bulk one stream",
            "keep-alive at 200 connections", "generator ceiling at 200:", "wrk c=32 req/s",
            "server work per request (busy CPU): ", "http server work per request",
            "idle turn of the loop", "steering, 2 workers: ", "steering: the generator opened" }) do
            assert(out:find(label, 1, true), "missing table line " .. label .. "\n" .. out)
        end
    end)
end)

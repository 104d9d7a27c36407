-- The non-network probe of spec/ngx_conformance_spec.lua: ngx.re, encodings,
-- digests and constants, run under nginx + lua module and under dpdk.ngx;
-- one line per observation ("case<TAB>values").
return function(env)
    local out = env.out

    -- this file's directory: nginx and dpdklua both load it with dofile(path)
    local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
    local show, emit = dofile(dir .. "probe_show.lua")(out, "[%c\\\128-\255]")

    local function case(name, fn, ...)
        local r = { pcall(fn, ...) }
        if r[1] then
            emit(name, unpack(r, 2, table.maxn(r)))
        else
            emit(name, "raised", (tostring(r[2]):gsub("^[^\n]-:%d+: ", ""):gsub("^[^\n]-:%d+: ", "")))
        end
    end

    local M = ngx.re
    -- ngx.re.match: { subject, regex, opts }
    local matches = {
        { "hello 1234 world", [[(\d+)\s+(\w+)]] },
        { "hello 1234 world", [[(?<num>\d+)\s+(?<word>\w+)]], "jo" },
        { "abc", [[(x)?abc]] },
        { "abc", [[(x)?(abc)(y)?]] },
        { "ABC", "abc", "i" },
        { "ABC", "abc" },
        { "a\nb", "^b", "m" },
        { "a\nb", "^b" },
        { "a\nb", "a.b", "s" },
        { "a\nb", "a.b" },
        { "ab c", [[a b # comment
            \s c]], "x" },
        { "xabc", "abc", "a" },
        { "abcxabc", "abc", "a" },
        { "héllo", "h.llo", "u" },
        { "héllo", "h.llo" },
        { "héllo", "h..llo" },
        { "", "^$" },
        { "aaa", "a*?" },
        { "foo=bar", [[(?<k>\w+)=(?<v>\w+)]] },
        { "ab", [[(?<x>a)|(?<x>b)]], "D" },
        { "b", [[(?<x>a)|(?<x>b)]], "D" },
        { 12345, [[\d\d]] },
        { "abc", "[" },
        { "abc", "(abc" },
    }
    for i, m in ipairs(matches) do
        case("match " .. i, M.match, m[1], m[2], m[3])
    end
    case("match bad flag", function() return M.match("a", "a", "q") end)

    -- ctx.pos
    case("match ctx", function()
        local ctx = { pos = 2 }
        local m = M.match("a1b2c3", [[\d]], "jo", ctx)
        local p1 = ctx.pos
        local m2 = M.match("a1b2c3", [[\d]], "jo", ctx)
        return m[0], p1, m2[0], ctx.pos
    end)
    case("match ctx past end", function()
        return M.match("abc", "c", nil, { pos = 10 })
    end)

    -- ngx.re.find
    local finds = {
        { "hello 1234", [[\d+]] },
        { "hello 1234", [[(\d)(\d)]], nil, nil, 2 },
        { "hello 1234", [[(\d)(x)?]], nil, nil, 2 },
        { "hello 1234", [[(\d)]], nil, nil, 5 },
        { "hello", [[\d]] },
        { "hello", "" },
    }
    for i, f in ipairs(finds) do
        case("find " .. i, M.find, f[1], f[2], f[3], f[4], f[5])
    end
    case("find ctx", function()
        local ctx = {}
        local a, b = M.find("one two", [[\w+]], "jo", ctx)
        local c, d = M.find("one two", [[\w+]], "jo", ctx)
        return a, b, c, d, ctx.pos
    end)

    -- ngx.re.gmatch
    local function all(subj, regex, opts)
        local it, err = M.gmatch(subj, regex, opts)
        if not it then return nil, err end
        local got = {}
        for _ = 1, 20 do
            local m, e = it()
            if e then got[#got + 1] = "error " .. e break end
            if not m then break end
            got[#got + 1] = show(m)
        end
        return table.concat(got, " ")
    end
    local gmatches = {
        { "a1b22c333", [[\d+]] },
        { "abc", "" },
        { "abc", "x*" },
        { "k1=v1, k2=v2", [[(?<k>\w+)=(?<v>\w+)]], "jo" },
        { "aaa", "a|" },
        { "", "x*" },
        { "abc", "(" },
    }
    for i, g in ipairs(gmatches) do case("gmatch " .. i, all, g[1], g[2], g[3]) end

    -- ngx.re.sub / gsub
    local subs = {
        { "hello world", "o", "[$0]" },
        { "hello world", [[(\w+) (\w+)]], "$2 $1" },
        { "hello world", [[(\w+) (\w+)]], "${2}x${1}" },
        { "price", "price", "$$5" },
        { "abc", "", "-" },
        { "abc", "x*", "-" },
        { "aaa", "a", "b" },
        { "hello", "(l)(x)?", "<$2>" },
        { "hello", "l", "$9" },
        { "hello", "l", "${name}" },
        { "hello", "l", "$" },
        { "hello", "l", "a$b" },
        { "héllo", "é", "e", "u" },
        { "hello", "(", "x" },
        { 12321, "2", 9 },
    }
    for i, s in ipairs(subs) do
        case("sub " .. i, M.sub, s[1], s[2], s[3], s[4])
        case("gsub " .. i, M.gsub, s[1], s[2], s[3], s[4])
    end
    case("gsub function", M.gsub, "hello world", [[(?<first>\w)(\w*)]], function(m)
        return m.first:upper() .. m[2]
    end)
    case("gsub function number", M.gsub, "a b", [[\w]], function() return 7 end)

    -- encodings and digests
    local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
    case("base64", ngx.encode_base64, "hello")
    case("base64 empty", ngx.encode_base64, "")
    case("base64 pad1", ngx.encode_base64, "ab")
    case("base64 no padding", ngx.encode_base64, "ab", true)
    case("base64 binary", ngx.encode_base64, "\0\255\128\1")
    case("base64 number", ngx.encode_base64, 123)
    case("unbase64", ngx.decode_base64, "aGVsbG8=")
    case("unbase64 no pad", ngx.decode_base64, "aGVsbG8")
    case("unbase64 bad", ngx.decode_base64, "a$b=")
    case("unbase64 bad length", ngx.decode_base64, "aGVsb")
    case("md5", ngx.md5, "abc")
    case("md5 number", ngx.md5, 42)
    case("md5_bin", function() return hex(ngx.md5_bin("abc")) end)
    case("sha1_bin", function() return hex(ngx.sha1_bin("abc")) end)
    case("crc32_short", ngx.crc32_short, "hello")
    case("crc32_long", ngx.crc32_long, "hello world, a longer text")
    case("escape_uri", ngx.escape_uri, "a b/c~d-e_f.g!*'();:@&=+$,?#[]%é")
    case("unescape_uri", ngx.unescape_uri, "a%20b+c%2Fd%zz%4")
    case("http_time", ngx.http_time, 1290079655)
    case("cookie_time", ngx.cookie_time, 1290079655)
    case("null", function() return tostring(ngx.null), type(ngx.null), ngx.null == ngx.null end)
    case("levels", function()
        return ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR, ngx.WARN, ngx.NOTICE,
            ngx.INFO, ngx.DEBUG
    end)
    case("codes", function() return ngx.OK, ngx.ERROR, ngx.AGAIN, ngx.DONE, ngx.DECLINED end)
    case("log", function() return ngx.log(ngx.INFO, "probe ", 1, " ", true, " ", nil) end)
    case("log bad level", function() return ngx.log("info", "x") end)
    case("time", function()
        local now, t = ngx.now(), ngx.time()
        return type(now), math.abs(now - t) < 2, now * 1000 == math.floor(now * 1000)
    end)
    case("today", function() return ngx.today():match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil end)
    case("localtime", function()
        return ngx.localtime():match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$") ~= nil,
            ngx.utctime():match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$") ~= nil
    end)
    case("config", function()
        return ngx.config.subsystem, ngx.config.debug, type(ngx.config.ngx_lua_version),
            type(ngx.config.prefix())
    end)
    case("phase", ngx.get_phase)
    case("worker", function()
        return ngx.worker.id(), ngx.worker.count(), type(ngx.worker.pid()), ngx.worker.exiting()
    end)
end

-- The cosocket probe of spec/ngx_conformance_spec.lua: the same file runs
-- under nginx + lua module (content_by_lua) and under dpdklua (dpdk.ngx),
-- against the same scripted peer (spec/helpers/openresty.lua's PEER), and
-- prints one line per observation: "case<TAB>value<TAB>value...". Only the
-- `ngx` API is used, and nothing timing-dependent is printed.
--
-- The peer reads one line of actions per connection: "s:<%-escaped bytes>"
-- send, "w:<ms>" wait, "c" close, "r" reset, "e" echo until EOF, "d" drain
-- until EOF, separated by spaces.
return function(env)
    local ip, port, out = env.ip, env.port, env.out
    local tcp = ngx.socket.tcp

    -- this file's directory: nginx and dpdklua both load it with dofile(path)
    local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
    local _, emit = dofile(dir .. "probe_show.lua")(out, "[%c\\]")

    local function case(name, fn)
        local ok, err = pcall(fn)
        if not ok then emit(name, "raised", (tostring(err):gsub("^[^\n]-:%d+: ", ""):gsub("^[^\n]-:%d+: ", ""))) end
    end

    -- Connecting ------------------------------------------------------------
    case("connect refused", function()
        local s = tcp()
        s:settimeout(3000)
        emit("connect refused", s:connect(ip, port + 1))
    end)

    case("connect again", function()
        local s = dial("w:50 s:one%0A c")
        emit("connect again", s:connect(ip, port))
        assert(s:send("s:two%0A c\n"))
        emit("connect again", s:receive())
    end)

    -- receive forms -----------------------------------------------------------
    case("receive *l", function()
        local s = dial("s:one%0D%0Atwo%0Athree%0Dx%0D%0Afour c")
        for _ = 1, 5 do emit("receive *l", s:receive()) end
    end)

    case("receive size", function()
        local s = dial("s:hello%20world c")
        emit("receive size", s:receive(5))
        emit("receive size", s:receive(3))
        emit("receive size", s:receive(10))
        emit("receive size", s:receive(1))
    end)

    case("receive *a", function()
        local s = dial("s:all%20of%20it w:50 s:%0Aand%20more c")
        emit("receive *a", s:receive("*a"))
        emit("receive *a", s:receive("*a"))
        emit("receive *a", s:receive())
    end)

    case("receive string size", function()
        local s = dial("s:abcdef c")
        emit("receive string size", pcall(s.receive, s, "3"))
    end)

    case("receive 0", function()
        local s = dial("s:x c")
        emit("receive 0", s:receive(0))
        emit("receive 0", s:receive(1))
        s:close()
        emit("receive 0", s:receive(0))
    end)

    case("read timeout", function()
        local s = dial("s:par w:600 s:tial%0A c")
        s:settimeout(150)
        emit("read timeout", s:receive())
        s:settimeout(3000)
        emit("read timeout", s:receive())
    end)

    case("timeout before connect", function()
        local s = tcp()
        s:settimeout(150)
        assert(s:connect(ip, port))
        assert(s:send("w:600 s:late%0A c\n"))
        emit("timeout before connect", s:receive())
        s:settimeout(3000)
        emit("timeout before connect", s:receive())
    end)

    case("size timeout", function()
        local s = dial("s:abc w:600 s:def c")
        s:settimeout(150)
        emit("size timeout", s:receive(6))
        s:settimeout(3000)
        emit("size timeout", s:receive(3))
    end)

    case("receiveany", function()
        local s = dial("s:abcdef c")
        emit("receiveany", s:receive(1))
        emit("receiveany", s:receiveany(3))
        emit("receiveany", s:receiveany(10))
        emit("receiveany", s:receiveany(10))
    end)

    case("receiveany timeout", function()
        local s = dial("w:600 c")
        s:settimeout(100)
        emit("receiveany timeout", s:receiveany(10))
    end)

    -- receiveuntil ----------------------------------------------------------
    case("receiveuntil", function()
        local s = dial("s:first--xxsecond--xx--xxthird c")
        local it = s:receiveuntil("--xx")
        for _ = 1, 5 do emit("receiveuntil", it()) end
    end)

    case("receiveuntil inclusive", function()
        local s = dial("s:first--xxsecond--xxthird c")
        local it = s:receiveuntil("--xx", { inclusive = true })
        for _ = 1, 4 do emit("receiveuntil inclusive", it()) end
    end)

    case("receiveuntil size", function()
        local s = dial("s:data-without-boundary c")
        local it = s:receiveuntil("--abc")
        for _ = 1, 5 do emit("receiveuntil size", it(8)) end
    end)

    case("receiveuntil size boundary", function()
        local s = dial("s:hello--abcworld--abc c")
        local it = s:receiveuntil("--abc")
        for _ = 1, 8 do emit("receiveuntil size boundary", it(3)) end
    end)

    case("receiveuntil size inclusive", function()
        local s = dial("s:zh%0D%0A--abcedhb c")
        local it = s:receiveuntil("\r\n--abcedhb", { inclusive = true })
        for _ = 1, 3 do emit("receiveuntil size inclusive", it(4)) end
    end)

    case("receiveuntil partial pattern", function()
        local s = dial("s:ab--a--ab--abc c")
        local it = s:receiveuntil("--abc")
        for _ = 1, 2 do emit("receiveuntil partial pattern", it()) end
    end)

    case("receiveuntil timeout", function()
        local s = dial("s:part w:600 s:--xxrest c")
        s:settimeout(150)
        local it = s:receiveuntil("--xx")
        emit("receiveuntil timeout", it())
        s:settimeout(3000)
        emit("receiveuntil timeout", it())
    end)

    -- send ------------------------------------------------------------------
    case("send", function()
        local s = dial("e")
        emit("send", s:send({ "a", { "b", { "c", 1 } }, "d", 2.5 }))
        emit("send", s:receive(8))
        emit("send", s:send(""))
        emit("send", s:send({}))
        emit("send", s:send(42))
        emit("send", s:receive(2))
        emit("send", (pcall(s.send, s, { "x", true })))
        emit("send", (pcall(s.send, s, nil)))
    end)

    -- close and reuse ---------------------------------------------------------
    case("close", function()
        local s = dial("d")
        emit("close", s:close())
        emit("close", s:close())
        emit("close", s:send("x"))
        emit("close", s:receive())
        emit("close", s:connect(ip, port))
        assert(s:send("s:again%0A c\n"))
        emit("close", s:receive())
        emit("close", s:getreusedtimes())
    end)

    case("unconnected", function()
        local s = tcp()
        emit("unconnected", s:send("x"))
        emit("unconnected", s:receive())
        emit("unconnected", s:close())
        emit("unconnected", s:getreusedtimes())
    end)

    case("peer reset", function()
        local s = dial("s:abc w:50 r")
        emit("peer reset", s:receive())
        emit("peer reset", s:receive())
    end)

    -- options ---------------------------------------------------------------
    case("setoption", function()
        local s = dial("d")
        emit("setoption", s:setoption("tcp-nodelay", true))
        emit("setoption", s:setoption("keepalive", true))
        emit("setoption", pcall(s.setoption, s, "no-such-option", 1))
    end)

    -- busy errors -----------------------------------------------------------
    case("busy reading", function()
        local s = dial("w:200 s:x%0A c")
        local t = ngx.thread.spawn(function() return s:receive() end)
        emit("busy reading", s:receive())
        emit("busy reading", ngx.thread.wait(t))
    end)

    case("busy writing", function()
        local s = dial("w:300 d")
        local big = ("x"):rep(8 * 1024 * 1024)
        local t = ngx.thread.spawn(function() return s:send(big) end)
        emit("busy writing", s:send("y"))
        emit("busy writing", ngx.thread.wait(t))
    end)

    -- light threads, sleep, timers ------------------------------------------
    case("thread order", function()
        local log = {}
        local t = ngx.thread.spawn(function(a)
            log[#log + 1] = "child " .. a
            ngx.sleep(0.01)
            log[#log + 1] = "child after sleep"
            return "r1", "r2"
        end, "arg")
        log[#log + 1] = "parent"
        emit("thread order", ngx.thread.wait(t))
        emit("thread order", table.concat(log, ", "))
    end)

    case("thread error", function()
        local t = ngx.thread.spawn(function() error("boom", 0) end)
        emit("thread error", ngx.thread.wait(t))
    end)

    case("thread wait any", function()
        local slow = ngx.thread.spawn(function() ngx.sleep(0.2) return "slow" end)
        local fast = ngx.thread.spawn(function() ngx.sleep(0.01) return "fast" end)
        emit("thread wait any", ngx.thread.wait(slow, fast))
        emit("thread wait any", ngx.thread.wait(slow))
    end)

    case("thread kill", function()
        local log = {}
        local t = ngx.thread.spawn(function()
            ngx.sleep(0.05)
            log[#log + 1] = "not killed"
        end)
        emit("thread kill", ngx.thread.kill(t))
        ngx.sleep(0.1)
        emit("thread kill", #log, ngx.thread.kill(t))
    end)

    case("sleep 0", function()
        local log = {}
        local t = ngx.thread.spawn(function()
            log[#log + 1] = "a1"
            ngx.sleep(0)
            log[#log + 1] = "a2"
        end)
        log[#log + 1] = "main1"
        ngx.sleep(0)
        log[#log + 1] = "main2"
        ngx.thread.wait(t)
        emit("sleep 0", table.concat(log, ", "))
    end)

    case("timer at", function()
        local log = {}
        local ok, err = ngx.timer.at(0.02, function(premature, a, b)
            log[#log + 1] = "timer " .. tostring(premature) .. " " .. a .. " " .. b
        end, "x", "y")
        log[#log + 1] = "after at"
        ngx.sleep(0.1)
        emit("timer at", ok, err, table.concat(log, ", "))
    end)

    case("user coroutine", function()
        local s = dial("s:l1%0Al2%0A c")
        local co = coroutine.wrap(function()
            coroutine.yield(s:receive())
            coroutine.yield(s:receive())
        end)
        emit("user coroutine", co(), co())
    end)
end

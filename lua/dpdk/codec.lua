-- dpdk.codec — what may cross between workers, and how.
--
-- Each worker has its own Lua state, so values cross as bytes: data as
-- string.buffer encodings of nil, booleans, numbers, strings and plain tables
-- of them; functions as bytecode (string.dump) or as a module name that
-- returns a function. Anything else (functions inside data, userdata, cdata,
-- coroutines, tables with metatables) is refused with an error naming where
-- it was found, before anything is sent. Used by rt:run, dpdk.spawn_on and
-- channels.
local buffer = require "string.buffer"

local type, error, pairs, tostring, getmetatable = type, error, pairs, tostring, getmetatable

local M = {}

local MAX_DEPTH = 64
local ALLOWED = "only nil, booleans, numbers, strings and tables of them can cross between workers"

local function key_text(path, k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") then
        return path .. "." .. k
    end
    return path .. "[" .. (type(k) == "string" and ("%q"):format(k) or tostring(k)) .. "]"
end

local function why_not(v)
    local t = type(v)
    if t == "function" then
        return "a function (code crosses only as the target of spawn_on or rt:run)"
    elseif t == "cdata" then
        return "cdata (convert it, e.g. tonumber or ffi.string)"
    elseif t == "userdata" then
        return "userdata"
    elseif t == "thread" then
        return "a coroutine"
    end
    return t
end

local check

local function check_table(what, path, t, depth)
    if depth > MAX_DEPTH then
        error(("%s: %s is nested more than %d tables deep (a cycle?): %s"):format(what, path,
            MAX_DEPTH, ALLOWED), 0)
    end
    local mt = getmetatable(t)
    if mt ~= nil then
        local name = type(mt) == "table" and rawget(mt, "__name")
        if name == "dpdk channel" then
            error(("%s: %s is a dpdk channel: pass its name and open it there with "
                .. "dpdk.channel(name)"):format(what, path), 0)
        end
        error(("%s: %s is a table with a metatable%s, which would be lost: %s")
            :format(what, path, name and (" (" .. tostring(name) .. ")") or "", ALLOWED), 0)
    end
    for k, v in pairs(t) do
        local kt = type(k)
        if kt ~= "string" and kt ~= "number" and kt ~= "boolean" then
            error(("%s: %s has a key that is %s: table keys must be strings, numbers or "
                .. "booleans"):format(what, path, why_not(k)), 0)
        end
        check(what, key_text(path, k), v, depth + 1)
    end
end

-- Raise "<what>: <path> is <type>: ..." unless v can cross.
function check(what, path, v, depth)
    local t = type(v)
    if t == "nil" or t == "boolean" or t == "number" or t == "string" then
        return
    elseif t == "table" then
        return check_table(what, path, v, depth or 0)
    end
    error(("%s: %s is %s: %s"):format(what, path, why_not(v), ALLOWED), 0)
end
M.check = check

-- Check the values of a vararg list (names: "<label> #i"); returns them
-- packed as { n = count, ... }.
function M.pack(what, label, ...)
    local n = select("#", ...)
    local t = { n = n, ... }
    for i = 1, n do
        local v = t[i]
        local vt = type(v)
        if vt ~= "nil" and vt ~= "boolean" and vt ~= "number" and vt ~= "string" then
            check(what, label .. " #" .. i, v, 0)
        end
    end
    return t
end

-- Encode a table that check() (or pack()) accepted.
function M.encode(t)
    return buffer.encode(t)
end

-- The bytecode of a Lua function without upvalues; raises naming the
-- upvalues otherwise.
function M.dump(what, fn)
    local info = debug.getinfo(fn, "uS")
    if info.what == "C" then
        error(what .. ": a C function cannot be sent to another worker (wrap it in a Lua "
            .. "function that requires what it needs)", 0)
    end
    if info.nups > 0 then
        local names = {}
        for i = 1, info.nups do names[i] = debug.getupvalue(fn, i) end
        error(("%s: the function uses upvalues (%s) that cannot cross to other workers: pass "
            .. "them as arguments, require modules inside the function, or use a module name")
            :format(what, table.concat(names, ", ")), 0)
    end
    return string.dump(fn), info.source
end

-- Fill msg with what a worker needs to load target: a module name (loaded
-- there with the caller's package.path) or a function's bytecode.
function M.target(what, target, msg)
    local t = type(target)
    if t == "string" then
        msg.module = target
        msg.path, msg.cpath = package.path, package.cpath
    elseif t == "function" then
        msg.code, msg.source = M.dump(what, target)
        msg.path, msg.cpath = package.path, package.cpath
    else
        error(what .. ": expected a module name or a function, got " .. t, 0)
    end
    return msg
end

-- The function a message from target() names; raises when it cannot load.
function M.load_target(what, msg)
    package.path, package.cpath = msg.path or package.path, msg.cpath or package.cpath
    if msg.module then
        local f = require(msg.module)
        if type(f) ~= "function" then
            error(("%s: module '%s' must return a function, got %s"):format(what, msg.module,
                type(f)), 0)
        end
        return f
    end
    local src = msg.source
    local f, err = loadstring(msg.code, type(src) == "string" and src or "=" .. what)
    if not f then
        error(what .. ": cannot load the function's bytecode: " .. tostring(err), 0)
    end
    return f
end

return M

-- How the conformance probes (spec/helpers/cosocket_probe.lua, ngx_probe.lua)
-- print, under nginx + lua module and under dpdklua alike (each probe loads
-- this file with dofile from its own directory). show(v) is a value as text:
-- nil, ngx.null, strings with the bytes `escape` matches as \ddd, tables
-- with sorted keys; emit(name, ...) passes one line "name<TAB>value..." to out.
return function(out, escape)
    local function show(v)
        if v == nil then return "nil" end
        if v == ngx.null then return "null" end
        if type(v) == "string" then return (v:gsub(escape, function(c)
            return ("\\%03d"):format(c:byte())
        end)) end
        if type(v) == "table" then
            local keys = {}
            for k in pairs(v) do keys[#keys + 1] = k end
            table.sort(keys, function(a, b)
                if type(a) == type(b) then return a < b end
                return type(a) == "number"
            end)
            local parts = {}
            for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k]) end
            return "{" .. table.concat(parts, ",") .. "}"
        end
        return tostring(v)
    end

    local function emit(name, ...)
        local parts = { name }
        for i = 1, select("#", ...) do parts[#parts + 1] = show((select(i, ...))) end
        out(table.concat(parts, "\t"))
    end

    return show, emit
end

-- HTTP/1.1 hello world with keep-alive, served by every worker.
--   sudo ./dpdklua examples/http.lua [port [workers]]   (default port 8080, 1 worker)
--   curl http://10.99.0.2:8080/                          (from the kernel side of the tap)
local dpdk = require "dpdk"

local port = tonumber(arg and arg[1]) or 8080
local workers = tonumber(arg and arg[2]) or 1

local rt = assert(dpdk.runtime{ workers = workers })

-- Runs on every worker (its own Lua state: no upvalues), each listening on
-- the same port; each connection is served by the worker that owns its flow.
local function server(port, first_address)
    local dpdk = require "dpdk"
    local tcp = require "dpdk.tcp"

    local find, sub, lower, match = string.find, string.sub, string.lower, string.match

    -- Reads one request; returns method, path, keep_alive or nil, err.
    local function read_request(client)
        local line, err = client:receive("*l")
        if not line then return nil, err end
        local method, path, version = match(line, "^(%u+) (%S+) HTTP/(%d%.%d)$")
        if not method then return nil, "bad request line" end
        local keep_alive = version == "1.1"
        local length = 0
        while true do
            local header, herr = client:receive("*l")
            if not header then return nil, herr end
            if header == "" then break end
            -- plain find, and only a name as long as one we use is
            -- lowercased and compared (most headers are skipped); a pattern
            -- only for the values we use
            local colon = find(header, ":", 1, true)
            if colon == 11 or colon == 15 then -- #"connection" + 1, #"content-length" + 1
                local name = lower(sub(header, 1, colon - 1))
                if name == "connection" then
                    local value = lower(match(header, "^%s*(.-)%s*$", colon + 1))
                    if value == "close" then keep_alive = false end
                    if value == "keep-alive" then keep_alive = true end
                elseif name == "content-length" then
                    length = tonumber(match(header, "^%s*(%d+)%s*$", colon + 1)) or 0
                end
            end
        end
        if length > 0 then
            local _, berr = client:receive(length) -- a body we do not use
            if berr then return nil, berr end
        end
        return method, path, keep_alive
    end

    -- the same for every request of this worker
    local hello = ("Hello from dpdklua (worker %d, core %d): "):format(dpdk.worker_id(),
        dpdk.core_id())

    -- the response's pieces, filled in per request: one table for all of
    -- this worker's connections, as it stays in cache where one per
    -- connection would not. send copies the pieces out before it can wait,
    -- so nothing may wait between filling it and send.
    local response = { "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " }

    local function serve(client)
        client:settimeout(10000)
        while true do
            local method, path, keep_alive = read_request(client)
            if not method then break end
            local body = hello .. method .. " " .. path .. "\n"
            response[2] = #body
            response[3] = keep_alive and "\r\n\r\n" or "\r\nConnection: close\r\n\r\n"
            response[4] = body
            local ok = client:send(response)
            if not ok or not keep_alive then break end
        end
        client:close()
    end

    local listener = assert(tcp.listen("*", port))
    if dpdk.worker_id() == 0 then
        print(("http server on port %d: try curl http://%s:%d/"):format(port, first_address, port))
        io.stdout:flush()
    end
    while true do
        local client = assert(listener:accept())
        dpdk.spawn(serve, client)
    end
end

rt:run(server, port, rt:addresses()[1] or "<address>")

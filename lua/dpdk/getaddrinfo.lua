-- dpdk.getaddrinfo — the blocking half of dpdk.resolve: runs on a blocking
-- pool thread (it may wait for /etc/hosts, nsswitch and DNS servers).
--
--   require("dpdk.getaddrinfo")(name) → { "ip", ... } (v4 first, then v6, each
--   in the resolver's order, no duplicates) | nil, err
local ffi = require "ffi"

pcall(ffi.cdef, [[
struct addrinfo {
    int ai_flags;
    int ai_family;
    int ai_socktype;
    int ai_protocol;
    unsigned int ai_addrlen;
    struct sockaddr *ai_addr;
    char *ai_canonname;
    struct addrinfo *ai_next;
};
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res);
void freeaddrinfo(struct addrinfo *res);
const char *gai_strerror(int errcode);
const char *inet_ntop(int af, const void *src, char *dst, unsigned int size);
]])

local AF_INET, AF_INET6, SOCK_STREAM = 2, 10, 1
local EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY = -2, -5, -9

return function(name)
    local hints = ffi.new("struct addrinfo")
    hints.ai_socktype = SOCK_STREAM
    local res = ffi.new("struct addrinfo *[1]")
    local rc = ffi.C.getaddrinfo(name, nil, hints, res)
    if rc == EAI_NONAME or rc == EAI_NODATA or rc == EAI_ADDRFAMILY then
        return nil, "name not found: " .. name
    elseif rc ~= 0 then
        return nil, ("cannot resolve %s: %s"):format(name, ffi.string(ffi.C.gai_strerror(rc)))
    end
    local v4, v6, seen = {}, {}, {}
    local buf = ffi.new("char[64]")
    local ai = res[0]
    while ai ~= nil do
        local fam = ai.ai_family
        local src
        if fam == AF_INET then
            src = ffi.cast("const uint8_t *", ai.ai_addr) + 4 -- sin_addr
        elseif fam == AF_INET6 then
            src = ffi.cast("const uint8_t *", ai.ai_addr) + 8 -- sin6_addr
        end
        if src and ffi.C.inet_ntop(fam, src, buf, 64) ~= nil then
            local ip = ffi.string(buf)
            if not seen[ip] then
                seen[ip] = true
                local list = fam == AF_INET and v4 or v6
                list[#list + 1] = ip
            end
        end
        ai = ai.ai_next
    end
    ffi.C.freeaddrinfo(res[0])
    for i = 1, #v6 do v4[#v4 + 1] = v6[i] end
    if #v4 == 0 then
        return nil, "name not found: " .. name
    end
    return v4
end

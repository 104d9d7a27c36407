/*
 * config.c — find, read and validate env.json (spec F5, F6).
 *
 * Users write env.json by hand or with a setup tool, so every error names the
 * file, the field as a JSON path ("devices[1].addresses[3]") and what was
 * expected: the message alone must be enough to fix the file.
 * Unknown fields (version, platform, generated_at, ...) are ignored so that
 * files written for the seed's tooling keep working, except one that looks
 * like a misspelt known field ("devcies"): ignoring that would drop the
 * user's setting without a word. JSON null counts as an absent optional
 * field, as serde writes `None`.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "host.h"

enum {
    FIELD_LEN = 128,
    MAX_FILE_SIZE = 16 << 20, /* env.json is small; this stops a mistaken /dev/zero */
    MTU_MIN = 68,             /* the IPv4 minimum (RFC 791) */
    MTU_MAX = 9600,
    MTU_DEFAULT = 1500,
};

static const char ENV_VAR[] = "DPDK_ENV_CONFIG";
static const char LOCAL_PATH[] = "./config/dpdk-env.json";
static const char SYSTEM_PATH[] = "/etc/dpdk/env.json";
static const char BUILTIN_ORIGIN[] = "<built-in>";

enum config_source { SOURCE_ENV, SOURCE_FILE, SOURCE_BUILTIN };

/* ---- error texts ---- */

static const char *json_type_name(const cJSON *item)
{
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsBool(item))
        return "a boolean";
    if (cJSON_IsNumber(item))
        return "a number";
    if (cJSON_IsString(item))
        return "a string";
    if (cJSON_IsArray(item))
        return "an array";
    if (cJSON_IsObject(item))
        return "an object";
    return "an unknown value";
}

/* The offending value as it reads in the file, shortened to fit a message. */
static const char *json_value_text(const cJSON *item, char *buf, size_t len)
{
    if (cJSON_IsString(item)) {
        const char *s = item->valuestring;
        snprintf(buf, len, "\"%.80s%s\"", s, strlen(s) > 80 ? "..." : "");
    } else if (cJSON_IsNumber(item)) {
        snprintf(buf, len, "%.15g", item->valuedouble);
    } else {
        snprintf(buf, len, "%s", json_type_name(item));
    }
    return buf;
}

static int fail_type(const char *origin, const char *field, const char *expected, const cJSON *got)
{
    return dl_fail("%s: %s: expected %s, got %s", origin, field, expected, json_type_name(got));
}

static int fail_value(const char *origin, const char *field, const char *expected, const cJSON *got)
{
    char text[128];
    return dl_fail("%s: %s: expected %s, got %s", origin, field, expected,
                   json_value_text(got, text, sizeof text));
}

/* ---- typed field access ---- */

/* An optional field: NULL when absent or null. */
static const cJSON *optional_field(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    return cJSON_IsNull(item) ? NULL : item;
}

static int get_string(const char *origin, const char *field, const cJSON *item, char *buf,
                      size_t size)
{
    if (!cJSON_IsString(item))
        return fail_type(origin, field, "a string", item);
    size_t len = strlen(item->valuestring);
    if (len >= size)
        return dl_fail("%s: %s: expected at most %zu characters, got %zu", origin, field, size - 1,
                       len);
    memcpy(buf, item->valuestring, len + 1);
    return DL_OK;
}

/* what: how the expectation reads, e.g. "a core number" → "a core number 0..255". */
static int get_int(const char *origin, const char *field, const cJSON *item, const char *what,
                   int min, int max, int *out)
{
    if (!cJSON_IsNumber(item))
        return fail_type(origin, field, "an integer", item);
    double value = item->valuedouble;
    /* Range first: converting an out-of-range double to int is undefined. */
    if (!(value >= min && value <= max) || value != (double)(int)value) {
        char expected[96];
        snprintf(expected, sizeof expected, "%s %d..%d", what, min, max);
        return fail_value(origin, field, expected, item);
    }
    *out = (int)value;
    return DL_OK;
}

static int get_array(const char *origin, const char *field, const cJSON *item, int max_items,
                     const char *items_name, int *count)
{
    if (!cJSON_IsArray(item))
        return fail_type(origin, field, "an array", item);
    int n = cJSON_GetArraySize(item);
    if (n > max_items)
        return dl_fail("%s: %s: expected at most %d %s, got %d", origin, field, max_items,
                       items_name, n);
    *count = n;
    return DL_OK;
}

/* ---- value formats ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    return tolower((unsigned char)c) - 'a' + 10;
}

static bool parse_mac(const char *text, uint8_t mac[6])
{
    if (strlen(text) != 17)
        return false;
    for (int i = 0; i < 6; i++) {
        const char *p = text + 3 * i;
        if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
            return false;
        if (i < 5 && p[2] != ':')
            return false;
        mac[i] = (uint8_t)(hex_value(p[0]) << 4 | hex_value(p[1]));
    }
    return true;
}

/* The full form DPDK prints (domain:bus:device.function), so that the
 * address matches rte_dev names and lock file names. */
static bool is_pci_address(const char *text)
{
    static const char pattern[] = "hhhh:hh:hh.f";
    if (strlen(text) != sizeof pattern - 1)
        return false;
    for (size_t i = 0; pattern[i]; i++) {
        unsigned char c = (unsigned char)text[i];
        if (pattern[i] == 'h' && !isxdigit(c))
            return false;
        if (pattern[i] == 'f' && (c < '0' || c > '7'))
            return false;
        if (pattern[i] != 'h' && pattern[i] != 'f' && c != pattern[i])
            return false;
    }
    return true;
}

static bool has_prefix(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* "10.0.0.2/24" or "fd00::2/64". NULL on success, else what was expected. */
static const char *parse_cidr(const char *text, dl_cidr *out)
{
    static const char any[] = "an address with a prefix length like \"10.0.0.2/24\" or "
                              "\"fd00::2/64\"";
    const char *slash = strrchr(text, '/');
    char addr[INET6_ADDRSTRLEN];
    size_t addr_len = slash ? (size_t)(slash - text) : strlen(text);
    if (addr_len >= sizeof addr)
        return any;
    memcpy(addr, text, addr_len);
    addr[addr_len] = '\0';

    memset(out, 0, sizeof *out);
    int max_prefix;
    const char *expected_prefix;
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = 4;
        max_prefix = 32;
        expected_prefix = "a prefix length 0..32 after the IPv4 address, like \"10.0.0.2/24\"";
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = 6;
        max_prefix = 128;
        expected_prefix = "a prefix length 0..128 after the IPv6 address, like \"fd00::2/64\"";
    } else {
        return any;
    }

    /* Digits only: atoi would take "24abc" or " 24". */
    const char *digits = slash ? slash + 1 : "";
    size_t n_digits = strlen(digits);
    if (n_digits == 0 || n_digits > 3 || strspn(digits, "0123456789") != n_digits)
        return expected_prefix;
    out->prefix = atoi(digits);
    if (out->prefix > max_prefix)
        return expected_prefix;
    return NULL;
}

static int get_cidr_list(const char *origin, const char *field, const cJSON *list, dl_cidr *out,
                         int *n_out)
{
    int n;
    if (get_array(origin, field, list, DL_MAX_ADDRS, "addresses", &n) != DL_OK)
        return DL_ERROR;
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        char item_field[FIELD_LEN];
        snprintf(item_field, sizeof item_field, "%s[%d]", field, i);
        if (!cJSON_IsString(item))
            return fail_type(origin, item_field, "a string like \"10.0.0.2/24\"", item);
        const char *expected = parse_cidr(item->valuestring, &out[i]);
        if (expected)
            return fail_value(origin, item_field, expected, item);
        i++;
    }
    *n_out = n;
    return DL_OK;
}

static int get_ip(const char *origin, const char *field, const cJSON *item, int family,
                  uint8_t *out)
{
    const char *expected = family == AF_INET ? "an IPv4 address like \"10.0.0.1\""
                                             : "an IPv6 address like \"fd00::1\"";
    if (!cJSON_IsString(item))
        return fail_type(origin, field, expected, item);
    if (inet_pton(family, item->valuestring, out) != 1)
        return fail_value(origin, field, expected, item);
    return DL_OK;
}

/* ---- the schema ---- */

static const char *const TOP_FIELDS[] = {"dpdk_cores", "devices", "eal_args", NULL};
static const char *const DEVICE_FIELDS[] = {
    "pci_address", "vdev", "mac",  "addresses",     "peer_addresses", "gateway_v4",
    "gateway_v6",  "mtu",  "role", "original_name", "faults",         NULL};

/* Edit distance of two short names, case and '-'/'_' ignored; stops early
 * above 2, all that "looks misspelt" needs. */
static int name_distance(const char *a, const char *b)
{
    enum { MAX = 40 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= MAX || lb >= MAX || (la > lb ? la - lb : lb - la) > 2)
        return 3;
    int row[MAX + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            char ca = (char)tolower((unsigned char)a[i - 1]),
                 cb = (char)tolower((unsigned char)b[j - 1]);
            bool same = ca == cb || ((ca == '-' || ca == '_') && (cb == '-' || cb == '_'));
            int best = diag + (same ? 0 : 1);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = row[j];
            row[j] = best;
        }
    }
    return row[lb];
}

/* A field of `object` that is not in `known` but within two edits of one. */
static int check_misspelt_fields(const char *origin, const char *base, const cJSON *object,
                                 const char *const *known)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, object)
    {
        const char *name = item->string, *near = NULL;
        for (const char *const *k = known; *k && name; k++) {
            if (strcmp(name, *k) == 0) {
                near = NULL;
                break;
            }
            if (!near && name_distance(name, *k) <= 2)
                near = *k;
        }
        if (near)
            return dl_fail("%s: %s%.40s: not a field dpdklua knows; did you mean \"%s\"? "
                           "(unknown fields are ignored, but this one looks misspelt)",
                           origin, base, name, near);
    }
    return DL_OK;
}

static int parse_cores(const char *origin, const cJSON *root, dl_config *cfg)
{
    const cJSON *cores = optional_field(root, "dpdk_cores");
    if (!cores)
        return dl_fail("%s: dpdk_cores: missing; expected a non-empty array of core numbers "
                       "like [0, 1] (the cores dpdklua may run workers on)",
                       origin);
    int n;
    if (get_array(origin, "dpdk_cores", cores, DL_MAX_CORES, "cores", &n) != DL_OK)
        return DL_ERROR;
    if (n == 0)
        return dl_fail("%s: dpdk_cores: expected at least one core number, like [0, 1]", origin);

    bool seen[DL_MAX_CORES] = {false};
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, cores)
    {
        char field[FIELD_LEN];
        snprintf(field, sizeof field, "dpdk_cores[%d]", i);
        int core;
        if (get_int(origin, field, item, "a core number", 0, DL_MAX_CORES - 1, &core) != DL_OK)
            return DL_ERROR;
        if (seen[core])
            return dl_fail("%s: %s: expected each core once, got core %d twice", origin, field,
                           core);
        seen[core] = true;
        cfg->cores[i++] = core;
    }
    cfg->n_cores = n;
    return DL_OK;
}

/* A vdev's device name is the part before its arguments: "net_tap0" in "net_tap0,iface=dl0". */
static size_t vdev_name_len(const char *vdev)
{
    return strcspn(vdev, ",");
}

/* Two entries for one device would make DPDK probe it twice. */
static int check_unique_device(const char *origin, const dl_config *cfg, int index)
{
    const dl_device_config *dev = &cfg->devices[index];
    for (int j = 0; j < index; j++) {
        const dl_device_config *other = &cfg->devices[j];
        if (dev->pci_address[0] && strcmp(dev->pci_address, other->pci_address) == 0)
            return dl_fail("%s: devices[%d].pci_address: expected each device once, got \"%s\" "
                           "again (also devices[%d])",
                           origin, index, dev->pci_address, j);
        size_t len = vdev_name_len(dev->vdev);
        if (dev->vdev[0] && len == vdev_name_len(other->vdev) &&
            strncmp(dev->vdev, other->vdev, len) == 0)
            return dl_fail("%s: devices[%d].vdev: expected each device once, got \"%.*s\" "
                           "again (also devices[%d])",
                           origin, index, (int)len, dev->vdev, j);
    }
    return DL_OK;
}

/* A device's "faults" (the fault injector, host/fault.c): off unless present.
 * Unknown keys are errors here: a misspelt fault would silently not happen. */
static int parse_faults(const char *origin, const char *field, const cJSON *json,
                        dl_fault_config *fc)
{
    static const char *const prob[] = {"drop", "duplicate", "reorder", "corrupt", "truncate"};
    double *slot[] = {&fc->drop, &fc->duplicate, &fc->reorder, &fc->corrupt, &fc->truncate};
    char sub[FIELD_LEN + 32];
    if (!cJSON_IsObject(json))
        return fail_type(origin, field, "an object like {\"seed\": 1, \"drop\": 0.01}", json);
    *fc = (dl_fault_config){
        .enabled = 1, .direction = DL_FAULT_RX | DL_FAULT_TX, .reorder_depth = 4, .seed = 1};
    const cJSON *item;
    cJSON_ArrayForEach(item, json)
    {
        const char *key = item->string;
        snprintf(sub, sizeof sub, "%s.%s", field, key);
        size_t i = 0;
        while (i < sizeof prob / sizeof prob[0] && strcmp(key, prob[i]) != 0)
            i++;
        if (i < sizeof prob / sizeof prob[0]) {
            if (!cJSON_IsNumber(item))
                return fail_type(origin, sub, "a probability 0..1", item);
            if (!(item->valuedouble >= 0 && item->valuedouble <= 1))
                return fail_value(origin, sub, "a probability 0..1", item);
            *slot[i] = item->valuedouble;
        } else if (strcmp(key, "seed") == 0) {
            double v = item->valuedouble;
            if (!cJSON_IsNumber(item))
                return fail_type(origin, sub, "an integer seed", item);
            if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(long long)v)
                return fail_value(origin, sub, "an integer seed 0..2^53", item);
            fc->seed = v;
        } else if (strcmp(key, "reorder_depth") == 0) {
            if (get_int(origin, sub, item, "a depth", 1, DL_FAULT_MAX_DEPTH, &fc->reorder_depth) !=
                DL_OK)
                return DL_ERROR;
        } else if (strcmp(key, "direction") == 0) {
            const char *expected = "a direction \"rx\", \"tx\" or \"both\"";
            if (!cJSON_IsString(item))
                return fail_type(origin, sub, expected, item);
            const char *d = item->valuestring;
            if (strcmp(d, "rx") == 0)
                fc->direction = DL_FAULT_RX;
            else if (strcmp(d, "tx") == 0)
                fc->direction = DL_FAULT_TX;
            else if (strcmp(d, "both") == 0)
                fc->direction = DL_FAULT_RX | DL_FAULT_TX;
            else
                return fail_value(origin, sub, expected, item);
        } else {
            return dl_fail("%s: %s: unknown fault \"%.40s\": expected seed, drop, duplicate, "
                           "reorder, reorder_depth, corrupt, truncate or direction",
                           origin, sub, key);
        }
    }
    return DL_OK;
}

static int parse_device(const char *origin, int index, const cJSON *json, dl_device_config *dev)
{
    char base[FIELD_LEN], field[FIELD_LEN];
    snprintf(base, sizeof base, "devices[%d]", index);
#define FIELD(name) (snprintf(field, sizeof field, "devices[%d].%s", index, name), field)

    if (!cJSON_IsObject(json))
        return fail_type(origin, base, "an object", json);
    char prefix[FIELD_LEN + 2];
    snprintf(prefix, sizeof prefix, "%s.", base);
    if (check_misspelt_fields(origin, prefix, json, DEVICE_FIELDS) != DL_OK)
        return DL_ERROR;

    const cJSON *item;
    dev->role = DL_ROLE_DPDK;
    if ((item = optional_field(json, "role"))) {
        const char *expected = "a role \"dpdk\" or \"kernel\"";
        if (!cJSON_IsString(item))
            return fail_type(origin, FIELD("role"), expected, item);
        if (strcmp(item->valuestring, "kernel") == 0)
            dev->role = DL_ROLE_KERNEL;
        else if (strcmp(item->valuestring, "dpdk") != 0)
            return fail_value(origin, FIELD("role"), expected, item);
    }
    bool dpdk_role = dev->role == DL_ROLE_DPDK;

    const cJSON *pci = optional_field(json, "pci_address");
    const cJSON *vdev = optional_field(json, "vdev");
    if (pci && vdev)
        return dl_fail("%s: %s: expected either \"pci_address\" or \"vdev\", got both", origin,
                       base);
    if (dpdk_role && !pci && !vdev)
        return dl_fail("%s: %s: expected \"pci_address\" (like \"0000:28:00.0\") or \"vdev\" "
                       "(like \"net_tap0,iface=dl0\") for a device with role \"dpdk\"",
                       origin, base);
    if (pci) {
        const char *expected = "a PCI address like \"0000:28:00.0\"";
        if (!cJSON_IsString(pci))
            return fail_type(origin, FIELD("pci_address"), expected, pci);
        if (!is_pci_address(pci->valuestring))
            return fail_value(origin, FIELD("pci_address"), expected, pci);
        snprintf(dev->pci_address, sizeof dev->pci_address, "%s", pci->valuestring);
    }
    if (vdev) {
        if (get_string(origin, FIELD("vdev"), vdev, dev->vdev, sizeof dev->vdev) != DL_OK)
            return DL_ERROR;
        if (!has_prefix(dev->vdev, "net_") || vdev_name_len(dev->vdev) <= strlen("net_"))
            return fail_value(origin, FIELD("vdev"),
                              "a DPDK network vdev like \"net_tap0,iface=dl0\" (starting with "
                              "\"net_\")",
                              vdev);
    }

    if ((item = optional_field(json, "original_name")) &&
        get_string(origin, FIELD("original_name"), item, dev->original_name,
                   sizeof dev->original_name) != DL_OK)
        return DL_ERROR;

    if ((item = optional_field(json, "mac"))) {
        const char *expected = "a MAC address like \"02:00:00:00:00:01\"";
        if (!cJSON_IsString(item))
            return fail_type(origin, FIELD("mac"), expected, item);
        if (!parse_mac(item->valuestring, dev->mac))
            return fail_value(origin, FIELD("mac"), expected, item);
        dev->has_mac = 1;
    }

    dev->mtu = MTU_DEFAULT;
    if ((item = optional_field(json, "mtu")) &&
        get_int(origin, FIELD("mtu"), item, "an MTU", MTU_MIN, MTU_MAX, &dev->mtu) != DL_OK)
        return DL_ERROR;

    if ((item = optional_field(json, "gateway_v4"))) {
        if (get_ip(origin, FIELD("gateway_v4"), item, AF_INET, dev->gateway_v4) != DL_OK)
            return DL_ERROR;
        dev->has_gateway_v4 = 1;
    }
    if ((item = optional_field(json, "gateway_v6"))) {
        if (get_ip(origin, FIELD("gateway_v6"), item, AF_INET6, dev->gateway_v6) != DL_OK)
            return DL_ERROR;
        dev->has_gateway_v6 = 1;
    }

    const cJSON *addresses = optional_field(json, "addresses");
    if (addresses && get_cidr_list(origin, FIELD("addresses"), addresses, dev->addresses,
                                   &dev->n_addresses) != DL_OK)
        return DL_ERROR;
    /* A DPDK port without an address could neither listen nor connect. */
    if (dpdk_role && dev->n_addresses == 0)
        return dl_fail("%s: %s: expected at least one address like \"10.0.0.2/24\" for a device "
                       "with role \"dpdk\"",
                       origin, FIELD("addresses"));

    const cJSON *peers = optional_field(json, "peer_addresses");
    if (peers) {
        /* Only a tap has a kernel side to put them on. */
        if (!has_prefix(dev->vdev, "net_tap")) {
            char device[DL_NAME_LEN + 16];
            if (dev->vdev[0])
                snprintf(device, sizeof device, "vdev \"%.*s\"", (int)vdev_name_len(dev->vdev),
                         dev->vdev);
            else if (dev->pci_address[0])
                snprintf(device, sizeof device, "PCI device %s", dev->pci_address);
            else
                snprintf(device, sizeof device, "device without a vdev");
            return dl_fail("%s: %s: peer_addresses is only for net_tap devices (\"vdev\": "
                           "\"net_tap0,...\"), not for this %s",
                           origin, FIELD("peer_addresses"), device);
        }
        if (get_cidr_list(origin, FIELD("peer_addresses"), peers, dev->peer_addresses,
                          &dev->n_peer_addresses) != DL_OK)
            return DL_ERROR;
    }
    if ((item = optional_field(json, "faults")) &&
        parse_faults(origin, FIELD("faults"), item, &dev->faults) != DL_OK)
        return DL_ERROR;
#undef FIELD
    return DL_OK;
}

static int parse_devices(const char *origin, const cJSON *root, dl_config *cfg)
{
    const cJSON *devices = optional_field(root, "devices");
    if (!devices)
        return DL_OK;
    int n;
    if (get_array(origin, "devices", devices, DL_MAX_DEVICES, "devices", &n) != DL_OK)
        return DL_ERROR;
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, devices)
    {
        if (parse_device(origin, i, item, &cfg->devices[i]) != DL_OK ||
            check_unique_device(origin, cfg, i) != DL_OK)
            return DL_ERROR;
        i++;
    }
    cfg->n_devices = n;
    return DL_OK;
}

static int parse_eal_args(const char *origin, const cJSON *root, dl_config *cfg)
{
    const cJSON *args = optional_field(root, "eal_args");
    if (!args)
        return DL_OK;
    int n;
    if (get_array(origin, "eal_args", args, DL_MAX_EAL_ARGS, "arguments", &n) != DL_OK)
        return DL_ERROR;
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, args)
    {
        char field[FIELD_LEN];
        snprintf(field, sizeof field, "eal_args[%d]", i);
        if (get_string(origin, field, item, cfg->eal_args[i], DL_EAL_ARG_LEN) != DL_OK)
            return DL_ERROR;
        i++;
    }
    cfg->n_eal_args = n;
    return DL_OK;
}

/* ---- NUL characters ----
 * cJSON's strings end at a NUL, so "net_tap0\u0000evil" (or a raw NUL byte)
 * would reach the schema as "net_tap0": a file that means something other
 * than it says. The text is parsed a second time with each NUL spelled as a
 * '0'; a string or key that is shorter in the first tree held a NUL. */

static bool is_nul_escape(const char *text, size_t len, size_t i)
{
    return i + 6 <= len && text[i] == '\\' && text[i + 1] == 'u' &&
           memcmp(text + i + 2, "0000", 4) == 0;
}

/* A copy of text with each \u0000 turned into \u0030 and each raw NUL byte
 * into '0'; NULL when the text holds neither (or no memory is left). */
static char *nul_spelled_out(const char *text, size_t len)
{
    char *copy = NULL;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\0' && text[i] != '\\')
            continue;
        bool nul = text[i] == '\0' || is_nul_escape(text, len, i);
        if (!nul) {
            i++; /* the escaped character: in "\\u0000" the u is plain text */
            continue;
        }
        if (!copy) {
            if (!(copy = malloc(len)))
                return NULL;
            memcpy(copy, text, len);
        }
        if (text[i] == '\0') {
            copy[i] = '0';
        } else {
            copy[i + 4] = '3';
            i += 5;
        }
    }
    return copy;
}

/* The first value or key of a (as parsed) that is shorter than its twin in b
 * (parsed with NULs spelled out); field gets its JSON path. */
static const cJSON *find_nul(const cJSON *a, const cJSON *b, char *field, size_t size, bool *is_key)
{
    if (cJSON_IsString(a) && cJSON_IsString(b))
        return strlen(a->valuestring) != strlen(b->valuestring) ? a : NULL;
    if (!cJSON_IsArray(a) && !cJSON_IsObject(a))
        return NULL;
    size_t base = strlen(field);
    int i = 0;
    for (const cJSON *ca = a->child, *cb = b->child; ca && cb; ca = ca->next, cb = cb->next) {
        if (base + 1 < size) {
            if (!cJSON_IsObject(a))
                snprintf(field + base, size - base, "[%d]", i++);
            else if (strlen(ca->string) != strlen(cb->string)) {
                *is_key = true;
                return ca;
            } else
                snprintf(field + base, size - base, "%s%s", base ? "." : "", ca->string);
        }
        const cJSON *found = find_nul(ca, cb, field, size, is_key);
        if (found)
            return found;
        field[base] = '\0';
    }
    return NULL;
}

static int check_nul(const char *origin, const char *text, size_t len, const cJSON *root)
{
    char *spelled = nul_spelled_out(text, len);
    if (!spelled)
        return DL_OK;
    cJSON *twin = cJSON_ParseWithLengthOpts(spelled, len, NULL, false);
    free(spelled);
    char field[512] = "";
    bool is_key = false;
    const cJSON *found = twin ? find_nul(root, twin, field, sizeof field, &is_key) : NULL;
    cJSON_Delete(twin);
    if (!found)
        return DL_OK;
    const char *s = is_key ? found->string : found->valuestring;
    return dl_fail("%s: %s: expected %s without \\u0000 (a NUL character ends %s early), got "
                   "\"%.80s%s\\u0000...\"",
                   origin, field[0] ? field : "top level", is_key ? "keys" : "a string",
                   is_key ? "them" : "it", s, strlen(s) > 80 ? "..." : "");
}

static bool is_blank(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)text[i]))
            return false;
    return true;
}

static int line_of(const char *text, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at; p++)
        if (*p == '\n')
            line++;
    return line;
}

dl_config *dl_config_parse(const char *text, size_t len, const char *origin)
{
    if (!origin)
        origin = "<string>";
    if (!text) {
        dl_fail("%s: no text to parse, expected a JSON object", origin);
        return NULL;
    }
    if (is_blank(text, len)) {
        dl_fail("%s: empty file, expected a JSON object", origin);
        return NULL;
    }
    /* ParseWithLengthOpts reports where it stopped in its own argument
     * (cJSON_GetErrorPtr is one global shared by all threads). */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (end < text || end > text + len)
        end = text + len;
    /* Text after the object: point at it, not at the whitespace before it. */
    while (root && end < text + len && isspace((unsigned char)*end))
        end++;
    if (!root || end < text + len) {
        dl_fail("%s: not valid JSON near line %d", origin, line_of(text, end));
        cJSON_Delete(root);
        return NULL;
    }

    dl_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        dl_fail("%s: out of memory", origin);
        cJSON_Delete(root);
        return NULL;
    }
    int rc = DL_OK;
    if (strlen(origin) >= sizeof cfg->path)
        rc = dl_fail("%s: path too long (at most %zu characters)", origin, sizeof cfg->path - 1);
    else if (check_nul(origin, text, len, root) != DL_OK)
        rc = DL_ERROR;
    else if (!cJSON_IsObject(root))
        rc = fail_type(origin, "top level", "a JSON object", root);
    else if (check_misspelt_fields(origin, "", root, TOP_FIELDS) != DL_OK ||
             parse_cores(origin, root, cfg) != DL_OK || parse_devices(origin, root, cfg) != DL_OK ||
             parse_eal_args(origin, root, cfg) != DL_OK)
        rc = DL_ERROR;
    cJSON_Delete(root);
    if (rc != DL_OK) {
        free(cfg);
        return NULL;
    }
    snprintf(cfg->path, sizeof cfg->path, "%s", origin);
    return cfg;
}

/* The whole file, NUL-terminated; NULL with *err set (an errno value). */
static char *read_file(const char *path, size_t *len_out, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = errno;
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    *err = buf ? 0 : ENOMEM;
    while (!*err) {
        if (len + 1 == cap) {
            char *bigger = cap < MAX_FILE_SIZE ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                *err = cap < MAX_FILE_SIZE ? ENOMEM : EFBIG;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            /* A directory opens fine and fails here with EISDIR. */
            if (ferror(f))
                *err = errno ? errno : EIO;
            break;
        }
    }
    fclose(f);
    if (*err) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static const char *search(enum config_source *source)
{
    const char *env = getenv(ENV_VAR);
    /* Set but missing is the user's choice, and an error at load time: falling
     * back silently would run on a config they did not mean. */
    if (env && *env) {
        *source = SOURCE_ENV;
        return env;
    }
    *source = SOURCE_FILE;
    if (file_exists(LOCAL_PATH))
        return LOCAL_PATH;
    if (file_exists(SYSTEM_PATH))
        return SYSTEM_PATH;
    *source = SOURCE_BUILTIN;
    return BUILTIN_ORIGIN;
}

const char *dl_config_search(void)
{
    /* A copy: getenv's text can move with the next setenv. */
    static _Thread_local char found[4096];
    enum config_source source;
    snprintf(found, sizeof found, "%s", search(&source));
    return found;
}

dl_config *dl_config_load(const char *path)
{
    enum config_source source = SOURCE_FILE;
    if (!path)
        path = search(&source);
    if (source == SOURCE_BUILTIN)
        return dl_config_parse(dl_default_config, strlen(dl_default_config), BUILTIN_ORIGIN);
    if (!*path) {
        dl_fail("config path is empty: give a file name, or none to use the search order "
                "(%s, %s, %s)",
                ENV_VAR, LOCAL_PATH, SYSTEM_PATH);
        return NULL;
    }

    size_t len;
    int err;
    char *text = read_file(path, &len, &err);
    if (!text) {
        dl_fail("%s: cannot read: %s%s%s%s", path, strerror(err),
                source == SOURCE_ENV ? " (set by " : "", source == SOURCE_ENV ? ENV_VAR : "",
                source == SOURCE_ENV ? ")" : "");
        return NULL;
    }
    dl_config *cfg = dl_config_parse(text, len, path);
    free(text);
    return cfg;
}

const char *dl_config_default(void)
{
    return dl_default_config;
}

void dl_config_free(dl_config *cfg)
{
    free(cfg);
}

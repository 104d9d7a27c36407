/*
 * eal.c — the EAL, initialised once per process, lazily by the first runtime.
 *
 * rte_eal_init can run only once per process (a second call fails with
 * EALREADY, even after rte_eal_cleanup), so later runtimes reuse it and must
 * ask for the same EAL arguments. We add what a library user should not have
 * to think about: a unique --file-prefix (so processes never share EAL
 * files), an --lcores mapping that leaves the main thread's affinity alone
 * (workers pin themselves), and a quiet log level.
 */
#include <errno.h>
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "runtime.h"

enum { MAX_ARGS = DL_MAX_EAL_ARGS * 2 + 8 };

static const char RUNTIME_ROOT[] = "/var/run/dpdk"; /* the EAL's, as root */

static bool initialized;
static char first_args[DL_MAX_EAL_ARGS * 2 * 64]; /* the user's args, for comparison */
static char file_prefix[64];

int dl_eal_initialized(void)
{
    return initialized;
}

static bool has_arg(char **argv, int argc, const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], prefix, n) == 0)
            return true;
    return false;
}

/* A /proc/meminfo figure ("HugePages_Total"); -1 when it cannot be read. */
static int meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256], format[64];
    snprintf(format, sizeof format, "%s: %%d", key);
    int value = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, format, &value) == 1)
            break;
    fclose(f);
    return value;
}

static bool hugetlbfs_mounted(void)
{
    FILE *f = fopen("/proc/mounts", "r");
    if (!f)
        return true; /* cannot tell: do not blame it */
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, " hugetlbfs ") != NULL;
    fclose(f);
    return found;
}

/* The value of "--name=value" or "--name value", or NULL. */
static const char *arg_value(char **argv, int argc, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], name, n) != 0)
            continue;
        if (argv[i][n] == '=')
            return argv[i] + n + 1;
        if (argv[i][n] == '\0' && i + 1 < argc)
            return argv[i + 1];
    }
    return NULL;
}

/* "0@(0-1)": lcore 0 (the main thread) may run on every CPU we may run on. */
static void main_lcore_mapping(char *buf, size_t len)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    size_t off = (size_t)snprintf(buf, len, "--lcores=0@(");
    bool first = true;
    for (int c = 0; c < CPU_SETSIZE && off < len - 8; c++) {
        if (!CPU_ISSET(c, &set))
            continue;
        off += (size_t)snprintf(buf + off, len - off, "%s%d", first ? "" : ",", c);
        first = false;
    }
    snprintf(buf + off, len - off, ")");
}

/* The likely cause of a failed rte_eal_init and its fix (spec F22), from
 * what can be checked afterwards; the EAL's own lines above say more. */
static int explain_failure(char **argv, int argc, int err)
{
    char hint[640] = "";
    bool no_huge = has_arg(argv, argc, "--no-huge");
    const char *prefix = arg_value(argv, argc, "--file-prefix");
    int huge_total = meminfo("HugePages_Total"), huge_free = meminfo("HugePages_Free");
    if (err == EALREADY)
        snprintf(hint, sizeof hint,
                 "the EAL was already initialised (or its initialisation failed) in this process; "
                 "start a new process");
    else if (geteuid() != 0)
        snprintf(hint, sizeof hint, "run as root (sudo): DPDK needs it for devices and memory");
    else if (no_huge && has_arg(argv, argc, "--in-memory"))
        snprintf(hint, sizeof hint,
                 "--no-huge cannot be combined with --in-memory: drop --in-memory");
    else if (!no_huge && huge_total == 0)
        snprintf(hint, sizeof hint,
                 "no hugepages are reserved: add \"--no-huge\" to eal_args (fine for vdevs such "
                 "as net_tap and net_memif) or reserve hugepages (scripts/dpdk/setup.sh "
                 "hugepages 1024, or dpdk-hugepages.py -p 2M --setup 2G)");
    else if (!no_huge && !hugetlbfs_mounted())
        snprintf(hint, sizeof hint,
                 "%d hugepages are reserved but no hugetlbfs is mounted: mount one (mount -t "
                 "hugetlbfs nodev /dev/hugepages, or scripts/dpdk/setup.sh hugepages %d)",
                 huge_total, huge_total);
    else if (!no_huge && huge_free == 0)
        snprintf(hint, sizeof hint,
                 "all %d hugepages are in use (other DPDK processes, or files left in "
                 "/dev/hugepages by killed ones: remove those): reserve more "
                 "(scripts/dpdk/setup.sh hugepages N) or ask for less memory (-m)",
                 huge_total);
    else if (prefix)
        snprintf(hint, sizeof hint,
                 "check the EAL messages above; with --file-prefix=%s, another DPDK process "
                 "using the same prefix holds its files: drop --file-prefix from eal_args "
                 "(dpdklua gives each process its own) or give a unique one",
                 prefix);
    else
        snprintf(hint, sizeof hint,
                 "check the EAL messages above (an unknown or malformed eal_args entry, or a "
                 "device the EAL cannot use); a PCI device must be bound to vfio-pci "
                 "(scripts/dpdk/setup.sh dpdk-bind <pci address>)");
    /* Some failures (e.g. "Cannot init config") leave rte_errno at 0. */
    return dl_fail("rte_eal_init failed: %s; %s", err ? rte_strerror(err) : "no error code", hint);
}

/* The EAL's runtime directory holds a handful of plain files. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* With --no-huge the EAL leaves its runtime directory behind; remove ours. */
static void remove_runtime_dir(void)
{
    if (!file_prefix[0])
        return;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", RUNTIME_ROOT, file_prefix);
    remove_dir(dir);
}

/* A dpdklua process that was killed (SIGKILL, OOM) could not remove its
 * runtime directory: the next one removes those of processes that are gone
 * or ending (a replacement may start while the killed one still exits). */
static void sweep_dead_runtime_dirs(void)
{
    DIR *d = opendir(RUNTIME_ROOT);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid;
        char rest;
        if (sscanf(e->d_name, "dpdklua-%d%c", &pid, &rest) != 1 || pid <= 0)
            continue;
        if (!dl_process_ending(pid))
            continue; /* alive (or not ours to judge) */
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", RUNTIME_ROOT, e->d_name);
        remove_dir(dir);
    }
    closedir(d);
}

int dl_eal_init(const dl_config *cfg, const dl_runtime_opts *opts)
{
    char user_args[sizeof first_args] = "";
    char *argv[MAX_ARGS];
    int argc = 0;
    argv[argc++] = "dpdklua";
    for (int i = 0; i < cfg->n_eal_args && argc < MAX_ARGS - 4; i++)
        argv[argc++] = (char *)cfg->eal_args[i];
    for (int i = 0; i < opts->n_eal_args && argc < MAX_ARGS - 4; i++)
        argv[argc++] = (char *)opts->eal_args[i];
    for (int i = 1; i < argc; i++) {
        strncat(user_args, argv[i], sizeof user_args - strlen(user_args) - 2);
        strncat(user_args, " ", sizeof user_args - strlen(user_args) - 1);
    }

    if (initialized) {
        if (strcmp(user_args, first_args) != 0)
            return dl_fail("the EAL is already initialised in this process with other "
                           "arguments (first: \"%s\", now: \"%s\"); it can be initialised "
                           "once per process: use the same eal_args or a new process",
                           first_args, user_args);
        return DL_OK;
    }

    char prefix_arg[96], lcores_arg[1024];
    if (!has_arg(argv, argc, "--file-prefix")) {
        snprintf(file_prefix, sizeof file_prefix, "dpdklua-%d", (int)getpid());
        snprintf(prefix_arg, sizeof prefix_arg, "--file-prefix=%s", file_prefix);
        argv[argc++] = prefix_arg;
    }
    if (!has_arg(argv, argc, "-l") && !has_arg(argv, argc, "-c") &&
        !has_arg(argv, argc, "--lcores")) {
        main_lcore_mapping(lcores_arg, sizeof lcores_arg);
        argv[argc++] = lcores_arg;
    }
    /* DPDKLUA_TELEMETRY=1 opens the telemetry socket even when eal_args say
     * --no-telemetry (the default config does); =0 closes it. */
    const char *tel = getenv("DPDKLUA_TELEMETRY");
    if (tel && *tel && strcmp(tel, "0") != 0) {
        int kept = 0;
        for (int i = 0; i < argc; i++)
            if (strcmp(argv[i], "--no-telemetry") != 0)
                argv[kept++] = argv[i];
        argc = kept;
    } else if (tel && strcmp(tel, "0") == 0 && !has_arg(argv, argc, "--no-telemetry")) {
        argv[argc++] = "--no-telemetry";
    }
    if (!has_arg(argv, argc, "--log-level")) {
        const char *dbg = getenv("DPDK_DEBUG");
        argv[argc++] =
            (dbg && *dbg && strcmp(dbg, "0") != 0) ? "--log-level=info" : "--log-level=warning";
    }

    sweep_dead_runtime_dirs();
    DL_DEBUG("eal", "rte_eal_init with %s", user_args);
    optind = 1; /* the EAL parses with getopt */
    if (rte_eal_init(argc, argv) < 0)
        return explain_failure(argv, argc, rte_errno);
    optind = 1;
    initialized = true;
    dl_clock_init(); /* dl_now from the TSC from now on */
    snprintf(first_args, sizeof first_args, "%s", user_args);
    return DL_OK;
}

void dl_eal_cleanup(void)
{
    if (!initialized) {
        remove_runtime_dir(); /* a failed init may have made it */
        return;
    }
    /* The interrupt thread outlives rte_eal_cleanup's unmapping of the memory
     * its sources live in (host/memif_guard.c): parked first. If it cannot be
     * (stuck in a handler), the process is ending anyway: skip the unmapping
     * rather than crash; only the runtime dir (mp socket, config) goes. */
    if (dl_intr_thread_park(2.0))
        rte_eal_cleanup();
    else
        DL_WARN("eal", "the interrupt thread did not park within 2 s; skipping rte_eal_cleanup");
    remove_runtime_dir();
    initialized = false;
}

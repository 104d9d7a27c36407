/*
 * main.c — the dpdklua interpreter: LuaJIT with the host linked in.
 *
 * Argument-compatible with `luajit` for what scripts and test runners use:
 *   dpdklua [options] [script [args]]   -e chunk, -l name, -i, -v, -, --
 * Nothing DPDK-related happens until a script builds a runtime, so
 * `busted --lua=./dpdklua` runs the spec suite inside it.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "host.h"
#include "runtime.h"

#ifndef DL_VERSION
#define DL_VERSION "0.1.0"
#endif
#ifndef DL_LUA_DIR
#define DL_LUA_DIR "/usr/local/share/lua/5.1"
#endif

static const char usage_text[] =
    "usage: dpdklua [options]... [script [args]...]\n"
    "Runs Lua with the dpdklua host (DPDK workers, lwIP, coroutine scheduler).\n"
    "Available options are:\n"
    "  -e chunk  Execute string 'chunk'.\n"
    "  -l name   Require library 'name'.\n"
    "  -i        Enter interactive mode after executing 'script'.\n"
    "  -v        Show version information.\n"
    "  -h        Show this help.\n"
    "  --        Stop handling options.\n"
    "  -         Execute stdin and stop handling options.\n"
    "Environment: DPDK_ENV_CONFIG (config file), DPDK_DEVICE (device filter),\n"
    "DPDKLUA_LOG (log level, e.g. debug or warn,port=debug), DPDK_DEBUG=1.\n"
    "Modules: require \"dpdk\", \"dpdk.tcp\", \"dpdk.config\". See README.md.\n";

const char *dl_version(void)
{
    return DL_VERSION;
}

static volatile sig_atomic_t interrupted; /* the signal's number */

int dl_interrupted(void)
{
    return interrupted != 0;
}

int dl_interrupt_signal(void)
{
    return interrupted;
}

/* A first SIGINT/SIGTERM asks a running loop to stop (block_on raises
 * "interrupted" and the runtime shuts down cleanly); with no loop running, or
 * on a second signal, the default action ends the process. A worker that
 * never yields would never see the request: the watchdog thread
 * (host/watchdog.c) then ends the process, naming the stuck task. */
static void on_signal(int sig)
{
    if (interrupted || !dl_runtime_loop_active()) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    interrupted = sig;
}

static int report(lua_State *L, int status)
{
    if (status && !lua_isnil(L, -1)) {
        const char *msg = lua_tostring(L, -1);
        if (!msg)
            msg = "(error object is not a string)";
        fprintf(stderr, "dpdklua: %s\n", msg);
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

static int traceback(lua_State *L)
{
    /* Ctrl-C / SIGTERM: the loop stopped on request, no stack to show. */
    if (dl_interrupted() && lua_isstring(L, 1) && strcmp(lua_tostring(L, 1), "interrupted") == 0)
        return 1;
    if (!lua_isstring(L, 1)) {
        if (lua_isnoneornil(L, 1) || !luaL_callmeta(L, 1, "__tostring") || !lua_isstring(L, -1))
            return 1;
        lua_remove(L, 1);
    }
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

static int dostring(lua_State *L, const char *s, const char *name)
{
    int status = luaL_loadbuffer(L, s, strlen(s), name) || docall(L, 0, 0);
    return report(L, status);
}

static int dolibrary(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    return report(L, docall(L, 1, 1) ? 1 : (lua_setglobal(L, name), 0));
}

/* The `arg` table: script at 0, its arguments at 1.., interpreter and options below 0. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
    int narg = argc - script - 1;
    lua_createtable(L, narg > 0 ? narg : 0, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* Index of the script argument (argc when there is none), as luajit counts it. */
static int find_script(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0)
            return i;
        if (strcmp(a, "--") == 0)
            return i + 1 < argc ? i + 1 : argc;
        if ((a[1] == 'e' || a[1] == 'l') && a[2] == '\0')
            i++; /* skip the option's value */
    }
    return argc;
}

static int run_script(lua_State *L, char **argv, int argc, int script)
{
    const char *fname = argv[script];
    if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
        fname = NULL; /* stdin */
    int status = luaL_loadfile(L, fname);
    if (status == 0) {
        int narg = argc - script - 1;
        luaL_checkstack(L, narg, "too many arguments to script");
        for (int i = script + 1; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = docall(L, narg, 0);
    }
    return report(L, status);
}

static void repl(lua_State *L)
{
    char line[4096];
    for (;;) {
        fputs("> ", stdout);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            break;
        char expr[sizeof line + 8];
        snprintf(expr, sizeof expr, "return %s", line);
        int status = luaL_loadbuffer(L, expr, strlen(expr), "=stdin");
        if (status) {
            lua_pop(L, 1);
            status = luaL_loadbuffer(L, line, strlen(line), "=stdin");
        }
        if (status == 0)
            status = docall(L, 0, LUA_MULTRET);
        if (status == 0 && lua_gettop(L) > 0) {
            lua_getglobal(L, "print");
            lua_insert(L, 1);
            docall(L, lua_gettop(L) - 1, 0);
        }
        report(L, status);
        lua_settop(L, 0);
    }
    fputs("\n", stdout);
}

/* Prepend the Lua module directory: lua/ beside the executable when run from
 * the source tree, else share/lua/5.1 beside its bin/ (make install, or a
 * luarocks tree, whose rock directory differs from where the files end up),
 * else the DL_LUA_DIR it was built for. */
static void set_module_path(lua_State *L)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char dir[PATH_MAX + 32] = DL_LUA_DIR;
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            static const char *const beside[] = {"/lua", "/../share/lua/5.1"};
            for (size_t i = 0; i < sizeof beside / sizeof beside[0]; i++) {
                char probe[PATH_MAX + 64];
                snprintf(probe, sizeof probe, "%s%s/dpdk/init.lua", exe, beside[i]);
                if (access(probe, R_OK) == 0) {
                    snprintf(dir, sizeof dir, "%s%s", exe, beside[i]);
                    break;
                }
            }
        }
    }
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

static void print_version(void)
{
    printf("dpdklua %s (%s) -- DPDK workers, lwIP and coroutines for Lua\n", DL_VERSION,
           LUAJIT_VERSION);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    dl_log_init();
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "dpdklua: cannot create Lua state: not enough memory\n");
        return 1;
    }
    luaL_openlibs(L);
    set_module_path(L);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    dl_crash_install();
    atexit(dl_host_shutdown);

    int status = 0, interactive = 0, script = 0, did_something = 0;
    create_arg_table(L, argv, argc, find_script(argc, argv));
    int i;
    for (i = 1; i < argc && !status; i++) {
        const char *a = argv[i];
        if (a[0] != '-')
            break;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-") == 0)
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "-v") == 0) {
            print_version();
            did_something = 1;
        } else if (strcmp(a, "-i") == 0) {
            interactive = 1;
        } else if (a[1] == 'e' || a[1] == 'l') {
            const char *val = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val) {
                fprintf(stderr, "dpdklua: '%s' needs an argument\n%s", a, usage_text);
                return 1;
            }
            if (a[1] == 'e') {
                status = dostring(L, val, "=(command line)");
            } else {
                status = dolibrary(L, val);
            }
            did_something = 1;
        } else {
            fprintf(stderr, "dpdklua: unrecognized option '%s'\n%s", a, usage_text);
            return 1;
        }
    }
    if (!status && i < argc) {
        script = i;
        status = run_script(L, argv, argc, script);
    } else if (!status && !did_something && !interactive) {
        if (isatty(STDIN_FILENO)) {
            print_version();
            interactive = 1;
        } else {
            status = report(L, luaL_loadfile(L, NULL) || docall(L, 0, 0));
        }
    }
    if (!status && interactive)
        repl(L);
    /* A runtime still running when the script ends shuts down cleanly: its
     * sockets are closed and may finish sending (rt:shutdown's default timeout). */
    dostring(L,
             "local m = package.loaded['dpdk.runtime'] "
             "if m and m.active() then m.active():shutdown() end",
             "=(exit)");
    lua_close(L); /* runs __gc: whatever is left */
    dl_host_shutdown();
    return status ? 1 : 0;
}

/*
 * memlat.c — what a cold cache line costs on this machine: the time of one
 * dependent load (a pointer chase in a random cyclic order, one pointer per
 * 64-byte line) for working sets from 256 KiB to 128 MiB, on one core. Where
 * the figure jumps is the end of the cache the core gets; past it, each line
 * a request touches for the first time costs about the last figure
 * (docs/performance.md, "10 000 connections, seventh pass"). A tuning aid,
 * not a row of make bench.
 *
 *   memlat [core=1]
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { LINE = 64, LOADS = 20000000 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift: a fixed order, the same every run */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double ns_per_load(size_t bytes)
{
    size_t lines = bytes / LINE;
    char *mem = aligned_alloc(LINE, bytes);
    size_t *order = malloc(lines * sizeof *order);
    if (!mem || !order) {
        fprintf(stderr, "memlat: out of memory for %zu bytes\n", bytes);
        exit(1);
    }
    for (size_t i = 0; i < lines; i++)
        order[i] = i;
    uint64_t seed = 88172645463325252ull;
    for (size_t i = lines - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = next_random(&seed) % (i + 1);
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < lines; i++)
        *(void **)(mem + order[i] * LINE) = mem + order[(i + 1) % lines] * LINE;
    void *p = mem;
    for (size_t i = 0; i < lines; i++) /* warm: every line once */
        p = *(void **)p;
    double t0 = now();
    for (int i = 0; i < LOADS; i++)
        p = *(void **)p;
    double ns = (now() - t0) / LOADS * 1e9;
    if (!p) /* keeps the chase from being optimised away */
        puts("");
    free(order);
    free(mem);
    return ns;
}

int main(int argc, char **argv)
{
    int core = argc > 1 ? atoi(argv[1]) : 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "memlat: cannot pin to core %d; running unpinned\n", core);
    printf("working set  ns per dependent load (core %d)\n", core);
    for (size_t kib = 256; kib <= 128 * 1024; kib *= 2)
        printf("%7zu KiB  %6.1f\n", kib, ns_per_load(kib * 1024));
    return 0;
}

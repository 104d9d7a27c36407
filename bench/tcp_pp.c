/*
 * tcp_pp.c — the kernel anchors: TCP over loopback, each side a process
 * pinned to its own core.
 *
 *   tcp_pp ping <round trips> <size> <server core> <client core>
 *       one connection, TCP_NODELAY, <size>-byte messages echoed back; RTT percentiles
 *   tcp_pp bulk <seconds> <server core> <client core>
 *       one stream, 64 KiB writes; Gbit/s received
 *
 * Prints one line of key=value pairs (bench/run.lua parses it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pin(int core)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        perror("tcp_pp: sched_setaffinity");
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int full(int fd, char *buf, size_t len, int writing)
{
    size_t done = 0;
    while (done < len) {
        ssize_t k = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
        if (k <= 0)
            return -1;
        done += (size_t)k;
    }
    return 0;
}

/* A listener on 127.0.0.1, any free port; the port goes to *port. */
static int listener(int *port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 16) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) != 0)
        die("tcp_pp: listen");
    *port = ntohs(a.sin_port);
    return l;
}

static int dial(int port)
{
    int c = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c, (struct sockaddr *)&a, sizeof a) != 0)
        die("tcp_pp: connect");
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return c;
}

static int ping(long n, size_t size, int score, int ccore)
{
    int port, l = listener(&port);
    pid_t pid = fork();
    if (pid == 0) { /* the echo server */
        pin(score);
        int c = accept(l, NULL, NULL), one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char *buf = malloc(size);
        while (full(c, buf, size, 0) == 0 && full(c, buf, size, 1) == 0)
            ;
        _exit(0);
    }
    close(l);
    pin(ccore);
    int c = dial(port);
    char *buf = calloc(1, size);
    long warm = n / 10;
    double *rtt = calloc((size_t)n, sizeof *rtt);
    for (long i = -warm; i < n; i++) {
        double t0 = now();
        if (full(c, buf, size, 1) != 0 || full(c, buf, size, 0) != 0)
            die("tcp_pp: ping");
        if (i >= 0)
            rtt[i] = now() - t0;
    }
    close(c);
    waitpid(pid, NULL, 0);
    qsort(rtt, (size_t)n, sizeof *rtt, cmp_d);
    printf("n=%ld p50_us=%.3f p99_us=%.3f min_us=%.3f\n", n, rtt[n / 2] * 1e6,
           rtt[n * 99 / 100] * 1e6, rtt[0] * 1e6);
    return 0;
}

static int bulk(double seconds, int score, int ccore)
{
    int port, l = listener(&port);
    pid_t pid = fork();
    enum { CHUNK = 65536 };
    if (pid == 0) { /* the sender */
        pin(score);
        int c = accept(l, NULL, NULL);
        char *buf = calloc(1, CHUNK);
        while (write(c, buf, CHUNK) > 0)
            ;
        _exit(0);
    }
    close(l);
    pin(ccore);
    int c = dial(port);
    char *buf = malloc(CHUNK);
    uint64_t bytes = 0;
    double t0 = now(), t;
    while ((t = now()) - t0 < seconds) {
        ssize_t k = read(c, buf, CHUNK);
        if (k <= 0)
            die("tcp_pp: bulk read");
        bytes += (uint64_t)k;
    }
    close(c);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    printf("bytes=%llu seconds=%.3f gbps=%.3f\n", (unsigned long long)bytes, t - t0,
           (double)bytes * 8 / (t - t0) / 1e9);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 6 && strcmp(argv[1], "ping") == 0)
        return ping(atol(argv[2]), (size_t)atol(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (argc == 5 && strcmp(argv[1], "bulk") == 0)
        return bulk(atof(argv[2]), atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: tcp_pp ping N SIZE SERVER_CORE CLIENT_CORE | "
                    "bulk SECONDS SERVER_CORE CLIENT_CORE\n");
    return 2;
}

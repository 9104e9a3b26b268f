/* common.h - helpers shared by the benchmark workloads (header only).
 *
 * Every workload is invoked as `prog [threads] [scale] [seed]`. `scale` is a
 * unit of work chosen so that scale 1 is a quick smoke run; run.sh picks the
 * scale. Work is fixed per run and divided between the threads, so on two
 * cores an ideal allocator's time halves from 1 to 2 threads and then stays
 * flat. Blocks carry a tag in their first and last byte that is checked
 * before they are freed: a wrong tag means a corrupted heap and exit(3).
 * Each workload ends by printing one line "RESULT key=value ..."; run.sh keeps
 * it, and a key time_s there replaces the wall time as the time metric.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- seeded generator: splitmix64 (small state, good enough here) ------ */

typedef struct { uint64_t s; } rng_t;

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline rng_t rng_seeded(uint64_t seed, uint64_t stream)
{
    rng_t r = { seed * 0x2545f4914f6cdd1dull + stream * 0x9e3779b97f4a7c15ull + 1 };
    rng_next(&r);
    return r;
}

/* uniform in [lo, hi] */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* log-uniform in [lo, hi]: as many draws per power of two; small sizes
 * dominate by count, as in real programs */
static inline size_t rng_logsize(rng_t *r, size_t lo, size_t hi)
{
    unsigned lb = 63u - (unsigned)__builtin_clzll(lo);
    unsigned hb = 63u - (unsigned)__builtin_clzll(hi);
    unsigned b = lb + (unsigned)(rng_next(r) % (hb - lb + 1));
    size_t base = (size_t)1 << b;
    size_t n = base + (size_t)(rng_next(r) % base);
    if (n < lo) n = lo;
    if (n > hi) n = hi;
    return n;
}

/* ---- errors and timing -------------------------------------------------- */

__attribute__((noreturn, format(printf, 2, 3)))
static void bench_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- tagged blocks ------------------------------------------------------ */

static inline uint8_t tag_of(size_t n, uint64_t salt)
{
    return (uint8_t)(0x5a ^ n ^ (n >> 8) ^ salt ^ (salt >> 8));
}

static inline void *xmalloc_tagged(size_t n, uint64_t salt)
{
    uint8_t *p = malloc(n);
    if (!p) bench_fail(2, "malloc(%zu) failed", n);
    uint8_t t = tag_of(n, salt);
    p[0] = t;
    p[n - 1] = t;
    return p;
}

static inline void check_tagged(const void *vp, size_t n, uint64_t salt)
{
    const uint8_t *p = vp;
    uint8_t t = tag_of(n, salt);
    if (p[0] != t || p[n - 1] != t)
        bench_fail(3, "corrupted block %p size %zu (tag %02x/%02x want %02x)",
                   vp, n, p[0], p[n - 1], t);
}

static inline void free_tagged(void *p, size_t n, uint64_t salt)
{
    check_tagged(p, n, salt);
    free(p);
}

/* a slot that remembers what it holds, so the block can be checked */
typedef struct {
    void *p;
    size_t n;
    uint64_t salt;
} slot_t;

static inline void slot_put(slot_t *s, size_t n, uint64_t salt)
{
    s->p = xmalloc_tagged(n, salt);
    s->n = n;
    s->salt = salt;
}

static inline void slot_clear(slot_t *s)
{
    if (s->p) free_tagged(s->p, s->n, s->salt);
    s->p = NULL;
}

/* a slot of its own on the heap, so that it can travel between threads */
static inline slot_t *slot_boxed(size_t n, uint64_t salt)
{
    slot_t *s = malloc(sizeof *s);
    if (!s) bench_fail(2, "malloc failed");
    slot_put(s, n, salt);
    return s;
}

static inline void slot_unbox(slot_t *s)
{
    if (!s) return;
    slot_clear(s);
    free(s);
}

/* ---- arguments and threads --------------------------------------------- */

typedef struct {
    int threads;
    long scale;
    uint64_t seed;
} bench_args_t;

static inline bench_args_t bench_args(int argc, char **argv, int def_threads)
{
    bench_args_t a = { def_threads, 1, 42 };
    if (argc > 1) a.threads = atoi(argv[1]);
    if (argc > 2) a.scale = atol(argv[2]);
    if (argc > 3) a.seed = strtoull(argv[3], NULL, 0);
    if (a.threads < 1 || a.threads > 1024 || a.scale < 1)
        bench_fail(1, "usage: %s [threads 1..1024] [scale >= 1] [seed]", argv[0]);
    return a;
}

/* Runs fn(i) in n threads and joins them. */
typedef void *(*thread_fn)(void *);

static inline void run_threads(int n, thread_fn fn, void *args, size_t arg_size)
{
    pthread_t *tid = calloc((size_t)n, sizeof *tid);
    if (!tid) bench_fail(2, "calloc failed");
    for (int i = 0; i < n; i++)
        if (pthread_create(&tid[i], NULL, fn, (char *)args + (size_t)i * arg_size))
            bench_fail(2, "pthread_create failed");
    for (int i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    free(tid);
}

/* share of total work for thread i of n (remainder to the first ones) */
static inline long share(long total, int i, int n)
{
    return total / n + (i < total % n ? 1 : 0);
}

#endif

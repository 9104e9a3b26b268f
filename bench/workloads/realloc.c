/* realloc - string builders growing by realloc.
 *
 * Each thread keeps ACTIVE strings under construction. A step appends a
 * chunk of 1..512 B to a random string with realloc to the exact new length
 * (as naive string builders do); a string that reaches its target length
 * (16 B..1 MiB, log-uniform) is checked byte by byte and freed, and a new
 * one starts. Rewards in-place growth and cheap moves of large blocks.
 */
#include "common.h"

enum { ACTIVE = 16, APPENDS_PER_SCALE = 100000, MAX_CHUNK = 512 };
#define MAX_TARGET ((size_t)1 << 20)

typedef struct {
    char *s;
    size_t len, target;
    uint32_t id;
} builder_t;

typedef struct {
    long appends;
    rng_t rng;
    uint64_t strings, bytes;
} worker_t;

static inline char byte_at(uint32_t id, size_t i)
{
    return (char)(i * 31u + id);
}

static void start(builder_t *b, rng_t *r, uint32_t id)
{
    b->s = NULL;
    b->len = 0;
    b->target = rng_logsize(r, 16, MAX_TARGET);
    b->id = id;
}

static void finish(builder_t *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (b->s[i] != byte_at(b->id, i))
            bench_fail(3, "string %u lost byte %zu of %zu", b->id, i, b->len);
    free(b->s);
}

static void append(builder_t *b, size_t n)
{
    char *s = realloc(b->s, b->len + n);
    if (!s) bench_fail(2, "realloc(%zu) failed", b->len + n);
    for (size_t i = 0; i < n; i++) s[b->len + i] = byte_at(b->id, b->len + i);
    b->s = s;
    b->len += n;
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    builder_t b[ACTIVE];
    uint32_t next_id = 0;
    for (int k = 0; k < ACTIVE; k++) start(&b[k], &w->rng, next_id++);
    for (long i = 0; i < w->appends; i++) {
        builder_t *x = &b[rng_next(&w->rng) % ACTIVE];
        append(x, rng_range(&w->rng, 1, MAX_CHUNK));
        if (x->len >= x->target) {
            w->strings++;
            w->bytes += x->len;
            finish(x);
            start(x, &w->rng, next_id++);
        }
    }
    for (int k = 0; k < ACTIVE; k++) finish(&b[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long total = (long)APPENDS_PER_SCALE * a.scale;
    worker_t *w = calloc((size_t)a.threads, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    for (int i = 0; i < a.threads; i++) {
        w[i].appends = share(total, i, a.threads);
        w[i].rng = rng_seeded(a.seed, (uint64_t)i + 1);
    }
    double t0 = now_s();
    run_threads(a.threads, worker, w, sizeof *w);
    double el = now_s() - t0;
    uint64_t strings = 0, bytes = 0;
    for (int i = 0; i < a.threads; i++) {
        strings += w[i].strings;
        bytes += w[i].bytes;
    }
    free(w);
    printf("RESULT appends=%ld strings=%llu mib=%.1f mappends_per_s=%.2f\n", total,
           (unsigned long long)strings, (double)bytes / (1 << 20), (double)total / el / 1e6);
    return 0;
}

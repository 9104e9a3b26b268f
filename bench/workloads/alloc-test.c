/* alloc-test - random replacement in a working set (after alloc-test).
 *
 * Each thread keeps a working set of SLOTS blocks of random size 16..8192 B
 * (log-uniform, so small sizes are common) and replaces a random one at each
 * step: check and free the old block, allocate a new one and write it.
 */
#include "common.h"

enum { SLOTS = 5000, OPS_PER_SCALE = 1000000, MIN_SIZE = 16, MAX_SIZE = 8192 };

typedef struct {
    long ops;
    rng_t rng;
    uint64_t bytes;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    slot_t *set = calloc(SLOTS, sizeof *set);
    if (!set) bench_fail(2, "calloc failed");
    for (long i = 0; i < w->ops; i++) {
        slot_t *s = &set[rng_next(&w->rng) % SLOTS];
        size_t n = rng_logsize(&w->rng, MIN_SIZE, MAX_SIZE);
        slot_clear(s);
        slot_put(s, n, i);
        w->bytes += n;
    }
    for (unsigned k = 0; k < SLOTS; k++) slot_clear(&set[k]);
    free(set);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long total = (long)OPS_PER_SCALE * a.scale;
    worker_t *w = calloc((size_t)a.threads, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    for (int i = 0; i < a.threads; i++) {
        w[i].ops = share(total, i, a.threads);
        w[i].rng = rng_seeded(a.seed, (uint64_t)i + 1);
    }
    double t0 = now_s();
    run_threads(a.threads, worker, w, sizeof *w);
    double el = now_s() - t0;
    uint64_t bytes = 0;
    for (int i = 0; i < a.threads; i++) bytes += w[i].bytes;
    free(w);
    printf("RESULT ops=%ld bytes=%llu mops_per_s=%.2f\n", total,
           (unsigned long long)bytes, (double)total / el / 1e6);
    return 0;
}

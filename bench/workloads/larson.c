/* larson - a server's allocation pattern (after Larson & Krishnan).
 *
 * A pool of slots holds objects of random size 8..1000 B. Work runs in
 * rounds: each round starts T threads; each replaces random objects in its
 * own slice of the pool (check and free the old one, allocate a new one) for
 * a number of operations and exits, leaving its objects behind. The next
 * round's thread for a slice is a different thread, so most frees hit blocks
 * whose allocating thread has exited.
 */
#include "common.h"

enum { SLOTS_PER_THREAD = 2000, ROUNDS = 10, OPS_PER_SCALE = 400000,
       MIN_SIZE = 8, MAX_SIZE = 1000 };

typedef struct {
    slot_t *slice;    /* this thread's slots */
    long ops;         /* replacements to do */
    rng_t rng;
    uint64_t sum;     /* sizes allocated, for the result line */
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    for (long i = 0; i < w->ops; i++) {
        slot_t *s = &w->slice[rng_next(&w->rng) % SLOTS_PER_THREAD];
        size_t n = rng_range(&w->rng, MIN_SIZE, MAX_SIZE);
        slot_clear(s);
        slot_put(s, n, rng_next(&w->rng));
        w->sum += n;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    int t = a.threads;
    long total = OPS_PER_SCALE * a.scale;
    slot_t *pool = calloc((size_t)t * SLOTS_PER_THREAD, sizeof *pool);
    worker_t *w = calloc((size_t)t, sizeof *w);
    if (!pool || !w) bench_fail(2, "calloc failed");

    rng_t r = rng_seeded(a.seed, 0);
    for (size_t i = 0; i < (size_t)t * SLOTS_PER_THREAD; i++)
        slot_put(&pool[i], rng_range(&r, MIN_SIZE, MAX_SIZE), rng_next(&r));

    uint64_t sum = 0;
    double t0 = now_s();
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < t; i++) {
            /* thread i takes the slice thread i+1 worked on last round */
            w[i].slice = pool + (size_t)((i + round) % t) * SLOTS_PER_THREAD;
            w[i].ops = share(total / ROUNDS, i, t);
            w[i].rng = rng_seeded(a.seed, 1000u * (unsigned)round + (unsigned)i + 1);
            w[i].sum = 0;
        }
        run_threads(t, worker, w, sizeof *w);
        for (int i = 0; i < t; i++) sum += w[i].sum;
    }
    double el = now_s() - t0;

    for (size_t i = 0; i < (size_t)t * SLOTS_PER_THREAD; i++)
        slot_clear(&pool[i]);
    free(pool);
    free(w);
    printf("RESULT ops=%ld bytes=%llu mops_per_s=%.2f\n", total,
           (unsigned long long)sum, (double)total / el / 1e6);
    return 0;
}

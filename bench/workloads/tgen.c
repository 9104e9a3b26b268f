/* tgen - thread generations (the pattern of mimalloc-bench's mstress).
 *
 * Work runs in generations: T threads start, each keeps a set of live
 * blocks and replaces them at random, swaps some with a transfer array
 * shared by every thread (so blocks move between threads and outlive the
 * thread that allocated them), and exits leaving half of its blocks in the
 * transfer array; then the next T threads start. Sizes are spread
 * linearly over powers of two from 8 B to 1 KiB, one in 100 up to 16 times
 * bigger and one in 10000 up to 1 MiB; every block is written when
 * allocated and checked when freed. Unlike mstress, a generation is short
 * (many thread starts and exits per second), and a freed block is as often
 * another thread's as one's own.
 */
#include "common.h"

enum { GENERATIONS_PER_SCALE = 25, STEPS_PER_GENERATION = 120000, LOCAL = 400,
       TRANSFER = 2048 };

static _Atomic(slot_t *) transfer[TRANSFER];

typedef struct {
    long steps;
    rng_t rng;
    uint64_t bytes;
} worker_t;

static size_t pick_size(rng_t *r)
{
    size_t n = (size_t)8 << (rng_next(r) % 8);          /* 8 .. 1024 */
    n += rng_next(r) % n;                                /* linear within the power */
    unsigned d = (unsigned)(rng_next(r) % 10000);
    if (d < 100) n *= 1 + rng_next(r) % 16;              /* up to 16x */
    if (d == 0) n = rng_range(r, 64 << 10, 1 << 20);     /* up to 1 MiB */
    return n;
}

static slot_t *new_block(worker_t *w)
{
    size_t n = pick_size(&w->rng);
    w->bytes += n;
    return slot_boxed(n, rng_next(&w->rng));
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    slot_t *local[LOCAL] = { 0 };
    for (long i = 0; i < w->steps; i++) {
        unsigned k = (unsigned)(rng_next(&w->rng) % LOCAL);
        unsigned r = (unsigned)(rng_next(&w->rng) % 8);
        if (r == 0) {
            /* hand ours over, take whatever was in transit there */
            unsigned t = (unsigned)(rng_next(&w->rng) % TRANSFER);
            local[k] = atomic_exchange(&transfer[t], local[k]);
        } else if (r == 1) {
            slot_unbox(local[k]);
            local[k] = NULL;
        } else {
            slot_unbox(local[k]);
            local[k] = new_block(w);
        }
    }
    for (unsigned k = 0; k < LOCAL; k++) {
        if (k % 2) {
            slot_unbox(local[k]);
        } else {
            unsigned t = (unsigned)(rng_next(&w->rng) % TRANSFER);
            slot_unbox(atomic_exchange(&transfer[t], local[k]));
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long generations = (long)GENERATIONS_PER_SCALE * a.scale;
    worker_t *w = calloc((size_t)a.threads, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    uint64_t bytes = 0;
    double t0 = now_s();
    for (long g = 0; g < generations; g++) {
        for (int i = 0; i < a.threads; i++) {
            w[i].steps = share(STEPS_PER_GENERATION, i, a.threads);
            w[i].rng = rng_seeded(a.seed, 1000u * (unsigned)g + (unsigned)i + 1);
            w[i].bytes = 0;
        }
        run_threads(a.threads, worker, w, sizeof *w);
        for (int i = 0; i < a.threads; i++) bytes += w[i].bytes;
    }
    double el = now_s() - t0;
    for (unsigned t = 0; t < TRANSFER; t++) slot_unbox(atomic_exchange(&transfer[t], NULL));
    free(w);
    printf("RESULT generations=%ld bytes=%llu gens_per_s=%.1f\n", generations,
           (unsigned long long)bytes, (double)generations / el);
    return 0;
}

/* mstress - mixed sizes across thread generations (after mimalloc's mstress).
 *
 * Each thread keeps a set of live blocks of mixed sizes (mostly small, some
 * medium, a few up to 1 MiB) and replaces them at random; now and then it
 * swaps one of its blocks with a slot of a shared transfer array, so blocks
 * move between threads. Work runs in generations of T threads; a thread that
 * exits frees half of its blocks and leaves the rest in the transfer array
 * for the next generation.
 */
#include "common.h"

enum { GENERATIONS = 10, LOCAL_SLOTS = 500, TRANSFER_SLOTS = 1000,
       OPS_PER_SCALE = 300000 };

typedef struct {
    _Atomic(slot_t *) cell;   /* a block in transit, or NULL */
} transfer_t;

static transfer_t transfer[TRANSFER_SLOTS];

typedef struct {
    long ops;
    rng_t rng;
    uint64_t bytes;
} worker_t;

static size_t pick_size(rng_t *r)
{
    unsigned d = (unsigned)(rng_next(r) % 1000);
    if (d < 800) return rng_range(r, 8, 128);
    if (d < 950) return rng_logsize(r, 128, 4096);
    if (d < 995) return rng_logsize(r, 4096, 65536);
    return rng_logsize(r, 65536, 1 << 20);
}

/* a heap-allocated slot, so it can travel through the transfer array */
static slot_t *new_block(worker_t *w)
{
    size_t n = pick_size(&w->rng);
    w->bytes += n;
    return slot_boxed(n, rng_next(&w->rng));
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    slot_t *local[LOCAL_SLOTS] = { 0 };
    for (long i = 0; i < w->ops; i++) {
        unsigned k = (unsigned)(rng_next(&w->rng) % LOCAL_SLOTS);
        if (rng_next(&w->rng) % 16 == 0) {
            /* give our block away, take whatever is in transit there */
            unsigned t = (unsigned)(rng_next(&w->rng) % TRANSFER_SLOTS);
            local[k] = atomic_exchange(&transfer[t].cell, local[k]);
        } else {
            slot_unbox(local[k]);
            local[k] = new_block(w);
        }
    }
    for (unsigned k = 0; k < LOCAL_SLOTS; k++) {
        if (k % 2) {
            slot_unbox(local[k]);
        } else {
            unsigned t = (unsigned)(rng_next(&w->rng) % TRANSFER_SLOTS);
            slot_unbox(atomic_exchange(&transfer[t].cell, local[k]));
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long total = (long)OPS_PER_SCALE * a.scale;
    worker_t *w = calloc((size_t)a.threads, sizeof *w);
    if (!w) bench_fail(2, "calloc failed");
    uint64_t bytes = 0;
    double t0 = now_s();
    for (int g = 0; g < GENERATIONS; g++) {
        for (int i = 0; i < a.threads; i++) {
            w[i].ops = share(total / GENERATIONS, i, a.threads);
            w[i].rng = rng_seeded(a.seed, 1000u * (unsigned)g + (unsigned)i + 1);
            w[i].bytes = 0;
        }
        run_threads(a.threads, worker, w, sizeof *w);
        for (int i = 0; i < a.threads; i++) bytes += w[i].bytes;
    }
    double el = now_s() - t0;
    for (unsigned t = 0; t < TRANSFER_SLOTS; t++)
        slot_unbox(atomic_exchange(&transfer[t].cell, NULL));
    free(w);
    printf("RESULT ops=%ld bytes=%llu mops_per_s=%.2f\n", total,
           (unsigned long long)bytes, (double)total / el / 1e6);
    return 0;
}

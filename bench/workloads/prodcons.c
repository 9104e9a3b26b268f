/* prodcons - producer/consumer pairs passing single blocks.
 *
 * T threads make max(1, T/2) pairs (1 thread: one pair). In each pair the
 * producer allocates blocks of 16..512 B (log-uniform), writes them and
 * puts each on a single-producer single-consumer ring of 4096 slots; the
 * consumer takes them off, checks and frees them. So every free is of a
 * block another thread allocated a moment ago, one block at a time (no
 * batches, unlike xmalloc), which is what a message-passing program or a
 * work queue does. A full or empty ring yields the processor (with more
 * threads than cores, the other side needs it).
 */
#include <sched.h>
#include "common.h"

enum { RING = 4096, BLOCKS_PER_SCALE = 2000000, MIN_SIZE = 16, MAX_SIZE = 512 };

typedef struct {
    _Alignas(64) _Atomic uint64_t head;   /* written by the consumer */
    _Alignas(64) _Atomic uint64_t tail;   /* written by the producer */
    struct { void *p; uint32_t n; } slot[RING];
    long blocks;
    uint64_t seed;
} pair_t;

static void *producer(void *arg)
{
    pair_t *q = arg;
    rng_t r = rng_seeded(q->seed, 1);
    for (long i = 0; i < q->blocks; i++) {
        size_t n = rng_logsize(&r, MIN_SIZE, MAX_SIZE);
        void *p = xmalloc_tagged(n, (uint64_t)i);
        uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        while (t - atomic_load_explicit(&q->head, memory_order_acquire) == RING) sched_yield();
        q->slot[t % RING].p = p;
        q->slot[t % RING].n = (uint32_t)n;
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    pair_t *q = arg;
    for (long i = 0; i < q->blocks; i++) {
        uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
        while (atomic_load_explicit(&q->tail, memory_order_acquire) == h) sched_yield();
        free_tagged(q->slot[h % RING].p, q->slot[h % RING].n, (uint64_t)i);
        atomic_store_explicit(&q->head, h + 1, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 2);
    int pairs = a.threads / 2 > 0 ? a.threads / 2 : 1;
    long total = (long)BLOCKS_PER_SCALE * a.scale;
    pair_t *q = aligned_alloc(64, sizeof *q * (size_t)pairs);
    pthread_t *tid = calloc(2 * (size_t)pairs, sizeof *tid);
    if (!q || !tid) bench_fail(2, "allocation failed");
    memset(q, 0, sizeof *q * (size_t)pairs);
    double t0 = now_s();
    for (int i = 0; i < pairs; i++) {
        q[i].blocks = share(total, i, pairs);
        q[i].seed = a.seed + (uint64_t)i;
        if (pthread_create(&tid[2 * i], NULL, consumer, &q[i]) ||
            pthread_create(&tid[2 * i + 1], NULL, producer, &q[i]))
            bench_fail(2, "pthread_create failed");
    }
    for (int i = 0; i < 2 * pairs; i++) pthread_join(tid[i], NULL);
    double el = now_s() - t0;
    free(tid);
    free(q);
    printf("RESULT pairs=%d blocks=%ld mblocks_per_s=%.2f\n", pairs, total, (double)total / el / 1e6);
    return 0;
}

/* malloc-large - large blocks replaced at random (after mimalloc-bench's
 * malloc-large).
 *
 * A working set of 20 blocks of 64 KiB..8 MiB; each step frees a random
 * block and allocates a new one of random size, writing one byte in every
 * page of it so the memory is really used. Rewards keeping freed large
 * mappings for reuse instead of unmapping and faulting them back.
 */
#include "common.h"

enum { SLOTS = 20, OPS_PER_SCALE = 200, PAGE = 4096 };
#define MIN_SIZE ((size_t)64 << 10)
#define MAX_SIZE ((size_t)8 << 20)

static uint64_t touch(unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += PAGE) p[i] = v;
    return p[n / 2 & ~(size_t)(PAGE - 1)];
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long ops = (long)OPS_PER_SCALE * a.scale;
    rng_t r = rng_seeded(a.seed, 1);
    slot_t set[SLOTS] = { 0 };
    uint64_t bytes = 0, sum = 0;
    double t0 = now_s();
    for (long i = 0; i < ops; i++) {
        slot_t *s = &set[rng_next(&r) % SLOTS];
        size_t n = rng_range(&r, MIN_SIZE, MAX_SIZE);
        slot_clear(s);
        s->p = malloc(n);
        if (!s->p) bench_fail(2, "malloc(%zu) failed", n);
        sum += touch(s->p, n, (unsigned char)i);
        ((unsigned char *)s->p)[0] = tag_of(n, (uint64_t)i);
        ((unsigned char *)s->p)[n - 1] = tag_of(n, (uint64_t)i);
        s->n = n;
        s->salt = (uint64_t)i;
        bytes += n;
    }
    double el = now_s() - t0;
    for (int k = 0; k < SLOTS; k++) slot_clear(&set[k]);
    printf("RESULT ops=%ld gib=%.2f checksum=%llu gib_per_s=%.2f\n", ops,
           (double)bytes / (1 << 30), (unsigned long long)sum,
           (double)bytes / (1 << 30) / el);
    return 0;
}

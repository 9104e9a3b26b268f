/* glibc-simple - tight malloc/free of small sizes in one thread (after
 * glibc's bench-malloc-simple); the thread-count argument is ignored.
 */
#include "glibc-kernel.h"

enum { ROUNDS_PER_SCALE = 100 };

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    long rounds = (long)ROUNDS_PER_SCALE * a.scale;
    void **blocks = calloc(KERNEL_MAX_BATCH, sizeof *blocks);
    if (!blocks) bench_fail(2, "calloc failed");
    uint64_t sum = 0;
    double t0 = now_s();
    for (long r = 0; r < rounds; r++) sum += kernel_round(blocks, a.seed + (uint64_t)r);
    double el = now_s() - t0;
    free(blocks);
    double n = (double)rounds * KERNEL_ROUND_BLOCKS;
    printf("RESULT pairs=%.0f checksum=%llu ns_per_pair=%.2f\n", n,
           (unsigned long long)sum, el / n * 1e9);
    return 0;
}

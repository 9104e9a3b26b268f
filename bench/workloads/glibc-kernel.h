/* glibc-kernel.h - the loop shared by glibc-simple and glibc-thread (after
 * glibc's benchtests bench-malloc-simple): for each block size and batch
 * length, allocate a batch of blocks of that size, touch them, and free them
 * all, many times over. Small sizes and short-lived blocks: the fast paths.
 */
#ifndef BENCH_GLIBC_KERNEL_H
#define BENCH_GLIBC_KERNEL_H
#include "common.h"

static const size_t kernel_sizes[] = { 16, 32, 48, 64, 96, 128, 256, 512 };
static const size_t kernel_batches[] = { 25, 100, 400, 1600 };
enum { KERNEL_NSIZES = sizeof kernel_sizes / sizeof kernel_sizes[0],
       KERNEL_NBATCHES = sizeof kernel_batches / sizeof kernel_batches[0],
       KERNEL_MAX_BATCH = 1600,
       /* blocks allocated by one call of kernel_round */
       KERNEL_ROUND_BLOCKS = (25 + 100 + 400 + 1600) * KERNEL_NSIZES };

/* One sweep over every size and batch length; returns a checksum. */
static uint64_t kernel_round(void **blocks, uint64_t salt)
{
    uint64_t sum = 0;
    for (size_t s = 0; s < KERNEL_NSIZES; s++) {
        size_t n = kernel_sizes[s];
        for (size_t b = 0; b < KERNEL_NBATCHES; b++) {
            size_t len = kernel_batches[b];
            for (size_t i = 0; i < len; i++) blocks[i] = xmalloc_tagged(n, salt + i);
            for (size_t i = 0; i < len; i++) {
                sum += ((unsigned char *)blocks[i])[0];
                free_tagged(blocks[i], n, salt + i);
            }
        }
    }
    return sum;
}
#endif

/* pairs - malloc+free pairs of 16..128 B, for instruction counts.
 *
 *   pairs N          N pairs in measure_pairs(), after a warm-up of N/10
 *
 * Run under callgrind with --toggle-collect=measure_pairs; the instructions
 * executed outside this program, divided by N, are the cost of one pair.
 * noipa keeps gcc from merging or inlining the functions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NOIPA __attribute__((noipa))

static uint8_t *make_sizes(long n)
{
    uint8_t *s = malloc((size_t)n);
    if (!s) exit(2);
    uint64_t x = 88172645463325252ull;
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s[i] = (uint8_t)(16 + x % 113);   /* 16..128 */
    }
    return s;
}

NOIPA static uint64_t run_pairs(const uint8_t *sizes, long n)
{
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        volatile char *p = malloc(sizes[i]);
        p[0] = (char)i;
        sum += (uintptr_t)p & 0xff;
        free((void *)p);
    }
    return sum;
}

NOIPA uint64_t measure_pairs(const uint8_t *sizes, long n)
{
    return run_pairs(sizes, n);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    uint8_t *sizes = make_sizes(n);
    uint64_t sum = run_pairs(sizes, n / 10);  /* warm-up, not collected */
    sum += measure_pairs(sizes, n);
    printf("RESULT pairs=%ld sum=%llu\n", n, (unsigned long long)sum);
    free(sizes);
    return 0;
}

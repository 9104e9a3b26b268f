/* refault.c - the purge delay adapts to a program that frees memory and
 * takes it back a little later, again and again.
 *
 * Run with MAPALLOC_PURGE_DELAY_MS=50 and MAPALLOC_PURGER=0 (ctest sets
 * them): one thread, whose slow paths run the purge ticks. Each cycle
 * fills 16 MiB with 4 KiB blocks, writes them, frees them all and sleeps
 * SLEEP_MS, longer than the option's delay: at a fixed delay the tick
 * purges what the next fill then faults back in, every cycle. The slices
 * a tick purged and a span took again soon after double the set's delay
 * (segment.c, up to 5 times the option): the last cycles must fault in,
 * on average, a quarter less than the worst of the first ones (at a fixed
 * delay every cycle faults the same; adapted, about 40% as much). Page
 * faults from getrusage.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "check.h"
#include "ma_test.h"

enum { BLOCK = 4096, COUNT = 4096, CYCLES = 24, SLEEP_MS = 60, FIRST = 4, LAST = 8 };

static long faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

int main(void)
{
    static void *blocks[COUNT];
    long per_cycle[CYCLES];
    for (int c = 0; c < CYCLES; c++) {
        long before = faults();
        for (int i = 0; i < COUNT; i++) {
            blocks[i] = A_MALLOC(BLOCK);
            CHECK(blocks[i] != NULL);
            memset(blocks[i], c, BLOCK);
        }
        for (int i = 0; i < COUNT; i++) A_FREE(blocks[i]);
        per_cycle[c] = faults() - before;
        struct timespec ts = {0, SLEEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* a refill that the tick purged under, before the delay adapted: the
     * most of cycles 1..FIRST (cycle 0 maps everything the first time) */
    long first = 0, last = 0;
    for (int c = 1; c <= FIRST; c++)
        if (per_cycle[c] > first) first = per_cycle[c];
    for (int c = CYCLES - LAST; c < CYCLES; c++) last += per_cycle[c];
    last /= LAST;
    printf("page faults per cycle:");
    for (int c = 0; c < CYCLES; c++) printf(" %ld", per_cycle[c]);
    printf("\nmost of cycles 1-%d: %ld; last %d: %ld a cycle\n", FIRST, first, LAST, last);
    CHECK(first > 0);
    CHECK(last * 4 < first * 3);
    return check_done();
}

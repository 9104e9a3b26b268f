/* burst - leak-and-trim: is memory given back after a burst?
 *
 * Allocates SCALE MiB (run.sh uses 1024 = 1 GiB) in blocks of 64 B..4 KiB,
 * writes every block, frees them all, then watches the resident set size
 * (/proc/self/statm): right after the free, after 100 ms, after 1 s, and
 * after malloc_trim(0). It also reports the first time (polled every 5 ms
 * during that second) at which RSS came back within 10% of the burst above
 * the starting level. The thread-count argument is ignored.
 *
 * Result keys (KiB unless named otherwise): rss_before, rss_peak,
 * rss_free, rss_100ms, rss_1s, rss_trim, return_ms (-1: not within 1 s),
 * and time_s, the time to allocate, write and free (sleeps excluded).
 */
#include "common.h"
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

enum { MIN_SIZE = 64, MAX_SIZE = 4096, POLL_MS = 5, WATCH_MS = 1000 };

static long rss_kib(void)
{
    static long page_kib;
    if (!page_kib) page_kib = sysconf(_SC_PAGESIZE) / 1024;
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, rss = -1;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &rss) != 2) rss = -1;
        fclose(f);
    }
    return rss * page_kib;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {}
}

int main(int argc, char **argv)
{
    bench_args_t a = bench_args(argc, argv, 1);
    size_t total = (size_t)a.scale << 20;
    /* a dry run of the generator sizes the table of blocks; the table is
     * mapped directly and written before the baseline, so that neither the
     * allocator nor the table's own pages blur the figures */
    rng_t r = rng_seeded(a.seed, 1);
    size_t cap = 0;
    for (size_t used = 0; used < total; cap++) used += rng_logsize(&r, MIN_SIZE, MAX_SIZE);
    size_t table = cap * sizeof(slot_t);
    slot_t *blocks = mmap(NULL, table, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (blocks == MAP_FAILED) bench_fail(2, "mmap of %zu failed", table);
    memset(blocks, 0, table);
    r = rng_seeded(a.seed, 1);

    long before = rss_kib();
    double t0 = now_s();
    size_t used = 0, count = 0;
    while (used < total && count < cap) {
        size_t n = rng_logsize(&r, MIN_SIZE, MAX_SIZE);
        slot_put(&blocks[count], n, count);
        memset(blocks[count].p, (int)(count & 0x7f), n);
        ((unsigned char *)blocks[count].p)[0] = tag_of(n, count);
        ((unsigned char *)blocks[count].p)[n - 1] = tag_of(n, count);
        used += n;
        count++;
    }
    long peak = rss_kib();
    for (size_t i = 0; i < count; i++) slot_clear(&blocks[i]);
    double busy = now_s() - t0;
    long after_free = rss_kib();

    long threshold = before + (peak - before) / 10, at100 = -1, at1s = -1;
    int returned_ms = after_free <= threshold ? 0 : -1;
    for (int ms = POLL_MS; ms <= WATCH_MS; ms += POLL_MS) {
        sleep_ms(POLL_MS);
        long now = rss_kib();
        if (returned_ms < 0 && now <= threshold) returned_ms = ms;
        if (ms == 100) at100 = now;
        if (ms == WATCH_MS) at1s = now;
    }
    malloc_trim(0);
    long after_trim = rss_kib();
    munmap(blocks, table);
    printf("RESULT blocks=%zu mib=%zu rss_before=%ld rss_peak=%ld rss_free=%ld rss_100ms=%ld "
           "rss_1s=%ld rss_trim=%ld return_ms=%d time_s=%.4f\n", count, used >> 20, before,
           peak, after_free, at100, at1s, after_trim, returned_ms, busy);
    return 0;
}

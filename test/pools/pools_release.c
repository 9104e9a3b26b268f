/* pools_release.c - ma_heap_destroy gives a heap's memory back to the OS.
 *
 *  - a heap filled with 512 MiB of small and medium blocks, every byte
 *    touched: destroying it drops the resident set (/proc/self/statm) by at
 *    least 400 MiB, and /proc/self/maps has, within a few lines, as many
 *    mappings as before the heap was made;
 *  - the same for a heap holding 100 large blocks of 1 MiB.
 *
 * /proc files are read with read(2) into static buffers, so the test itself
 * allocates nothing while it measures.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#define MAPS_SLACK 4

static char buf[1 << 20];

static size_t read_proc(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return len;
}

static size_t rss_bytes(void)
{
    read_proc("/proc/self/statm");
    unsigned long size = 0, resident = 0;
    sscanf(buf, "%lu %lu", &size, &resident);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t maps_lines(void)
{
    size_t len = read_proc("/proc/self/maps"), lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    return lines;
}

static void check_release(const char *what, ma_heap_t *h, size_t maps_before, size_t min_drop)
{
    size_t rss_full = rss_bytes(), maps_full = maps_lines();
    ma_heap_destroy(h);
    size_t rss_after = rss_bytes(), maps_after = maps_lines();
    printf("%s: RSS %zu MiB -> %zu MiB; mappings %zu before the heap, %zu full, %zu after\n",
           what, rss_full >> 20, rss_after >> 20, maps_before, maps_full, maps_after);
    CHECK(rss_full > rss_after && rss_full - rss_after >= min_drop);
    CHECK(maps_after <= maps_before + MAPS_SLACK);
}

static void small_and_medium(uint64_t seed)
{
    size_t maps_before = maps_lines();
    ma_heap_t *h = ma_heap_new();
    if (!CHECK(h != NULL))
        return;
    rng_t r = {seed};
    size_t total = 0, blocks = 0;
    while (total < 512 * MIB) {
        size_t size = rng_next(&r) % 5 ? rng_range(&r, 16, 1024) : rng_range(&r, 1025, 256 * KIB);
        unsigned char *p = ma_heap_malloc(h, size);
        if (!CHECK(p != NULL))
            break;
        memset(p, (int)(blocks & 0xff) | 1, size);
        total += size;
        blocks++;
    }
    printf("%zu blocks, %zu MiB\n", blocks, total >> 20);
    check_release("512 MiB of small and medium blocks", h, maps_before, 400 * MIB);
}

static void large_blocks(void)
{
    size_t maps_before = maps_lines();
    ma_heap_t *h = ma_heap_new();
    if (!CHECK(h != NULL))
        return;
    for (int i = 0; i < 100; i++) {
        unsigned char *p = ma_heap_malloc(h, 1 * MIB);
        if (!CHECK(p != NULL))
            break;
        memset(p, i | 1, 1 * MIB);
    }
    check_release("100 large blocks of 1 MiB", h, maps_before, 90 * MIB);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 99;
    setvbuf(stdout, NULL, _IOLBF, 0); /* stdio's buffer before the first measure */
    printf("pools_release\n");
    small_and_medium(seed);
    large_blocks();
    return check_done();
}

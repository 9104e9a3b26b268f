/* map_limit.c - at vm.max_map_count, allocation fails with ENOMEM (or
 * succeeds); it never ends the program.
 *
 *   map_limit large|medium [headroom]
 *
 * The kernel refuses a new mapping, and an munmap or mprotect that would
 * split one, once a process has vm.max_map_count mappings (65530 by
 * default). The test brings its own count to within `headroom` (default
 * 3000) of that limit with one-page mappings of alternating protection
 * (so the kernel cannot merge them), then allocates blocks of one kind
 * (large: 3 MiB, a mapping each; medium: 64 KiB, in new segments) until
 * malloc returns NULL or MAX_BLOCKS are live, well past the limit. A NULL
 * must come with errno ENOMEM; the process must have reached the limit
 * (else the test proved nothing); every block must be usable at both
 * ends; and with the fillers gone, allocation must work again. Run in the
 * default mode and under MAPALLOC_SECURE=1 (guard pages: more mappings).
 * Printing waits until the fillers are gone: stdio may need a mapping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

#define MAX_BLOCKS 8000

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void *fillers[70000];
static void *blocks[MAX_BLOCKS];

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "large") && strcmp(argv[1], "medium"))) {
        fprintf(stderr, "usage: %s large|medium [headroom]\n", argv[0]);
        return 2;
    }
    size_t size = strcmp(argv[1], "large") == 0 ? 3 * MIB : 64 * KIB;
    long headroom = argc > 2 ? atol(argv[2]) : 3000;
    long limit = read_long("/proc/sys/vm/max_map_count");
    long have = count_maps();
    if (limit <= 0 || have <= 0 || limit > 70000 + have) {
        printf("map_limit: cannot read the limit (%ld) or the maps (%ld): skipped\n", limit, have);
        return 77;
    }
    /* Warm up: the allocator's first mappings (heap, byte map) exist. */
    A_FREE(A_MALLOC(size));
    long want = limit - have - headroom, filled = 0;
    for (; filled < want; filled++) {
        int prot = filled % 2 ? PROT_READ : PROT_READ | PROT_WRITE;
        fillers[filled] = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (fillers[filled] == MAP_FAILED)
            break;
    }
    long got = 0, null_errno = 0;
    while (got < MAX_BLOCKS) {
        errno = 0;
        void *p = A_MALLOC(size);
        if (!p) {
            null_errno = errno;
            break;
        }
        memset(p, 0x5a, 64);
        ((char *)p)[size - 1] = 0x5a;
        blocks[got++] = p;
    }
    long maps_at_limit = count_maps();
    for (long i = 0; i < got; i++)
        A_FREE(blocks[i]);
    for (long i = 0; i < filled; i++)
        munmap(fillers[i], 4096);
    void *again = A_MALLOC(size);

    printf("map_limit %s (%s): limit %ld, %ld filler mappings, %ld blocks of %zu bytes "
           "before NULL, %ld mappings then\n",
           argv[1], A_FLAVOUR, limit, filled, got, size, maps_at_limit);
    CHECK(filled > 0);
    CHECK(maps_at_limit >= limit - 16);  /* the limit was reached */
    CHECK(got == MAX_BLOCKS || null_errno == ENOMEM);
    CHECK(again != NULL);
    A_FREE(again);
    return check_done();
}

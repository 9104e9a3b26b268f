/* Built against an installed mapalloc (pkg-config or find_package): calls
 * the ma_ API, then checks that the standard malloc is mapalloc's, as it
 * must be with either library (libmapalloc.so or libmapalloc.a): the
 * process's figures move with malloc, and malloc_usable_size rounds as
 * ma_usable_size does (100 bytes: 112, 120 under MAPALLOC_SECURE; glibc's
 * malloc gives 104). */
#include <malloc.h>
#include <mapalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = ma_malloc(100);
    if (p == NULL)
        return 1;
    memset(p, 'x', 100);
    if (ma_usable_size(p) < 100)
        return 2;
    ma_free(p);

    enum { N = 1000 };
    static char *v[N];
    ma_stats_t before, after;
    ma_stats_get(&before);
    for (int i = 0; i < N; i++) {
        v[i] = malloc(100);
        if (v[i] == NULL)
            return 3;
        strcpy(v[i], "consumer");
    }
    ma_stats_get(&after);
    /* Both taken once the thread's heap is set up (under MAPALLOC_SECURE a
     * thread's very first block may be of the class below). */
    size_t usable = malloc_usable_size(v[N - 1]);
    p = ma_malloc(100);
    size_t ma_usable = ma_usable_size(p);
    ma_free(p);
    for (int i = 0; i < N; i++)
        free(v[i]);
    if (after.blocks_in_use < before.blocks_in_use + N ||
        after.blocks_allocated < before.blocks_allocated + N) {
        fprintf(stderr, "consumer: malloc is not mapalloc's: blocks in use %llu -> %llu\n",
                (unsigned long long)before.blocks_in_use,
                (unsigned long long)after.blocks_in_use);
        return 4;
    }
    if (usable != ma_usable) {
        fprintf(stderr, "consumer: malloc_usable_size(malloc(100)) = %zu, not mapalloc's %zu\n",
                usable, ma_usable);
        return 5;
    }
    printf("consumer ok (mapalloc %d.%d.%d; malloc is mapalloc's)\n", MAPALLOC_VERSION_MAJOR,
           MAPALLOC_VERSION_MINOR, MAPALLOC_VERSION_PATCH);
    return 0;
}

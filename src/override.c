/* override.c - the standard names, built only into libmapalloc.so/.a.
 *
 * Each is a tail call into the ma_ function (a single jmp). glibc documents
 * that replacing malloc needs malloc, free, calloc, realloc, and for full
 * coverage memalign, posix_memalign, aligned_alloc, malloc_usable_size,
 * pvalloc and valloc; the __libc_ names cover programs that call those.
 * The glibc extras (malloc_trim, malloc_stats, malloc_info, mallinfo2)
 * report mapalloc's heap, not glibc's unused one.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include "internal.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT void *malloc(size_t size) { return ma_malloc(size); }
EXPORT void free(void *p) { ma_free(p); }
EXPORT void *calloc(size_t count, size_t size) { return ma_calloc(count, size); }
EXPORT void *realloc(void *p, size_t size) { return ma_realloc(p, size); }
EXPORT void *reallocarray(void *p, size_t count, size_t size) { return ma_reallocarray(p, count, size); }
EXPORT int posix_memalign(void **out, size_t align, size_t size) { return ma_posix_memalign(out, align, size); }
EXPORT void *aligned_alloc(size_t align, size_t size) { return ma_aligned_alloc(align, size); }
EXPORT void *memalign(size_t align, size_t size) { return ma_memalign(align, size); }
EXPORT void *valloc(size_t size) { return ma_valloc(size); }
EXPORT void *pvalloc(size_t size) { return ma_pvalloc(size); }
EXPORT size_t malloc_usable_size(void *p) { return ma_usable_size(p); }
EXPORT void cfree(void *p) { ma_free(p); }

EXPORT void *__libc_malloc(size_t size) { return ma_malloc(size); }
EXPORT void __libc_free(void *p) { ma_free(p); }
EXPORT void *__libc_calloc(size_t count, size_t size) { return ma_calloc(count, size); }
EXPORT void *__libc_realloc(void *p, size_t size) { return ma_realloc(p, size); }
EXPORT void *__libc_memalign(size_t align, size_t size) { return ma_memalign(align, size); }

EXPORT int malloc_trim(size_t pad) { return ma_trim(pad); }
EXPORT void malloc_stats(void) { ma_stats_print(); }

/* Accepted and ignored: mapalloc's tuning is through MAPALLOC_* options. */
EXPORT int mallopt(int param, int value) {
    (void)param;
    (void)value;
    return 1;
}

static void write_to_file(const char *s, size_t n, void *fp) { fwrite(s, 1, n, fp); }

/* glibc's XML shape, mapalloc's figures (stats.c). Called by the program,
 * with no lock of ours held: stdio may allocate. */
EXPORT int malloc_info(int options, FILE *fp) {
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    ma_stats_xml(write_to_file, fp);
    return 0;
}

/* hblks/hblkhd: the large blocks (mapped on their own, as glibc's mmapped
 * chunks); uordblks: the bytes of the other blocks in use. */
EXPORT struct mallinfo2 mallinfo2(void) {
    ma_stats_t st;
    ma_stats_get(&st);
    ma_large_stats_t large;
    ma_large_stats(&large);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = st.os_mapped;
    mi.ordblks = 1;
    mi.hblks = st.large_in_use;
    mi.hblkhd = large.bytes;
    mi.uordblks = st.bytes_in_use > large.bytes ? st.bytes_in_use - large.bytes : 0;
    mi.fordblks = st.os_committed > st.bytes_in_use ? st.os_committed - st.bytes_in_use : 0;
    mi.usmblks = st.os_mapped_peak;
    return mi;
}

/* The old interface truncates to int, as glibc's does. */
EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = (int)m2.arena;
    mi.ordblks = (int)m2.ordblks;
    mi.hblks = (int)m2.hblks;
    mi.hblkhd = (int)m2.hblkhd;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    mi.usmblks = (int)m2.usmblks;
    return mi;
}

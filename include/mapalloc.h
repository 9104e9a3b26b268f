/* mapalloc.h - the public interface of mapalloc, a malloc built on mmap.
 *
 * Two ways to use mapalloc:
 *  - as a drop-in malloc: link libmapalloc.so / libmapalloc.a, or preload it
 *    (LD_PRELOAD=libmapalloc.so, or the `mapalloc` launcher); every standard
 *    entry point (malloc, free, calloc, realloc, posix_memalign, ...) is then
 *    mapalloc's and this header is not needed;
 *  - through the ma_ functions below, which exist in every build, including
 *    the "ma_ only" build that leaves the C library's malloc in place.
 *
 * The ma_ functions have exactly the semantics of their standard namesakes,
 * errno included (ENOMEM on exhaustion or overflow, EINVAL for a bad
 * alignment). Blocks from any of them may be passed to ma_free, ma_realloc
 * and ma_usable_size (and, in the drop-in build, to free/realloc).
 *
 * Options are read once, from environment variables, when the allocator
 * starts: see docs/OPTIONS.md (MAPALLOC_SHOW_STATS, MAPALLOC_PURGE_DELAY_MS,
 * ...).
 */
#ifndef MAPALLOC_H
#define MAPALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MA_API __attribute__((visibility("default")))
#define MA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define MA_API
#define MA_MALLOC_ATTR
#endif

#define MAPALLOC_VERSION_MAJOR 0
#define MAPALLOC_VERSION_MINOR 1
#define MAPALLOC_VERSION_PATCH 0

/* ---- The standard allocation functions, under ma_ names ---------------- */

MA_API MA_MALLOC_ATTR void *ma_malloc(size_t size);
MA_API MA_MALLOC_ATTR void *ma_calloc(size_t count, size_t size);
MA_API void *ma_realloc(void *p, size_t size);
MA_API void *ma_reallocarray(void *p, size_t count, size_t size);
MA_API void ma_free(void *p);
MA_API int ma_posix_memalign(void **out, size_t alignment, size_t size);
MA_API MA_MALLOC_ATTR void *ma_aligned_alloc(size_t alignment, size_t size);
MA_API MA_MALLOC_ATTR void *ma_memalign(size_t alignment, size_t size);
MA_API MA_MALLOC_ATTR void *ma_valloc(size_t size);
MA_API MA_MALLOC_ATTR void *ma_pvalloc(size_t size);
/* Bytes usable at p (at least what was asked for); 0 for NULL. */
MA_API size_t ma_usable_size(const void *p);

/* ---- Memory returned to the OS, and statistics ------------------------- */

/* Returns free memory to the OS now: empty pages of every heap (those of
 * exited threads included) are purged, idle regions unmapped, the cache of
 * large mappings emptied. Returns 1 if any memory was released, else 0
 * (like glibc's malloc_trim; pad is accepted and ignored). */
MA_API int ma_trim(size_t pad);

/* A snapshot of the allocator's figures. Cumulative counts start at zero
 * when the process starts. */
typedef struct ma_stats_s {
    uint64_t blocks_allocated;   /* blocks handed out, cumulative */
    uint64_t bytes_allocated;    /* their usable bytes, cumulative */
    uint64_t blocks_in_use;      /* live blocks now */
    uint64_t bytes_in_use;       /* usable bytes of the live blocks now */
    uint64_t bytes_in_use_peak;  /* highest bytes_in_use seen (sampled on slow paths) */
    uint64_t large_in_use;       /* live blocks mapped on their own */
    uint64_t os_mapped;          /* bytes mapped from the OS now */
    uint64_t os_mapped_peak;     /* highest os_mapped */
    uint64_t os_committed;       /* bytes mapped and not purged now (upper bound of RSS) */
    uint64_t os_released;        /* bytes given back (munmap + purge), cumulative */
    uint64_t mmap_calls, munmap_calls, madvise_calls, mremap_calls;
    uint64_t threads_seen;       /* thread heaps created, cumulative */
} ma_stats_t;

MA_API void ma_stats_get(ma_stats_t *out);
/* Prints the statistics, per size class included, to stderr (no
 * allocation). The same report is printed at exit when MAPALLOC_SHOW_STATS=1. */
MA_API void ma_stats_print(void);

#ifdef __cplusplus
}
#endif
#endif /* MAPALLOC_H */

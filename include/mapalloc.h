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

/* ---- Checking ---------------------------------------------------------- */

/* Verifies the allocator's invariants and returns the number of problems
 * found (0: all is well), each printed on stderr as
 * "mapalloc: check: <what> 0x<address>" (no allocation; the program goes
 * on). It walks every heap and every page: free lists stay inside their
 * page, no block is on them twice, the block counts agree (blocks handed
 * out minus blocks given back = blocks carved minus blocks on the free
 * lists), page queues and large block headers are sane; with
 * MAPALLOC_SECURE or MAPALLOC_DEBUG it also checks the fill of every free
 * block (write after free) and, with MAPALLOC_SECURE, the canary of every
 * live one (heap overflow). The pages of heaps that another live thread
 * owns are skipped (they change under its feet); call it when no other
 * thread is destroying a heap or resizing a block over 256 KiB. The cost
 * is proportional to the memory in use. */
MA_API int ma_check(void);

/* ---- Heap profiling ---------------------------------------------------
 *
 * With MAPALLOC_PROFILE=FILE in the environment (the launcher: mapalloc
 * --profile FILE program ...), mapalloc samples allocations - one per
 * MAPALLOC_PROFILE_RATE bytes on average, 512 KiB by default - with their
 * call stacks, and writes at exit which code allocated the memory still in
 * use and all it allocated since the start, for `go tool pprof` (see
 * docs/OPTIONS.md). Blocks of ma_heap_new/ma_heap_new_in heaps are not
 * sampled.
 *
 * Writes the profile now to path, or to FILE when path is NULL (%p in it
 * stands for the process id); a path ending in ".heap" gets the legacy text
 * format of google-pprof, any other gzip-compressed profile.proto. Returns
 * 0, or -1 with errno set: ENOTSUP when profiling is off, else why the file
 * could not be written (a warning also goes to stderr). Thread-safe. */
MA_API int ma_profile_dump(const char *path);

/* ---- Heaps: pools a program creates, allocates from, and releases whole --
 *
 * A heap is a set of pages mapped for it alone. ma_heap_destroy gives all of
 * them back to the OS at once (munmap), in time proportional to the heap's
 * pages, not its blocks: there is no need to free the blocks one by one.
 *
 * Threads. Allocating calls on one heap - ma_heap_malloc, _calloc,
 * _realloc, _aligned_alloc, _strdup - and ma_heap_reset, ma_heap_visit,
 * ma_heap_stats, ma_heap_destroy must not overlap in time: one thread at a
 * time, any thread, with the program's own synchronisation between them.
 * Two calls that do overlap are detected and end the program with
 * "mapalloc: heap 0x... used by two threads at once".
 * Blocks of a heap are ordinary blocks: any thread may free them at any
 * time with free/ma_free (or pass them to realloc, malloc_usable_size)
 * until the heap is reset or destroyed. Every such free must happen before
 * ma_heap_reset/ma_heap_destroy starts; a block freed after that is an
 * invalid free (detected while its memory stays unmapped).
 * Using a destroyed heap, or destroying it twice, is fatal
 * ("mapalloc: use of destroyed heap 0x...").
 */
typedef struct ma_heap_s ma_heap_t;

/* A new, empty heap; NULL with errno = ENOMEM if it cannot be made. */
MA_API ma_heap_t *ma_heap_new(void);
/* Frees every block of h and returns all of its memory to the OS. */
MA_API void ma_heap_destroy(ma_heap_t *h);
/* Like ma_heap_destroy, but h stays usable (and empty). */
MA_API void ma_heap_reset(ma_heap_t *h);

MA_API MA_MALLOC_ATTR void *ma_heap_malloc(ma_heap_t *h, size_t size);
MA_API MA_MALLOC_ATTR void *ma_heap_calloc(ma_heap_t *h, size_t count, size_t size);
/* p: NULL or any mapalloc block; the result is a block of h (moved into h
 * if p belonged elsewhere). Semantics of realloc otherwise. */
MA_API void *ma_heap_realloc(ma_heap_t *h, void *p, size_t size);
MA_API MA_MALLOC_ATTR void *ma_heap_aligned_alloc(ma_heap_t *h, size_t alignment, size_t size);
MA_API MA_MALLOC_ATTR char *ma_heap_strdup(ma_heap_t *h, const char *s);

/* Calls fn(block, usable_size, arg) for every live block of h, in no
 * particular order; stops early, returning fn's value, when fn returns
 * non-zero; returns 0 otherwise. fn must not allocate from or free into h. */
typedef int ma_heap_visit_fn(void *block, size_t size, void *arg);
MA_API int ma_heap_visit(ma_heap_t *h, ma_heap_visit_fn *fn, void *arg);

typedef struct ma_heap_stats_s {
    size_t blocks_in_use;  /* live blocks */
    size_t bytes_in_use;   /* their usable bytes */
    size_t os_bytes;       /* memory the heap holds: mapped (ma_heap_new) or
                              used of the caller's region (ma_heap_new_in) */
} ma_heap_stats_t;
MA_API void ma_heap_stats(ma_heap_t *h, ma_heap_stats_t *out);

/* A heap that lives entirely inside [base, base + size), caller memory (for
 * example a file mapped with mmap), its metadata included; mapalloc never
 * touches memory outside it and never maps memory for it. base must be
 * 16-byte aligned and size at least MA_HEAP_IN_MIN; otherwise NULL with
 * errno = EINVAL. When the region is full, allocations return NULL with
 * errno = ENOMEM. ma_heap_destroy leaves the region to the caller (nothing
 * is unmapped). The region must stay mapped until the heap is destroyed. */
#define MA_HEAP_IN_MIN ((size_t)64 << 10)
MA_API ma_heap_t *ma_heap_new_in(void *base, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* MAPALLOC_H */

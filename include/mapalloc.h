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
 * Three kinds, one interface:
 *  - ma_heap_new: a set of pages mapped for the heap alone. ma_heap_destroy
 *    gives all of them back to the OS at once (munmap), in time
 *    proportional to the heap's pages, not its blocks: there is no need to
 *    free the blocks one by one;
 *  - ma_heap_new_in: a heap inside memory the caller provides;
 *  - ma_heap_open: a heap in a file (or in anonymous shared memory) that
 *    several processes may use at once and later runs may open again.
 *
 * Threads. On a ma_heap_new heap, the allocating calls - ma_heap_malloc,
 * _calloc, _realloc, _aligned_alloc, _strdup - and ma_heap_reset,
 * ma_heap_visit, ma_heap_stats, ma_heap_destroy must not overlap in time:
 * one thread at a time, any thread, with the program's own synchronisation
 * between them. Two calls that do overlap are detected and end the program
 * with "mapalloc: heap 0x... used by two threads at once". A ma_heap_new_in
 * or ma_heap_open heap has a lock of its own: any thread may call anything
 * on it at any time, except ma_heap_reset, ma_heap_destroy and
 * ma_heap_close, which must not overlap any other use of the heap.
 * Blocks of a heap are ordinary blocks: any thread may free them at any
 * time with free/ma_free (or pass them to realloc, malloc_usable_size)
 * until the heap is reset or destroyed. Every such free must happen before
 * ma_heap_reset/ma_heap_destroy starts; a block freed after that is an
 * invalid free (detected while its memory stays unmapped). realloc of a
 * block of a ma_heap_new_in or ma_heap_open heap keeps it in that heap
 * (NULL with ENOMEM when the heap is full).
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
    size_t os_bytes;       /* memory the heap holds: mapped (ma_heap_new),
                              used of the caller's region (ma_heap_new_in), or
                              the file's length (ma_heap_open) */
} ma_heap_stats_t;
MA_API void ma_heap_stats(ma_heap_t *h, ma_heap_stats_t *out);

/* A heap that lives entirely inside [base, base + size), caller memory (a
 * buffer, a block of another heap, a file mapped with mmap), its metadata
 * included; mapalloc never touches memory outside it and never maps memory
 * for it. base must be 16-byte aligned, size at least MA_HEAP_IN_MIN and
 * at most 4 TiB; otherwise NULL with errno = EINVAL (also when the region
 * overlaps a live heap, unless it lies inside one of its blocks). When the
 * region is full, allocations return NULL with errno = ENOMEM.
 * ma_heap_destroy leaves the region to the caller (nothing is unmapped).
 * The region must stay mapped until the heap is destroyed.
 *
 * One process: ma_heap_new_in always makes a new, empty heap - over a
 * region that held one already, it formats it again - and the heap belongs
 * to the process that made it. Across fork, a child gets its own copy of
 * the heap if the region is private memory, and shares the parent's heap
 * if the region is mapped MAP_SHARED (the heap's metadata holds offsets
 * and its lock is process-shared, so both may allocate and free at once;
 * found through /proc/self/maps when the heap is made). A heap that other,
 * unrelated processes or a later run must open is made with ma_heap_open. */
#define MA_HEAP_IN_MIN ((size_t)64 << 10)
MA_API ma_heap_t *ma_heap_new_in(void *base, size_t size);

/* ---- Heaps in files and shared memory -----------------------------------
 *
 * ma_heap_open(path, size, flags) maps the heap in the file at path
 * (MAP_SHARED) and returns it: several processes may open the same file and
 * allocate and free in it at the same time, and a later run finds in it
 * every block that was allocated and not freed. path == NULL makes an
 * anonymous heap in shared memory (memfd) that children made by fork share
 * with their parent (fork alone: a program started by exec cannot reach it).
 *
 * flags: MA_CREATE creates the file if it is missing (or formats it if it
 * is empty); with MA_EXCL as well, the file must not exist yet (EEXIST).
 * size: for a new heap, the most it may ever hold, in bytes (rounded up to
 * a page; from MA_HEAP_OPEN_MIN to 4 TiB): that much address space is
 * mapped at once, while the file starts at 1 MiB and grows as blocks need
 * (its blocks are allocated when it grows, so a full disk makes an
 * allocation fail with ENOMEM rather than a SIGBUS later). For an existing
 * heap, size is ignored: it keeps the size it was made with.
 *
 * Errors: NULL and errno. Bad arguments (other flags, MA_EXCL without
 * MA_CREATE, a new heap's size out of range) are EINVAL, and a heap in
 * shared memory that cannot be had is ENOMEM, without a word. ENOENT (no
 * MA_CREATE) and EEXIST (MA_EXCL) are answers to the question the flags
 * ask; every other refusal of a file also prints one line on stderr,
 * "mapalloc: heap file PATH: PROBLEM", without allocating: a file that is not a mapalloc heap, or is empty (EINVAL), of
 * another heap format version or another platform's layout (ENOTSUP),
 * truncated, or with a corrupted header or block (EINVAL), a file that
 * cannot be opened for reading and writing (EACCES, EROFS, ...), a full
 * disk (ENOSPC). A heap file is never changed by a refused open.
 *
 * Pointers and offsets. The heap's metadata holds offsets, not pointers,
 * and the file may be mapped at another address by another process or a
 * later run: data in a heap that must be found again holds offsets too.
 * ma_heap_offset(h, p) is p's offset in h (0 for NULL; p may point
 * anywhere inside the heap; outside it is fatal), ma_heap_pointer(h, off)
 * the address of offset off in this process (NULL for 0 and for an offset
 * past the end of the file). ma_heap_root_set(h, off) stores one offset in
 * the heap, ma_heap_root_get(h) reads it back (0 until set, and after
 * ma_heap_reset): the way in to the program's data. All four work on
 * ma_heap_new_in heaps too (offsets from the start of the heap's state, a
 * few hundred bytes into the region); on ma_heap_new heaps they are fatal.
 * Blocks are 16-byte aligned at any address; a larger alignment from
 * ma_heap_aligned_alloc holds where the heap is mapped at a page boundary
 * for alignments up to 4096 (always, for ma_heap_open), and otherwise only
 * at the address where the block was allocated.
 *
 * Processes. Every call but ma_heap_reset and ma_heap_close may run in
 * several processes at once. A block's size class and its header live in
 * the file, so any process that has the heap open may free (free, ma_free,
 * realloc, malloc_usable_size) any block of it, whoever allocated it; a
 * process that has not opened the heap cannot (its pointers are not ours
 * there: "invalid free"). ma_heap_reset empties the heap for every process
 * (no other process may be using it then), ma_heap_stats and ma_heap_visit
 * see every process's blocks.
 *
 * What survives.
 *  - A process that ends, or is killed (even SIGKILL, at any instant):
 *    every block that was allocated and every byte that was written stays
 *    in the file; the others carry on, and a process that finds the heap's
 *    lock held by a dead process repairs the heap's structure first. The
 *    dying process's unfinished allocation (or free) may leave its one block
 *    unusable until the next ma_heap_open of the file by a process that is
 *    alone with it, which checks every block and takes such blocks back.
 *  - Power loss or an OS crash: only what was written to disk. After
 *    ma_heap_sync(h) returns 0, the heap as it was when the sync began is
 *    on disk, if no allocation or free ran meanwhile; changes made after
 *    the last sync may be lost, in part, and a heap file left so can be
 *    refused as corrupted when it is next opened: there is no journal.
 *    ma_heap_sync is msync(MS_SYNC) of the heap and fdatasync of the file;
 *    it returns 0, or -1 with errno. On a ma_heap_new_in heap it msyncs the
 *    region (useful over a file mapping); on a ma_heap_new heap it does
 *    nothing and returns 0.
 *
 * ma_heap_close(h) syncs, then unmaps and closes the file: h and every
 * pointer into the heap become invalid in this process; the heap and its
 * data stay in the file. Returns the sync's result (the heap is closed
 * either way). It is fatal on a heap ma_heap_open did not make. On a file
 * heap, ma_heap_destroy is ma_heap_close: it does not erase the file, whose
 * heap other processes or later runs may still use (ma_heap_reset empties
 * it; unlink removes the file). Both must run after every other thread of
 * this process is done with the heap. */
#define MA_CREATE 1
#define MA_EXCL 2
#define MA_HEAP_OPEN_MIN ((size_t)64 << 10)
MA_API ma_heap_t *ma_heap_open(const char *path, size_t size, int flags);
MA_API int ma_heap_close(ma_heap_t *h);
MA_API int ma_heap_sync(ma_heap_t *h);
MA_API uint64_t ma_heap_offset(ma_heap_t *h, const void *p);
MA_API void *ma_heap_pointer(ma_heap_t *h, uint64_t off);
MA_API void ma_heap_root_set(ma_heap_t *h, uint64_t off);
MA_API uint64_t ma_heap_root_get(ma_heap_t *h);

#ifdef __cplusplus
}
#endif
#endif /* MAPALLOC_H */

/* internal.h - types shared by mapalloc's files, and each file's prototypes.
 *
 * The memory model, bottom up (see docs/DESIGN.md for the picture):
 *  - a segment is a 4 MiB region, 4 MiB aligned, mapped from the OS; its
 *    first 64 KiB slice holds the segment header (page descriptors), the
 *    other 63 slices are handed out as spans of 1..32 slices;
 *  - a page is one such span holding blocks of one size class; its
 *    descriptor lives in the segment header, never in user memory;
 *  - a block is what malloc returns; a free block's first word is the link
 *    of its free list, XOR-encoded with a per-process secret;
 *  - a block of up to 256 KiB shares its page with others of its class; up
 *    to MA_MEDIUM_MAX (1 MiB) it has a page (a span) of its own;
 *  - a large block (> MA_MEDIUM_MAX, or a big alignment) is a mapping of its
 *    own, also starting on a 4 MiB boundary with a small header;
 *  - a byte map, one byte per 4 MiB of address space, says which 4 MiB
 *    boundaries start one of our regions, so free() can tell in constant time
 *    whether it owns a pointer before reading anything at that address.
 * Each thread allocates from its own heap (a set of pages per size class);
 * frees from other threads go to an atomic list on the page.
 */
#ifndef MA_INTERNAL_H
#define MA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <sys/types.h>
#include "mapalloc.h"

#ifndef MA_DEBUG
#define MA_DEBUG 0
#endif
#ifndef MA_HAVE_VALGRIND  /* <valgrind/valgrind.h> found by CMake */
#define MA_HAVE_VALGRIND 0
#endif

#define MA_HIDDEN __attribute__((visibility("hidden")))
#define MA_LIKELY(x) __builtin_expect(!!(x), 1)
#define MA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MA_NOINLINE __attribute__((noinline))
#define MA_COLD __attribute__((cold, noinline))

#define MA_ASSERT(c)                                                    \
    do {                                                                \
        if (MA_DEBUG && !(c)) ma_diag_assert_fail(#c, __FILE__, __LINE__); \
    } while (0)

/* ---- Geometry --------------------------------------------------------- */
#define MA_ALIGN_MIN 16u                      /* every block of >= 16 bytes */
#define MA_OS_PAGE 4096u
#define MA_SLICE_SHIFT 16
#define MA_SLICE_SIZE ((size_t)1 << MA_SLICE_SHIFT)      /* 64 KiB */
#define MA_SEGMENT_SHIFT 22
#define MA_SEGMENT_SIZE ((size_t)1 << MA_SEGMENT_SHIFT)  /* 4 MiB */
#define MA_SEGMENT_MASK (MA_SEGMENT_SIZE - 1)
#define MA_SEGMENT_SLICES (MA_SEGMENT_SIZE / MA_SLICE_SIZE) /* 64 */
#define MA_SLICES_USABLE (~(uint64_t)1)       /* slice 0 holds the header */
#define MA_SPAN_MAX_SLICES 4u                 /* a page of several blocks: 256 KiB at most */
#define MA_RETIRE_SLOTS 32u                   /* emptied pages a heap keeps a while */

#define MA_SMALL_MAX 1024u                    /* sizes served through heap->direct */
#define MA_DIRECT_COUNT (MA_SMALL_MAX / 16 + 1)
#define MA_PAGED_MAX ((size_t)256 << 10)      /* classes 1..96: pages of 8 blocks or more */
#define MA_MEDIUM_MAX ((size_t)1 << 20)       /* classes 97..108: one block per span; larger
                                               * blocks are mapped alone */
#define MA_PAGED_CLASSES 96u
#define MA_CLASS_COUNT 109                    /* classes 1..108; 0 is unused */
#define MA_CLASS_LINEAR 16                    /* classes 1..16: 16..256 by 16 */

#define MA_ADDR_BITS 47                       /* x86_64 user space */
#define MA_SEGMAP_ENTRIES ((size_t)1 << (MA_ADDR_BITS - MA_SEGMENT_SHIFT))
#define MA_RECIP_SHIFT 40                     /* see ma_page_block_index */
#define MA_LARGE_HEADER 64u                   /* bytes before a large block */

/* ---- Blocks and pages ------------------------------------------------- */
typedef struct ma_block_s {
    uintptr_t next;  /* encoded link (ma_block_encode) while the block is free */
} ma_block_t;

typedef struct ma_heap_s ma_heap_t;

/* Low bit of page->thread_free: the owner parked the page in heap->full and
 * wants the next remote free to go through heap->remote_full instead, so
 * that it learns the page has room again. Set only while the list is empty. */
#define MA_TF_NOTIFY ((uintptr_t)1)

/* page->used counts the blocks handed out and not given back, plus these
 * biases, so that a local free needs one decrement and one signed test to
 * know whether the heap must hear of it (used <= 0 afterwards): */
#define MA_USED_PIN 1                 /* pinned: the page stays when it empties */
#define MA_USED_FULL INT32_MIN        /* in heap->full: any free is news */
#define MA_PIN_SLICES 4u              /* only pages of spans this short are pinned */

typedef struct ma_page_s {
    /* First cache line: all the owner's fast paths touch. Owner only, but
     * `heap`, `start`, `recip`, `block_size`, `carved` and `capacity` are
     * read by remote frees (set before any block is handed out; `carved`
     * and `capacity` only grow while the page lives). */
    ma_block_t *free;        /* blocks ready to hand out */
    ma_block_t *local_free;  /* freed by the owner; moved to free when it runs out */
    uint8_t *start;          /* first block (the span's first byte) */
    uint64_t recip;          /* ceil(2^MA_RECIP_SHIFT / block_size) */
    ma_heap_t *heap;         /* owner; fixed while any block of the page is live */
    int32_t used;            /* blocks out (local frees count at once, remote
                              * ones when collected), + the MA_USED_ biases */
    uint32_t allocs;         /* blocks handed out (wraps; see ma_page_collect) */
    uint32_t block_size;     /* 0 while the span is free */
    uint32_t carved;         /* bytes carved: capacity * block_size (relaxed atomic) */
    uint16_t capacity;       /* blocks carved so far (relaxed atomic: remote reads) */
    uint16_t reserved;       /* blocks that fit in the span */
    uint8_t sclass;          /* size class */
    uint8_t in_full;         /* sits in heap->full rather than heap->queue (MA_USED_FULL) */
    uint8_t pinned;          /* first of its queue: stays when it empties (MA_USED_PIN) */
    uint8_t quarantined;     /* MAPALLOC_SECURE: its freed blocks wait (check.c) */
    /* Second cache line: written by other threads, or rarely. */
    _Atomic uintptr_t thread_free __attribute__((aligned(64)));
                             /* remote frees: encoded list | MA_TF_NOTIFY */
    struct ma_page_s *next, *prev;  /* owner: in its queue or full list */
    uint8_t slice_count;     /* slices in the span (first slice only) */
    uint8_t retired;         /* owner: in heap->retired, waiting to go back */
    uint8_t batchable;       /* a thread heap's page: remote frees may wait in batches (free.c) */
    uint8_t pad8;
    uint32_t retire_at;      /* owner: the heap's epoch when it may go back */
    uint64_t pad[4];
} ma_page_t;
_Static_assert(sizeof(ma_page_t) == 128, "page descriptors are indexed by shifting");
_Static_assert(offsetof(ma_page_t, thread_free) == 64, "remote writes stay off the owner's line");

/* ---- Segments and large mappings ---------------------------------------- */
enum { MA_KIND_SEGMENT = 0x5e6a11ceu, MA_KIND_LARGE = 0x1a76eb10u };
enum { MA_LARGE_LIVE = 1, MA_LARGE_CACHED = 2 };

typedef struct ma_segset_s ma_segset_t;

typedef struct ma_segment_s {
    uint32_t kind;            /* MA_KIND_SEGMENT */
    uint32_t pad32;
    uint64_t free_mask;       /* set lock: slices not in a span */
    uint64_t dirty_mask;      /* set lock: free slices that may be resident */
    uint64_t dirty_old;       /* set lock: dirty since before the set's last tick */
    struct ma_segment_s *next, *prev;  /* set lock: the set's list; or pool lock: the pool's */
    ma_segset_t *set;         /* the set it belongs to; NULL in the pool */
    uint64_t purged_mask;     /* set lock: free slices its set's tick purged (taken again: a refault) */
/* Slice i belongs to the span whose descriptor is pages[slice_first[i]]:
     * free's way from a pointer to its page. A free span's slices all lead
     * to its first descriptor, whose block size and carved bytes are 0, and
     * slice 0 leads to pages[0], never set up: a stale or foreign pointer
     * into either is an invalid free. */
    uint8_t slice_first[MA_SEGMENT_SLICES];
    ma_page_t pages[MA_SEGMENT_SLICES]; /* one descriptor per slice */
} ma_segment_t;
_Static_assert(offsetof(ma_segment_t, pages) % 64 == 0, "descriptors on cache lines");
_Static_assert(sizeof(ma_segment_t) <= MA_SLICE_SIZE, "the header fits in slice 0");

typedef struct ma_large_s {
    uint32_t kind;            /* MA_KIND_LARGE */
    _Atomic uint32_t state;   /* MA_LARGE_LIVE or MA_LARGE_CACHED */
    size_t map_size;          /* bytes mapped from the header on, guard included */
    size_t offset;            /* user pointer = header + offset */
    union {
        uint64_t cached_at;   /* ms, while cached */
        uint64_t profiled;    /* while live: 1 if the heap profiler sampled it
                                 (profile.c sets it; ma_large_alloc clears it) */
    };
    struct ma_large_s *next;  /* segment lock: cache list; or owner's large_lock: its list */
    struct ma_large_s *prev;  /* owner's large_lock: its list */
    ma_heap_t *heap;          /* the user heap it belongs to, or NULL */
    size_t guard;             /* PROT_NONE bytes ending the mapping (MAPALLOC_SECURE), or 0 */
} ma_large_t;
_Static_assert(sizeof(ma_large_t) <= MA_LARGE_HEADER, "the header fits before the block");

/* ---- lock.c: the allocator's locks, and what fork does with them --------
 * Every lock of the allocator is an ma_lock_t: a lock that knows which
 * thread holds it. The first time one is taken it joins a registry, and
 * fork's prepare handler takes every lock in the registry (lock.c says
 * how, and how it never deadlocks), so no new lock needs fork code of its
 * own. A lock in memory that goes away (a fixed heap's) leaves the
 * registry with ma_lock_forget first. All zeros is a free lock of rank 0.
 * Ranks order the registry: the order in which the locks nest, outermost
 * first (src/README.md, "Locks"). */
typedef enum {
    MA_RANK_OUTER = 0,      /* held while the program's code runs: a heap's
                               large-block lock across ma_heap_visit's fn, a
                               fixed heap's lock across its visit's fn */
    MA_RANK_PROFILE,        /* profile.c's lock: taken before it allocates a sample */
    MA_RANK_LATE,           /* alloc.c's lock for threads past their exit hook */
    MA_RANK_FIXED_REGISTRY, /* fixed.c's registry of live fixed heaps */
    MA_RANK_HEAPS,          /* heap.c's list of heaps */
    MA_RANK_SET,            /* segment.c: a heap's segment set */
    MA_RANK_POOL,           /* segment.c: the pool of free segments */
    MA_RANK_LARGE,          /* large.c's cache and statistics */
} ma_lock_rank_t;

typedef struct ma_lock_s {
    _Atomic uintptr_t holder;       /* the holder's ma_lock_self(), 0 when free */
    _Atomic uint32_t seq;           /* futex word: bumped by an unlock that finds sleepers */
    _Atomic uint32_t sleepers;      /* threads waiting on seq, or about to */
    uint32_t fork_level;            /* holder: the nested fork prepare that took it, else 0 */
    uint8_t rank;                   /* ma_lock_rank_t, fixed before first use */
    _Atomic uint8_t joined;         /* in the registry (lock.c) */
    struct ma_lock_s *_Atomic next; /* registry lock: next in the registry, by rank */
} ma_lock_t;
#define MA_LOCK_INIT(r) {.rank = (r)}

MA_HIDDEN void ma_lock(ma_lock_t *l);
MA_HIDDEN bool ma_lock_try(ma_lock_t *l);
MA_HIDDEN void ma_unlock(ma_lock_t *l);
MA_HIDDEN bool ma_lock_held(const ma_lock_t *l);   /* by the calling thread */
MA_HIDDEN bool ma_lock_none_held(void);            /* the calling thread holds no lock of ours */
MA_HIDDEN void ma_lock_forget(ma_lock_t *l);       /* free; its memory goes away */
MA_HIDDEN bool ma_lock_fork_prepare(void);          /* false: nothing was taken */
MA_HIDDEN void ma_lock_fork_parent(void);
MA_HIDDEN bool ma_lock_fork_child(void);            /* as prepare said */

/* ---- Heaps -------------------------------------------------------------- */
/* A thread's frees of other threads' blocks, gathered per page (free.c). */
#define MA_RBATCH_SLOTS 8u
#define MA_RBATCH_MAX 32u
typedef struct ma_rbatch_s {
    ma_page_t *page;          /* destination, or NULL */
    ma_block_t *head, *tail;  /* the chain, linked by encoded links; tail's is unset */
    uint32_t count;
} ma_rbatch_t;

/* A heap's segments (segment.c): the owner takes spans from them under the
 * lock, uncontended; other threads take it to purge, trim or look. */
struct ma_segset_s {
    ma_lock_t lock;
    ma_segment_t *first, *last;  /* lock: its segments, oldest first */
    uint64_t count;           /* lock: how many */
    uint32_t empty;           /* lock: how many are entirely free */
    uint64_t tick_ms;         /* lock: its last purge tick */
    uint64_t purged_ms;       /* lock: when its tick last purged by time */
    uint64_t refault_ms;      /* lock: when a span last took slices that tick purged */
    uint32_t delay_ms;        /* lock: its tick's purge delay (segment.c adapts it); 0: the option's */
};

/* Checked mode's per-heap state (check.c; page.c reads the generator). */
#define MA_QUARANTINE_SLOTS 64u                 /* freed blocks held back ... */
#define MA_QUARANTINE_BLOCK_MAX ((size_t)16 << 10) /* ... of at most this size */
typedef struct ma_check_heap_s {
    uint64_t rng;                       /* owner: shuffles carved blocks; 0 until seeded */
    uint32_t q_next;                    /* owner: the quarantine slot the next free takes */
    uint32_t q_check;                   /* owner: the slot malloc's slow path checks next */
    struct {
        uint8_t *block;                 /* a freed block not yet reusable, or NULL */
        ma_page_t *page;                /* its page: no lookup when it leaves */
    } q_ring[MA_QUARANTINE_SLOTS];      /* owner */
} ma_check_heap_t;

typedef struct ma_pageq_s {
    ma_page_t *first, *last;
} ma_pageq_t;

struct ma_heap_s {
    /* Owner thread only. */
    ma_page_t *direct[MA_DIRECT_COUNT];  /* page for sizes (i-1)*16+1..i*16 */
    ma_pageq_t queue[MA_CLASS_COUNT];    /* pages that may have room, per class */
    ma_pageq_t full;                     /* pages with no room (notify set) */
    uint64_t class_allocs[MA_CLASS_COUNT]; /* allocs folded out of pages */
    ma_page_t *retired[MA_RETIRE_SLOTS]; /* emptied pages waiting to go back (heap.c) */
    uint32_t retired_count;
    uint32_t epoch;                      /* slow-path calls: the retire clock */
    ma_segset_t segs;                    /* the segments its pages live in */
    ma_rbatch_t rbatch[MA_RBATCH_SLOTS]; /* frees to other heaps, not yet sent */
    /* Any thread. */
    _Atomic uintptr_t remote_full;       /* blocks freed into parked pages */
    /* Under the heaps lock. */
    bool owned;                          /* a live thread uses this heap */
    _Atomic bool is_abandoned;           /* its thread exited (free.c reads it) */
    ma_heap_t *next_abandoned;           /* also: next destroyed user heap */
    ma_heap_t *next_all;
    /* User heaps (ma_heap_new / ma_heap_new_in). */
    _Atomic uint32_t kind;               /* ma_heap_kind_t */
    _Atomic uint32_t busy;               /* an ma_heap_ call is running */
    ma_lock_t large_lock;                /* guards large_list; all zeros at first */
    ma_large_t *large_list;              /* this heap's large blocks */
    void *fixed;                         /* fixed.c's state (ma_heap_new_in) */
    /* Owner (or the one thread using a user heap): checked mode only. */
    ma_check_heap_t check;
    /* Owner: heap profiling only (profile.c); last, so that no other field
     * moves. 0 until drawn. */
    uint64_t prof_left;                  /* bytes of large blocks to allocate before the next sample */
    uint64_t prof_skip[MA_CLASS_COUNT];  /* 1 + blocks of the class to hand out before the next sample */
};

typedef enum {
    MA_HEAP_THREAD = 0,   /* a thread's heap (the memory is zero-filled) */
    MA_HEAP_USER = 0x55e7,  /* ma_heap_new: pages in segments of its own */
    MA_HEAP_FIXED = 0xf1ed, /* ma_heap_new_in: everything in caller memory */
    MA_HEAP_DEAD = 0xdead,  /* destroyed */
} ma_heap_kind_t;

/* ---- Globals ------------------------------------------------------------ */
extern uintptr_t ma_key MA_HIDDEN;                 /* free-list secret */
extern uintptr_t ma_canary_key MA_HIDDEN;          /* MAPALLOC_SECURE's canaries */
extern _Atomic uint8_t ma_segmap[] MA_HIDDEN;      /* see ma_segment_of */
extern ma_page_t ma_page_empty MA_HIDDEN;          /* a page with no blocks */
extern ma_heap_t ma_heap_empty MA_HIDDEN;          /* heap of a new thread */
extern __thread ma_heap_t *ma_heap_tls MA_HIDDEN;  /* heap malloc's fast path pops from */
extern __thread ma_heap_t *ma_heap_free_tls MA_HIDDEN; /* heap free's fast path pushes to */
extern __thread ma_heap_t *ma_heap_checked_tls MA_HIDDEN; /* this thread's heap in checked mode */

/* Modes, set once by ma_options_init before any block exists. The default
 * mode puts a thread's heap in both ma_heap_tls and ma_heap_free_tls. In
 * checked mode (any of the others) ma_heap_free_tls stays &ma_heap_empty,
 * so that every free misses its fast path and reaches check.c; so does
 * ma_heap_tls, but for MAPALLOC_SECURE alone: its blocks need nothing done
 * when they are handed out (check.c), so malloc's fast path serves it. The
 * thread's heap is in ma_heap_checked_tls. */
extern bool ma_checked MA_HIDDEN;   /* secure, debug or valgrind */
extern bool ma_secure MA_HIDDEN;    /* MAPALLOC_SECURE=1 */
extern bool ma_secure_only MA_HIDDEN; /* and neither DEBUG nor valgrind: check.c's lean paths */
extern bool ma_debug MA_HIDDEN;     /* MAPALLOC_DEBUG=1 */
extern bool ma_valgrind MA_HIDDEN;  /* running under valgrind (MA_HAVE_VALGRIND only) */
/* Heap profiling (MAPALLOC_PROFILE, profile.c), never with checked mode:
 * the heaps are as in the default mode, but malloc's slow path goes to
 * profile.c, which gives a page's fast path no more blocks than are left
 * before the next sample. Sampled blocks live in the profiler's memory. */
extern bool ma_profiling MA_HIDDEN;
extern bool ma_diverted MA_HIDDEN;  /* ma_checked || ma_profiling: malloc's slow path is not alloc.c's */
/* MAPALLOC_SECURE (a class with room for the canary) or profiling (every
 * medium block counted): sizes over MA_SMALL_MAX leave malloc's fast path. */
extern bool ma_medium_slow MA_HIDDEN;

static inline uintptr_t ma_block_encode(const void *p) { return (uintptr_t)p ^ ma_key; }
static inline ma_block_t *ma_block_decode(uintptr_t v) { return (ma_block_t *)(v ^ ma_key); }

/* ---- os_linux.c: the only file that talks to the kernel ------------------ */
typedef struct ma_os_stats_s {
    _Atomic uint64_t mapped, mapped_peak, committed, released;
    _Atomic uint64_t mmap_calls, munmap_calls, madvise_calls, mremap_calls;
} ma_os_stats_t;
extern ma_os_stats_t ma_os_stats MA_HIDDEN;
MA_HIDDEN void *ma_os_map(size_t size);                  /* NULL on failure */
MA_HIDDEN void *ma_os_map_aligned(size_t size, size_t align);
MA_HIDDEN void *ma_os_map_aligned_at(size_t size, size_t align, size_t offset); /* p + offset aligned */
MA_HIDDEN void ma_os_unmap(void *p, size_t size);
MA_HIDDEN void *ma_os_reserve(size_t size);              /* PROT_NONE; NULL on failure */
MA_HIDDEN void ma_os_purge(void *p, size_t size);        /* contents may be dropped */
MA_HIDDEN void *ma_os_remap_aligned(void *p, size_t old_size, size_t new_size, size_t align);
MA_HIDDEN bool ma_os_shrink(void *p, size_t old_size, size_t new_size);
MA_HIDDEN uint64_t ma_os_now_ms(void);
MA_HIDDEN uintptr_t ma_os_random(void);
MA_HIDDEN const char *ma_os_getenv(const char *name);
MA_HIDDEN const char *ma_os_env_at(size_t i);   /* environ[i], NULL past the end */
MA_HIDDEN const char *ma_os_program_name(void); /* argv[0]'s last part, or "" */
MA_HIDDEN void ma_os_write_err(const char *s, size_t n);
MA_HIDDEN void ma_os_keep_stderr(void);
MA_HIDDEN int ma_os_file_append(const char *path);  /* O_APPEND|O_CREAT, or -1 */
MA_HIDDEN void ma_os_write_fd(int fd, const char *s, size_t n);
MA_HIDDEN void ma_os_purge_mode(bool use_free);
/* Called when the kernel refuses a mapping (ENOMEM): releases what memory
 * it can and returns whether it did, and the mapping is tried once more.
 * So no caller of ma_os_map* may hold an allocator lock. */
typedef bool ma_os_reclaim_fn(void);
MA_HIDDEN void ma_os_set_reclaim(ma_os_reclaim_fn *fn);
MA_HIDDEN bool ma_os_protect(void *p, size_t size, bool access); /* PROT_NONE unless access */
MA_HIDDEN bool ma_os_under_memcheck(void);
typedef enum { MA_VG_NOACCESS, MA_VG_UNDEFINED, MA_VG_DEFINED } ma_vg_state_t;
MA_HIDDEN void ma_os_vg_malloclike(void *p, size_t size, bool zeroed);  /* memcheck: a new block */
MA_HIDDEN void ma_os_vg_freelike(void *p);                              /* memcheck: freed */
MA_HIDDEN void ma_os_vg_mark(void *p, size_t size, ma_vg_state_t state);
/* Files and shared memory, for heaps in files (fileheap.c, fixed.c): -1,
 * NULL or false on failure, with the kernel's errno. */
typedef enum {
    MA_OS_LOCK_NONE,    /* unlock */
    MA_OS_LOCK_ALONE,   /* exclusive, or fail at once: no other process has the file */
    MA_OS_LOCK_SHARED,  /* shared, waiting out an exclusive holder; or exclusive -> shared */
} ma_os_lock_t;
MA_HIDDEN int ma_os_file_open(const char *path, bool create, bool excl);  /* read-write */
MA_HIDDEN int ma_os_memfd(void);
MA_HIDDEN void ma_os_file_close(int fd);               /* keeps errno */
MA_HIDDEN int ma_os_file_lock(int fd, ma_os_lock_t how); /* 0 or -1 */
MA_HIDDEN int64_t ma_os_file_size(int fd);             /* EINVAL: not a regular file */
MA_HIDDEN ssize_t ma_os_file_read(int fd, void *buf, size_t n, uint64_t off);
MA_HIDDEN int ma_os_file_grow(int fd, uint64_t from, uint64_t to); /* 0 or -1 */
MA_HIDDEN void *ma_os_map_shared(int fd, size_t size);  /* MAP_SHARED, read-write */
MA_HIDDEN void ma_os_unmap_shared(void *p, size_t size);
MA_HIDDEN int ma_os_sync(void *p, size_t size, int fd); /* msync, then fdatasync if fd >= 0 */
MA_HIDDEN bool ma_os_is_shared(const void *p, size_t size); /* any of it mapped MAP_SHARED */
MA_HIDDEN void ma_os_futex_wait(_Atomic uint32_t *word, uint32_t expected);
MA_HIDDEN void ma_os_futex_wake(_Atomic uint32_t *word, int count);
MA_HIDDEN void ma_os_pause(unsigned round);
MA_HIDDEN void ma_os_stdio_lock(void);     /* glibc's stdio list lock, if any */
MA_HIDDEN void ma_os_stdio_unlock(void);
MA_HIDDEN void ma_os_stdio_reset(void);    /* the fork child: free again */
MA_HIDDEN bool ma_os_single_threaded(void);
/* Files and process facts, for the heap profiler: no allocation. The file
 * calls return -1 with errno set on failure. */
MA_HIDDEN int ma_os_open_write(const char *path);       /* created or truncated, 0644 */
MA_HIDDEN int ma_os_open_read(const char *path);
MA_HIDDEN long ma_os_read(int fd, void *buf, size_t n); /* bytes read, 0 at the end */
MA_HIDDEN int ma_os_write_all(int fd, const void *buf, size_t n);
MA_HIDDEN int ma_os_close(int fd);
MA_HIDDEN long ma_os_getpid(void);
MA_HIDDEN size_t ma_os_exe_path(char *buf, size_t n);   /* NUL-terminated; 0 if unknown */
MA_HIDDEN bool ma_os_getcwd(char *buf, size_t n);
MA_HIDDEN uint64_t ma_os_now_ns(void);                  /* wall clock, ns since 1970 */
MA_HIDDEN bool ma_os_stack_bounds(uintptr_t sp, uintptr_t *lo, uintptr_t *hi);

/* ---- diag.c: messages and fatal errors, without allocating -------------- */
typedef struct ma_buf_s {
    char data[512];
    size_t len;
} ma_buf_t;
MA_HIDDEN void ma_buf_str(ma_buf_t *b, const char *s);
MA_HIDDEN void ma_buf_u64(ma_buf_t *b, uint64_t v);
MA_HIDDEN void ma_buf_hex(ma_buf_t *b, uintptr_t v);
MA_HIDDEN void ma_buf_flush(ma_buf_t *b);
MA_HIDDEN _Noreturn void ma_diag_fatal_ptr(const char *what, const void *p, int sclass);
MA_HIDDEN _Noreturn void ma_diag_fatal(const char *msg);
MA_HIDDEN _Noreturn void ma_diag_fatal_around(const char *before, const void *p, const char *after);
MA_HIDDEN _Noreturn void ma_diag_assert_fail(const char *cond, const char *file, int line);
MA_HIDDEN void ma_diag_warn(const char *msg, const char *detail);
MA_HIDDEN const char *ma_diag_errno_name(int err);   /* "EACCES", ..., or NULL */

/* ---- options.c ---------------------------------------------------------- */
typedef enum {
    MA_OPT_SHOW_STATS,       /* statistics at exit: 1 the report, 2 with classes */
    MA_OPT_PURGE_DELAY_MS,   /* empty pages are purged after this long; <0 never */
    MA_OPT_PURGE_FREE,       /* MADV_FREE instead of MADV_DONTNEED */
    MA_OPT_DIRTY_MAX_MB,     /* purge at once when more than this is dirty */
    MA_OPT_LARGE_CACHE_MB,   /* freed large mappings kept for reuse, at most */
    MA_OPT_PURGER,           /* a background thread purges (purger.c) */
    MA_OPT_SECURE,           /* hardening: guards, canaries, quarantine (check.c) */
    MA_OPT_DEBUG,            /* debugging: fills, leak report at exit (check.c) */
    MA_OPT_PROFILE_RATE,     /* heap profiler: mean bytes between samples */
    MA_OPT_PROFILE_INTERVAL_MB, /* heap profiler: dump every N MiB of live-heap growth; 0 never */
    MA_OPT_COUNT
} ma_option_t;
MA_HIDDEN void ma_options_init(void);
MA_HIDDEN long ma_option(ma_option_t o);
/* MAPALLOC_PROFILE as it was at start-up (absolute), or NULL: a copy, as
 * the program may change its environment. */
MA_HIDDEN const char *ma_option_profile_file(void);
MA_HIDDEN const char *ma_options_stats_file(void);  /* MAPALLOC_STATS_FILE, or NULL */

/* ---- sizeclass.c -------------------------------------------------------- */
MA_HIDDEN void ma_sizeclass_init(void);
extern uint32_t ma_class_size[MA_CLASS_COUNT] MA_HIDDEN;   /* set once by ma_sizeclass_init */
extern uint8_t ma_class_slices[MA_CLASS_COUNT] MA_HIDDEN;
extern uint8_t ma_class_direct_lo[MA_CLASS_COUNT] MA_HIDDEN; /* heap->direct entries of */
extern uint8_t ma_class_direct_hi[MA_CLASS_COUNT] MA_HIDDEN; /* a class; lo > hi: none */
static inline size_t ma_sizeclass_size(unsigned cls) { return ma_class_size[cls]; }
static inline unsigned ma_sizeclass_slices(unsigned cls) { return ma_class_slices[cls]; }
static inline unsigned ma_sizeclass_of(size_t n) {
    if (n <= MA_CLASS_LINEAR * 16) return n <= 16 ? 1 : (unsigned)((n + 15) >> 4);
    if (MA_UNLIKELY(n > MA_PAGED_MAX))  /* a span of its own, whole slices */
        return MA_PAGED_CLASSES + (unsigned)((n - MA_PAGED_MAX + MA_SLICE_SIZE - 1) >> MA_SLICE_SHIFT);
    size_t m = n - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(m);   /* b >= 8 */
    unsigned idx = (unsigned)(m >> (b - 3));           /* 8..15 */
    return MA_CLASS_LINEAR + (b - 8) * 8 + (idx - 8) + 1;
}

/* ---- segment.c: segments, spans, the byte map, purging ------------------ */
MA_HIDDEN void ma_segment_set_init(ma_segset_t *set);
MA_HIDDEN ma_page_t *ma_segment_span_alloc(ma_segset_t *set, unsigned slices, bool map_new);
MA_HIDDEN void ma_segment_span_free(ma_page_t *page);
MA_HIDDEN size_t ma_segment_set_trim(ma_segset_t *set, bool force, bool if_idle);
MA_HIDDEN void ma_segment_set_release(ma_segset_t *set);
MA_HIDDEN void ma_segment_set_shed(ma_segset_t *set);
#define MA_POOL_KEEP 16u      /* free segments the pool keeps mapped (purged) */
MA_HIDDEN size_t ma_segment_pool_trim(bool force, uint32_t keep);
MA_HIDDEN void ma_segment_map_set(uintptr_t base, uint8_t v);
MA_HIDDEN void ma_segment_set_lock(ma_segset_t *set);
MA_HIDDEN void ma_segment_set_unlock(ma_segset_t *set);
typedef void ma_page_visit_fn(const ma_page_t *page, void *arg);
MA_HIDDEN void ma_segment_visit_pages(ma_segset_t *set, ma_page_visit_fn *fn, void *arg);
MA_HIDDEN void ma_segment_account(int64_t delta);   /* bytes in use: spans and live large blocks */
MA_HIDDEN uint64_t ma_segment_inuse(uint64_t *peak);
MA_HIDDEN uint64_t ma_segment_dirty(void);          /* free bytes that may be resident */
typedef void ma_region_visit_fn(void *region, void *arg);
MA_HIDDEN void ma_segment_visit_large(ma_region_visit_fn *fn, void *arg);

/* The byte map: one entry per 4 MiB of address space. */
enum {
    MA_MAP_NONE = 0,     /* not ours */
    MA_MAP_SEGMENT = 1,  /* a segment of small blocks starts here */
    MA_MAP_LARGE = 2,    /* a large mapping starts here */
    /* MA_MAP_LARGE + k: a large mapping starts k boundaries lower; large.c
     * writes k = 1 only, for the boundary where a block aligned to more
     * than 4 MiB starts (its header is on the boundary below) */
    MA_MAP_FIXED = 255,  /* overlaps caller memory holding a fixed heap (fixed.c) */
};

static inline uint8_t ma_map_value(const void *p) {
    uintptr_t a = (uintptr_t)p;
    if (MA_UNLIKELY(a >> MA_ADDR_BITS)) return MA_MAP_NONE;
    return atomic_load_explicit(&ma_segmap[a >> MA_SEGMENT_SHIFT], memory_order_relaxed);
}

/* The region holding p - a segment or a large header - or NULL if p is
 * not ours. Constant time, reads nothing at p. */
static inline void *ma_region_of(const void *p) {
    uint8_t v = ma_map_value(p);
    if (v == MA_MAP_NONE || v == MA_MAP_FIXED) return NULL;
    uintptr_t base = (uintptr_t)p & ~MA_SEGMENT_MASK;
    if (v > MA_MAP_LARGE) base -= (uintptr_t)(v - MA_MAP_LARGE) << MA_SEGMENT_SHIFT;
    return (void *)base;
}

/* The segment of p if p lies in a segment of small blocks, else NULL (p
 * may still be a large block: see ma_region_of). The free fast path. */
static inline ma_segment_t *ma_segment_small_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint8_t v = atomic_load_explicit(&ma_segmap[(a >> MA_SEGMENT_SHIFT) & (MA_SEGMAP_ENTRIES - 1)],
                                     memory_order_relaxed);
    if (MA_UNLIKELY((a >> MA_ADDR_BITS) != 0 || v != MA_MAP_SEGMENT)) return NULL;
    return (ma_segment_t *)(a & ~MA_SEGMENT_MASK);
}

static inline bool ma_region_is_large(const void *region) {
    return ((const ma_large_t *)region)->kind == MA_KIND_LARGE;
}

static inline ma_page_t *ma_segment_page_of(ma_segment_t *seg, const void *p) {
    size_t first = seg->slice_first[((uintptr_t)p >> MA_SLICE_SHIFT) & (MA_SEGMENT_SLICES - 1)];
    /* one address, not one per field the caller reads */
    uintptr_t page = (uintptr_t)seg->pages + first * sizeof(ma_page_t);
    __asm__("" : "+r"(page));
    return (ma_page_t *)page;
}

/* ---- page.c: blocks of one class in one span ---------------------------- */
MA_HIDDEN void ma_page_setup(ma_page_t *page, ma_heap_t *heap, unsigned cls);
MA_HIDDEN void ma_page_extend(ma_page_t *page);
MA_HIDDEN void ma_page_collect(ma_page_t *page);
MA_HIDDEN bool ma_page_park(ma_page_t *page);
MA_HIDDEN void ma_page_unpark(ma_page_t *page);
MA_HIDDEN bool ma_page_list_contains(const ma_page_t *page, ma_block_t *list, const ma_block_t *b);

/* Blocks handed out and not given back (page->used without its biases). */
static inline uint32_t ma_page_used(const ma_page_t *page) {
    return (uint32_t)page->used - page->pinned - (page->in_full ? (uint32_t)MA_USED_FULL : 0);
}

/* MAPALLOC_SECURE keeps the last MA_CANARY_SIZE bytes of each block of a
 * page for its canary: the block's address under a secret derived from the
 * key. page.c writes it when it carves the block and nothing of ours ever
 * writes over it, so a block has it whether live, free or quarantined, and
 * malloc need not write it; check.c checks it on free (heap overflow).
 * Blocks are 16-byte aligned, so the low nibble is the secret's with bits
 * 0-2 set: never 0 (an off-by-one string terminator is caught) and never
 * 0xD (a canary is never the free fill). */
#define MA_CANARY_SIZE 8u
static inline size_t ma_block_tail(void) { return ma_secure ? MA_CANARY_SIZE : 0; }

/* MAPALLOC_SECURE's blocks are never smaller than this: a link, 16 bytes
 * of fill and the canary. check.c's lean free then fills and checks both
 * edges without testing the size (only malloc(0) and tiny aligned
 * requests would take the 16-byte class, and pay 16 bytes more). */
#define MA_SECURE_BLOCK_MIN 32u

/* Bytes of block that a request of size bytes takes: with its canary, and
 * at least MA_SECURE_BLOCK_MIN with MAPALLOC_SECURE. */
static inline size_t ma_block_need(size_t size) {
    if (!ma_secure) return size;
    size += MA_CANARY_SIZE;
    return size < MA_SECURE_BLOCK_MIN ? MA_SECURE_BLOCK_MIN : size;
}

/* The class heap->direct gives the fast path for size (up to
 * MA_SMALL_MAX): the size rounded up to 16, then ma_block_need. heap.c's
 * direct_update maps it so; a slow path serving such a size must take the
 * same class, or the direct page would run dry and never be refilled. */
static inline unsigned ma_sizeclass_direct(size_t size) {
    return ma_sizeclass_of(ma_block_need((size + 15) & ~(size_t)15));
}
static inline uint64_t ma_canary_of(const void *b) { return ((uintptr_t)b ^ ma_canary_key) | 7; }

/* What the program may use of a block of the page. */
static inline size_t ma_page_usable(const ma_page_t *page) { return page->block_size - ma_block_tail(); }

/* Checked mode: a freed block holds MA_FREE_FILL in its fill span, from
 * byte 8 (its first word is a link or a quarantine tag) to the canary or
 * the end: all of the span with `whole` (MAPALLOC_DEBUG), else its first
 * and its last MA_FILL_EDGE bytes, which is all of a span of up to
 * 2 * MA_FILL_EDGE. check.c fills what is freed and checks the fill before
 * the block is handed out again (SECURE alone: when it leaves the
 * quarantine; the other modes: in malloc, and page.c fills what it carves
 * for them). Two 16-byte stores at most in SECURE: this runs on every
 * free. */
#define MA_FREE_FILL 0xDD
#define MA_FILL_EDGE 16u
#define MA_LINK_SIZE sizeof(ma_block_t)
typedef uint64_t ma_v16_t __attribute__((vector_size(16), may_alias));
#define MA_FILL64 (0x0101010101010101ull * MA_FREE_FILL)

/* [from, to), a multiple of 8 bytes long; stores may overlap. */
static inline void ma_fill_range(uint8_t *from, uint8_t *to) {
    const ma_v16_t v = {MA_FILL64, MA_FILL64};
    const uint64_t w = MA_FILL64;
    if (to - from < 16) {
        if (to > from) memcpy(from, &w, sizeof w);
        return;
    }
    for (; from + 16 < to; from += 16) memcpy(from, &v, sizeof v);
    memcpy(to - 16, &v, sizeof v);
}

/* The fill span of the block at b: [b + 8, end). */
/* The first and the last MA_FILL_EDGE bytes of [from, to), at least that long. */
static inline void ma_fill_edges(uint8_t *from, uint8_t *to) {
    const ma_v16_t v = {MA_FILL64, MA_FILL64};
    memcpy(from, &v, sizeof v);
    memcpy(to - MA_FILL_EDGE, &v, sizeof v);
}

static inline void ma_fill_free(uint8_t *b, uint8_t *end, bool whole) {
    uint8_t *from = b + MA_LINK_SIZE, *to = end;
    if (whole || to - from < MA_FILL_EDGE) {
        ma_fill_range(from, to);
        return;
    }
    ma_fill_edges(from, to);
}

/* Index of the block at p, or UINT32_MAX if p is not the start of a carved
 * block. recip = ceil(2^40 / size) divides exactly for offsets below 4 MiB
 * and sizes up to 256 KiB (the rounding error stays below 1/size). */
static inline uint32_t ma_page_block_index(const ma_page_t *page, const void *p) {
    uint64_t off = (uintptr_t)p - (uintptr_t)page->start;
    /* carved grows under a remote free's feet; it only grows, and a
     * relaxed load is a plain load on x86. */
    uint32_t carved = __atomic_load_n(&page->carved, __ATOMIC_RELAXED);
    uint64_t q = (off * page->recip) >> MA_RECIP_SHIFT;
    if (MA_UNLIKELY(off >= carved || q * page->block_size != off)) return UINT32_MAX;
    return (uint32_t)q;
}

/* Takes the first block of page->free (not NULL). The block must lie in
 * its page's segment (the descriptor lives in the segment's header, so one
 * XOR tells), checked before its link is read: a write after free or an
 * overflow that hit a free block's link cannot make malloc hand out, or
 * read, an address outside the segment, and the key makes a forged link
 * point anywhere but where intended. The link is then cleared so that a
 * block freed without being written to does not look free to the
 * double-free check (free.c). alloc.c's and check.c's fast paths. */
MA_HIDDEN MA_COLD void ma_page_corrupted_link(ma_page_t *page, ma_block_t *b);
static inline void *ma_page_pop(ma_page_t *page) {
    ma_block_t *b = page->free;
    if (MA_UNLIKELY(((uintptr_t)b ^ (uintptr_t)page) >= MA_SEGMENT_SIZE)) ma_page_corrupted_link(page, b);
    page->free = ma_block_decode(b->next);
    page->used++;
    page->allocs++;
    b->next = 0;
    return b;
}

/* Whether w, the first word of the block at p, is what a free block's
 * first word holds: an encoded link to NULL or to a block of its page.
 * Looser, and cheaper: a link into p's segment. */
static inline bool ma_page_link_plausible(const void *p, uintptr_t w) {
    uintptr_t link = (uintptr_t)ma_block_decode(w);
    return link == 0 || ((link ^ (uintptr_t)p) >> MA_SEGMENT_SHIFT) == 0;
}

/* ---- purger.c: the background purger; memory back when the OS refuses -- */
MA_HIDDEN void ma_purger_init(void);
MA_HIDDEN void ma_purger_start(void);
extern _Atomic bool ma_purger_wanted MA_HIDDEN;
/* The slow paths, with no lock held: start the purger if it is due. */
static inline void ma_purger_kick(void) {
    if (MA_UNLIKELY(atomic_load_explicit(&ma_purger_wanted, memory_order_relaxed))) ma_purger_start();
}
MA_HIDDEN void ma_purger_fork_child(void);

/* ---- heap.c: thread heaps ----------------------------------------------- */
MA_HIDDEN ma_heap_t *ma_heap_thread_init(void);
MA_HIDDEN void ma_heap_thread_done(void *heap);
MA_HIDDEN ma_page_t *ma_heap_find_page(ma_heap_t *heap, unsigned cls);
MA_HIDDEN void ma_heap_page_event(ma_heap_t *heap, ma_page_t *page);
MA_HIDDEN void ma_heap_drain_remote(ma_heap_t *heap);
MA_HIDDEN void ma_heap_collect(ma_heap_t *heap, bool release_all);
MA_HIDDEN void ma_heap_collect_abandoned(bool all);
MA_HIDDEN size_t ma_heap_purge_all(bool force);
extern _Atomic bool ma_heap_abandoned_news MA_HIDDEN;
MA_HIDDEN void ma_heap_fork_child(void);
MA_HIDDEN void ma_heap_sum_class_allocs(uint64_t *out);
MA_HIDDEN ma_heap_t *ma_heap_current(void);   /* this thread's heap, or NULL */
MA_HIDDEN void ma_heap_lock(void);             /* owners and the heap list stay put */
MA_HIDDEN void ma_heap_unlock(void);
MA_HIDDEN ma_heap_t *ma_heap_first(void);      /* every heap, by next_all; lock held */
MA_HIDDEN void ma_heap_visit_pages_locked(ma_page_visit_fn *fn, void *arg);
MA_HIDDEN ma_heap_t *ma_heap_user_new(void);
MA_HIDDEN void ma_heap_user_release(ma_heap_t *heap);
MA_HIDDEN void ma_heap_user_retire(ma_heap_t *heap);
MA_HIDDEN uint64_t ma_heap_count(void);

/* Puts b, checked, on the local_free list of its page, which heap owns;
 * the heap hears when the page empties (unless pinned) or when it sat in
 * the full list (page->used's biases). free.c's fast path and check.c's
 * quarantine. */
static inline void ma_page_free_push(ma_heap_t *heap, ma_page_t *page, ma_block_t *b) {
    b->next = ma_block_encode(page->local_free);
    page->local_free = b;
    if (MA_UNLIKELY(--page->used <= 0)) {
        ma_heap_page_event(heap, page);
        ma_purger_kick();  /* memory may have become free */
    }
}

/* ---- large.c: blocks mapped on their own -------------------------------- */
MA_HIDDEN void *ma_large_alloc(size_t size, size_t align, bool zero, ma_heap_t *owner);
MA_HIDDEN void ma_large_release_owner(ma_heap_t *owner);
typedef int ma_large_visit_fn(ma_large_t *large, void *arg);
MA_HIDDEN int ma_large_visit_owner(ma_heap_t *owner, ma_large_visit_fn *fn, void *arg);
MA_HIDDEN void ma_large_free(ma_large_t *large, const void *p);
MA_HIDDEN void *ma_large_realloc(ma_large_t *large, void *p, size_t size);
MA_HIDDEN size_t ma_large_usable(const ma_large_t *large);
MA_HIDDEN bool ma_large_owns(const ma_large_t *large, const void *p);
MA_HIDDEN size_t ma_large_cache_tick(bool all);
MA_HIDDEN size_t ma_large_trim(void);
MA_HIDDEN uint64_t ma_large_cached(void);
MA_HIDDEN void ma_large_visit_all(ma_region_visit_fn *fn, void *arg);
MA_HIDDEN void ma_large_cache_check(void);   /* checked mode: every cached block's fill */
typedef struct ma_large_stats_s {
    uint64_t count, bytes, allocs, alloc_bytes, cached_bytes;
} ma_large_stats_t;
MA_HIDDEN void ma_large_stats(ma_large_stats_t *out);

/* ---- fixed.c: heaps in caller memory (ma_heap_new_in) and in files -------
 * One engine: a heap's metadata holds offsets from its origin, never
 * pointers, and its lock is robust and process-shared. A ma_heap_new_in
 * heap keeps its heap struct and handle at the start of the caller's
 * region; a file heap's are mapped for it (fileheap.c maps the file).
 * Blocks are 16-byte aligned. Every call may come from any thread (and any
 * process that maps the heap), except reset and destroy, which must run
 * alone. The byte map marks with MA_MAP_FIXED every 4 MiB chunk a live
 * heap overlaps; ma_fixed_find tells which heap, if any, holds a pointer. */
MA_HIDDEN ma_heap_t *ma_fixed_new(void *base, size_t size);       /* NULL + EINVAL if unusable */
MA_HIDDEN void *ma_fixed_alloc(ma_heap_t *h, size_t size, size_t align, bool zero); /* NULL + ENOMEM */
MA_HIDDEN void *ma_fixed_malloc(ma_heap_t *h, size_t size);      /* ma_fixed_alloc(h, size, 16, false) */
MA_HIDDEN ma_heap_t *ma_fixed_find(const void *p);                /* any thread, no lock */
MA_HIDDEN void ma_fixed_free(ma_heap_t *h, void *p, const char *what); /* fatal if invalid */
MA_HIDDEN size_t ma_fixed_usable(ma_heap_t *h, const void *p, const char *what); /* fatal if invalid */
MA_HIDDEN void *ma_fixed_realloc(ma_heap_t *h, void *p, size_t size); /* stays in h */
MA_HIDDEN void ma_fixed_reset(ma_heap_t *h);
MA_HIDDEN void ma_fixed_destroy(ma_heap_t *h);   /* off the registry, dead; file: handle pooled */
MA_HIDDEN int ma_fixed_visit(ma_heap_t *h, ma_heap_visit_fn *fn, void *arg);
MA_HIDDEN void ma_fixed_stats(ma_heap_t *h, ma_heap_stats_t *out);
MA_HIDDEN uint64_t ma_fixed_offset(ma_heap_t *h, const void *p);  /* fatal if outside */
MA_HIDDEN void *ma_fixed_pointer(ma_heap_t *h, uint64_t off);     /* NULL if not backed */
MA_HIDDEN void ma_fixed_root_set(ma_heap_t *h, uint64_t off);
MA_HIDDEN uint64_t ma_fixed_root_get(ma_heap_t *h);
MA_HIDDEN uint64_t ma_fixed_repairs(ma_heap_t *h);   /* rebuilds after a lock holder died */
MA_HIDDEN int ma_fixed_sync(ma_heap_t *h);
/* For fileheap.c: making, checking and recovering a heap's bytes. */
MA_HIDDEN void ma_fixed_format(void *origin, uint64_t capacity, uint64_t committed);
MA_HIDDEN uint64_t ma_fixed_checksum(const void *head);
MA_HIDDEN size_t ma_fixed_head_size(void);           /* bytes ma_fixed_check_head reads */
MA_HIDDEN size_t ma_fixed_arena_offset(void);        /* bytes before the first block */
MA_HIDDEN uint64_t ma_fixed_capacity_max(void);
MA_HIDDEN const char *ma_fixed_check_head(const void *head, uint64_t file_len, int *err, uint64_t *capacity);
MA_HIDDEN const char *ma_fixed_check_state(const void *origin, int fd, int *err);
MA_HIDDEN uint64_t ma_fixed_recover(void *origin);   /* alone: 0, or a bad header's offset */
MA_HIDDEN ma_heap_t *ma_fixed_attach(void *origin, size_t map_size, int fd);
MA_HIDDEN bool ma_fixed_is_file(ma_heap_t *h);
MA_HIDDEN void ma_fixed_file_of(ma_heap_t *h, void **origin, size_t *map_size, int *fd);

/* ---- fileheap.c: the files of file heaps (ma_heap_open) ------------------ */
MA_HIDDEN ma_heap_t *ma_fileheap_open(const char *path, size_t size, int flags); /* NULL + errno */
MA_HIDDEN int ma_fileheap_close(ma_heap_t *h);   /* syncs, unmaps, closes; the heap is dead */
MA_HIDDEN void ma_fixed_fork_prepare(void);  /* every private fixed heap's lock, tried */
MA_HIDDEN void ma_fixed_fork_parent(void);
MA_HIDDEN void ma_fixed_fork_child(void);

/* ---- alloc.c / free.c: the entry points' bodies ------------------------- */
extern __thread bool ma_thread_exited MA_HIDDEN;  /* its exit hook ran (init.c sets it) */
MA_HIDDEN void *ma_alloc_late(size_t size, size_t align, bool zero); /* such a thread's allocations */
MA_HIDDEN void *ma_alloc_slow(ma_heap_t *heap, size_t size);
MA_HIDDEN void *ma_alloc_aligned(size_t size, size_t align);
MA_HIDDEN void *ma_alloc_in(ma_heap_t *heap, size_t size, size_t align, bool zero);
MA_HIDDEN void *ma_alloc_unchecked(ma_heap_t *heap, size_t size, size_t align, bool zero);
MA_HIDDEN void *ma_alloc_class(ma_heap_t *heap, unsigned cls);
MA_HIDDEN void ma_free_local(ma_heap_t *heap, ma_page_t *page, ma_block_t *b);
MA_HIDDEN void ma_free_remote(ma_page_t *page, ma_block_t *b);
MA_HIDDEN void ma_free_remote_batched(ma_heap_t *heap, ma_page_t *page, ma_block_t *b);
MA_HIDDEN void ma_free_flush_slot(ma_rbatch_t *slot);
MA_HIDDEN void ma_free_flush(ma_heap_t *heap);
MA_HIDDEN void ma_free_slow(void *p);
MA_HIDDEN _Noreturn MA_COLD void ma_free_bad(const ma_page_t *page, const void *p); /* not a block of page */
MA_HIDDEN size_t ma_usable_of(const void *p, const char *what);
MA_HIDDEN size_t ma_usable_unchecked(const void *p, const char *what);
MA_HIDDEN ma_heap_t *ma_free_fixed_of(const void *p);  /* the fixed heap p is a block of */

/* ---- check.c: checked mode (MAPALLOC_SECURE, MAPALLOC_DEBUG, valgrind) ---
 * Above alloc.c and free.c: their slow paths call here when ma_checked. */
MA_HIDDEN void *ma_check_alloc(ma_heap_t *heap, size_t size, size_t align, bool zero);
MA_HIDDEN void *ma_check_malloc(size_t size);                   /* malloc's slow path */
MA_HIDDEN void ma_check_free(void *p);
MA_HIDDEN void ma_check_free_block(ma_page_t *page, void *p);   /* p checked: a block of page */
MA_HIDDEN void *ma_check_realloc(void *p, size_t size);
MA_HIDDEN size_t ma_check_usable(const void *p, const char *what);
MA_HIDDEN void ma_check_flush(void);                 /* this thread's quarantine */
MA_HIDDEN void ma_check_thread_done(ma_heap_t *heap);
MA_HIDDEN void ma_check_at_exit(void);               /* last checks; MAPALLOC_DEBUG's report */

/* ---- init.c: process, thread and fork hooks ----------------------------- */
MA_HIDDEN void ma_process_init(void);
extern pthread_key_t ma_thread_key MA_HIDDEN;

/* ---- stats.c ------------------------------------------------------------ */
MA_HIDDEN void ma_stats_at_exit(void);
typedef void ma_stats_write_fn(const char *s, size_t n, void *arg);
MA_HIDDEN void ma_stats_xml(ma_stats_write_fn *write, void *arg);  /* malloc_info's XML */

/* ---- stackwalk.c: the calling thread's call stack ------------------------ */
#define MA_STACK_MAX 64u          /* frames a sample keeps */
/* Fills pcs with up to max call sites (a return address less one; the
 * exact pc of a frame a signal interrupted), innermost first, leaving out
 * the walker, the frames of this library when it is a shared object, and
 * leading frames of the functions starting at skip[0..nskip) (sorted). Never
 * allocates or faults. The caller serialises calls (profile.c's lock). */
MA_HIDDEN uint32_t ma_stack_walk(uintptr_t *pcs, uint32_t max, const uintptr_t *skip, size_t nskip);

/* ---- pprof.c: the profile file --------------------------------------------- */
typedef struct ma_prof_bucket_s {
    struct ma_prof_bucket_s *next;      /* hash chain (profile.c, its lock) */
    struct ma_prof_bucket_s *all_next;  /* every bucket, oldest first */
    uint64_t hash;                      /* of the stack */
    double alloc_count, alloc_bytes;    /* estimated, every sample since the start */
    double live_count, live_bytes;      /* estimated, the samples not freed */
    uint32_t depth;
    uintptr_t pcs[];                    /* the stack, innermost first */
} ma_prof_bucket_t;

typedef struct ma_prof_sample_s {
    struct ma_prof_sample_s *next;      /* hash chain by address (profile.c, its lock) */
    uintptr_t addr;                     /* the sampled block */
    ma_prof_bucket_t *bucket;           /* its stack */
    size_t size;                        /* bytes asked for (realloc: the new size) */
    uint64_t total;                     /* bytes counted for it: it was sampled with
                                           probability 1 - exp(-total/rate) (its block
                                           size, or its size and later growth) */
    double weight;                      /* bytes it stands for: size / (1 - exp(-total/rate)) */
    uint64_t time_ms;                   /* when it was allocated (ma_os_now_ms) */
} ma_prof_sample_t;

typedef void ma_prof_sample_fn(const ma_prof_sample_t *s, void *arg);
typedef struct ma_pprof_data_s {
    const ma_prof_bucket_t *buckets;    /* by all_next */
    size_t frame_count;                 /* their depths added up */
    void (*each_sample)(ma_prof_sample_fn *fn, void *arg);  /* every live sample */
    long rate;
    uint64_t now_ms;
} ma_pprof_data_t;

typedef struct ma_pprof_modules_s ma_pprof_modules_t;
MA_HIDDEN ma_pprof_modules_t *ma_pprof_modules_collect(void);  /* NULL: out of memory */
MA_HIDDEN void ma_pprof_modules_free(ma_pprof_modules_t *m);
/* 0, or -1 with errno. legacy: the text format, else gzip'd profile.proto. */
MA_HIDDEN int ma_pprof_write(int fd, bool legacy, const ma_pprof_data_t *d, const ma_pprof_modules_t *m);

/* ---- profile.c: the heap profiler (MAPALLOC_PROFILE) ---------------------
 * Above alloc.c and free.c, whose slow paths call here when ma_profiling. */
MA_HIDDEN void *ma_profile_malloc(ma_heap_t *heap, size_t size);
MA_HIDDEN void *ma_profile_alloc(size_t size, size_t align, bool zero);
MA_HIDDEN void *ma_profile_realloc(void *p, size_t size);
MA_HIDDEN void ma_profile_free_fixed(ma_heap_t *fixed, void *p);
MA_HIDDEN void ma_profile_free_large(ma_large_t *large, void *p);
MA_HIDDEN void ma_profile_at_exit(void);
MA_HIDDEN void ma_profile_stats(ma_stats_t *st);   /* adds the sampled blocks of fixed heaps */

#endif /* MA_INTERNAL_H */

/* types.h - the types and constants mapalloc's files share: geometry, blocks,
 * pages, segments, large headers, locks, heaps. No functions: internal.h
 * includes this first, then each file's prototypes, then the inline
 * helpers (checked.h, fastpath.h). Include internal.h, not this.
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
#ifndef MA_TYPES_H
#define MA_TYPES_H

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
#define MA_PAGE_BLOCKS_MAX 4096u              /* the most blocks a page holds: 64 KiB / 16
                                               * (sizeclass.c asserts it) */

#define MA_SMALL_MAX 1024u                    /* sizes served through heap->direct */
#define MA_DIRECT_SHIFT 4                     /* heap->direct: one entry per 16 bytes of size */
#define MA_DIRECT_STEP ((size_t)1 << MA_DIRECT_SHIFT)
#define MA_DIRECT_COUNT (MA_SMALL_MAX / MA_DIRECT_STEP + 1)
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
/* 2^64 divided by the golden ratio, odd: multiplying by it spreads a
 * word's bits over the high ones (Fibonacci hashing; mixing seeds). */
#define MA_GOLDEN64 0x9E3779B97F4A7C15ull

/* ---- Blocks and pages ------------------------------------------------- */
typedef struct ma_block_s {
    uintptr_t next;  /* encoded link (ma_block_encode) while the block is free */
} ma_block_t;

typedef struct ma_heap_s ma_heap_t;

/* A set of a page's blocks, by index (ma_page_block_index): the free ones,
 * marked by pool.c's visit and audit.c's walk. */
typedef struct ma_block_set_s {
    uint64_t bits[MA_PAGE_BLOCKS_MAX / 64];
} ma_block_set_t;

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

#endif /* MA_TYPES_H */

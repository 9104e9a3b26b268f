/* internal.h - the one header every file of src/ includes: the shared types
 * (types.h), the globals, each file's prototypes, and then the inline
 * helpers that run in the files using them: fastpath.h (block sizes, the
 * byte map, the page lookups, pop and push of malloc's and free's fast
 * paths) and checked.h (MAPALLOC_SECURE's canary, the free fill and its
 * checks). Sections go roughly bottom up, as src/README.md's layer table.
 */
#ifndef MA_INTERNAL_H
#define MA_INTERNAL_H

#include "types.h"

/* ---- lock.c: the allocator's locks (types.h: ma_lock_t) ----------------- */
MA_HIDDEN void ma_lock(ma_lock_t *l);
MA_HIDDEN bool ma_lock_try(ma_lock_t *l);
MA_HIDDEN void ma_unlock(ma_lock_t *l);
MA_HIDDEN bool ma_lock_held(const ma_lock_t *l);   /* by the calling thread */
MA_HIDDEN bool ma_lock_none_held(void);            /* the calling thread holds no lock of ours */
MA_HIDDEN void ma_lock_forget(ma_lock_t *l);       /* free; its memory goes away */
MA_HIDDEN bool ma_lock_fork_prepare(void);          /* false: nothing was taken */
MA_HIDDEN void ma_lock_fork_parent(void);
MA_HIDDEN bool ma_lock_fork_child(void);            /* as prepare said */

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
MA_HIDDEN void ma_buf_begin(ma_buf_t *b, const char *what);  /* "mapalloc: " what */
MA_HIDDEN void ma_buf_end(ma_buf_t *b);                      /* newline, written out */
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

/* ---- page.c: blocks of one class in one span ---------------------------- */
MA_HIDDEN void ma_page_setup(ma_page_t *page, ma_heap_t *heap, unsigned cls);
MA_HIDDEN void ma_page_extend(ma_page_t *page);
MA_HIDDEN void ma_page_collect(ma_page_t *page);
MA_HIDDEN bool ma_page_park(ma_page_t *page);
MA_HIDDEN void ma_page_unpark(ma_page_t *page);
MA_HIDDEN bool ma_page_list_contains(const ma_page_t *page, ma_block_t *list, const ma_block_t *b);
MA_HIDDEN MA_COLD void ma_page_corrupted_link(ma_page_t *page, ma_block_t *b);

/* ---- purger.c: the background purger; memory back when the OS refuses -- */
MA_HIDDEN void ma_purger_init(void);
MA_HIDDEN void ma_purger_start(void);
extern _Atomic bool ma_purger_wanted MA_HIDDEN;
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
MA_HIDDEN size_t ma_alloc_realloc_size(size_t usable, size_t size); /* realloc's policy: 0 stays */
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

/* ---- audit.c: ma_check() and the leak report ----------------------------- */
MA_HIDDEN void ma_audit_at_exit(void);               /* last checks; MAPALLOC_DEBUG's report */

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

/* ---- The inline helpers (src/README.md, "Inline helpers") --------------- */
#include "fastpath.h"
#include "checked.h"

#endif /* MA_INTERNAL_H */

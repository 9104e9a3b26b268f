/* pool.c - the ma_heap_ API: heaps a program creates, allocates from and
 * releases whole (include/mapalloc.h states the rules).
 *
 * A user heap (ma_heap_new) is a heap like a thread's, whose pages live in
 * segments it owns and whose large blocks are on its own list, so
 * ma_heap_destroy unmaps them all without looking at a single block. A
 * fixed heap (ma_heap_new_in, in caller memory) and a file heap
 * (ma_heap_open, in a file or shared memory: fileheap.c) are fixed.c's.
 * Blocks of any are ordinary blocks for free/realloc: a free from any
 * thread reaches a user heap's page through the remote-free path, and a
 * fixed heap's through the registry.
 *
 * Every call checks the heap is alive. A user heap is also marked busy for
 * the call's duration: two calls that overlap (two threads allocating at
 * once) are reported instead of corrupting the heap (one atomic exchange).
 * Fixed and file heaps have a lock of their own: their calls may overlap.
 */
#include <errno.h>
#include <string.h>
#include "internal.h"

static ma_heap_kind_t alive(ma_heap_t *h) {
    uint32_t kind = atomic_load_explicit(&h->kind, memory_order_acquire);
    if (kind == MA_HEAP_DEAD) ma_diag_fatal_around("use of destroyed heap ", h, "");
    if (kind != MA_HEAP_USER && kind != MA_HEAP_FIXED) ma_diag_fatal_around("invalid heap ", h, "");
    return (ma_heap_kind_t)kind;
}

static ma_heap_kind_t enter(ma_heap_t *h) {
    ma_heap_kind_t kind = alive(h);
    if (kind == MA_HEAP_USER && atomic_exchange_explicit(&h->busy, 1, memory_order_acquire))
        ma_diag_fatal_around("heap ", h, " used by two threads at once");
    return kind;
}

static void leave(ma_heap_t *h) {
    if (atomic_load_explicit(&h->kind, memory_order_relaxed) == MA_HEAP_USER)
        atomic_store_explicit(&h->busy, 0, memory_order_release);
}

static void *heap_alloc(ma_heap_t *h, ma_heap_kind_t kind, size_t size, size_t align, bool zero) {
    if (kind == MA_HEAP_FIXED) return ma_fixed_alloc(h, size, align, zero);
    if (size > (size_t)PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return ma_alloc_in(h, size, align, zero);
}

ma_heap_t *ma_heap_new(void) {
    ma_heap_t *h = ma_heap_user_new();
    if (!h) errno = ENOMEM;
    return h;
}

ma_heap_t *ma_heap_new_in(void *base, size_t size) {
    ma_process_init();
    return ma_fixed_new(base, size);
}

/* A fixed heap's struct is in caller memory, a file heap's goes back to
 * fixed.c's pool of handles: neither is reused here. */
void ma_heap_destroy(ma_heap_t *h) {
    if (enter(h) == MA_HEAP_FIXED) {
        if (ma_fixed_is_file(h)) (void)ma_fileheap_close(h);
        else ma_fixed_destroy(h);
        return;
    }
    ma_heap_user_release(h);
    leave(h);
    ma_heap_user_retire(h);
}

void ma_heap_reset(ma_heap_t *h) {
    if (enter(h) == MA_HEAP_FIXED) ma_fixed_reset(h);
    else ma_heap_user_release(h);
    leave(h);
}

void *ma_heap_malloc(ma_heap_t *h, size_t size) {
    if (alive(h) == MA_HEAP_FIXED) return ma_fixed_malloc(h, size);
    ma_heap_kind_t kind = enter(h);
    void *p = heap_alloc(h, kind, size, MA_ALIGN_MIN, false);
    leave(h);
    return p;
}

void *ma_heap_calloc(ma_heap_t *h, size_t count, size_t size) {
    size_t total;
    if (!ma_array_size(count, size, &total)) return NULL;
    ma_heap_kind_t kind = enter(h);
    void *p = heap_alloc(h, kind, total, MA_ALIGN_MIN, true);
    leave(h);
    return p;
}

/* As ma_memalign: a non-power-of-two alignment is rounded up. */
void *ma_heap_aligned_alloc(ma_heap_t *h, size_t align, size_t size) {
    if (align > ((size_t)1 << 63)) {
        errno = EINVAL;
        return NULL;
    }
    if (align < MA_ALIGN_MIN) align = MA_ALIGN_MIN;
    if (align & (align - 1)) align = (size_t)1 << (64 - __builtin_clzl(align - 1));
    ma_heap_kind_t kind = enter(h);
    void *p = heap_alloc(h, kind, size, align, false);
    leave(h);
    return p;
}

char *ma_heap_strdup(ma_heap_t *h, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = ma_heap_malloc(h, n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Does p, a live block, belong to h? */
static bool owns(ma_heap_t *h, ma_heap_kind_t kind, const void *p) {
    if (kind == MA_HEAP_FIXED) return ma_fixed_find(p) == h;
    void *region = ma_region_of(p);
    if (!region) return false;
    if (ma_region_is_large(region))
        return ma_large_owns(region, p) && ((ma_large_t *)region)->heap == h;
    return ma_segment_page_of(region, p)->heap == h;
}

void *ma_heap_realloc(ma_heap_t *h, void *p, size_t size) {
    if (p == NULL) return ma_heap_malloc(h, size);
    if (size == 0) {
        ma_free(p);
        return NULL;
    }
    ma_heap_kind_t kind = enter(h);
    if (kind == MA_HEAP_FIXED && owns(h, kind, p)) {
        void *q = ma_fixed_realloc(h, p, size);
        leave(h);
        return q;
    }
    size_t usable = ma_usable_of(p, "invalid realloc");
    size_t want = ma_alloc_realloc_size(usable, size);
    void *q = p;
    if (want != 0 || !owns(h, kind, p)) {  /* a block of another heap moves in */
        if (want == 0) want = size;
        q = heap_alloc(h, kind, want, MA_ALIGN_MIN, false);
        if (!q && want > size) q = heap_alloc(h, kind, size, MA_ALIGN_MIN, false);
        if (q) {
            memcpy(q, p, size < usable ? size : usable);
            ma_free(p);
        }
    }
    leave(h);
    return q;
}

/* ---- visit and stats (user heaps) ---------------------------------------- */

typedef struct visit_ctx_s {
    ma_heap_visit_fn *fn;
    void *arg;
    ma_heap_stats_t *stats;
} visit_ctx_t;

static void mark(ma_block_set_t *free_set, const ma_page_t *page, ma_block_t *list) {
    for (; list; list = ma_block_decode(list->next)) {
        uint32_t i = ma_page_block_index(page, list);
        if (i == UINT32_MAX) ma_diag_fatal_ptr("corrupted free list at", list, page->sclass);
        ma_block_set_add(free_set, i);
    }
}

/* Each live block of one page: its free lists are collected first, so a
 * block is free iff it is on page->free. */
static int visit_page(ma_page_t *page, visit_ctx_t *ctx) {
    ma_block_set_t free_set = {{0}};
    ma_page_collect(page);
    mark(&free_set, page, page->free);
    for (uint32_t i = 0; i < page->capacity; i++) {
        if (ma_block_set_has(&free_set, i)) continue;
        void *block = page->start + (size_t)i * page->block_size;
        if (ctx->stats) {
            ctx->stats->blocks_in_use++;
            ctx->stats->bytes_in_use += ma_page_usable(page);
        } else {
            int r = ctx->fn(block, ma_page_usable(page), ctx->arg);
            if (r) return r;
        }
    }
    return 0;
}

static int visit_large(ma_large_t *large, void *arg) {
    visit_ctx_t *ctx = arg;
    if (ctx->stats) {
        ctx->stats->blocks_in_use++;
        ctx->stats->bytes_in_use += ma_large_usable(large);
        ctx->stats->os_bytes += large->map_size;
        return 0;
    }
    return ctx->fn((uint8_t *)large + large->offset, ma_large_usable(large), ctx->arg);
}

static int visit_user(ma_heap_t *h, visit_ctx_t *ctx) {
    ma_heap_drain_remote(h);
    for (unsigned cls = 1; cls < MA_CLASS_COUNT; cls++) {
        for (ma_page_t *page = h->queue[cls].first; page; page = page->next) {
            int r = visit_page(page, ctx);
            if (r) return r;
        }
    }
    for (ma_page_t *page = h->full.first; page; page = page->next) {
        int r = visit_page(page, ctx);
        if (r) return r;
    }
    return ma_large_visit_owner(h, visit_large, ctx);
}

int ma_heap_visit(ma_heap_t *h, ma_heap_visit_fn *fn, void *arg) {
    ma_heap_kind_t kind = enter(h);
    visit_ctx_t ctx = {.fn = fn, .arg = arg, .stats = NULL};
    int r = kind == MA_HEAP_FIXED ? ma_fixed_visit(h, fn, arg) : visit_user(h, &ctx);
    leave(h);
    return r;
}

void ma_heap_stats(ma_heap_t *h, ma_heap_stats_t *out) {
    ma_heap_kind_t kind = enter(h);
    memset(out, 0, sizeof *out);
    if (kind == MA_HEAP_FIXED) {
        ma_fixed_stats(h, out);
    } else {
        visit_ctx_t ctx = {.fn = NULL, .arg = NULL, .stats = out};
        visit_user(h, &ctx);
        ma_segment_set_lock(&h->segs);
        out->os_bytes += h->segs.count * MA_SEGMENT_SIZE;
        ma_segment_set_unlock(&h->segs);
    }
    leave(h);
}

/* ---- Heaps in files and shared memory ------------------------------------ */

ma_heap_t *ma_heap_open(const char *path, size_t size, int flags) {
    ma_process_init();
    return ma_fileheap_open(path, size, flags);
}

int ma_heap_close(ma_heap_t *h) {
    if (alive(h) != MA_HEAP_FIXED || !ma_fixed_is_file(h))
        ma_diag_fatal_around("ma_heap_close of heap ", h, ", which ma_heap_open did not make");
    return ma_fileheap_close(h);
}

/* A user heap has nothing that outlives the process: nothing to do. */
int ma_heap_sync(ma_heap_t *h) {
    if (alive(h) != MA_HEAP_FIXED) return 0;
    return ma_fixed_sync(h);
}

static void need_offsets(ma_heap_t *h) {
    if (alive(h) != MA_HEAP_FIXED)
        ma_diag_fatal_around("heap ", h, " has no offsets (only ma_heap_open and ma_heap_new_in heaps do)");
}

uint64_t ma_heap_offset(ma_heap_t *h, const void *p) {
    need_offsets(h);
    return ma_fixed_offset(h, p);
}

void *ma_heap_pointer(ma_heap_t *h, uint64_t off) {
    need_offsets(h);
    return ma_fixed_pointer(h, off);
}

void ma_heap_root_set(ma_heap_t *h, uint64_t off) {
    need_offsets(h);
    ma_fixed_root_set(h, off);
}

uint64_t ma_heap_root_get(ma_heap_t *h) {
    need_offsets(h);
    return ma_fixed_root_get(h);
}

/* fastpath.h - the inline helpers of malloc's and free's fast paths (and
 * of the slow paths that share their steps): block sizes (what
 * MAPALLOC_SECURE's canary adds), free-list link encoding, size classes,
 * the byte map and the way from a pointer to its page, a page's pop and
 * push. Each runs in the file that uses it: a call out of here to a .c
 * file is listed in src/README.md ("Inline helpers"). Included by
 * internal.h only, after the prototypes and globals. */
#ifndef MA_FASTPATH_H
#define MA_FASTPATH_H

#include <errno.h>

/* MAPALLOC_SECURE keeps the last MA_CANARY_SIZE bytes of each block of a
 * page for its canary (checked.h): what the program may use of a block,
 * and the class a request takes, depend on it. */
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

static inline uintptr_t ma_block_encode(const void *p) { return (uintptr_t)p ^ ma_key; }
static inline ma_block_t *ma_block_decode(uintptr_t v) { return (ma_block_t *)(v ^ ma_key); }

/* heap->direct's entry for a size up to MA_SMALL_MAX: sizes
 * (i-1)*16+1..i*16 share entry i (0 has its own). */
/* count * size in *total (calloc, reallocarray, ma_heap_calloc); false,
 * with errno ENOMEM, if it overflows. */
static inline bool ma_array_size(size_t count, size_t size, size_t *total) {
    if (MA_LIKELY(!__builtin_mul_overflow(count, size, total))) return true;
    errno = ENOMEM;
    return false;
}

static inline size_t ma_direct_index(size_t size) { return (size + MA_DIRECT_STEP - 1) >> MA_DIRECT_SHIFT; }

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

/* Blocks handed out and not given back (page->used without its biases). */
static inline uint32_t ma_page_used(const ma_page_t *page) {
    return (uint32_t)page->used - page->pinned - (page->in_full ? (uint32_t)MA_USED_FULL : 0);
}

/* The class heap->direct gives the fast path for size (up to
 * MA_SMALL_MAX): the size rounded up to 16, then ma_block_need. heap.c's
 * direct_update maps it so; a slow path serving such a size must take the
 * same class, or the direct page would run dry and never be refilled. */
static inline unsigned ma_sizeclass_direct(size_t size) {
    return ma_sizeclass_of(ma_block_need(ma_direct_index(size) << MA_DIRECT_SHIFT));
}
/* What the program may use of a block of the page. */
static inline size_t ma_page_usable(const ma_page_t *page) { return page->block_size - ma_block_tail(); }

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

static inline bool ma_block_set_has(const ma_block_set_t *s, uint32_t i) {
    return (s->bits[i / 64] >> (i % 64)) & 1;
}

static inline void ma_block_set_add(ma_block_set_t *s, uint32_t i) { s->bits[i / 64] |= (uint64_t)1 << (i % 64); }

/* Takes the first block of page->free (not NULL). The block must lie in
 * its page's segment (the descriptor lives in the segment's header, so one
 * XOR tells), checked before its link is read: a write after free or an
 * overflow that hit a free block's link cannot make malloc hand out, or
 * read, an address outside the segment, and the key makes a forged link
 * point anywhere but where intended. The link is then cleared so that a
 * block freed without being written to does not look free to the
 * double-free check (free.c). alloc.c's and check.c's fast paths. */
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

/* The slow paths, with no lock held: start the purger if it is due. */
static inline void ma_purger_kick(void) {
    if (MA_UNLIKELY(atomic_load_explicit(&ma_purger_wanted, memory_order_relaxed))) ma_purger_start();
}

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

#endif /* MA_FASTPATH_H */

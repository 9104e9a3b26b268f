/* page.c - a page: one span of slices holding blocks of one size class.
 *
 * Free blocks sit on three lists: `free` (handed out by malloc),
 * `local_free` (freed by the owner) and `thread_free` (freed by other
 * threads, pushed atomically). Keeping them apart lets the owner's fast
 * paths run without atomics; when `free` runs dry the owner collects the
 * other two. Blocks are carved lazily, a few KiB at a time, so a page costs
 * RSS only for what was used.
 * Invariants: ma_page_used = blocks handed out and not yet collected back;
 * carved = capacity * block_size; a page in heap->full has thread_free == MA_TF_NOTIFY or a list that
 * remote threads pushed after clearing the flag.
 */
#include "internal.h"

#define EXTEND_BYTES 4096u   /* carve about this much at a time */
#define EXTEND_MIN_BLOCKS 4u

/* MAPALLOC_SECURE: whether the blocks of a page wait in the freeing
 * thread's quarantine (check.c). Not blocks over MA_QUARANTINE_BLOCK_MAX,
 * nor a user heap's: ma_heap_destroy unmaps its pages without asking where
 * their blocks are. The fill of the others is checked when malloc hands
 * them out, so extend_checked fills them. */
static bool quarantinable(const ma_heap_t *heap, size_t block_size) {
    return ma_secure && block_size <= MA_QUARANTINE_BLOCK_MAX &&
           atomic_load_explicit(&heap->kind, memory_order_relaxed) != MA_HEAP_USER;
}

void ma_page_setup(ma_page_t *page, ma_heap_t *heap, unsigned cls) {
    size_t size = ma_sizeclass_size(cls);
    page->free = NULL;
    page->local_free = NULL;
    page->used = 0;
    page->allocs = 0;
    page->block_size = (uint32_t)size;
    __atomic_store_n(&page->capacity, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&page->carved, 0, __ATOMIC_RELAXED);
    page->reserved = (uint16_t)(((size_t)page->slice_count << MA_SLICE_SHIFT) / size);
    page->sclass = (uint8_t)cls;
    page->in_full = 0;
    page->pinned = 0;
    page->quarantined = quarantinable(heap, size);
    page->batchable = atomic_load_explicit(&heap->kind, memory_order_relaxed) == MA_HEAP_THREAD;
    page->recip = (((uint64_t)1 << MA_RECIP_SHIFT) + size - 1) / size;
    page->heap = heap;
    page->next = page->prev = NULL;
    atomic_store_explicit(&page->thread_free, 0, memory_order_relaxed);
}

#define EXTEND_MAX_BLOCKS (EXTEND_BYTES / MA_ALIGN_MIN)
_Static_assert(EXTEND_MIN_BLOCKS <= EXTEND_MAX_BLOCKS, "extend_checked's index array");

/* xorshift64*: cheap, and only has to make the order hard to guess. */
static uint64_t rng_next(uint64_t *state) {
    if (*state == 0) *state = ma_os_random() | 1;
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Links the n blocks from first into page->free in the order of order[],
 * with each block's canary, and its free fill where fill says so. */
static inline __attribute__((always_inline)) void link_carved(ma_page_t *page, uint8_t *first,
                                                              const uint16_t *order, uint32_t n,
                                                              bool canary, bool fill) {
    size_t size = page->block_size, tail = canary ? MA_CANARY_SIZE : 0;
    uintptr_t key = ma_key, canary_key = ma_canary_key;  /* not reloaded after each store */
    uintptr_t next = key;                                 /* encoded NULL */
    for (uint32_t i = n; i-- > 0;) {
        uint8_t *b = first + order[i] * size;
        if (canary) {
            uint64_t c = ((uintptr_t)b ^ canary_key) | 7;  /* ma_canary_of */
            memcpy(b + size - MA_CANARY_SIZE, &c, sizeof c);
        }
        if (fill) ma_fill_free(b, b + size - tail, ma_debug);
        ((ma_block_t *)b)->next = next;
        next = (uintptr_t)b ^ key;                        /* ma_block_encode */
    }
    page->free = ma_block_decode(next);
}

/* Checked mode: with MAPALLOC_SECURE each carved block gets its canary,
 * for good (checked.h), and their list is shuffled (Fisher-Yates, inside
 * out, 16 random bits per step: an extension has at most 256 blocks), so that
 * neighbours in memory are not handed out in turn. Blocks whose fill
 * malloc checks get it here: all but those of SECURE alone that will wait
 * in a quarantine (checked when they leave it, check.c). */
static MA_NOINLINE void extend_checked(ma_page_t *page, uint8_t *first, uint32_t n) {
    size_t size = page->block_size;
    bool secure = ma_secure, fill = !ma_secure_only || !page->quarantined;
    uint16_t order[EXTEND_MAX_BLOCKS];
    /* memcheck may remember freed blocks of an earlier page in this span */
    if (ma_valgrind) ma_os_vg_mark(first, n * size, MA_VG_UNDEFINED);
    if (secure) {
        /* inside out: the shuffle fills order[] as it goes */
        uint64_t bits = 0;
        order[0] = 0;
        for (uint32_t i = 1; i < n; i++) {
            if (bits == 0) bits = rng_next(&page->heap->check.rng);
            uint32_t j = (uint32_t)(((bits & 0xFFFF) * (i + 1)) >> 16);  /* 0..i */
            bits >>= 16;
            order[i] = order[j];
            order[j] = (uint16_t)i;
        }
    } else {
        for (uint32_t i = 0; i < n; i++) order[i] = (uint16_t)i;
    }
    /* with the modes as constants, so that SECURE alone's quarantined
     * pages (canary, no fill) get a loop without a test per block */
    if (secure && !fill) link_carved(page, first, order, n, true, false);
    else link_carved(page, first, order, n, secure, fill);
}

/* Carve the next few blocks into a free list in address order. */
void ma_page_extend(ma_page_t *page) {
    size_t size = page->block_size;
    uint32_t n = (uint32_t)(EXTEND_BYTES / size);
    if (n < EXTEND_MIN_BLOCKS) n = EXTEND_MIN_BLOCKS;
    uint32_t left = (uint32_t)page->reserved - page->capacity;
    if (n > left) n = left;
    MA_ASSERT(n > 0 && page->free == NULL);
    uint8_t *first = page->start + (size_t)page->capacity * size;
    if (MA_UNLIKELY(ma_checked)) {
        extend_checked(page, first, n);
    } else {
        uint8_t *p = first;
        for (uint32_t i = 1; i < n; i++, p += size) ((ma_block_t *)p)->next = ma_block_encode(p + size);
        ((ma_block_t *)p)->next = ma_block_encode(NULL);
        page->free = (ma_block_t *)first;
    }
    __atomic_store_n(&page->capacity, (uint16_t)(page->capacity + n), __ATOMIC_RELAXED);
    __atomic_store_n(&page->carved, page->carved + n * (uint32_t)size, __ATOMIC_RELAXED);
}

static bool block_in_page(const ma_page_t *page, const ma_block_t *b) {
    return (uintptr_t)b - (uintptr_t)page->start < page->carved;
}

/* Last block of a list, checking every link on the way: a link that leaves
 * the page means a write after free or an overflow clobbered it. */
static ma_block_t *list_tail(const ma_page_t *page, ma_block_t *b, uint64_t *count) {
    uint64_t n = 1;
    for (;;) {
        ma_block_t *next = ma_block_decode(b->next);
        if (!next) break;
        if (MA_UNLIKELY(!block_in_page(page, next) || n > page->capacity))
            ma_diag_fatal_ptr("corrupted free list at", b, page->sclass);
        b = next;
        n++;
    }
    *count = n;
    return b;
}

static void prepend(ma_page_t *page, ma_block_t *head, ma_block_t *tail) {
    tail->next = ma_block_encode(page->free);
    page->free = head;
}

/* Move local and remote frees onto the free list. Owner only. The 32-bit
 * count of blocks handed out would wrap after 4G of them: it moves into
 * the heap's 64-bit per-class total now and then. */
void ma_page_collect(ma_page_t *page) {
    if (MA_UNLIKELY(page->allocs > (UINT32_MAX >> 1))) {
        page->heap->class_allocs[page->sclass] += page->allocs;
        page->allocs = 0;
    }
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    if (tf & ~MA_TF_NOTIFY) {
        tf = atomic_exchange_explicit(&page->thread_free, 0, memory_order_acquire);
        ma_block_t *head = (ma_block_t *)tf;
        uint64_t n;
        ma_block_t *tail = list_tail(page, head, &n);
        page->used -= (int32_t)n;
        prepend(page, head, tail);
    }
    if (page->local_free) {
        ma_block_t *head = page->local_free;
        page->local_free = NULL;
        if (!page->free) {
            page->free = head;
        } else {
            uint64_t n;
            prepend(page, head, list_tail(page, head, &n));
        }
    }
}

/* Ask remote threads to report their next free into this full page; fails
 * when one has already pushed a block (then the caller collects it). */
bool ma_page_park(ma_page_t *page) {
    uintptr_t expected = 0;
    return atomic_compare_exchange_strong_explicit(&page->thread_free, &expected, MA_TF_NOTIFY,
                                                   memory_order_acq_rel, memory_order_relaxed);
}

void ma_page_unpark(ma_page_t *page) {
    atomic_fetch_and_explicit(&page->thread_free, ~MA_TF_NOTIFY, memory_order_acq_rel);
}

bool ma_page_list_contains(const ma_page_t *page, ma_block_t *list, const ma_block_t *b) {
    for (uint32_t n = 0; list && n <= page->capacity; n++) {
        if (list == b) return true;
        if (!block_in_page(page, list)) return false;
        list = ma_block_decode(list->next);
    }
    return false;
}

/* unit_test.c - the internals, through internal.h, on the ma_-only build
 * (glibc's malloc stays in place). Built plain, with ASan+UBSan and with
 * TSan; the threaded part gives TSan something to look at.
 *
 *   size classes: bounds, minimality, waste, spans
 *   region lookup: our blocks, interior and foreign pointers, large blocks,
 *                  blocks aligned past 4 MiB (byte-map back offsets)
 *   page lists: carving, local and remote frees, collect, park/notify
 *   spans: alignment, no overlap, trim gives memory back
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "check.h"

static void test_sizeclasses(void) {
    unsigned prev = 0;
    int bad = 0;
    for (size_t n = 0; n <= MA_MEDIUM_MAX; n += (n < 65536 ? 1 : 7)) {
        unsigned c = ma_sizeclass_of(n);
        size_t size = ma_sizeclass_size(c);
        if (c < 1 || c >= MA_CLASS_COUNT || size < n || size % 16 != 0) bad++;
        if (c > 1 && ma_sizeclass_size(c - 1) >= n) bad++;           /* smallest class that fits */
        if (n > 128 && n <= MA_PAGED_MAX && (size - n) * 8 > n) bad++; /* waste <= 12.5% of the request */
        if (n > MA_PAGED_MAX && (size - n >= MA_SLICE_SIZE || size % MA_SLICE_SIZE)) bad++; /* whole slices */
        if (c < prev) bad++;                                         /* monotonic */
        prev = c;
    }
    CHECK_EQ_U(bad, 0);
    CHECK_EQ_U(ma_sizeclass_of(MA_MEDIUM_MAX), MA_CLASS_COUNT - 1);
    CHECK_EQ_U(ma_sizeclass_size(MA_CLASS_COUNT - 1), MA_MEDIUM_MAX);
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++) {
        size_t span = (size_t)ma_sizeclass_slices(c) << MA_SLICE_SHIFT;
        if (c > MA_PAGED_CLASSES) {
            CHECK_EQ_U(span, ma_sizeclass_size(c));  /* one block, the whole span */
        } else {
            CHECK(span / ma_sizeclass_size(c) >= 8 || ma_sizeclass_slices(c) == MA_SPAN_MAX_SLICES);
            CHECK(ma_sizeclass_slices(c) <= MA_SPAN_MAX_SLICES);
        }
    }
}

static int global_object;

static void test_lookup(void) {
    int local = 0;
    CHECK(ma_region_of(&local) == NULL);
    CHECK(ma_region_of(&global_object) == NULL);
    void *libc = malloc(64);
    CHECK(ma_region_of(libc) == NULL);
    free(libc);
    CHECK(ma_region_of(NULL) == NULL);
    CHECK(ma_region_of((void *)(~(uintptr_t)0 << 50)) == NULL);
    CHECK(ma_segment_small_of((void *)(~(uintptr_t)0 << 50)) == NULL);
    CHECK(ma_segment_small_of(&local) == NULL);

    for (size_t n = 1; n <= MA_MEDIUM_MAX; n = n * 3 + 1) {
        uint8_t *p = ma_malloc(n);
        ma_segment_t *seg = ma_region_of(p);
        if (!CHECK(seg != NULL)) continue;
        CHECK_EQ_PTR(ma_segment_small_of(p), seg);
        CHECK_EQ_PTR(ma_segment_small_of(p + n / 2), seg);
        CHECK_EQ_U(seg->kind, MA_KIND_SEGMENT);
        CHECK_EQ_U((uintptr_t)seg & MA_SEGMENT_MASK, 0);
        ma_page_t *page = ma_segment_page_of(seg, p);
        CHECK(page->block_size >= n);
        CHECK(ma_page_block_index(page, p) != UINT32_MAX);
        CHECK_EQ_U(ma_page_block_index(page, p + 8), UINT32_MAX);
        CHECK_EQ_PTR(ma_segment_page_of(seg, p + page->block_size - 1), page);
        ma_free(p);
    }
    uint8_t *big = ma_malloc(3 << 20);
    ma_large_t *large = ma_region_of(big);
    if (CHECK(large != NULL)) {
        CHECK_EQ_U(large->kind, MA_KIND_LARGE);
        CHECK(ma_segment_small_of(big) == NULL);
        CHECK(ma_large_owns(large, big));
        CHECK(!ma_large_owns(large, big + 16));
        CHECK(ma_large_usable(large) >= (3u << 20));
    }
    ma_free(big);
    /* Aligned past the segment size: the byte map points back to the header. */
    uint8_t *huge = ma_aligned_alloc((size_t)16 << 20, 100);
    if (CHECK(huge != NULL)) {
        CHECK_EQ_U((uintptr_t)huge % (16u << 20), 0);
        ma_large_t *h = ma_region_of(huge);
        CHECK(h != NULL && h->kind == MA_KIND_LARGE && ma_large_owns(h, huge));
        ma_free(huge);
        CHECK(ma_region_of(huge) == NULL);
    }
}

static ma_heap_t fake_heap;
static ma_segset_t test_set;  /* segments of the tests' own */

static void test_page_lists(void) {
    unsigned cls = ma_sizeclass_of(100);
    ma_segment_set_init(&test_set);
    ma_page_t *page = ma_segment_span_alloc(&test_set, ma_sizeclass_slices(cls), true);
    if (!CHECK(page != NULL)) return;
    CHECK_EQ_U((uintptr_t)page->start % MA_SLICE_SIZE, 0);
    ma_page_setup(page, &fake_heap, cls);
    CHECK_EQ_U(page->block_size, ma_sizeclass_size(cls));
    CHECK_EQ_U(page->reserved, MA_SLICE_SIZE / page->block_size);
    ma_page_extend(page);
    CHECK(page->capacity > 0 && page->capacity <= page->reserved);
    uint32_t carved = page->capacity;

    /* Pop everything carved: address order, all distinct, index valid. */
    ma_block_t *blocks[1024];
    uint32_t n = 0;
    while (page->free && n < 1024) {
        ma_block_t *b = page->free;
        page->free = ma_block_decode(b->next);
        page->allocs++;
        page->used++;
        CHECK_EQ_U(ma_page_block_index(page, b), n);
        blocks[n++] = b;
    }
    CHECK_EQ_U(n, carved);
    CHECK_EQ_U(ma_page_used(page), carved);

    /* Local frees wait on local_free; collect moves them to free. */
    blocks[0]->next = ma_block_encode(page->local_free);
    page->local_free = blocks[0];
    page->used--;
    /* Remote frees go on thread_free and are counted when collected. */
    ma_free_remote(page, blocks[1]);
    ma_free_remote(page, blocks[2]);
    CHECK(page->free == NULL);
    ma_page_collect(page);
    CHECK(page->local_free == NULL);
    CHECK_EQ_U(atomic_load(&page->thread_free), 0);
    CHECK_EQ_U(ma_page_used(page), carved - 3);
    CHECK(ma_page_list_contains(page, page->free, blocks[0]));
    CHECK(ma_page_list_contains(page, page->free, blocks[1]));
    CHECK(ma_page_list_contains(page, page->free, blocks[2]));
    CHECK(!ma_page_list_contains(page, page->free, blocks[3]));

    /* Parked (full) page: the next remote free is reported to the heap. */
    page->free = NULL;
    page->used += 3;  /* pretend the three were handed out again */
    CHECK(ma_page_park(page));
    CHECK_EQ_U(atomic_load(&page->thread_free), MA_TF_NOTIFY);
    ma_free_remote(page, blocks[3]);
    CHECK_EQ_U(atomic_load(&page->thread_free), 0);
    CHECK_EQ_PTR((void *)atomic_load(&fake_heap.remote_full), blocks[3]);
    ma_free_remote(page, blocks[4]);  /* flag cleared: back to thread_free */
    CHECK_EQ_PTR((void *)atomic_load(&page->thread_free), blocks[4]);
    CHECK(!ma_page_park(page));       /* a list is pending: cannot park */
    ma_page_unpark(page);
    CHECK_EQ_PTR((void *)atomic_load(&page->thread_free), blocks[4]);
    atomic_store(&fake_heap.remote_full, 0);
    atomic_store(&page->thread_free, 0);
    ma_segment_span_free(page);
}

static void test_spans(void) {
    ma_page_t *spans[40];
    unsigned sizes[40];
    for (int i = 0; i < 40; i++) {
        sizes[i] = 1u << (i % 6);
        spans[i] = ma_segment_span_alloc(&test_set, sizes[i], true);
        if (!CHECK(spans[i] != NULL)) return;
        CHECK_EQ_U((uintptr_t)spans[i]->start % MA_SLICE_SIZE, 0);
        CHECK_EQ_U(spans[i]->slice_count, sizes[i]);
        ma_segment_t *seg = ma_region_of(spans[i]->start);
        CHECK(seg != NULL && seg->kind == MA_KIND_SEGMENT);
        memset(spans[i]->start, i, (size_t)sizes[i] << MA_SLICE_SHIFT);
    }
    int overlap = 0;
    for (int i = 0; i < 40; i++)
        for (int j = 0; j < 40; j++) {
            uintptr_t a = (uintptr_t)spans[i]->start, b = (uintptr_t)spans[j]->start;
            if (i != j && a < b + ((size_t)sizes[j] << MA_SLICE_SHIFT) && b < a + ((size_t)sizes[i] << MA_SLICE_SHIFT))
                overlap++;
        }
    CHECK_EQ_U(overlap, 0);
    for (int i = 0; i < 40; i++) {
        uint8_t *s = spans[i]->start;
        CHECK(s[0] == (uint8_t)i && s[((size_t)sizes[i] << MA_SLICE_SHIFT) - 1] == (uint8_t)i);
    }
    ma_stats_t before, after;
    ma_stats_get(&before);
    for (int i = 0; i < 40; i++) {
        spans[i]->block_size = 1;  /* as if set up; span_free clears it */
        ma_segment_span_free(spans[i]);
    }
    ma_segment_set_trim(&test_set, true, false);
    ma_trim(0);
    ma_stats_get(&after);
    CHECK(after.os_committed < before.os_committed);
    CHECK(after.os_released > before.os_released);
}

/* Two threads free each other's blocks while allocating: for TSan. */
#define XN 20000
static void *xslots[XN];
static void *cross_worker(void *arg) {
    uintptr_t seed = (uintptr_t)arg;
    for (int i = 0; i < 4 * XN; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t idx = (seed >> 33) % XN;
        void *p = ma_malloc(8 + (seed >> 50) % 2000);
        memset(p, (int)(idx & 0xff), 8);
        void *old = __atomic_exchange_n(&xslots[idx], p, __ATOMIC_ACQ_REL);
        if (old) ma_free(old);
    }
    return NULL;
}

static void test_cross_threads(void) {
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, cross_worker, (void *)(i + 1));
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    ma_stats_t st;
    ma_stats_get(&st);
    uint64_t live = 0;
    for (int i = 0; i < XN; i++) live += xslots[i] != NULL;
    CHECK(st.blocks_in_use >= live);
    for (int i = 0; i < XN; i++) ma_free(xslots[i]);
    ma_trim(0);
}

int main(void) {
    ma_process_init();
    test_sizeclasses();
    test_lookup();
    test_page_lists();
    test_spans();
    test_cross_threads();
    return check_done();
}

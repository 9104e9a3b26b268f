/* stats.c - the figures behind ma_stats_get, malloc_stats and the report
 * printed at exit with MAPALLOC_SHOW_STATS=1.
 *
 * Nothing is counted on the fast paths: a page's `allocs` counter is the
 * fast path's own bookkeeping, folded into its heap when the page is given
 * back. Figures about other threads' pages are read without stopping them,
 * so a snapshot taken while threads run is approximate; at exit it is exact
 * but for frees not yet collected (counted as in use).
 */
#include <string.h>
#include <unistd.h>
#include "internal.h"

typedef struct class_figures_s {
    uint64_t allocs[MA_CLASS_COUNT];  /* cumulative */
    uint64_t live[MA_CLASS_COUNT];    /* in use now */
    uint64_t pages[MA_CLASS_COUNT];
} class_figures_t;

static void visit_page(const ma_page_t *page, void *arg) {
    class_figures_t *f = arg;
    f->allocs[page->sclass] += page->allocs;
    f->live[page->sclass] += page->allocs - page->frees;
    f->pages[page->sclass]++;
}

static void gather(ma_stats_t *st, class_figures_t *f) {
    memset(f, 0, sizeof *f);
    memset(st, 0, sizeof *st);
    ma_heap_sum_class_allocs(f->allocs);
    ma_segment_visit_pages(visit_page, f);
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++) {
        size_t size = ma_sizeclass_size(c);
        st->blocks_allocated += f->allocs[c];
        st->bytes_allocated += f->allocs[c] * size;
        st->blocks_in_use += f->live[c];
        st->bytes_in_use += f->live[c] * size;
    }
    ma_large_stats_t large;
    ma_large_stats(&large);
    st->blocks_allocated += large.allocs;
    st->bytes_allocated += large.alloc_bytes;
    st->blocks_in_use += large.count;
    st->bytes_in_use += large.bytes;
    st->large_in_use = large.count;
    if (ma_profiling) ma_profile_stats(st);   /* sampled blocks are no page's */
    ma_segment_inuse(&st->bytes_in_use_peak);
    st->os_mapped = atomic_load(&ma_os_stats.mapped);
    st->os_mapped_peak = atomic_load(&ma_os_stats.mapped_peak);
    st->os_committed = atomic_load(&ma_os_stats.committed);
    st->os_released = atomic_load(&ma_os_stats.released);
    st->mmap_calls = atomic_load(&ma_os_stats.mmap_calls);
    st->munmap_calls = atomic_load(&ma_os_stats.munmap_calls);
    st->madvise_calls = atomic_load(&ma_os_stats.madvise_calls);
    st->mremap_calls = atomic_load(&ma_os_stats.mremap_calls);
    st->threads_seen = ma_heap_count();
}

void ma_stats_get(ma_stats_t *out) {
    ma_process_init();
    class_figures_t f;
    gather(out, &f);
}

static void line(const char *key, uint64_t v) {
    ma_buf_t b = {.len = 0};
    ma_buf_str(&b, "mapalloc: ");
    ma_buf_str(&b, key);
    ma_buf_str(&b, ": ");
    ma_buf_u64(&b, v);
    ma_buf_str(&b, "\n");
    ma_buf_flush(&b);
}

static void pad_u64(ma_buf_t *b, uint64_t v, size_t width) {
    ma_buf_t tmp = {.len = 0};
    ma_buf_u64(&tmp, v);
    for (size_t i = tmp.len; i < width; i++) ma_buf_str(b, " ");
    tmp.data[tmp.len < sizeof tmp.data ? tmp.len : sizeof tmp.data - 1] = '\0';
    ma_buf_str(b, tmp.data);
}

void ma_stats_print(void) {
    ma_process_init();
    ma_stats_t st;
    class_figures_t f;
    gather(&st, &f);
    ma_buf_t b = {.len = 0};
    ma_buf_str(&b, "mapalloc: statistics of process ");
    ma_buf_u64(&b, (uint64_t)getpid());
    ma_buf_str(&b, "\n");
    ma_buf_flush(&b);
    line("blocks allocated", st.blocks_allocated);
    line("bytes allocated", st.bytes_allocated);
    line("blocks in use", st.blocks_in_use);
    line("bytes in use", st.bytes_in_use);
    line("peak bytes in pages and large blocks", st.bytes_in_use_peak);
    line("large blocks in use", st.large_in_use);
    line("os mapped bytes", st.os_mapped);
    line("os mapped peak bytes", st.os_mapped_peak);
    line("os committed bytes", st.os_committed);
    line("os released bytes", st.os_released);
    line("os mmap calls", st.mmap_calls);
    line("os munmap calls", st.munmap_calls);
    line("os madvise calls", st.madvise_calls);
    line("os mremap calls", st.mremap_calls);
    line("thread heaps", st.threads_seen);
    ma_buf_str(&b, "mapalloc: class  block-size  allocated-blocks  in-use-blocks  pages\n");
    ma_buf_flush(&b);
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++) {
        if (f.allocs[c] == 0 && f.pages[c] == 0) continue;
        ma_buf_str(&b, "mapalloc: ");
        pad_u64(&b, c, 5);
        pad_u64(&b, ma_sizeclass_size(c), 12);
        pad_u64(&b, f.allocs[c], 18);
        pad_u64(&b, f.live[c], 15);
        pad_u64(&b, f.pages[c], 7);
        ma_buf_str(&b, "\n");
        ma_buf_flush(&b);
    }
}

void ma_stats_at_exit(void) { ma_stats_print(); }

int ma_trim(size_t pad) {
    (void)pad;
    ma_process_init();
    if (ma_checked) ma_check_flush();
    ma_heap_t *heap = ma_heap_current();
    if (heap) ma_heap_collect(heap, true);
    ma_heap_collect_abandoned();
    return ma_segment_trim() > 0;
}

/* stats.c - the figures behind ma_stats_get, malloc_stats and the report
 * printed at exit with MAPALLOC_SHOW_STATS=1 (2: with a line per size
 * class), on stderr or appended to MAPALLOC_STATS_FILE (%p: the process id,
 * %n: the program's name). Each process that exits prints its own report,
 * headed by its id and name; a report goes out in as few writes as its
 * buffer allows (one, without the class table), so that reports of
 * processes exiting together do not interleave line by line.
 *
 * Nothing is counted on the fast paths: a page's `allocs` counter is the
 * fast path's own bookkeeping, folded into its heap when the page is given
 * back. Figures about other threads' pages are read without stopping them,
 * so a snapshot taken while threads run is approximate; at exit it is exact
 * but for frees not yet collected (counted as in use).
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

typedef struct class_figures_s {
    uint64_t allocs[MA_CLASS_COUNT];  /* cumulative */
    uint64_t live[MA_CLASS_COUNT];    /* in use now */
    uint64_t pages[MA_CLASS_COUNT];
    uint64_t carved[MA_CLASS_COUNT];  /* blocks carved in those pages, live or free */
} class_figures_t;

static void visit_page(const ma_page_t *page, void *arg) {
    class_figures_t *f = arg;
    f->allocs[page->sclass] += page->allocs;
    f->live[page->sclass] += ma_page_used(page);
    f->pages[page->sclass]++;
    f->carved[page->sclass] += page->capacity;
}

static void gather(ma_stats_t *st, class_figures_t *f) {
    memset(f, 0, sizeof *f);
    memset(st, 0, sizeof *st);
    ma_heap_sum_class_allocs(f->allocs);
    ma_heap_lock();
    ma_heap_visit_pages_locked(visit_page, f);
    ma_heap_unlock();
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

/* A report being written: lines gather in `data` and go to `fd` (-1:
 * stderr, through diag.c) when it is full and at the end. */
typedef struct report_s {
    int fd;
    size_t len;
    char data[4096];
} report_t;

static void report_flush(report_t *r) {
    if (r->len == 0) return;
    if (r->fd >= 0) ma_os_write_fd(r->fd, r->data, r->len);
    else ma_os_write_err(r->data, r->len);
    r->len = 0;
}

/* Moves the line built in b into the report. */
static void emit(report_t *r, ma_buf_t *b) {
    if (r->len + b->len > sizeof r->data) report_flush(r);
    memcpy(r->data + r->len, b->data, b->len);
    r->len += b->len;
    b->len = 0;
}

static void line(report_t *r, const char *key, uint64_t v) {
    ma_buf_t b;
    ma_buf_begin(&b, key);
    ma_buf_str(&b, ": ");
    ma_buf_u64(&b, v);
    ma_buf_str(&b, "\n");
    emit(r, &b);
}

static void pad_u64(ma_buf_t *b, uint64_t v, size_t width) {
    ma_buf_t tmp = {.len = 0};
    ma_buf_u64(&tmp, v);
    for (size_t i = tmp.len; i < width; i++) ma_buf_str(b, " ");
    tmp.data[tmp.len < sizeof tmp.data ? tmp.len : sizeof tmp.data - 1] = '\0';
    ma_buf_str(b, tmp.data);
}

/* The report: a header naming the process, the figures, and with
 * `classes` a line per size class that was used. */
static void report(report_t *r, bool classes) {
    ma_stats_t st;
    class_figures_t f;
    gather(&st, &f);
    ma_buf_t b;
    ma_buf_begin(&b, "statistics of process ");
    ma_buf_u64(&b, (uint64_t)getpid());
    const char *name = ma_os_program_name();
    if (*name) {
        ma_buf_str(&b, " (");
        ma_buf_str(&b, name);
        ma_buf_str(&b, ")");
    }
    ma_buf_str(&b, "\n");
    emit(r, &b);
    line(r, "blocks allocated", st.blocks_allocated);
    line(r, "bytes allocated", st.bytes_allocated);
    line(r, "blocks in use", st.blocks_in_use);
    line(r, "bytes in use", st.bytes_in_use);
    line(r, "peak bytes in pages and large blocks", st.bytes_in_use_peak);
    line(r, "large blocks in use", st.large_in_use);
    line(r, "os mapped bytes", st.os_mapped);
    line(r, "os mapped peak bytes", st.os_mapped_peak);
    line(r, "os committed bytes", st.os_committed);
    line(r, "os released bytes", st.os_released);
    line(r, "os mmap calls", st.mmap_calls);
    line(r, "os munmap calls", st.munmap_calls);
    line(r, "os madvise calls", st.madvise_calls);
    line(r, "os mremap calls", st.mremap_calls);
    line(r, "thread heaps", st.threads_seen);
    if (!classes) return;
    ma_buf_begin(&b, "class  block-size  allocated-blocks  in-use-blocks  pages\n");
    emit(r, &b);
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++) {
        if (f.allocs[c] == 0 && f.pages[c] == 0) continue;
        ma_buf_begin(&b, "");
        pad_u64(&b, c, 5);
        pad_u64(&b, ma_sizeclass_size(c), 12);
        pad_u64(&b, f.allocs[c], 18);
        pad_u64(&b, f.live[c], 15);
        pad_u64(&b, f.pages[c], 7);
        ma_buf_str(&b, "\n");
        emit(r, &b);
    }
}

/* malloc_stats and ma_stats_print: the whole report on stderr. With
 * cancellation disabled: write(2) is a cancellation point, and a thread
 * cancelled there would leave half a report (glibc does the same). No
 * lock is held while it writes. */
void ma_stats_print(void) {
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    ma_process_init();
    report_t r = {.fd = -1, .len = 0};
    report(&r, true);
    report_flush(&r);
    pthread_setcancelstate(cancel_state, NULL);
}

/* ---- malloc_info: glibc's XML, mapalloc's figures ----------------------
 * One <heap> (all of mapalloc's pages), whose <sizes> are the size
 * classes with free blocks (carved, not in use: what glibc lists are its
 * free chunks); "mmap" totals are the live large blocks; "current" is the
 * committed memory, "max" the peak mapped, aspace the mapped now. */

typedef struct xml_s {
    ma_stats_write_fn *write;
    void *arg;
    ma_buf_t b;   /* the line being built */
} xml_t;

static void xml_text(xml_t *x, const char *text) {
    ma_buf_str(&x->b, text);
    x->write(x->b.data, x->b.len, x->arg);
    x->b.len = 0;
}

/* <tag type="type" name1="v1" name2="v2"/> (type or name2 NULL: left out) */
static void xml_elem(xml_t *x, const char *tag, const char *type, const char *name1, uint64_t v1,
                     const char *name2, uint64_t v2) {
    ma_buf_str(&x->b, tag);
    if (type) {
        ma_buf_str(&x->b, " type=\"");
        ma_buf_str(&x->b, type);
        ma_buf_str(&x->b, "\"");
    }
    ma_buf_str(&x->b, name1);
    ma_buf_u64(&x->b, v1);
    if (name2) {
        ma_buf_str(&x->b, name2);
        ma_buf_u64(&x->b, v2);
    }
    xml_text(x, "\"/>\n");
}

static void xml_totals(xml_t *x, const ma_stats_t *st, uint64_t free_count, uint64_t free_bytes,
                       const ma_large_stats_t *large) {
    xml_elem(x, "<total", "fast", " count=\"", 0, "\" size=\"", 0);
    xml_elem(x, "<total", "rest", " count=\"", free_count, "\" size=\"", free_bytes);
    if (large) xml_elem(x, "<total", "mmap", " count=\"", large->count, "\" size=\"", large->bytes);
    xml_elem(x, "<system", "current", " size=\"", st->os_committed, NULL, 0);
    xml_elem(x, "<system", "max", " size=\"", st->os_mapped_peak, NULL, 0);
    xml_elem(x, "<aspace", "total", " size=\"", st->os_mapped, NULL, 0);
    xml_elem(x, "<aspace", "mprotect", " size=\"", st->os_mapped, NULL, 0);
}

void ma_stats_xml(ma_stats_write_fn *write, void *arg) {
    ma_process_init();
    ma_stats_t st;
    class_figures_t f;
    gather(&st, &f);
    ma_large_stats_t large;
    ma_large_stats(&large);
    xml_t x = {.write = write, .arg = arg, .b = {.len = 0}};
    xml_text(&x, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    uint64_t free_count = 0, free_bytes = 0;
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++) {
        uint64_t n = f.carved[c] > f.live[c] ? f.carved[c] - f.live[c] : 0;
        if (n == 0) continue;
        uint64_t size = ma_sizeclass_size(c), from = c == 1 ? 1 : ma_sizeclass_size(c - 1) + 1;
        free_count += n;
        free_bytes += n * size;
        ma_buf_str(&x.b, "  <size from=\"");
        ma_buf_u64(&x.b, from);
        ma_buf_str(&x.b, "\" to=\"");
        ma_buf_u64(&x.b, size);
        xml_elem(&x, "\"", NULL, " total=\"", n * size, "\" count=\"", n);
    }
    xml_text(&x, "</sizes>\n");
    xml_totals(&x, &st, free_count, free_bytes, NULL);
    xml_text(&x, "</heap>\n");
    xml_totals(&x, &st, free_count, free_bytes, &large);
    xml_text(&x, "</malloc>\n");
}

/* The pattern of MAPALLOC_STATS_FILE with %p (the process id), %n (the
 * program's name) and %% replaced, into out; false if it does not fit. */
static bool expand_path(const char *pattern, char *out, size_t size) {
    ma_buf_t b = {.len = 0};
    size_t len = 0;
    for (const char *c = pattern; *c; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            ma_buf_u64(&b, (uint64_t)getpid());
            c++;
        } else if (c[0] == '%' && c[1] == 'n') {
            ma_buf_str(&b, ma_os_program_name());
            c++;
        } else {
            if (c[0] == '%' && c[1] == '%') c++;
            char one[2] = {*c, '\0'};
            ma_buf_str(&b, one);
        }
        if (len + b.len >= size) return false;
        memcpy(out + len, b.data, b.len);
        len += b.len;
        b.len = 0;
    }
    out[len] = '\0';
    return true;
}

/* MAPALLOC_SHOW_STATS at exit: to MAPALLOC_STATS_FILE if it is set and
 * opens, else (with a warning when it does not) to stderr. */
void ma_stats_at_exit(void) {
    report_t r = {.fd = -1, .len = 0};
    const char *pattern = ma_options_stats_file();
    if (pattern) {
        char path[4096];
        if (expand_path(pattern, path, sizeof path)) r.fd = ma_os_file_append(path);
        if (r.fd < 0) ma_diag_warn("cannot open MAPALLOC_STATS_FILE, the report goes to stderr: ", pattern);
    }
    report(&r, ma_option(MA_OPT_SHOW_STATS) >= 2);
    report_flush(&r);
    if (r.fd >= 0) ma_os_file_close(r.fd);
}

int ma_trim(size_t pad) {
    (void)pad;
    ma_process_init();
    if (ma_checked) ma_check_flush();
    ma_heap_t *heap = ma_heap_current();
    if (heap) {
        ma_free_flush(heap);
        ma_heap_collect(heap, true);
    }
    ma_heap_collect_abandoned(true);
    size_t released = ma_heap_purge_all(true);
    released += ma_segment_pool_trim(true, 0);
    released += ma_large_trim();
    return released > 0;
}

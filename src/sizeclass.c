/* sizeclass.c - the size classes and the span each class's pages take.
 *
 * Classes 1..16 are 16..256 bytes in steps of 16 (the alignment floor);
 * above, each power of two is split in 8, so a block wastes at most 1/8 of
 * the request (12.5%). Class 96 is 256 KiB, MA_PAGED_MAX. Classes 97..108
 * are 320 KiB to 1 MiB (MA_MEDIUM_MAX) in steps of a slice: one block fills
 * a span of its own, so a big block is taken from and given back to its
 * heap's segments like any page, without a mapping of its own (no system
 * call, no page fault when the span was used before). ma_sizeclass_of
 * (fastpath.h) is the inverse, computed with one count of leading zeros.
 *
 * A page spans enough 64 KiB slices to hold at least 8 blocks, so the tail
 * a page cannot use stays small (memory is touched only as blocks are
 * carved), but no more than MA_SPAN_MAX_SLICES (256 KiB): a page holds
 * its span as long as one block of it lives, and pages of 2 MiB for eight
 * blocks of 256 KiB kept mstress's heaps at 67 MB where mimalloc took 40.
 */
#include "internal.h"

uint32_t ma_class_size[MA_CLASS_COUNT];
uint8_t ma_class_slices[MA_CLASS_COUNT];
uint8_t ma_class_direct_lo[MA_CLASS_COUNT], ma_class_direct_hi[MA_CLASS_COUNT];

/* The entries of heap->direct (16-byte steps up to MA_SMALL_MAX) that
 * class cls serves: the sizes its blocks hold that the class below does
 * not, less the canary with MAPALLOC_SECURE, where the classes below
 * MA_SECURE_BLOCK_MIN hold none (ma_sizeclass_direct states the rule).
 * lo > hi: none. */
static void compute_direct(unsigned cls) {
    size_t tail = ma_block_tail(), min = ma_secure ? MA_SECURE_BLOCK_MIN : 0;
    size_t size = ma_class_size[cls], below = cls == 1 ? 0 : ma_class_size[cls - 1];
    size_t lo = cls == 1 || below < min ? 0 : ((below - tail) >> MA_DIRECT_SHIFT) + 1;
    if (lo == 0 && ma_secure) lo = 1;  /* malloc(0) leaves the fast path: check.c's zero-size blocks */
    size_t hi = (size - tail) >> MA_DIRECT_SHIFT;
    if (size < min || lo >= MA_DIRECT_COUNT) {
        lo = 1;
        hi = 0;
    }
    if (hi >= MA_DIRECT_COUNT) hi = MA_DIRECT_COUNT - 1;
    ma_class_direct_lo[cls] = (uint8_t)lo;
    ma_class_direct_hi[cls] = (uint8_t)hi;
}

static size_t compute_size(unsigned cls) {
    if (cls <= MA_CLASS_LINEAR) return (size_t)cls * 16;
    if (cls > MA_PAGED_CLASSES) return MA_PAGED_MAX + ((size_t)(cls - MA_PAGED_CLASSES) << MA_SLICE_SHIFT);
    unsigned k = cls - MA_CLASS_LINEAR - 1;
    unsigned b = 8 + k / 8, idx = 8 + k % 8;
    return (size_t)(idx + 1) << (b - 3);
}

static unsigned compute_slices(size_t size) {
    if (size > MA_PAGED_MAX) return (unsigned)(size >> MA_SLICE_SHIFT);
    unsigned slices = 1;
    while ((size_t)slices * MA_SLICE_SIZE < 8 * size && slices < MA_SPAN_MAX_SLICES) slices *= 2;
    return slices;
}

void ma_sizeclass_init(void) {
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++) {
        ma_class_size[c] = (uint32_t)compute_size(c);
        ma_class_slices[c] = (uint8_t)compute_slices(ma_class_size[c]);
        MA_ASSERT(ma_sizeclass_of(ma_class_size[c]) == c);
        MA_ASSERT(((size_t)ma_class_slices[c] << MA_SLICE_SHIFT) / ma_class_size[c] <= MA_PAGE_BLOCKS_MAX ||
                  c > MA_PAGED_CLASSES);
    }
    for (unsigned c = 1; c < MA_CLASS_COUNT; c++) compute_direct(c);
    MA_ASSERT(ma_class_size[MA_CLASS_COUNT - 1] == MA_MEDIUM_MAX);
}

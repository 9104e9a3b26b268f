/* sizeclass.c - the size classes and the span each class's pages take.
 *
 * Classes 1..16 are 16..256 bytes in steps of 16 (the alignment floor);
 * above, each power of two is split in 8, so a block wastes at most 1/8 of
 * the request (12.5%). Class 96 is 256 KiB, MA_PAGED_MAX. Classes 97..124
 * are 320 KiB to 2 MiB (MA_MEDIUM_MAX) in steps of a slice: one block fills
 * a span of its own, so a big block is taken from and given back to its
 * heap's segments like any page, without a mapping of its own (no system
 * call, no page fault when the span was used before). ma_sizeclass_of
 * (internal.h) is the inverse, computed with one count of leading zeros.
 *
 * A page spans enough 64 KiB slices to hold at least 8 blocks, so the tail
 * a page cannot use stays small; memory is touched only as blocks are carved.
 */
#include "internal.h"

static uint32_t class_size[MA_CLASS_COUNT];
static uint8_t class_slices[MA_CLASS_COUNT];

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
        class_size[c] = (uint32_t)compute_size(c);
        class_slices[c] = (uint8_t)compute_slices(class_size[c]);
        MA_ASSERT(ma_sizeclass_of(class_size[c]) == c);
    }
    MA_ASSERT(class_size[MA_CLASS_COUNT - 1] == MA_MEDIUM_MAX);
}

size_t ma_sizeclass_size(unsigned cls) { return class_size[cls]; }
unsigned ma_sizeclass_slices(unsigned cls) { return class_slices[cls]; }

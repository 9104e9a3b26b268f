/* checked.h - checked mode's inline helpers: MAPALLOC_SECURE's canary and
 * what it adds to a block's size, and the fill of freed blocks (check.c,
 * page.c). Each costs nothing when ma_secure is false beyond its test.
 * Included by internal.h only, after the prototypes and globals. */
#ifndef MA_CHECKED_H
#define MA_CHECKED_H

/* MAPALLOC_SECURE keeps the last MA_CANARY_SIZE bytes of each block of a
 * page for its canary: the block's address under a secret derived from the
 * key. page.c writes it when it carves the block and nothing of ours ever
 * writes over it, so a block has it whether live, free or quarantined, and
 * malloc need not write it; check.c checks it on free (heap overflow).
 * Blocks are 16-byte aligned, so the low nibble is the secret's with bits
 * 0-2 set: never 0 (an off-by-one string terminator is caught) and never
 * 0xD (a canary is never the free fill). */
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

static inline uint64_t ma_canary_of(const void *b) { return ((uintptr_t)b ^ ma_canary_key) | 7; }

/* Checked mode: a freed block holds MA_FREE_FILL in its fill span, from
 * byte 8 (its first word is a link or a quarantine tag) to the canary or
 * the end: all of the span with `whole` (MAPALLOC_DEBUG), else its first
 * and its last MA_FILL_EDGE bytes, which is all of a span of up to
 * 2 * MA_FILL_EDGE. check.c fills what is freed and checks the fill before
 * the block is handed out again (SECURE alone: when it leaves the
 * quarantine; the other modes: in malloc, and page.c fills what it carves
 * for them). Two 16-byte stores at most in SECURE: this runs on every
 * free. */
#define MA_FREE_FILL 0xDD
#define MA_FILL_EDGE 16u
#define MA_LINK_SIZE sizeof(ma_block_t)
typedef uint64_t ma_v16_t __attribute__((vector_size(16), may_alias));
#define MA_FILL64 (0x0101010101010101ull * MA_FREE_FILL)

/* [from, to), a multiple of 8 bytes long; stores may overlap. */
static inline void ma_fill_range(uint8_t *from, uint8_t *to) {
    const ma_v16_t v = {MA_FILL64, MA_FILL64};
    const uint64_t w = MA_FILL64;
    if (to - from < 16) {
        if (to > from) memcpy(from, &w, sizeof w);
        return;
    }
    for (; from + 16 < to; from += 16) memcpy(from, &v, sizeof v);
    memcpy(to - 16, &v, sizeof v);
}

/* The fill span of the block at b: [b + 8, end). */
/* The first and the last MA_FILL_EDGE bytes of [from, to), at least that long. */
static inline void ma_fill_edges(uint8_t *from, uint8_t *to) {
    const ma_v16_t v = {MA_FILL64, MA_FILL64};
    memcpy(from, &v, sizeof v);
    memcpy(to - MA_FILL_EDGE, &v, sizeof v);
}

static inline void ma_fill_free(uint8_t *b, uint8_t *end, bool whole) {
    uint8_t *from = b + MA_LINK_SIZE, *to = end;
    if (whole || to - from < MA_FILL_EDGE) {
        ma_fill_range(from, to);
        return;
    }
    ma_fill_edges(from, to);
}

#endif /* MA_CHECKED_H */

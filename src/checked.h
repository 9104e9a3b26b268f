/* checked.h - checked mode's inline helpers: MAPALLOC_SECURE's canary, the
 * fill of freed blocks and its checks, and how a block's first word tells
 * its state (check.c's checked allocate and free, audit.c's walk; page.c
 * fills and writes canaries as it carves). Included by internal.h only,
 * after the prototypes, globals and fastpath.h. */
#ifndef MA_CHECKED_H
#define MA_CHECKED_H

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* MAPALLOC_SECURE keeps the last MA_CANARY_SIZE bytes (fastpath.h) of each
 * block of a page for its canary: the block's address under a secret
 * derived from the key. page.c writes it when it carves the block and nothing of ours ever
 * writes over it, so a block has it whether live, free or quarantined, and
 * malloc need not write it; check.c checks it on free (heap overflow).
 * Blocks are 16-byte aligned, so the low nibble is the secret's with bits
 * 0-2 set: never 0 (an off-by-one string terminator is caught) and never
 * 0xD (a canary is never the free fill). */
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

/* ---- Checking a block's state (check.c's free, audit.c's walk) ---------- */

/* A longer list (a heap's remote_full, a page's) is taken for a cycle. */
#define MA_LIST_LIMIT ((uint64_t)1 << 24)

static inline uint64_t ma_load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* First word of a quarantined block: an encoded link to itself, which no
 * free list holds (it would be a loop). Only our free writes it: a live
 * block holds it by a chance of 2^-64, and a copy of another quarantined
 * block's first word is that block's tag, not this one's. check.c's lean
 * free, looking for an in-page link, sees it at no extra cost. */
static inline uintptr_t ma_quarantine_tag(const void *b) { return ma_block_encode(b); }

/* Bits that differ from the fill in [from, to), a multiple of 8 bytes
 * long (the mirror of ma_fill_range). */
static inline uint64_t ma_fill_diff(const uint8_t *from, const uint8_t *to) {
    const ma_v16_t fill = {MA_FILL64, MA_FILL64};
    if (to - from < 16) return to > from ? ma_load64(from) ^ MA_FILL64 : 0;
    ma_v16_t diff = {0, 0}, v;
    for (; from + 16 < to; from += 16) {
        memcpy(&v, from, sizeof v);
        diff |= v ^ fill;
    }
    memcpy(&v, to - 16, sizeof v);
    diff |= v ^ fill;
    return diff[0] | diff[1];
}

/* The first and the last 16 bytes of [from, to) hold the fill. */
static inline bool ma_fill_edges_intact(const uint8_t *from, const uint8_t *to) {
#ifdef __SSE2__
    /* compare bytes and take the mask: two instructions fewer than
     * folding the difference down to one word (SECURE's free) */
    const __m128i fill = _mm_set1_epi8((char)MA_FREE_FILL);
    __m128i same = _mm_and_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)from), fill),
                                 _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(to - MA_FILL_EDGE)), fill));
    return _mm_movemask_epi8(same) == 0xFFFF;
#else
    const ma_v16_t fill = {MA_FILL64, MA_FILL64};
    ma_v16_t head, edge;
    memcpy(&head, from, sizeof head);
    memcpy(&edge, to - MA_FILL_EDGE, sizeof edge);
    ma_v16_t diff = (head ^ fill) | (edge ^ fill);
    return (diff[0] | diff[1]) == 0;
#endif
}

/* The part of the block at b that ma_fill_free wrote (the same `end`
 * and `whole`). */
static inline bool ma_fill_intact_to(const uint8_t *b, const uint8_t *end, bool whole) {
    const uint8_t *from = b + MA_LINK_SIZE, *to = end;
    if (whole || to - from < MA_FILL_EDGE) return ma_fill_diff(from, to) == 0;
    return ma_fill_edges_intact(from, to);
}

/* Where the fill span of a block of size bytes at b ends: the canary. */
static inline uint8_t *ma_fill_end(const uint8_t *b, size_t size) { return (uint8_t *)b + size - ma_block_tail(); }

static inline bool ma_fill_intact(const uint8_t *b, size_t size, bool whole) {
    return ma_fill_intact_to(b, ma_fill_end(b, size), whole);
}

/* A free block's first word: a link to NULL (also the quarantine tag) or
 * to a block of ours (remote_full lists link blocks of different pages). */
static inline bool ma_block_free_word(const uint8_t *b) {
    ma_block_t *link = ma_block_decode((uintptr_t)ma_load64(b));
    return link == NULL || ma_segment_small_of(link) != NULL;
}

/* The canary of the block at p, a block of page (secure), is intact. */
static inline bool ma_canary_intact(const ma_page_t *page, const uint8_t *p) {
    return ma_load64(p + page->block_size - MA_CANARY_SIZE) == ma_canary_of(p);
}

/* b is the start of a carved block of a page of ours. */
static inline bool ma_block_valid(const void *b) {
    ma_segment_t *seg = ma_segment_small_of(b);
    return seg && ma_page_block_index(ma_segment_page_of(seg, b), b) != UINT32_MAX;
}

#endif /* MA_CHECKED_H */

/* pprof.c - writes the heap profiler's data as a file for pprof, without
 * allocating: pprof's profile.proto (protocol buffers, gzip-compressed),
 * or the legacy text heap format that google-pprof also reads.
 *
 * The proto is streamed: its top-level fields are all repeated, so each
 * string, mapping, location and sample is encoded on its own (a small
 * scratch buffer) and appended; string indices are handed out in the order
 * the strings are written. Memory comes from the OS layer and goes back
 * before returning. The gzip stream is deflate with the fixed Huffman codes
 * and greedy matches found through a hash chain: smaller than zlib's best,
 * a fraction of the raw size (protobuf's varints and packed ids repeat).
 *
 * The process's mappings - the executable segments of the program and of
 * each shared object, with file offset, path and GNU build id - are read
 * with dl_iterate_phdr before the profiler takes its lock (the callback
 * runs under the dynamic loader's lock, which a thread holding it may need
 * the profiler's lock under: never the other way round). With them
 * `go tool pprof` symbolizes from the binaries on disk.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include "internal.h"

/* ---- The process's mappings ------------------------------------------------ */

#define MAPS_MAX 2048u
#define NAMES_BYTES ((size_t)512 << 10)

typedef struct map_s {
    uintptr_t start, limit, offset;  /* an executable segment, page-aligned */
    uint32_t name;                   /* offset of the path in names */
    uint32_t build_id;               /* offset of the build id (hex) in names, or UINT32_MAX */
} map_t;

struct ma_pprof_modules_s {
    size_t count;
    size_t names_len;
    bool first_seen;                 /* the callback has seen the program itself */
    map_t maps[MAPS_MAX];            /* in the loader's order: the program first */
    uint16_t by_start[MAPS_MAX];     /* indices into maps, by start address */
    char names[NAMES_BYTES];
};

static uint32_t add_name(ma_pprof_modules_t *m, const char *s, size_t n) {
    if (n + 1 > NAMES_BYTES - m->names_len) return UINT32_MAX;
    uint32_t at = (uint32_t)m->names_len;
    memcpy(m->names + at, s, n);
    m->names[at + n] = '\0';
    m->names_len += n + 1;
    return at;
}

/* The NT_GNU_BUILD_ID note among a module's notes, as hex. */
static uint32_t build_id(ma_pprof_modules_t *m, const struct dl_phdr_info *info) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while ((size_t)(end - p) >= 12) {
            uint32_t namesz, descsz, type;
            memcpy(&namesz, p, 4);
            memcpy(&descsz, p + 4, 4);
            memcpy(&type, p + 8, 4);
            size_t name_pad = ((size_t)namesz + 3) & ~(size_t)3, desc_pad = ((size_t)descsz + 3) & ~(size_t)3;
            if (name_pad > (size_t)(end - p) - 12 || desc_pad > (size_t)(end - p) - 12 - name_pad) break;
            const uint8_t *name = p + 12, *desc = name + name_pad;
            if (type == NT_GNU_BUILD_ID && namesz == 4 && memcmp(name, "GNU", 4) == 0 && descsz <= 64) {
                char text[129];
                for (uint32_t k = 0; k < descsz; k++) {
                    text[2 * k] = hex[desc[k] >> 4];
                    text[2 * k + 1] = hex[desc[k] & 15];
                }
                return add_name(m, text, 2 * (size_t)descsz);
            }
            p = desc + desc_pad;
        }
    }
    return UINT32_MAX;
}

static int collect(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    ma_pprof_modules_t *m = arg;
    char exe[4096];
    const char *path = info->dlpi_name;
    bool program = !m->first_seen;
    m->first_seen = true;
    if (program && (path == NULL || path[0] == '\0')) {
        if (ma_os_exe_path(exe, sizeof exe) == 0) return 0;
        path = exe;
    }
    if (path == NULL || path[0] != '/') return 0;   /* the vdso: no file to read */
    uint32_t name = UINT32_MAX, id = UINT32_MAX;
    for (int i = 0; i < info->dlpi_phnum && m->count < MAPS_MAX; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || ph->p_memsz == 0) continue;
        if (name == UINT32_MAX) {
            name = add_name(m, path, strlen(path));
            id = build_id(m, info);
            if (name == UINT32_MAX) return 0;
        }
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, slack = start & (MA_OS_PAGE - 1);
        map_t *map = &m->maps[m->count++];
        map->start = start - slack;
        map->limit = (start + ph->p_memsz + MA_OS_PAGE - 1) & ~(uintptr_t)(MA_OS_PAGE - 1);
        map->offset = ph->p_offset >= slack ? ph->p_offset - slack : 0;
        map->name = name;
        map->build_id = id;
    }
    return 0;
}

/* The buffers of a dump are kept for the next one: mapping them, faulting
 * their pages in and unmapping them (a TLB shootdown) costs a program that
 * writes one profile at exit more than writing it. Borrowed by exchange;
 * two dumps at once map a second set, given back to the OS after. */
static _Atomic(ma_pprof_modules_t *) spare_modules;

ma_pprof_modules_t *ma_pprof_modules_collect(void) {
    ma_pprof_modules_t *m = atomic_exchange_explicit(&spare_modules, NULL, memory_order_acquire);
    if (!m && (m = ma_os_map(sizeof *m)) == NULL) return NULL;
    m->count = 0;
    m->names_len = 0;
    m->first_seen = false;
    dl_iterate_phdr(collect, m);
    for (size_t i = 0; i < m->count; i++) {   /* insertion sort: few mappings */
        size_t j = i;
        for (; j > 0 && m->maps[m->by_start[j - 1]].start > m->maps[i].start; j--) m->by_start[j] = m->by_start[j - 1];
        m->by_start[j] = (uint16_t)i;
    }
    return m;
}

void ma_pprof_modules_free(ma_pprof_modules_t *m) {
    ma_pprof_modules_t *none = NULL;
    if (m && !atomic_compare_exchange_strong_explicit(&spare_modules, &none, m, memory_order_release,
                                                      memory_order_relaxed))
        ma_os_unmap(m, sizeof *m);
}

/* 1 + the index of the mapping holding pc, or 0. */
static uint64_t mapping_of(const ma_pprof_modules_t *m, uintptr_t pc) {
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const map_t *map = &m->maps[m->by_start[mid]];
        if (pc < map->start) hi = mid;
        else if (pc >= map->limit) lo = mid + 1;
        else return m->by_start[mid] + 1u;
    }
    return 0;
}

/* ---- Output: a file, gzip-wrapped or not ----------------------------------------- */

#define BLOCK 65536u      /* bytes compressed as one deflate block */
#define SCRATCH 4096u
#define HASH_BITS 10u
#define CHAIN 16u         /* candidates tried for a match */
#define ZOUT (BLOCK + BLOCK / 4 + 64)  /* a fixed-Huffman block: at most 9 bits a byte */

typedef struct out_s {
    int fd;
    int err;              /* the first errno of a failed write, or 0 */
    bool gzip;
    uint32_t crc;
    uint32_t total;       /* bytes before compression, modulo 2^32 (gzip's ISIZE) */
    size_t len;
    uint8_t buf[BLOCK];   /* bytes not yet compressed (or written) */
    uint8_t scratch[SCRATCH];  /* one submessage being encoded */
    size_t slen;
    bool sover;           /* the submessage did not fit: it is dropped */
    uint32_t crc_table[256];
    /* deflate: LZ77 matches within a block, fixed Huffman codes */
    uint64_t bits;        /* pending output bits, the first in the low end */
    unsigned nbits;
    size_t zlen;
    uint8_t zout[ZOUT];
    int32_t head[1u << HASH_BITS];  /* last position of each 3-byte hash, or -1 */
    int32_t prev[BLOCK];            /* the position before with the same hash, or -1 */
    void *loc_mem;        /* the locations table's memory, kept with the buffer */
    size_t loc_bytes;
} out_t;

static _Atomic(out_t *) spare_out;   /* as spare_modules */

static void crc_init(out_t *o) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        o->crc_table[i] = c;
    }
    o->crc = 0xFFFFFFFFu;
}

static void raw_write(out_t *o, const void *p, size_t n) {
    if (o->err == 0 && ma_os_write_all(o->fd, p, n) != 0) o->err = errno ? errno : EIO;
}

/* ---- deflate (RFC 1951): fixed Huffman codes, greedy LZ77 matches ---- */

/* n bits of v, least significant first (deflate's bit order). */
static void bits_put(out_t *o, uint32_t v, unsigned n) {
    o->bits |= (uint64_t)v << o->nbits;
    o->nbits += n;
    while (o->nbits >= 8) {
        o->zout[o->zlen++] = (uint8_t)o->bits;
        o->bits >>= 8;
        o->nbits -= 8;
    }
}

/* A Huffman code goes most significant bit first. */
static void code_put(out_t *o, uint32_t code, unsigned n) {
    uint32_t r = 0;
    for (unsigned i = 0; i < n; i++) r |= ((code >> i) & 1) << (n - 1 - i);
    bits_put(o, r, n);
}

/* A literal/length symbol in the fixed code (RFC 1951, 3.2.6). */
static void symbol_put(out_t *o, unsigned sym) {
    if (sym < 144) code_put(o, 0x30 + sym, 8);
    else if (sym < 256) code_put(o, 0x190 + sym - 144, 9);
    else if (sym < 280) code_put(o, sym - 256, 7);
    else code_put(o, 0xc0 + sym - 280, 8);
}

static const uint16_t len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                      35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                      3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                       6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void match_put(out_t *o, unsigned len, unsigned dist) {
    unsigned l = 28, d = 29;
    while (len_base[l] > len) l--;
    symbol_put(o, 257 + l);
    bits_put(o, len - len_base[l], len_extra[l]);
    while (dist_base[d] > dist) d--;
    code_put(o, d, 5);
    bits_put(o, dist - dist_base[d], dist_extra[d]);
}

static unsigned hash3(const uint8_t *p) {
    return ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) * 2654435761u >> (32 - HASH_BITS);
}

/* buf[0..len) as one block; matches stay inside it (32 KiB back at most). */
static void deflate_block(out_t *o, bool final) {
    const uint8_t *in = o->buf;
    size_t n = o->len;
    memset(o->head, 0xff, sizeof o->head);
    bits_put(o, final ? 1 : 0, 1);
    bits_put(o, 1, 2);   /* fixed Huffman codes */
    for (size_t i = 0; i < n;) {
        unsigned best = 0, dist = 0;
        if (i + 3 <= n) {
            unsigned h = hash3(in + i);
            int32_t cand = o->head[h];
            size_t max = n - i < 258 ? n - i : 258;
            for (unsigned k = 0; k < CHAIN && cand >= 0 && i - (size_t)cand <= 32768; k++) {
                unsigned m = 0;
                while (m < max && in[(size_t)cand + m] == in[i + m]) m++;
                if (m > best) {
                    best = m;
                    dist = (unsigned)(i - (size_t)cand);
                    if (m == max) break;
                }
                cand = o->prev[cand];
            }
            o->prev[i] = o->head[h];
            o->head[h] = (int32_t)i;
        }
        if (best >= 3) {
            match_put(o, best, dist);
            for (size_t j = i + 1; j < i + best && j + 3 <= n; j++) {   /* the matched positions, hashed */
                unsigned h = hash3(in + j);
                o->prev[j] = o->head[h];
                o->head[h] = (int32_t)j;
            }
            i += best;
        } else {
            symbol_put(o, in[i++]);
        }
    }
    symbol_put(o, 256);
    if (final && o->nbits) bits_put(o, 0, 8 - o->nbits);   /* to a whole byte */
    raw_write(o, o->zout, o->zlen);
    o->zlen = 0;
}

/* Writes what buf holds: a deflate block when gzip. */
static void flush(out_t *o, bool final) {
    if (o->gzip) deflate_block(o, final);
    else raw_write(o, o->buf, o->len);
    o->len = 0;
}

static void put(out_t *o, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (o->len == BLOCK) flush(o, false);
        o->buf[o->len++] = b[i];
        o->crc = o->crc_table[(o->crc ^ b[i]) & 0xff] ^ (o->crc >> 8);
    }
    o->total += (uint32_t)n;
}

static void put_str(out_t *o, const char *s) { put(o, s, strlen(s)); }

/* A buffer, new or kept from an earlier dump, ready for fd. */
static void out_open(out_t *o, int fd, bool gzip) {
    o->fd = fd;
    o->gzip = gzip;
    o->err = 0;
    o->total = 0;
    o->len = 0;
    o->slen = 0;
    o->sover = false;
    o->bits = 0;
    o->nbits = 0;
    o->zlen = 0;
    crc_init(o);
    if (gzip) {
        static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};  /* deflate, no mtime, Unix */
        raw_write(o, header, sizeof header);
    }
}

static int out_close(out_t *o) {
    flush(o, true);
    if (o->gzip) {
        uint32_t crc = ~o->crc;
        uint8_t trailer[8] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24),
                              (uint8_t)o->total, (uint8_t)(o->total >> 8), (uint8_t)(o->total >> 16),
                              (uint8_t)(o->total >> 24)};
        raw_write(o, trailer, sizeof trailer);
    }
    if (o->err) {
        errno = o->err;
        return -1;
    }
    return 0;
}

/* ---- Protocol buffers ----------------------------------------------------------------- */

enum { WT_VARINT = 0, WT_LEN = 2 };

static size_t varint_bytes(uint64_t v, uint8_t *b) {
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return n;
}

static void put_varint(out_t *o, uint64_t v) {
    uint8_t b[10];
    put(o, b, varint_bytes(v, b));
}

/* The scratch submessage. */
static void s_begin(out_t *o) {
    o->slen = 0;
    o->sover = false;
}

static void s_varint(out_t *o, uint64_t v) {
    if (o->slen > SCRATCH - 10) {
        o->sover = true;
        return;
    }
    o->slen += varint_bytes(v, o->scratch + o->slen);
}

static void s_key(out_t *o, unsigned field, unsigned wt) { s_varint(o, (uint64_t)field << 3 | wt); }

/* A scalar field; zero is the default, left out. */
static void s_uint(out_t *o, unsigned field, uint64_t v) {
    if (v == 0) return;
    s_key(o, field, WT_VARINT);
    s_varint(o, v);
}

/* A packed repeated field of n varints. */
static void s_packed(out_t *o, unsigned field, const uint64_t *v, size_t n) {
    uint8_t tmp[10];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += varint_bytes(v[i], tmp);
    s_key(o, field, WT_LEN);
    s_varint(o, len);
    for (size_t i = 0; i < n; i++) s_varint(o, v[i]);
}

/* A nested message made of the scratch bytes from `from` on: moved right
 * to make room for its key and length. */
static void s_nest(out_t *o, unsigned field, size_t from) {
    uint8_t head[20];
    size_t len = o->slen - from;
    size_t h = varint_bytes((uint64_t)field << 3 | WT_LEN, head);
    h += varint_bytes(len, head + h);
    if (o->slen + h > SCRATCH) {
        o->sover = true;
        return;
    }
    memmove(o->scratch + from + h, o->scratch + from, len);
    memcpy(o->scratch + from, head, h);
    o->slen += h;
}

/* The scratch, as field `field` of the profile. */
static void s_emit(out_t *o, unsigned field) {
    if (o->sover) return;
    put_varint(o, (uint64_t)field << 3 | WT_LEN);
    put_varint(o, o->slen);
    put(o, o->scratch, o->slen);
}

/* Profile fields (profile.proto). */
enum { P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4, P_STRING = 6, P_DROP_FRAMES = 7,
       P_TIME_NANOS = 9, P_PERIOD_TYPE = 11, P_PERIOD = 12, P_COMMENT = 13, P_DEFAULT_TYPE = 14 };

typedef struct strings_s {
    uint64_t next;        /* index of the next string written */
} strings_t;

static uint64_t put_string(out_t *o, strings_t *st, const char *s) {
    size_t n = strlen(s);
    put_varint(o, (uint64_t)P_STRING << 3 | WT_LEN);
    put_varint(o, n);
    put(o, s, n);
    return st->next++;
}

/* The fixed strings, in the order written (string 0 must be ""). */
enum { S_EMPTY, S_ALLOC_OBJECTS, S_COUNT, S_ALLOC_SPACE, S_BYTES, S_INUSE_OBJECTS, S_INUSE_SPACE, S_SPACE,
       S_AGE, S_MS, S_DROP, S_FIXED };

/* Frames of the allocator itself, for when it is linked into the program
 * (as a shared library the walk leaves them out): pprof removes a
 * matching frame and all below it. */
static const char drop_frames[] =
    "malloc|calloc|realloc|reallocarray|free|cfree|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|"
    "__libc_(malloc|calloc|realloc|memalign)|ma_(malloc|calloc|realloc|reallocarray|memalign|aligned_alloc|"
    "posix_memalign|valloc|pvalloc|alloc_.*|profile_.*)|alloc_first|calloc_large|operator new.*";

static uint64_t round_u64(double v) { return v <= 0 ? 0 : (uint64_t)(v + 0.5); }

/* ---- Locations: one per distinct pc ---------------------------------------------------------- */

typedef struct loc_table_s {
    uintptr_t *pcs;       /* open addressing; 0 is empty */
    uint64_t *ids;
    size_t mask;
    size_t bytes;         /* mapped */
    uint64_t next_id;
} loc_table_t;

static bool locs_init(out_t *o, loc_table_t *t, size_t frames) {
    size_t slots = 64;
    while (slots < 2 * frames + 2) slots *= 2;
    t->bytes = slots * (sizeof(uintptr_t) + sizeof(uint64_t));
    if (o->loc_bytes < t->bytes) {
        if (o->loc_mem) ma_os_unmap(o->loc_mem, o->loc_bytes);
        o->loc_bytes = 0;
        if ((o->loc_mem = ma_os_map(t->bytes)) == NULL) return false;
        o->loc_bytes = t->bytes;
    } else {
        memset(o->loc_mem, 0, t->bytes);
    }
    t->pcs = o->loc_mem;
    t->ids = (uint64_t *)(t->pcs + slots);
    t->mask = slots - 1;
    t->next_id = 1;
    return true;
}

static uint64_t *loc_slot(loc_table_t *t, uintptr_t pc) {
    size_t i = (size_t)((pc * MA_GOLDEN64) >> 20) & t->mask;
    while (t->pcs[i] != 0 && t->pcs[i] != pc) i = (i + 1) & t->mask;
    t->pcs[i] = pc;
    return &t->ids[i];
}

/* The id of pc's location, written the first time it is asked for. */
static uint64_t location(out_t *o, loc_table_t *t, const ma_pprof_modules_t *m, uintptr_t pc) {
    uint64_t *id = loc_slot(t, pc);
    if (*id) return *id;
    *id = t->next_id++;
    s_begin(o);
    s_uint(o, 1, *id);
    s_uint(o, 2, m ? mapping_of(m, pc) : 0);
    s_uint(o, 3, pc);
    s_emit(o, P_LOCATION);
    return *id;
}

/* ---- The proto -------------------------------------------------------------------------------- */

typedef struct proto_s {
    out_t *o;
    loc_table_t locs;
    const ma_pprof_modules_t *m;
    uint64_t now_ms;
    uint64_t ids[MA_STACK_MAX];
} proto_t;

static void value_type(out_t *o, unsigned field, uint64_t type, uint64_t unit) {
    s_begin(o);
    s_uint(o, 1, type);
    s_uint(o, 2, unit);
    s_emit(o, field);
}

static size_t stack_ids(proto_t *pr, const ma_prof_bucket_t *b) {
    for (uint32_t i = 0; i < b->depth; i++) pr->ids[i] = location(pr->o, &pr->locs, pr->m, b->pcs[i]);
    return b->depth;
}

static void numeric_label(out_t *o, uint64_t key, uint64_t num, uint64_t unit) {
    size_t from = o->slen;
    s_uint(o, 1, key);
    s_uint(o, 3, num);
    s_uint(o, 4, unit);
    s_nest(o, 3, from);
}

/* One Sample per live sample: its estimated objects and bytes, with its
 * size and age as labels (pprof -tags, -tagfocus). */
static void live_sample(const ma_prof_sample_t *s, void *arg) {
    proto_t *pr = arg;
    out_t *o = pr->o;
    size_t n = stack_ids(pr, s->bucket);
    uint64_t values[4] = {0, 0, round_u64(s->weight / (double)s->size), round_u64(s->weight)};
    s_begin(o);
    s_packed(o, 1, pr->ids, n);
    s_packed(o, 2, values, 4);
    numeric_label(o, S_BYTES, s->size, S_BYTES);
    numeric_label(o, S_AGE, pr->now_ms > s->time_ms ? pr->now_ms - s->time_ms : 0, S_MS);
    s_emit(o, P_SAMPLE);
}

static void write_proto(out_t *o, const ma_pprof_data_t *d, const ma_pprof_modules_t *m) {
    strings_t st = {0};
    static const char *const fixed[S_FIXED] = {"", "alloc_objects", "count", "alloc_space", "bytes",
                                               "inuse_objects", "inuse_space", "space", "age", "ms", drop_frames};
    for (unsigned i = 0; i < S_FIXED; i++) put_string(o, &st, fixed[i]);
    char comment[160];
    ma_buf_t b = {.len = 0};
    ma_buf_str(&b, "mapalloc heap profile, one sample per ");
    ma_buf_u64(&b, (uint64_t)d->rate);
    ma_buf_str(&b, " bytes on average (MAPALLOC_PROFILE_RATE)");
    memcpy(comment, b.data, b.len < sizeof comment - 1 ? b.len : sizeof comment - 1);
    comment[b.len < sizeof comment - 1 ? b.len : sizeof comment - 1] = '\0';
    uint64_t comment_idx = put_string(o, &st, comment);

    value_type(o, P_SAMPLE_TYPE, S_ALLOC_OBJECTS, S_COUNT);
    value_type(o, P_SAMPLE_TYPE, S_ALLOC_SPACE, S_BYTES);
    value_type(o, P_SAMPLE_TYPE, S_INUSE_OBJECTS, S_COUNT);
    value_type(o, P_SAMPLE_TYPE, S_INUSE_SPACE, S_BYTES);
    value_type(o, P_PERIOD_TYPE, S_SPACE, S_BYTES);
    put_varint(o, P_PERIOD << 3 | WT_VARINT);
    put_varint(o, (uint64_t)d->rate);
    put_varint(o, P_TIME_NANOS << 3 | WT_VARINT);
    put_varint(o, ma_os_now_ns());
    put_varint(o, P_DROP_FRAMES << 3 | WT_VARINT);
    put_varint(o, S_DROP);
    put_varint(o, P_COMMENT << 3 | WT_VARINT);
    put_varint(o, comment_idx);
    put_varint(o, P_DEFAULT_TYPE << 3 | WT_VARINT);
    put_varint(o, S_INUSE_SPACE);

    for (size_t i = 0; m && i < m->count; i++) {
        const map_t *map = &m->maps[i];
        uint64_t file = put_string(o, &st, m->names + map->name);
        uint64_t id = map->build_id == UINT32_MAX ? 0 : put_string(o, &st, m->names + map->build_id);
        s_begin(o);
        s_uint(o, 1, i + 1);
        s_uint(o, 2, map->start);
        s_uint(o, 3, map->limit);
        s_uint(o, 4, map->offset);
        s_uint(o, 5, file);
        s_uint(o, 6, id);
        s_emit(o, P_MAPPING);
    }

    proto_t pr = {.o = o, .m = m, .now_ms = d->now_ms};
    if (!locs_init(o, &pr.locs, d->frame_count)) {
        o->err = ENOMEM;
        return;
    }
    for (const ma_prof_bucket_t *bk = d->buckets; bk; bk = bk->all_next) {
        if (bk->alloc_count <= 0) continue;
        size_t n = stack_ids(&pr, bk);
        uint64_t values[4] = {round_u64(bk->alloc_count), round_u64(bk->alloc_bytes), 0, 0};
        s_begin(o);
        s_packed(o, 1, pr.ids, n);
        s_packed(o, 2, values, 4);
        s_emit(o, P_SAMPLE);
    }
    d->each_sample(live_sample, &pr);
}

/* ---- The legacy text format (google-pprof's "heap profile") ------------------------------------------ */

static void put_u64(out_t *o, uint64_t v) {
    ma_buf_t b = {.len = 0};
    ma_buf_u64(&b, v);
    put(o, b.data, b.len);
}

static void put_counts(out_t *o, uint64_t live_n, uint64_t live_b, uint64_t all_n, uint64_t all_b) {
    put_u64(o, live_n);
    put_str(o, ": ");
    put_u64(o, live_b);
    put_str(o, " [");
    put_u64(o, all_n);
    put_str(o, ": ");
    put_u64(o, all_b);
    put_str(o, "] @");
}

/* Counts are already estimates ("heapprofile": pprof scales nothing);
 * addresses are return addresses (pprof subtracts one); the mappings are
 * /proc/self/maps, copied. */
static void write_legacy(out_t *o, const ma_pprof_data_t *d) {
    uint64_t t[4] = {0};
    for (const ma_prof_bucket_t *bk = d->buckets; bk; bk = bk->all_next) {
        t[0] += round_u64(bk->live_count);
        t[1] += round_u64(bk->live_bytes);
        t[2] += round_u64(bk->alloc_count);
        t[3] += round_u64(bk->alloc_bytes);
    }
    put_str(o, "heap profile: ");
    put_counts(o, t[0], t[1], t[2], t[3]);
    put_str(o, " heapprofile\n");
    for (const ma_prof_bucket_t *bk = d->buckets; bk; bk = bk->all_next) {
        if (bk->alloc_count <= 0) continue;
        put_counts(o, round_u64(bk->live_count), round_u64(bk->live_bytes), round_u64(bk->alloc_count),
                   round_u64(bk->alloc_bytes));
        for (uint32_t i = 0; i < bk->depth; i++) {
            ma_buf_t b = {.len = 0};
            ma_buf_str(&b, " ");
            ma_buf_hex(&b, bk->pcs[i] + 1);
            put(o, b.data, b.len);
        }
        put_str(o, "\n");
    }
    put_str(o, "\nMAPPED_LIBRARIES:\n");
    int fd = ma_os_open_read("/proc/self/maps");
    if (fd < 0) return;
    uint8_t chunk[1024];
    long n;
    while ((n = ma_os_read(fd, chunk, sizeof chunk)) > 0) put(o, chunk, (size_t)n);
    ma_os_close(fd);
}

int ma_pprof_write(int fd, bool legacy, const ma_pprof_data_t *d, const ma_pprof_modules_t *m) {
    out_t *o = atomic_exchange_explicit(&spare_out, NULL, memory_order_acquire);
    if (!o && (o = ma_os_map(sizeof *o)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    out_open(o, fd, !legacy);
    if (legacy) write_legacy(o, d);
    else write_proto(o, d, m);
    int rc = out_close(o);
    int err = errno;
    out_t *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(&spare_out, &none, o, memory_order_release, memory_order_relaxed)) {
        if (o->loc_mem) ma_os_unmap(o->loc_mem, o->loc_bytes);
        ma_os_unmap(o, sizeof *o);
    }
    errno = err;
    return rc;
}

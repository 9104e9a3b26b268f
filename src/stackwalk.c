/* stackwalk.c - the calling thread's call stack, for the heap profiler,
 * without allocating and without faulting.
 *
 * The walk reads the unwind tables every compiler writes into .eh_frame
 * (DWARF call frame information, the tables C++ exceptions use) rather than
 * frame pointers, which -O2 code such as Debian's binaries does not keep:
 * for each frame it finds the module holding the pc (_dl_find_object,
 * glibc 2.35: lock-free, no allocation), the FDE through the module's
 * .eh_frame_hdr search table, runs the CIE's and FDE's instructions up to
 * the pc, and computes the caller's registers from the rules they leave.
 * Only what x86_64 code uses is understood; anything else ends the walk,
 * which is then shorter, never wrong. A pc without an FDE (JIT code) gets
 * one frame-pointer step.
 *
 * Never faulting: every read of unwind tables stays inside the module's
 * mapped range, and every read of the stack inside a range above the
 * stack pointer that os_linux.c has found mapped (once per thread); a
 * frame whose canonical frame address does not rise stops the walk.
 * Frames on the stack are of code that is running, so their modules
 * cannot be unloaded while we read them.
 *
 * Rows of rules are cached by pc, compact. The cache is guarded by the
 * caller: profile.c calls ma_stack_walk with its lock held.
 * Without _dl_find_object (older glibc) only frame pointers are followed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include "internal.h"

#ifndef MA_HAVE_DL_FIND_OBJECT
#define MA_HAVE_DL_FIND_OBJECT 0
#endif
#if MA_HAVE_DL_FIND_OBJECT && defined(__x86_64__)
#define CFI 1
#else
#define CFI 0
#endif

/* DWARF register numbers of x86_64; 16 is the return address column. */
enum { R_RBX = 3, R_RBP = 6, R_RSP = 7, R_R12 = 12, R_R15 = 15, R_RA = 16, NREG = 17 };

#define NO_SANITIZE __attribute__((no_sanitize("address", "thread", "undefined")))

typedef struct regs_s {
    uintptr_t v[NREG];
    uint32_t known;                /* bit r: v[r] holds the register's value */
} regs_t;

/* Past a call only these can be known: the callee-saved registers and the
 * return address. */
static const uint8_t saved_regs[] = {R_RBX, R_RBP, R_R12, R_R12 + 1, R_R12 + 2, R_R15, R_RA};
enum { SAVED = sizeof saved_regs };

/* ---- Bounded reads ----------------------------------------------------------- */

/* A cursor over [p, end): every read checks it stays inside, and a read
 * that would leave sets `bad` and returns 0. */
typedef struct cursor_s {
    const uint8_t *p, *end;
    bool bad;
} cursor_t;

/* A cursor at p over [p, hi), bad unless p lies in [lo, hi]. */
static cursor_t cursor(const uint8_t *p, const uint8_t *lo, const uint8_t *hi) {
    return (cursor_t){p, hi, p < lo || p > hi};
}

static bool take(cursor_t *c, size_t n) {
    if (c->bad || c->p > c->end || (size_t)(c->end - c->p) < n) {
        c->bad = true;
        return false;
    }
    return true;
}

static uint64_t rd(cursor_t *c, size_t n) {
    uint64_t v = 0;
    if (!take(c, n)) return 0;
    memcpy(&v, c->p, n);  /* little-endian */
    c->p += n;
    return v;
}

static int64_t rd_signed(cursor_t *c, size_t n) {
    uint64_t v = rd(c, n);
    unsigned shift = 64 - 8 * (unsigned)n;
    return n == 8 ? (int64_t)v : (int64_t)(v << shift) >> shift;
}

static uint64_t rd_uleb(cursor_t *c) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b = (uint8_t)rd(c, 1);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    c->bad = true;
    return 0;
}

static int64_t rd_sleb(cursor_t *c) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b = (uint8_t)rd(c, 1);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (shift + 7 < 64 && (b & 0x40)) v |= ~(uint64_t)0 << (shift + 7);
            return (int64_t)v;
        }
    }
    c->bad = true;
    return 0;
}

/* Pointer encodings (DW_EH_PE_*) that x86_64 tables use: absolute or
 * pc-relative (or data-relative to the search table), of any width. */
enum { PE_OMIT = 0xff, PE_ULEB = 0x01, PE_U2 = 0x02, PE_U4 = 0x03, PE_U8 = 0x04, PE_SLEB = 0x09,
       PE_S2 = 0x0a, PE_S4 = 0x0b, PE_S8 = 0x0c, PE_PCREL = 0x10, PE_DATAREL = 0x30 };

static uint64_t rd_encoded(cursor_t *c, uint8_t enc, uintptr_t datarel) {
    uintptr_t at = (uintptr_t)c->p;
    uint64_t v;
    switch (enc & 0x0f) {
    case 0x00: v = rd(c, 8); break;
    case PE_ULEB: v = rd_uleb(c); break;
    case PE_U2: v = rd(c, 2); break;
    case PE_U4: v = rd(c, 4); break;
    case PE_U8: v = rd(c, 8); break;
    case PE_SLEB: v = (uint64_t)rd_sleb(c); break;
    case PE_S2: v = (uint64_t)rd_signed(c, 2); break;
    case PE_S4: v = (uint64_t)rd_signed(c, 4); break;
    case PE_S8: v = rd(c, 8); break;
    default: c->bad = true; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: return v;
    case PE_PCREL: return v + at;
    case PE_DATAREL: return v + datarel;
    default: c->bad = true; return 0;   /* textrel, funcrel, aligned: not on x86_64 */
    }
}

/* A word of the stack, if [a, a + 8) lies in [lo, hi). */
static NO_SANITIZE bool stack_word(uintptr_t a, uintptr_t lo, uintptr_t hi, uintptr_t *out) {
    if (a < lo || a > hi - sizeof(uintptr_t) || hi < sizeof(uintptr_t)) return false;
    memcpy(out, (const void *)a, sizeof *out);
    return true;
}

/* ---- Rules ---------------------------------------------------------------------- */

enum { RULE_NONE, RULE_UNDEF, RULE_SAME, RULE_OFFSET, RULE_VAL_OFFSET, RULE_REG, RULE_EXPR, RULE_VAL_EXPR };

typedef struct rule_s {
    int64_t off;          /* OFFSET, VAL_OFFSET: from the CFA; EXPR: the expression's address */
    uint32_t len;         /* EXPR, VAL_EXPR: its length */
    uint8_t kind;
    uint8_t reg;          /* REG: the register holding the value */
} rule_t;

typedef struct row_s {
    uint8_t cfa_reg;      /* CFA = cfa_reg + cfa_off, unless cfa_expr */
    bool cfa_expr;        /* CFA = the expression at cfa_off, cfa_len bytes */
    bool signal;          /* a signal frame: the caller's pc is exact */
    uint32_t cfa_len;
    int64_t cfa_off;
    rule_t r[NREG];
} row_t;

typedef struct cie_s {
    uint64_t code_align;
    int64_t data_align;
    uint32_t ra;
    uint8_t fde_enc;
    bool z, signal;
    const uint8_t *insns, *end;
} cie_t;

#define STATE_DEPTH 4

/* Runs call frame instructions on row until the location passes pc. */
static bool run_cfa(cursor_t c, const cie_t *cie, uintptr_t loc, uintptr_t pc, row_t *row, const row_t *initial) {
    row_t saved[STATE_DEPTH];
    unsigned depth = 0;
    while (c.p < c.end && !c.bad) {
        uint8_t op = (uint8_t)rd(&c, 1);
        uint64_t reg = NREG, a;
        int64_t off = 0;
        switch (op >> 6) {
        case 1:
            loc += (op & 0x3f) * cie->code_align;
            if (loc > pc) return true;
            continue;
        case 2:
            reg = op & 0x3f;
            off = (int64_t)rd_uleb(&c) * cie->data_align;
            if (reg < NREG) row->r[reg] = (rule_t){.kind = RULE_OFFSET, .off = off};
            continue;
        case 3:
            reg = op & 0x3f;
            if (reg < NREG) row->r[reg] = initial->r[reg];
            continue;
        }
        switch (op) {
        case 0x00: break;                                   /* nop */
        case 0x01:                                          /* set_loc */
            loc = rd_encoded(&c, cie->fde_enc, 0);
            if (loc > pc) return true;
            break;
        case 0x02: case 0x03: case 0x04:                    /* advance_loc1/2/4 */
            loc += rd(&c, op == 0x02 ? 1 : op == 0x03 ? 2 : 4) * cie->code_align;
            if (loc > pc) return true;
            break;
        case 0x05: case 0x11: case 0x2f:                    /* offset_extended(_sf), GNU negative */
            reg = rd_uleb(&c);
            off = op == 0x11 ? rd_sleb(&c) * cie->data_align : (int64_t)rd_uleb(&c) * cie->data_align;
            if (op == 0x2f) off = -off;
            if (reg < NREG) row->r[reg] = (rule_t){.kind = RULE_OFFSET, .off = off};
            break;
        case 0x14: case 0x15:                               /* val_offset(_sf) */
            reg = rd_uleb(&c);
            off = op == 0x15 ? rd_sleb(&c) * cie->data_align : (int64_t)rd_uleb(&c) * cie->data_align;
            if (reg < NREG) row->r[reg] = (rule_t){.kind = RULE_VAL_OFFSET, .off = off};
            break;
        case 0x06: case 0x07: case 0x08:                    /* restore_extended, undefined, same_value */
            reg = rd_uleb(&c);
            if (reg >= NREG) break;
            if (op == 0x06) row->r[reg] = initial->r[reg];
            else row->r[reg] = (rule_t){.kind = op == 0x07 ? RULE_UNDEF : RULE_SAME};
            break;
        case 0x09:                                          /* register */
            reg = rd_uleb(&c);
            a = rd_uleb(&c);
            if (reg < NREG) row->r[reg] = (rule_t){.kind = a < NREG ? RULE_REG : RULE_UNDEF, .reg = (uint8_t)a};
            break;
        case 0x0a:                                          /* remember_state */
            if (depth == STATE_DEPTH) return false;
            saved[depth++] = *row;
            break;
        case 0x0b:                                          /* restore_state */
            if (depth == 0) return false;
            *row = saved[--depth];
            break;
        case 0x0c: case 0x12:                               /* def_cfa(_sf) */
            row->cfa_reg = (uint8_t)(reg = rd_uleb(&c));
            row->cfa_off = op == 0x12 ? rd_sleb(&c) * cie->data_align : (int64_t)rd_uleb(&c);
            row->cfa_expr = false;
            if (reg >= NREG) return false;
            break;
        case 0x0d:                                          /* def_cfa_register */
            row->cfa_reg = (uint8_t)(reg = rd_uleb(&c));
            row->cfa_expr = false;
            if (reg >= NREG) return false;
            break;
        case 0x0e: case 0x13:                               /* def_cfa_offset(_sf) */
            row->cfa_off = op == 0x13 ? rd_sleb(&c) * cie->data_align : (int64_t)rd_uleb(&c);
            break;
        case 0x0f:                                          /* def_cfa_expression */
            a = rd_uleb(&c);
            row->cfa_expr = true;
            row->cfa_off = (int64_t)(uintptr_t)c.p;
            row->cfa_len = (uint32_t)a;
            if (!take(&c, a)) return false;
            c.p += a;
            break;
        case 0x10: case 0x16:                               /* expression, val_expression */
            reg = rd_uleb(&c);
            a = rd_uleb(&c);
            if (reg < NREG)
                row->r[reg] = (rule_t){.kind = op == 0x10 ? RULE_EXPR : RULE_VAL_EXPR,
                                       .off = (int64_t)(uintptr_t)c.p, .len = (uint32_t)a};
            if (!take(&c, a)) return false;
            c.p += a;
            break;
        case 0x2e:                                          /* GNU_args_size */
            rd_uleb(&c);
            break;
        default:
            return false;
        }
    }
    return !c.bad;
}

/* The CIE at p (inside [lo, hi)). */
static bool parse_cie(const uint8_t *p, const uint8_t *lo, const uint8_t *hi, cie_t *cie) {
    cursor_t c = cursor(p, lo, hi);
    uint64_t len = rd(&c, 4);
    if (len == 0xffffffffu) len = rd(&c, 8);
    if (c.bad || len > (size_t)(hi - c.p)) return false;
    c.end = c.p + len;
    if (rd(&c, 4) != 0) return false;                       /* a CIE's id is 0 in .eh_frame */
    uint8_t version = (uint8_t)rd(&c, 1);
    const char *aug = (const char *)c.p;
    while (rd(&c, 1) != 0 && !c.bad) {
    }
    if (c.bad || (version != 1 && version != 3) || (aug[0] != '\0' && aug[0] != 'z')) return false;
    cie->code_align = rd_uleb(&c);
    cie->data_align = rd_sleb(&c);
    cie->ra = (uint32_t)(version == 1 ? rd(&c, 1) : rd_uleb(&c));
    cie->fde_enc = 0;
    cie->signal = false;
    cie->z = aug[0] == 'z';
    if (cie->z) {
        uint64_t alen = rd_uleb(&c);
        cursor_t a = {c.p, c.p + alen, !take(&c, alen)};
        c.p += alen;
        for (const char *s = aug + 1; *s && !a.bad; s++) {
            if (*s == 'R') cie->fde_enc = (uint8_t)rd(&a, 1);
            else if (*s == 'L') rd(&a, 1);
            else if (*s == 'P') rd_encoded(&a, (uint8_t)(rd(&a, 1) & 0x7f), 0);
            else if (*s == 'S') cie->signal = true;
            else break;  /* unknown: the rest of the data is skipped by its length */
        }
        if (a.bad) return false;
    }
    cie->insns = c.p;
    cie->end = c.end;
    return !c.bad && cie->ra < NREG;
}

#if CFI
/* The FDE covering pc, through the module's .eh_frame_hdr search table,
 * and the row of rules at pc. */
static bool row_at(uintptr_t pc, row_t *row, uintptr_t *fn_start) {
    struct dl_find_object obj;
    if (_dl_find_object((void *)pc, &obj) != 0 || obj.dlfo_eh_frame == NULL) return false;
    const uint8_t *lo = obj.dlfo_map_start, *hi = obj.dlfo_map_end, *hdr = obj.dlfo_eh_frame;
    cursor_t c = cursor(hdr, lo, hi);
    uint8_t version = (uint8_t)rd(&c, 1), ptr_enc = (uint8_t)rd(&c, 1);
    uint8_t count_enc = (uint8_t)rd(&c, 1), table_enc = (uint8_t)rd(&c, 1);
    if (version != 1 || table_enc != (PE_DATAREL | PE_S4) || count_enc == PE_OMIT) return false;
    rd_encoded(&c, ptr_enc, (uintptr_t)hdr);
    uint64_t count = rd_encoded(&c, count_enc, (uintptr_t)hdr);
    if (c.bad || count == 0 || count > (size_t)(hi - c.p) / 8) return false;
    const uint8_t *table = c.p;
    /* the last entry whose start is <= pc */
    uint64_t first = 0, n = count;
    while (n > 1) {
        uint64_t half = n / 2;
        int32_t start;
        memcpy(&start, table + (first + half) * 8, 4);
        if ((uintptr_t)hdr + (intptr_t)start <= pc) first += half, n -= half;
        else n = half;
    }
    int32_t fde_rel;
    memcpy(&fde_rel, table + first * 8 + 4, 4);
    const uint8_t *fde = hdr + fde_rel;
    cursor_t f = cursor(fde, lo, hi);
    uint64_t len = rd(&f, 4);
    if (len == 0xffffffffu) len = rd(&f, 8);
    if (f.bad || len > (size_t)(hi - f.p)) return false;
    f.end = f.p + len;
    const uint8_t *id_at = f.p;
    uint32_t id = (uint32_t)rd(&f, 4);
    cie_t cie;
    if (f.bad || id == 0 || !parse_cie(id_at - id, lo, hi, &cie)) return false;
    uintptr_t begin = rd_encoded(&f, cie.fde_enc, 0);
    uintptr_t range = rd_encoded(&f, cie.fde_enc & 0x0f, 0);
    if (f.bad || pc < begin || pc - begin >= range) return false;
    if (cie.z) {
        uint64_t alen = rd_uleb(&f);
        if (!take(&f, alen)) return false;
        f.p += alen;
    }
    memset(row, 0, sizeof *row);
    row->signal = cie.signal;
    row_t initial;
    if (!run_cfa((cursor_t){cie.insns, cie.end, false}, &cie, begin, pc, row, row)) return false;
    initial = *row;
    if (!run_cfa(f, &cie, begin, pc, row, &initial)) return false;
    if (cie.ra != R_RA) {  /* the return address lives in another column: move it */
        row->r[R_RA] = row->r[cie.ra];
    }
    *fn_start = begin;
    return true;
}
#else
static bool row_at(uintptr_t pc, row_t *row, uintptr_t *fn_start) {
    (void)pc, (void)row, (void)fn_start;
    return false;
}
#endif

/* ---- Expressions and the step to the caller ------------------------------------------------ */

typedef struct bounds_s {
    uintptr_t lo, hi;     /* the thread's stack mapping */
} bounds_t;

/* The DWARF expressions x86_64 tables use (signal frames, realigned
 * stacks): register plus offset, dereference, constants, +, -, &. */
static NO_SANITIZE bool eval(const rule_t *e, const regs_t *regs, const bounds_t *b, bool push_cfa,
                             uintptr_t cfa, uintptr_t *out) {
    uintptr_t st[8];
    unsigned n = 0;
    if (push_cfa) st[n++] = cfa;
    cursor_t c = {(const uint8_t *)(uintptr_t)e->off, (const uint8_t *)(uintptr_t)e->off + e->len, false};
    while (c.p < c.end && !c.bad) {
        uint8_t op = (uint8_t)rd(&c, 1);
        uintptr_t v;
        if (op >= 0x70 && op <= 0x8f) {                      /* breg0..31 */
            unsigned r = op - 0x70u;
            int64_t off = rd_sleb(&c);
            if (r >= NREG || !(regs->known >> r & 1) || n == 8) return false;
            st[n++] = regs->v[r] + (uintptr_t)off;
            continue;
        }
        if (op >= 0x30 && op <= 0x4f) {                      /* lit0..31 */
            if (n == 8) return false;
            st[n++] = op - 0x30u;
            continue;
        }
        switch (op) {
        case 0x06:                                           /* deref */
            if (n == 0 || !stack_word(st[n - 1], b->lo, b->hi, &v)) return false;
            st[n - 1] = v;
            break;
        case 0x08: case 0x0a: case 0x0c: case 0x0e:          /* const1u..const8u */
            if (n == 8) return false;
            st[n++] = rd(&c, (size_t)1 << ((op - 0x08) / 2));
            break;
        case 0x09: case 0x0b: case 0x0d: case 0x0f:          /* const1s..const8s */
            if (n == 8) return false;
            st[n++] = (uintptr_t)rd_signed(&c, (size_t)1 << ((op - 0x09) / 2));
            break;
        case 0x10: case 0x11:                                /* constu, consts */
            if (n == 8) return false;
            st[n++] = op == 0x10 ? rd_uleb(&c) : (uintptr_t)rd_sleb(&c);
            break;
        case 0x23:                                           /* plus_uconst */
            if (n == 0) return false;
            st[n - 1] += rd_uleb(&c);
            break;
        case 0x1a: case 0x1c: case 0x22:                     /* and, minus, plus */
            if (n < 2) return false;
            n--;
            st[n - 1] = op == 0x1a ? st[n - 1] & st[n] : op == 0x1c ? st[n - 1] - st[n] : st[n - 1] + st[n];
            break;
        default:
            return false;
        }
    }
    if (c.bad || n == 0) return false;
    *out = st[n - 1];
    return true;
}

/* The caller's value of register r under its rule; false if unknown. */
static inline NO_SANITIZE bool rule_value(const rule_t *rule, unsigned r, const regs_t *regs, const bounds_t *b,
                                          uintptr_t cfa, uintptr_t *v) {
    uintptr_t addr;
    switch (rule->kind) {
    case RULE_NONE:   /* callee-saved registers keep their value unless a rule says */
        *v = regs->v[r];
        return (r == R_RBX || r == R_RBP || (r >= R_R12 && r <= R_R15)) && (regs->known >> r & 1);
    case RULE_SAME:
        *v = regs->v[r];
        return regs->known >> r & 1;
    case RULE_OFFSET:
        return stack_word(cfa + (uintptr_t)rule->off, b->lo, b->hi, v);
    case RULE_VAL_OFFSET:
        *v = cfa + (uintptr_t)rule->off;
        return true;
    case RULE_REG:
        *v = regs->v[rule->reg];
        return regs->known >> rule->reg & 1;
    case RULE_EXPR:
        return eval(rule, regs, b, true, cfa, &addr) && stack_word(addr, b->lo, b->hi, v);
    case RULE_VAL_EXPR:
        return eval(rule, regs, b, true, cfa, v);
    default:  /* RULE_UNDEF */
        return false;
    }
}

/* The caller's registers from the callee's row; false at the end of the
 * stack or when a rule cannot be followed. Past a call only the
 * callee-saved registers and the return address can be known (seven: the
 * common case, in place); a signal frame restores them all. */
static NO_SANITIZE bool step(const row_t *row, regs_t *regs, const bounds_t *b) {
    uintptr_t cfa;
    if (row->cfa_expr) {
        rule_t e = {.off = row->cfa_off, .len = row->cfa_len};
        if (!eval(&e, regs, b, false, 0, &cfa)) return false;
    } else {
        if (!(regs->known >> row->cfa_reg & 1)) return false;
        cfa = regs->v[row->cfa_reg] + (uintptr_t)row->cfa_off;
    }
    if (cfa <= regs->v[R_RSP] || cfa > b->hi) return false;   /* the stack must unwind upwards */
    if (!row->signal) {
        uintptr_t v[SAVED];
        uint32_t known = 1u << R_RSP;
        for (unsigned i = 0; i < SAVED; i++)
            if (rule_value(&row->r[saved_regs[i]], saved_regs[i], regs, b, cfa, &v[i])) known |= 1u << saved_regs[i];
        if (!(known >> R_RA & 1) || v[SAVED - 1] == 0) return false;   /* the outermost frame */
        for (unsigned i = 0; i < SAVED; i++) regs->v[saved_regs[i]] = v[i];
        regs->v[R_RSP] = cfa;
        regs->known = known;
        return true;
    }
    regs_t next = {.known = 1u << R_RSP};
    for (unsigned r = 0; r < NREG; r++)
        if (rule_value(&row->r[r], r, regs, b, cfa, &next.v[r])) next.known |= 1u << r;
    if (!(next.known >> R_RA & 1) || next.v[R_RA] == 0) return false;
    next.v[R_RSP] = cfa;
    *regs = next;
    return true;
}

/* ---- The cache of rows -------------------------------------------------------------------------
 * Most rows (a frame stopped at a call) put the CFA at a register plus an
 * offset, and each callee-saved register and the return address at an
 * offset from it, or leave it unchanged: such a row is cached compact (56
 * bytes, so that the cache touches few pages), by pc. The others - signal
 * frames, expressions - are worked out each time. */

#define CACHE_SLOTS 512u
typedef struct crow_s {
    uintptr_t pc;             /* 0: empty */
    uintptr_t fn_start;       /* the function's first byte (its FDE's) */
    int32_t cfa_off;
    uint8_t cfa_reg;
    uint8_t kind[SAVED];      /* the rules of saved_regs: SAME, OFFSET, VAL_OFFSET or UNDEF */
    int32_t off[SAVED];
} crow_t;
static crow_t *cache;         /* mapped on first use; the caller's lock */
static bool cache_failed;

static bool fits32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

/* row as a compact one, if it is of that kind. */
static bool compact(const row_t *row, uintptr_t pc, uintptr_t fn_start, crow_t *c) {
    if (row->cfa_expr || row->signal || !fits32(row->cfa_off)) return false;
    c->pc = pc;
    c->fn_start = fn_start;
    c->cfa_off = (int32_t)row->cfa_off;
    c->cfa_reg = row->cfa_reg;
    for (unsigned i = 0; i < SAVED; i++) {
        const rule_t *r = &row->r[saved_regs[i]];
        if (r->kind == RULE_REG || r->kind == RULE_EXPR || r->kind == RULE_VAL_EXPR || !fits32(r->off)) return false;
        /* no rule: a callee-saved register keeps its value, the return address is lost */
        c->kind[i] = r->kind != RULE_NONE ? r->kind : saved_regs[i] == R_RA ? RULE_UNDEF : RULE_SAME;
        c->off[i] = (int32_t)r->off;
    }
    return true;
}

static crow_t *cache_slot(uintptr_t pc) {
    if (!cache && !cache_failed) {
        cache = ma_os_map(CACHE_SLOTS * sizeof(crow_t));
        cache_failed = cache == NULL;
    }
    return cache ? &cache[(pc * MA_GOLDEN64) >> 55 & (CACHE_SLOTS - 1)] : NULL;
}

static NO_SANITIZE bool step_compact(const crow_t *c, regs_t *regs, const bounds_t *b) {
    if (!(regs->known >> c->cfa_reg & 1)) return false;
    uintptr_t cfa = regs->v[c->cfa_reg] + (uintptr_t)(intptr_t)c->cfa_off, v[SAVED];
    if (cfa <= regs->v[R_RSP] || cfa > b->hi) return false;
    uint32_t known = 1u << R_RSP;
    for (unsigned i = 0; i < SAVED; i++) {
        unsigned r = saved_regs[i];
        switch (c->kind[i]) {
        case RULE_SAME:
            v[i] = regs->v[r];
            known |= regs->known & (1u << r);
            break;
        case RULE_OFFSET:
            if (stack_word(cfa + (uintptr_t)(intptr_t)c->off[i], b->lo, b->hi, &v[i])) known |= 1u << r;
            break;
        case RULE_VAL_OFFSET:
            v[i] = cfa + (uintptr_t)(intptr_t)c->off[i];
            known |= 1u << r;
            break;
        default:
            v[i] = 0;
            break;
        }
    }
    if (!(known >> R_RA & 1) || v[SAVED - 1] == 0) return false;
    for (unsigned i = 0; i < SAVED; i++) regs->v[saved_regs[i]] = v[i];
    regs->v[R_RSP] = cfa;
    regs->known = known;
    return true;
}

/* Code without unwind tables: one step along the frame-pointer chain. */
static NO_SANITIZE bool fp_step(regs_t *regs, const bounds_t *b) {
    uintptr_t fp = regs->v[R_RBP], ra, saved;
    if (!(regs->known >> R_RBP & 1) || (fp & 7) || fp < regs->v[R_RSP] || fp > b->hi - 16) return false;
    if (!stack_word(fp + 8, b->lo, b->hi, &ra) || !stack_word(fp, b->lo, b->hi, &saved) || ra == 0) return false;
    regs->v[R_RA] = ra;
    regs->v[R_RBP] = saved;
    regs->v[R_RSP] = fp + 16;
    regs->known = 1u << R_RA | 1u << R_RBP | 1u << R_RSP;
    return true;
}

/* ---- The walk ------------------------------------------------------------------------------- */

static __thread uintptr_t stack_lo, stack_hi;   /* the mapping of this thread's stack */
static uintptr_t own_lo, own_hi;                /* this library, when it is a shared object */
static bool own_known;

/* When mapalloc is a shared library (preloaded), every frame in it is the
 * allocator's: the walk leaves them out. Linked into the program, its
 * frames are told by the functions the caller names. */
static void find_own_module(void) {
    own_known = true;
#if CFI
    struct dl_find_object obj;
    if (_dl_find_object((void *)(uintptr_t)&ma_stack_walk, &obj) == 0 && obj.dlfo_link_map &&
        obj.dlfo_link_map->l_name && obj.dlfo_link_map->l_name[0] != '\0') {
        own_lo = (uintptr_t)obj.dlfo_map_start;
        own_hi = (uintptr_t)obj.dlfo_map_end;
    }
#endif
}

/* skip is sorted: a binary search. */
static bool is_own(uintptr_t pc, uintptr_t fn_start, const uintptr_t *skip, size_t nskip) {
    if (pc - own_lo < own_hi - own_lo) return true;
    size_t lo = 0, hi = nskip;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (skip[mid] == fn_start) return true;
        if (skip[mid] < fn_start) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

uint32_t NO_SANITIZE MA_NOINLINE ma_stack_walk(uintptr_t *pcs, uint32_t max, const uintptr_t *skip, size_t nskip) {
    regs_t regs = {.known = 1u << R_RA | 1u << R_RSP | 1u << R_RBP | 1u << R_RBX | 0xfu << R_R12};
    __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2"
                     : "=r"(regs.v[R_RA]), "=r"(regs.v[R_RSP]), "=r"(regs.v[R_RBP]));
    __asm__ volatile("movq %%rbx, %0" : "=r"(regs.v[R_RBX]));
    __asm__ volatile("movq %%r12, %0" : "=r"(regs.v[R_R12]));
    __asm__ volatile("movq %%r13, %0" : "=r"(regs.v[R_R12 + 1]));
    __asm__ volatile("movq %%r14, %0" : "=r"(regs.v[R_R12 + 2]));
    __asm__ volatile("movq %%r15, %0" : "=r"(regs.v[R_R15]));
    if (!own_known) find_own_module();
    uintptr_t sp = regs.v[R_RSP];
    if (sp - stack_lo >= stack_hi - stack_lo && !ma_os_stack_bounds(sp, &stack_lo, &stack_hi)) return 0;
    bounds_t b = {stack_lo, stack_hi};
    uint32_t n = 0;
    bool exact = true, leading = true;    /* the first pc is not a return address */
    for (unsigned frames = 0; frames < 2 * max + 16 && n < max; frames++) {
        uintptr_t pc = regs.v[R_RA], at = exact ? pc : pc - 1, fn_start = 0;
        crow_t *hit = cache_slot(at), c;
        row_t row;
        enum { CACHED, ROW, NONE } how = CACHED;
        if (!hit || hit->pc != at) {
            if (!row_at(at, &row, &fn_start)) how = NONE;
            else if (!compact(&row, at, fn_start, &c)) how = ROW;
            else if (hit) *hit = c;
            else hit = &c;
        }
        if (how == CACHED) fn_start = hit->fn_start;
        if (leading && (fn_start == (uintptr_t)&ma_stack_walk || is_own(at, fn_start, skip, nskip))) {
            /* the walker and the allocator itself */
        } else {
            leading = false;
            pcs[n++] = at;
        }
        bool ok = how == CACHED ? step_compact(hit, &regs, &b) : how == ROW ? step(&row, &regs, &b) : fp_step(&regs, &b);
        if (!ok) break;
        exact = how == ROW && row.signal;
    }
    return n;
}

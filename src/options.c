/* options.c - the one table of options, read from MAPALLOC_* environment
 * variables once, when the allocator starts (docs/OPTIONS.md lists them).
 *
 * A value that does not parse, or lies outside the option's range, gets a
 * warning on stderr and the default: a typo never crashes a program.
 * The modes (ma_checked and friends) are derived here, before any block
 * exists, and never change afterwards.
 */
#include <stdlib.h>
#include "internal.h"

typedef struct option_desc_s {
    const char *name;   /* environment variable */
    long def, min, max; /* default and accepted range */
} option_desc_t;

static const option_desc_t option_table[MA_OPT_COUNT] = {
    [MA_OPT_SHOW_STATS] = {"MAPALLOC_SHOW_STATS", 0, 0, 1},
    [MA_OPT_PURGE_DELAY_MS] = {"MAPALLOC_PURGE_DELAY_MS", 100, -1, 3600000},
    [MA_OPT_PURGE_FREE] = {"MAPALLOC_PURGE_FREE", 0, 0, 1},
    [MA_OPT_DIRTY_MAX_MB] = {"MAPALLOC_DIRTY_MAX_MB", 32, 0, 1 << 20},
    [MA_OPT_LARGE_CACHE_MB] = {"MAPALLOC_LARGE_CACHE_MB", 64, 0, 1 << 20},
    [MA_OPT_PURGER] = {"MAPALLOC_PURGER", 1, 0, 1},
    [MA_OPT_SECURE] = {"MAPALLOC_SECURE", 0, 0, 1},
    [MA_OPT_DEBUG] = {"MAPALLOC_DEBUG", 0, 0, 1},
};

bool ma_checked, ma_secure, ma_secure_only, ma_debug, ma_valgrind;

static long option_value[MA_OPT_COUNT];

static bool parse_long(const char *s, long *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s) return false;
    while (*end == ' ' || *end == '\t') end++;
    if (*end != '\0') return false;
    *out = v;
    return true;
}

static void warn_bad(const option_desc_t *d, const char *s) {
    ma_buf_t b = {.len = 0};
    ma_buf_str(&b, "mapalloc: warning: ignoring ");
    ma_buf_str(&b, d->name);
    ma_buf_str(&b, "=");
    ma_buf_str(&b, s);
    ma_buf_str(&b, " (expected an integer from ");
    if (d->min < 0) {
        ma_buf_str(&b, "-");
        ma_buf_u64(&b, (uint64_t)-d->min);
    } else {
        ma_buf_u64(&b, (uint64_t)d->min);
    }
    ma_buf_str(&b, " to ");
    ma_buf_u64(&b, (uint64_t)d->max);
    ma_buf_str(&b, "); using ");
    ma_buf_u64(&b, (uint64_t)d->def);
    ma_buf_str(&b, "\n");
    ma_buf_flush(&b);
}

void ma_options_init(void) {
    for (int i = 0; i < MA_OPT_COUNT; i++) {
        const option_desc_t *d = &option_table[i];
        const char *s = ma_os_getenv(d->name);
        long v = d->def;
        if (s && *s) {
            if (!parse_long(s, &v) || v < d->min || v > d->max) {
                warn_bad(d, s);
                v = d->def;
            }
        }
        option_value[i] = v;
    }
    ma_os_purge_mode(option_value[MA_OPT_PURGE_FREE] != 0);
    ma_secure = option_value[MA_OPT_SECURE] != 0;
    ma_debug = option_value[MA_OPT_DEBUG] != 0;
    ma_valgrind = MA_HAVE_VALGRIND && ma_os_under_memcheck();
    ma_checked = ma_secure || ma_debug || ma_valgrind;
    ma_secure_only = ma_secure && !ma_debug && !ma_valgrind;
    if (option_value[MA_OPT_SHOW_STATS] || ma_debug) ma_os_keep_stderr();
}

long ma_option(ma_option_t o) { return option_value[o]; }

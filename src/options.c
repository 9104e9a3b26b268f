/* options.c - the one table of options, read from MAPALLOC_* environment
 * variables once, when the allocator starts (docs/OPTIONS.md lists them).
 *
 * A value that does not parse, or lies outside the option's range, gets a
 * warning on stderr and the default: a typo never crashes a program. So
 * does a MAPALLOC_ name that means nothing to us (a misspelt option would
 * otherwise be ignored without a word), with the nearest known name.
 * The modes (ma_checked and friends) are derived here, before any block
 * exists, and never change afterwards.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

typedef struct option_desc_s {
    const char *name;   /* environment variable */
    long def, min, max; /* default and accepted range */
} option_desc_t;

static const option_desc_t option_table[MA_OPT_COUNT] = {
    [MA_OPT_SHOW_STATS] = {"MAPALLOC_SHOW_STATS", 0, 0, 2},
    [MA_OPT_PURGE_DELAY_MS] = {"MAPALLOC_PURGE_DELAY_MS", 100, -1, 3600000},
    [MA_OPT_PURGE_FREE] = {"MAPALLOC_PURGE_FREE", 0, 0, 1},
    [MA_OPT_DIRTY_MAX_MB] = {"MAPALLOC_DIRTY_MAX_MB", 32, 0, 1 << 20},
    [MA_OPT_LARGE_CACHE_MB] = {"MAPALLOC_LARGE_CACHE_MB", 64, 0, 1 << 20},
    [MA_OPT_PURGER] = {"MAPALLOC_PURGER", 1, 0, 1},
    [MA_OPT_SECURE] = {"MAPALLOC_SECURE", 0, 0, 1},
    [MA_OPT_DEBUG] = {"MAPALLOC_DEBUG", 0, 0, 1},
    [MA_OPT_PROFILE_RATE] = {"MAPALLOC_PROFILE_RATE", 512 << 10, 1, (long)1 << 40},
    [MA_OPT_PROFILE_INTERVAL_MB] = {"MAPALLOC_PROFILE_INTERVAL_MB", 0, 0, 1 << 20},
};

bool ma_checked, ma_secure, ma_secure_only, ma_debug, ma_valgrind, ma_profiling, ma_diverted, ma_medium_slow;

#define PROFILE_PATH_MAX 4096u
static char profile_file[PROFILE_PATH_MAX];  /* MAPALLOC_PROFILE, made absolute */

static long option_value[MA_OPT_COUNT];

/* The options whose value is text, not a number. */
#define STATS_FILE_VAR "MAPALLOC_STATS_FILE"
static char stats_file[4096];   /* MAPALLOC_STATS_FILE, or "" */
static const char *const text_options[] = {STATS_FILE_VAR, "MAPALLOC_PROFILE"};
#define TEXT_COUNT (sizeof text_options / sizeof text_options[0])

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
    ma_buf_t b;
    ma_buf_begin(&b, "warning: ignoring ");
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
    ma_buf_end(&b);
}

/* MAPALLOC_PROFILE: kept (relative to the directory at start-up, as the
 * program may change directory before it exits); off in checked mode. */
static void profile_init(void) {
    const char *s = ma_os_getenv("MAPALLOC_PROFILE");
    if (!s || !*s) return;
    if (ma_checked) {
        ma_diag_warn("MAPALLOC_PROFILE is ignored with MAPALLOC_SECURE, MAPALLOC_DEBUG or under valgrind", NULL);
        return;
    }
    size_t n = strlen(s), dir = 0;
    if (s[0] != '/') {
        if (!ma_os_getcwd(profile_file, PROFILE_PATH_MAX)) profile_file[0] = '\0';
        dir = strlen(profile_file);
        if (dir > 0 && dir < PROFILE_PATH_MAX) profile_file[dir++] = '/';
    }
    if (dir + n >= PROFILE_PATH_MAX) {
        ma_diag_warn("MAPALLOC_PROFILE is too long; no heap profile", NULL);
        return;
    }
    memcpy(profile_file + dir, s, n + 1);
    ma_profiling = true;
}

const char *ma_option_profile_file(void) { return ma_profiling ? profile_file : NULL; }
static bool starts_with(const char *s, const char *prefix) {
    while (*prefix)
        if (*s++ != *prefix++) return false;
    return true;
}

/* Whether the "NAME=value" entry is named `name`. */
static bool entry_is(const char *entry, const char *name) {
    return starts_with(entry, name) && entry[strlen(name)] == '=';
}

/* Edit distance between the name of the entry (up to '=') and name, at
 * most 31 characters of each compared; small names only. */
static unsigned distance(const char *entry, const char *name) {
    unsigned row[32], n = 0, m = 0;
    while (name[n] && n < 31) n++;
    for (unsigned j = 0; j <= n; j++) row[j] = j;
    for (; entry[m] && entry[m] != '=' && m < 31; m++) {
        unsigned diag = row[0];
        row[0] = m + 1;
        for (unsigned j = 1; j <= n; j++) {
            unsigned up = row[j];
            unsigned best = diag + (entry[m] != name[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[n];
}

static bool known_name(const char *entry) {
    for (int i = 0; i < MA_OPT_COUNT; i++)
        if (entry_is(entry, option_table[i].name)) return true;
    for (size_t i = 0; i < TEXT_COUNT; i++)
        if (entry_is(entry, text_options[i])) return true;
    return false;
}

/* "mapalloc: warning: unknown variable MAPALLOC_SECUR (ignored; did you
 * mean MAPALLOC_SECURE?)" for each MAPALLOC_ name that is none of ours. */
static void warn_unknown(void) {
    const char *entry;
    for (size_t i = 0; (entry = ma_os_env_at(i)) != NULL; i++) {
        if (!starts_with(entry, "MAPALLOC_") || known_name(entry)) continue;
        const char *best = NULL;
        unsigned best_d = 4;  /* suggest only a name up to 3 edits away */
        for (size_t k = 0; k < MA_OPT_COUNT + TEXT_COUNT; k++) {  /* the table, then the text options */
            const char *name = k < MA_OPT_COUNT ? option_table[k].name : text_options[k - MA_OPT_COUNT];
            unsigned d = distance(entry, name);
            if (d < best_d) best_d = d, best = name;
        }
        char name[64];
        size_t n = 0;
        while (entry[n] && entry[n] != '=' && n < sizeof name - 1) name[n] = entry[n], n++;
        name[n] = '\0';
        ma_buf_t b;
        ma_buf_begin(&b, "warning: unknown variable ");
        ma_buf_str(&b, name);
        ma_buf_str(&b, " (ignored; ");
        if (best) {
            ma_buf_str(&b, "did you mean ");
            ma_buf_str(&b, best);
            ma_buf_str(&b, "?)");
        } else {
            ma_buf_str(&b, "docs/OPTIONS.md lists the options)");
        }
        ma_buf_end(&b);
    }
}

/* MAPALLOC_STATS_FILE, copied (the program may change its environment). */
static void read_stats_file(void) {
    const char *s = ma_os_getenv(STATS_FILE_VAR);
    if (!s || !*s) return;
    size_t n = strlen(s);
    if (n >= sizeof stats_file) {
        ma_diag_warn("ignoring " STATS_FILE_VAR ": longer than 4095 bytes", NULL);
        return;
    }
    memcpy(stats_file, s, n + 1);
}

const char *ma_options_stats_file(void) { return stats_file[0] ? stats_file : NULL; }

void ma_options_init(void) {
    warn_unknown();
    read_stats_file();
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
    profile_init();
    ma_diverted = ma_checked || ma_profiling;
    ma_medium_slow = ma_secure || ma_profiling;
    if (option_value[MA_OPT_SHOW_STATS] || ma_debug) ma_os_keep_stderr();
}

long ma_option(ma_option_t o) { return option_value[o]; }

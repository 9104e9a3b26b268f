/* options_check.c - how a bad MAPALLOC_ value, and a MAPALLOC_ name that is
 * no option, are reported.
 *
 *   options_check            runs itself as a child with the variables set
 *   options_check child      (the child) starts the allocator and exits
 *
 * A value that does not parse gets one warning on stderr that names the
 * variable and the default used, and ends with a newline, even when the
 * value is longer than mapalloc's 512-byte message buffer; the program
 * carries on with the default. A MAPALLOC_ name that is none of the options
 * (nor MAPALLOC_STATS_FILE, nor the heap profiler's MAPALLOC_PROFILE...)
 * gets one warning line, naming the nearest option when one is close.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "death_child.h"
#include "mapalloc.h"

static char *self;

static void run_child(void *arg)
{
    setenv("MAPALLOC_PURGE_DELAY_MS", (const char *)arg, 1);
    char *argv[] = {self, "child", NULL};
    execv(self, argv);
    _exit(4);
}

/* The child's stderr for a value of `len` bytes ('x' then digits). */
static void check_value(size_t len)
{
    char *value = malloc(len + 1), out[64], err[16384];
    memset(value, 'x', len);
    value[len] = '\0';
    int st = death_run(run_child, value, 20, out, sizeof out, err, sizeof err);
    size_t n = strlen(err);
    printf("value of %zu bytes: exit %d, %zu bytes on stderr, last: %s\n", len,
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, n, n > 40 ? err + n - 40 : err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(err, "mapalloc: warning: ignoring MAPALLOC_PURGE_DELAY_MS=xxx") == err);
    CHECK(n > 0 && err[n - 1] == '\n');
    CHECK(n >= 10 && strcmp(err + n - 10, "using 100\n") == 0);  /* the default */
    CHECK(memchr(err, '\n', n) == err + n - 1);  /* one line */
    free(value);
}

/* The child, with every MAPALLOC_ variable removed, then the "NAME=value"
 * strings of arg (NULL-terminated) set. */
static void run_child_env(void *arg)
{
    extern char **environ;
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "MAPALLOC_", 9) == 0) {
                char name[128];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                unsetenv(name);
                again = 1;
                break;
            }
    }
    for (char **set = arg; *set; set++)
        putenv(*set);
    char *argv[] = {self, "child", NULL};
    execv(self, argv);
    _exit(4);
}

static void test_unknown_names(void)
{
    puts("-- unknown MAPALLOC_ names");
    char *env[] = {"MAPALLOC_SECUR=1", "MAPALLOC_NO_SUCH_THING_AT_ALL=1",
                   "MAPALLOC_PURGE_DELAY=5", /* known ones: no word */
                   "MAPALLOC_SECURE=0", "MAPALLOC_DEBUG=0", "MAPALLOC_SHOW_STATS=0",
                   "MAPALLOC_PURGE_DELAY_MS=100", "MAPALLOC_PURGE_FREE=0",
                   "MAPALLOC_DIRTY_MAX_MB=32", "MAPALLOC_LARGE_CACHE_MB=64",
                   "MAPALLOC_PURGER=1", "MAPALLOC_STATS_FILE=/dev/null",
                   "MAPALLOC_PROFILE=/dev/null", "MAPALLOC_PROFILE_RATE=1", NULL};
    char out[64], err[4096];
    int st = death_run(run_child_env, env, 20, out, sizeof out, err, sizeof err);
    printf("child's stderr:\n%s", err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(err, "mapalloc: warning: unknown variable MAPALLOC_SECUR (ignored; did you mean "
                      "MAPALLOC_SECURE?)\n") != NULL);
    CHECK(strstr(err, "mapalloc: warning: unknown variable MAPALLOC_PURGE_DELAY (ignored; did you "
                      "mean MAPALLOC_PURGE_DELAY_MS?)\n") != NULL);
    CHECK(strstr(err, "mapalloc: warning: unknown variable MAPALLOC_NO_SUCH_THING_AT_ALL (ignored; "
                      "docs/OPTIONS.md lists the options)\n") != NULL);
    int lines = 0;
    for (char *c = err; *c; c++)
        lines += *c == '\n';
    CHECK_EQ_U(lines, 3);  /* nothing about the known names */
    char *none[] = {"MAPALLOC_SECURE=0", "MAPALLOC_PROFILE_RATE=1000", "MAPALLOC_PROFILE_INTERVAL_MB=0", NULL};
    st = death_run(run_child_env, none, 20, out, sizeof out, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(err[0] == '\0');
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "child") == 0) {
        ma_free(ma_malloc(1));
        return 0;
    }
    self = argv[0];
    check_value(20);
    check_value(600);
    check_value(5000);
    test_unknown_names();
    return check_done();
}

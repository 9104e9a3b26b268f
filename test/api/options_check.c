/* options_check.c - how a bad MAPALLOC_ value is reported.
 *
 *   options_check            runs itself as a child with the variables set
 *   options_check child      (the child) starts the allocator and exits
 *
 * A value that does not parse gets one warning on stderr that names the
 * variable and the default used, and ends with a newline, even when the
 * value is longer than mapalloc's 512-byte message buffer; the program
 * carries on with the default.
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
    return check_done();
}

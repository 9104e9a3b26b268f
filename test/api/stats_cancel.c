/* stats_cancel.c - malloc_stats (ma_stats_print) is not a cancellation
 * point: a thread cancelled while it prints still prints the whole report,
 * leaves no lock held, and is cancelled at its next cancellation point.
 * (glibc's tst-malloc-stats-cancellation checks the same of glibc.)
 *
 * fd 2 goes to a pipe that a reader thread drains into memory; a thread
 * with a cancellation request pending calls malloc_stats, then writes a
 * line with fputs (a cancellation point). The report must be whole, from
 * its first line to its class table; the fputs line must not be there;
 * malloc and the statistics must still work afterwards (an alarm turns a
 * lock left held into a failure).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ma_test.h"

static void print_stats(void)
{
#if USE_STD
    malloc_stats();
#else
    ma_stats_print();
#endif
}

static pthread_barrier_t gate;

static void *printer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&gate);   /* not a cancellation point */
    print_stats();
    fputs("this line must not be written\n", stderr);
    return NULL;
}

struct drain {
    int fd;
    char *text;
    size_t len, cap;
};

static void *reader(void *arg)
{
    struct drain *d = arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(d->fd, buf, sizeof buf)) > 0) {
        if (d->len + (size_t)n + 1 > d->cap) {
            d->cap = 2 * (d->len + (size_t)n + 1);
            d->text = realloc(d->text, d->cap);
        }
        memcpy(d->text + d->len, buf, (size_t)n);
        d->len += (size_t)n;
        d->text[d->len] = '\0';
    }
    return NULL;
}

int main(void)
{
    alarm(30);
    void *keep[64];
    for (int i = 0; i < 64; i++)
        keep[i] = A_MALLOC((size_t)(i + 1) * 100);   /* a report with several classes */
    int real_err = dup(2), fds[2];
    if (real_err < 0 || pipe(fds) != 0 || dup2(fds[1], 2) < 0)
        return 2;
    close(fds[1]);
    struct drain d = {fds[0], NULL, 0, 0};
    pthread_t r, t;
    pthread_barrier_init(&gate, NULL, 2);
    if (pthread_create(&r, NULL, reader, &d) != 0 || pthread_create(&t, NULL, printer, NULL) != 0)
        return 2;
    pthread_cancel(t);
    pthread_barrier_wait(&gate);
    void *ret = NULL;
    pthread_join(t, &ret);

    /* no lock left held: these take the allocator's locks */
    for (int i = 0; i < 64; i++)
        A_FREE(keep[i]);
    void *big = A_MALLOC(4 * MIB);
    ma_stats_t st;
    ma_stats_get(&st);
    A_FREE(big);

    dup2(real_err, 2);   /* the pipe's last writer goes: the reader ends */
    pthread_join(r, NULL);
    const char *text = d.text ? d.text : "";
    printf("stats_cancel (%s): %zu bytes of report\n", A_FLAVOUR, d.len);
    CHECK(ret == PTHREAD_CANCELED);
    CHECK(strstr(text, "mapalloc: statistics of process ") == text);
    CHECK(strstr(text, "mapalloc: thread heaps: ") != NULL);
    CHECK(strstr(text, "mapalloc: class  block-size") != NULL);
    CHECK(strstr(text, "this line must not be written") == NULL);
    CHECK(d.len > 0 && text[d.len - 1] == '\n');
    CHECK(st.blocks_allocated > 0);
    if (check_n_failed)
        fprintf(stderr, "--- report ---\n%s--- end ---\n", text);
    return check_done();
}

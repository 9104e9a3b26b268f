/* death_child.h - run a misuse in a child process and capture how it died,
 * for the death-test runners (test/death, test/pools). Header only.
 *
 * death_run(child, arg, timeout, out, out_size, err, err_size) forks,
 * runs child(arg) with stdout and stderr going to pipes (no core dump; an
 * alarm after timeout seconds), and returns the child's wait status, with
 * what it wrote to stdout in out and to stderr in err (NUL-terminated,
 * truncated to fit). A child that survives its misuse exits with 0.
 */
#ifndef MA_DEATH_CHILD_H
#define MA_DEATH_CHILD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void death_read_all(int fd, char *buf, size_t size)
{
    size_t len = 0;
    for (;;) {
        char tmp[4096];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n <= 0)
            break;
        size_t take = (size_t)n < size - 1 - len ? (size_t)n : size - 1 - len;
        memcpy(buf + len, tmp, take);
        len += take;
    }
    buf[len] = '\0';
    close(fd);
}

static int death_run(void (*child)(void *), void *arg, unsigned timeout,
                     char *out, size_t out_size, char *err, size_t err_size)
{
    int po[2], pe[2];
    if (pipe(po) != 0 || pipe(pe) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        alarm(timeout);
        child(arg);
        _exit(0); /* survived the misuse */
    }
    close(po[1]);
    close(pe[1]);
    death_read_all(po[0], out, out_size);
    death_read_all(pe[0], err, err_size);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

#endif

/* runstat - run a command, report its wall time and peak resident set size.
 *
 *   runstat [-o FILE] [-t SECONDS] [-p PRELOAD] -- command [args...]
 *
 * Forks, optionally sets LD_PRELOAD=PRELOAD for the child only, execs the
 * command in its own process group and waits for it with wait4. Then writes
 * one line to FILE (default stderr):
 *
 *   status=ok|fail|signal|timeout code=N elapsed_s=S maxrss_kib=K user_s=U sys_s=Y
 *       minflt=F majflt=M
 *
 * maxrss_kib is ru_maxrss of the child, which Linux takes as the largest of
 * the child and of the descendants it waited for (gcc's cc1, for instance).
 * With -t the whole process group is killed after SECONDS (status=timeout).
 * Exits with the child's exit code, 128+signal, or 124 on timeout, so a
 * caller can also just test the exit status. Used instead of GNU time so the
 * benchmark needs nothing but a C compiler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_alarm, got_stop;
static pid_t child;

static void on_alarm(int sig)
{
    (void)sig;
    got_alarm = 1;
}

static void on_stop(int sig)
{
    got_stop = sig;
    if (child > 0) kill(-child, sig);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

static void usage(void)
{
    fputs("usage: runstat [-o FILE] [-t SECONDS] [-p PRELOAD] -- command [args...]\n", stderr);
    exit(2);
}

static void install(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL); /* no SA_RESTART: wait4 must see EINTR */
}

static pid_t start(char **argv, const char *preload)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("runstat: fork");
        exit(2);
    }
    if (pid == 0) {
        setpgid(0, 0);
        if (preload && *preload && setenv("LD_PRELOAD", preload, 1) != 0) _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "runstat: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so kill(-pid) works at once */
    return pid;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *preload = NULL;
    unsigned timeout = 0;
    int opt;
    while ((opt = getopt(argc, argv, "+o:t:p:")) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 't': timeout = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p': preload = optarg; break;
        default: usage();
        }
    }
    if (optind >= argc) usage();

    install(SIGALRM, on_alarm);
    install(SIGINT, on_stop);
    install(SIGTERM, on_stop);
    double t0 = now_s();
    child = start(argv + optind, preload);
    if (timeout) alarm(timeout);

    int status = 0, timed_out = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(child, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("runstat: wait4");
            return 2;
        }
        if (got_alarm && !timed_out) {
            timed_out = 1;
            kill(-child, SIGKILL);
        }
    }
    double elapsed = now_s() - t0;
    if (!timed_out) kill(-child, SIGKILL); /* leftovers the command left behind */

    const char *what = "ok";
    int code = 0;
    if (timed_out) {
        what = "timeout";
        code = 124;
    } else if (WIFSIGNALED(status)) {
        what = "signal";
        code = 128 + WTERMSIG(status);
    } else if (WEXITSTATUS(status) != 0) {
        what = "fail";
        code = WEXITSTATUS(status);
    }
    FILE *f = out ? fopen(out, "w") : stderr;
    if (!f) {
        perror("runstat: output file");
        return 2;
    }
    fprintf(f, "status=%s code=%d elapsed_s=%.6f maxrss_kib=%ld user_s=%.3f sys_s=%.3f minflt=%ld majflt=%ld\n",
            what, code, elapsed, ru.ru_maxrss, tv_s(ru.ru_utime), tv_s(ru.ru_stime), ru.ru_minflt,
            ru.ru_majflt);
    if (f != stderr) fclose(f);
    return got_stop ? 128 + got_stop : code;
}

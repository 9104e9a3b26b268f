/* xfree - cross-thread frees, for instruction counts.
 *
 *   xfree ROUNDS free    collect in measure_remote_free(): a consumer thread
 *                        frees blocks a producer thread allocated
 *   xfree ROUNDS malloc  collect in measure_producer_malloc(): the producer's
 *                        mallocs, which also pay for taking back the blocks
 *                        freed by the other thread
 *
 * Each round the producer allocates BATCH blocks of 16..128 B into a buffer
 * and hands it over; the consumer frees them all and hands it back. Both
 * threads live for the whole run, so no heap is abandoned. The first WARM
 * rounds call fill() and drain() directly, outside the collected functions.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOIPA __attribute__((noipa))
enum { BATCH = 1000, WARM = 50 };

static void *buf[BATCH];
static uint8_t sizes[BATCH];
static sem_t full, empty;
static long rounds;
static const char *mode;

NOIPA static void fill(void)
{
    for (int i = 0; i < BATCH; i++) {
        buf[i] = malloc(sizes[i]);
        *(volatile char *)buf[i] = (char)i;
    }
}

NOIPA void measure_producer_malloc(void) { fill(); }

NOIPA static void drain(void)
{
    for (int i = 0; i < BATCH; i++) free(buf[i]);
}

NOIPA void measure_remote_free(void) { drain(); }

static int measuring(long r, const char *what)
{
    return r >= WARM && strcmp(mode, what) == 0;
}

static void *producer(void *arg)
{
    (void)arg;
    for (long r = 0; r < rounds + WARM; r++) {
        sem_wait(&empty);
        if (measuring(r, "malloc")) measure_producer_malloc();
        else fill();
        sem_post(&full);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (long r = 0; r < rounds + WARM; r++) {
        sem_wait(&full);
        if (measuring(r, "free")) measure_remote_free();
        else drain();
        sem_post(&empty);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atol(argv[1]) : 1000;
    mode = argc > 2 ? argv[2] : "free";
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < BATCH; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sizes[i] = (uint8_t)(16 + x % 113);
    }
    sem_init(&full, 0, 0);
    sem_init(&empty, 0, 1);
    pthread_t p, c;
    pthread_create(&p, NULL, producer, NULL);
    pthread_create(&c, NULL, consumer, NULL);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    printf("RESULT frees=%ld\n", rounds * BATCH);
    return 0;
}

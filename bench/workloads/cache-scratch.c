/* cache-scratch - passive false sharing (after Hoard's cache-scratch).
 *
 * Main allocates one small object per thread, back to back, and hands one to
 * each thread. Each thread frees the object it was given, then repeatedly
 * allocates an object of the same size, writes every byte of it many times,
 * checks it and frees it. An allocator that gives the freed block (which
 * shares a cache line with its neighbours' blocks) back to the thread makes
 * the threads fight over that line.
 */
#include "false_sharing.h"

int main(int argc, char **argv) { return false_sharing_main(argc, argv, true); }

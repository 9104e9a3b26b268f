/* cache-thrash - active false sharing (after Hoard's cache-thrash).
 *
 * Each thread repeatedly allocates a small object of its own, writes every
 * byte of it many times, checks it and frees it. An allocator that carves
 * the objects of different threads from the same cache line makes the
 * threads fight over that line.
 */
#include "false_sharing.h"

int main(int argc, char **argv) { return false_sharing_main(argc, argv, false); }

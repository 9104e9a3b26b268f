// boost.cpp - bench/fileheap, Boost.Interprocess's side: the workload of
// workload.h in P processes on one managed_mapped_file (its default
// allocator: rbtree best fit under an interprocess mutex), each process
// opening the file (open_only) as a separate program would.
//
//   boost_fileheap PROCS OPS MIX(small|mixed) [PATH]
// prints one line: boost procs mix ns_per_op mops_total
#include <boost/interprocess/managed_mapped_file.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "workload.h"

namespace bip = boost::interprocess;

static const std::size_t capacity = std::size_t(1) << 30;

struct ctx {
    const char *path;
    unsigned long ops;
    int mixed;
};

static void *slots[SLOTS];
static bip::managed_mapped_file *seg;

static void *seg_alloc(std::size_t n) { return seg->allocate(n, std::nothrow); }
static void seg_free(void *p) { seg->deallocate(p); }

static double one(int proc, void *arg)
{
    ctx *c = static_cast<ctx *>(arg);
    uint64_t seed = 1000 + uint64_t(proc);
    seg = new bip::managed_mapped_file(bip::open_only, c->path);
    WL_RUN(slots, seed + 77, c->ops / 10, c->mixed, seg_alloc, seg_free);
    wl_ready();
    double t0 = wl_now();
    WL_RUN(slots, seed, c->ops, c->mixed, seg_alloc, seg_free);
    double t = wl_now() - t0;
    delete seg;
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        std::fprintf(stderr, "usage: boost_fileheap PROCS OPS small|mixed [PATH]\n");
        return 2;
    }
    ctx c = {argc > 4 ? argv[4] : "/tmp/boost_fileheap.bench", std::strtoul(argv[2], nullptr, 0),
             std::strcmp(argv[3], "mixed") == 0};
    int procs = std::atoi(argv[1]);
    bip::file_mapping::remove(c.path);
    {
        bip::managed_mapped_file create(bip::create_only, c.path, capacity);
    }
    double t = wl_processes(procs, one, &c);
    bip::file_mapping::remove(c.path);
    if (t < 0)
        return 1;
    std::printf("boost %d %s %.1f %.2f\n", procs, argv[3], t * 1e9 / double(c.ops),
                double(c.ops) * procs / t / 1e6);
    return 0;
}

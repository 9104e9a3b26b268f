"""pybench.py - an allocation-heavy, deterministic Python workload.

Run with PYTHONMALLOC=malloc so that every Python object comes from malloc
(bypassing pymalloc's arenas). Usage: python3 pybench.py [scale]; scale 10
takes a few seconds. Each phase checks what it computed, and the program
prints one line "RESULT checksum=..." that is the same under every allocator.
"""
import json
import random
import sys


class Node:
    """A binary tree node with an instance dict (one more block per node)."""

    def __init__(self, left, right, value):
        self.left = left
        self.right = right
        self.value = value


def make_tree(depth, value):
    if depth == 0:
        return Node(None, None, value)
    return Node(make_tree(depth - 1, 2 * value), make_tree(depth - 1, 2 * value + 1), value)


def tree_sum(node):
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        total += n.value
        if n.left is not None:
            stack.append(n.left)
            stack.append(n.right)
    return total


def phase_trees(rng, scale):
    """Short-lived trees of objects, plus one long-lived tree."""
    keep = make_tree(14, 1)
    total = 0
    for _ in range(4 * scale):
        depth = rng.randint(8, 13)
        total += tree_sum(make_tree(depth, 1))
    expected = tree_sum(make_tree(14, 1))
    if tree_sum(keep) != expected:
        raise SystemExit("tree check failed")
    return total


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
         "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho"]


def phase_text(rng, scale):
    """Build text, split it, count words in dicts, join and re-split."""
    checksum = 0
    for _ in range(scale):
        words = [rng.choice(WORDS) + str(rng.randint(0, 999)) for _ in range(40000)]
        text = " ".join(words)
        counts = {}
        for w in text.split():
            counts[w] = counts.get(w, 0) + 1
        if sum(counts.values()) != len(words):
            raise SystemExit("word count check failed")
        upper = [w.upper() for w in counts]
        lines = ["%s=%d" % (w, counts[w.lower()]) for w in sorted(upper)]
        checksum += len("\n".join(lines)) + len(counts)
    return checksum


def phase_json(rng, scale):
    """Round-trip nested structures through json."""
    checksum = 0
    for i in range(scale):
        records = [{"id": j, "name": "user%d" % j, "tags": [rng.choice(WORDS) for _ in range(5)],
                    "score": rng.random(), "nested": {"a": [j, j + 1], "b": str(j)}}
                   for j in range(6000)]
        blob = json.dumps(records)
        back = json.loads(blob)
        if back[-1]["id"] != 5999 or len(back) != len(records):
            raise SystemExit("json check failed")
        checksum += len(blob) % 100003
    return checksum


def phase_sort(rng, scale):
    """Sort tuples and build sets and dicts of them."""
    checksum = 0
    for _ in range(scale):
        items = [(rng.randint(0, 1000), "k%d" % rng.randint(0, 10**6), rng.random())
                 for _ in range(50000)]
        items.sort()
        seen = set(t[1] for t in items)
        index = {t[1]: t for t in items}
        if len(index) != len(seen):
            raise SystemExit("sort check failed")
        checksum += items[0][0] + items[-1][0] + len(seen)
    return checksum


def phase_bigint(scale):
    """Big integers: every operation allocates a new number."""
    a, b = 0, 1
    for _ in range(3000 * scale):
        a, b = b, a + b
    f = 1
    for i in range(2, 800 * scale):
        f *= i
    return (a % 1000003) + (f % 1000033)


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rng = random.Random(12345)
    checksum = 0
    checksum += phase_trees(rng, scale)
    checksum += phase_text(rng, scale)
    checksum += phase_json(rng, scale)
    checksum += phase_sort(rng, scale)
    checksum += phase_bigint(scale)
    print("RESULT checksum=%d" % checksum)


if __name__ == "__main__":
    main()

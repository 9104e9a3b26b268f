#!/usr/bin/env python3
"""mapalloc's main job: an allocation-heavy, stdlib-heavy Python workload.

Deterministic: the same SCALE prints the same summary on every run, whatever
the allocator, the hash seed or the Python version (3.9+). Run it with the C
library's malloc under CPython (PYTHONMALLOC=malloc) so that every object
goes through the allocator under test:

    build/mapalloc --stats env PYTHONMALLOC=malloc python3 examples/workload.py

usage: workload.py [SCALE]   (default 1.0, about 3-8 s on one core)
"""
import collections
import dataclasses
import difflib
import hashlib
import json
import random
import re
import sys
import textwrap
import zlib
from decimal import Decimal, getcontext
from fractions import Fraction

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu "
         "nu xi omicron pi rho sigma tau upsilon phi chi psi omega malloc free "
         "page segment heap arena block span slab chunk thread purge").split()


def crc(data):
    """A stable checksum of a str or bytes."""
    if isinstance(data, str):
        data = data.encode()
    return zlib.crc32(data) & 0xFFFFFFFF


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def nested(rng, depth):
    """A random JSON-able tree: dicts, lists, strings, ints, floats."""
    kind = rng.randrange(6) if depth > 0 else rng.randrange(3, 6)
    if kind == 0:
        return {"%s_%d" % (rng.choice(WORDS), i): nested(rng, depth - 1)
                for i in range(rng.randrange(1, 6))}
    if kind == 1:
        return [nested(rng, depth - 1) for _ in range(rng.randrange(1, 7))]
    if kind == 2:
        return {"id": rng.randrange(10**9), "tags": rng.sample(WORDS, 3),
                "child": nested(rng, depth - 1)}
    if kind == 3:
        return sentence(rng, rng.randrange(1, 12))
    if kind == 4:
        return rng.randrange(-10**12, 10**12)
    return round(rng.uniform(-1e6, 1e6), 6)


def job_json(rng, n):
    total = 0
    for _ in range(n):
        doc = nested(rng, 6)
        text = json.dumps(doc, sort_keys=True)
        back = json.loads(text)
        pretty = json.dumps(back, indent=2, sort_keys=True)
        assert json.loads(pretty) == back
        total = (total * 31 + crc(text) + len(pretty)) & 0xFFFFFFFF
    return total


LOG_RE = re.compile(r"(?P<level>INFO|WARN|ERROR) \[(?P<thread>t\d+)\] "
                    r"(?P<verb>\w+) (?P<size>\d+) bytes at 0x(?P<addr>[0-9a-f]+)")


def job_regex(rng, n):
    levels = ("INFO", "WARN", "ERROR")
    lines = ["%s [t%d] %s %d bytes at 0x%x" % (
        rng.choice(levels), rng.randrange(16), rng.choice(WORDS),
        rng.randrange(1, 1 << 20), rng.randrange(1 << 47)) for _ in range(n)]
    by_level = collections.Counter()
    bytes_by_thread = collections.defaultdict(int)
    verbs = collections.defaultdict(list)
    for line in lines:
        m = LOG_RE.match(line)
        by_level[m.group("level")] += 1
        bytes_by_thread[m.group("thread")] += int(m.group("size"))
        verbs[m.group("verb")].append(m.group("addr"))
    text = "\n".join(lines)
    subbed = re.sub(r"0x[0-9a-f]+", lambda m: m.group(0)[:6].upper(), text)
    words = collections.Counter(re.findall(r"[a-z]+", text))
    summary = [sorted(by_level.items()), sorted(bytes_by_thread.items()),
               sorted((k, len(v)) for k, v in verbs.items()),
               words.most_common(10)]
    return crc(repr(summary)) ^ crc(subbed)


def job_sort(rng, n):
    keys = ["%s-%s-%06d" % (rng.choice(WORDS), rng.choice(WORDS),
                             rng.randrange(10**6)) for _ in range(n)]
    a = sorted(keys)
    b = sorted(keys, key=lambda s: (len(s), s[::-1]))
    c = sorted(set(keys), key=str.upper, reverse=True)
    return crc("|".join(a[::97])) ^ crc("|".join(b[::89])) ^ crc("|".join(c[::83]))


def job_strings(rng, n):
    parts = []
    acc = ""
    for i in range(n):
        s = sentence(rng, rng.randrange(2, 20))
        parts.append(s.title())
        acc += s[: i % 7]
        if len(acc) > 4096:
            parts.append(acc.upper()[::-1])
            acc = ""
        if i % 5 == 0:
            parts.append("-".join(s.split()).replace("a", "@"))
    joined = "\n".join(parts)
    pieces = joined.split("\n")
    return crc(joined) ^ len(pieces)


def job_churn(rng, n):
    """Dicts and sets growing and shrinking, keys of mixed sizes."""
    live = {}
    seen = set()
    total = 0
    for i in range(n):
        key = "%s:%d" % (rng.choice(WORDS), rng.randrange(n // 4 + 1))
        op = rng.randrange(10)
        if op < 6:
            live[key] = [i] * rng.randrange(1, 9) + [key * rng.randrange(1, 4)]
            seen.add(key)
        elif op < 9 or i % 1000 != 0:
            total += len(live.pop(key, ()))
            seen.discard(key)
        else:
            snapshot = dict(live)
            live = {k: v for k, v in snapshot.items() if len(v) % 2 == 0}
            seen = set(live)
            total += len(snapshot) - len(live)
    return (total * 1000003 + len(live) * 7919 + len(seen)) & 0xFFFFFFFF


@dataclasses.dataclass(order=True)
class Item:
    priority: int
    name: str
    tags: tuple = ()
    weight: float = 0.0
    notes: list = dataclasses.field(default_factory=list)


def job_dataclasses(rng, n):
    items = [Item(rng.randrange(100), sentence(rng, 2),
                  tuple(rng.sample(WORDS, 2)), round(rng.random(), 4),
                  [sentence(rng, 3) for _ in range(rng.randrange(3))])
             for _ in range(n)]
    items.sort()
    copies = [dataclasses.replace(it, priority=it.priority + 1) for it in items[::3]]
    dicts = [dataclasses.asdict(it) for it in items[::5]]
    groups = collections.defaultdict(list)
    for it in items:
        groups[it.tags[0]].append(it.name)
    return (crc(repr(items[::50])) ^ crc(repr(dicts[::20]))
            ^ crc(repr(sorted((k, len(v)) for k, v in groups.items())))
            ^ len(copies))


def job_text(rng, n):
    total = 0
    for _ in range(n):
        old = [sentence(rng, rng.randrange(3, 14)) for _ in range(40)]
        new = list(old)
        for _ in range(8):
            i = rng.randrange(len(new))
            op = rng.randrange(3)
            if op == 0:
                del new[i]
            elif op == 1:
                new.insert(i, sentence(rng, 5))
            else:
                new[i] = new[i].replace(rng.choice(WORDS), "CHANGED")
        diff = "\n".join(difflib.unified_diff(old, new, "old", "new", lineterm=""))
        ratio = difflib.SequenceMatcher(None, " ".join(old), " ".join(new)).ratio()
        wrapped = textwrap.fill(" ".join(new), width=60)
        dedented = textwrap.dedent(textwrap.indent(wrapped, "    "))
        total = (total + crc(diff) + crc(dedented) + int(ratio * 1e6)) & 0xFFFFFFFF
    return total


def job_bytes(rng, n):
    total = 0
    for i in range(n):
        chunk = "".join(sentence(rng, 50) for _ in range(rng.randrange(1, 40))).encode()
        packed = zlib.compress(chunk * 3, 6)
        assert zlib.decompress(packed) == chunk * 3
        obj = zlib.compressobj(1)
        stream = obj.compress(chunk) + obj.compress(bytes(reversed(chunk))) + obj.flush()
        plain = zlib.decompress(stream)
        h = hashlib.sha256(plain).digest() + hashlib.md5(chunk).digest()
        total ^= crc(h) + zlib.adler32(plain) + i
    return total & 0xFFFFFFFF


def job_numbers(rng, n):
    getcontext().prec = 50
    d = Decimal(0)
    f = Fraction(0)
    for i in range(1, n + 1):
        d += Decimal(rng.randrange(1, 10**6)) / Decimal(i) ** 2
        f += Fraction(rng.randrange(1, 100), rng.randrange(1, 100) * i)
        if i % 50 == 0:
            f = f.limit_denominator(10**12)
    big = 1
    for i in range(1, n // 4):
        big = big * (i | 1) % (10**200 + 7)
    return crc(str(d)) ^ crc(str(f)) ^ crc(str(big))


JOBS = [
    ("json", job_json, 4000),
    ("regex", job_regex, 40000),
    ("sort", job_sort, 90000),
    ("strings", job_strings, 40000),
    ("churn", job_churn, 250000),
    ("dataclasses", job_dataclasses, 25000),
    ("text", job_text, 220),
    ("bytes", job_bytes, 1500),
    ("numbers", job_numbers, 30000),
]


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    overall = hashlib.sha256()
    for index, (name, job, size) in enumerate(JOBS):
        rng = random.Random(1000 + index)
        result = job(rng, max(1, int(size * scale)))
        overall.update(("%s=%08x;" % (name, result)).encode())
        print("%-12s %08x" % (name, result))
    print("overall      %s" % overall.hexdigest()[:16])


if __name__ == "__main__":
    main()

"""A deterministic, allocation-heavy tour of the Python standard library.

Run by preload_python.sh and preload_stats.sh, with PYTHONMALLOC=malloc so
that every Python object is a malloc block. Everything printed to stdout is
deterministic (no addresses, times or hash-order dependence), so the output
under mapalloc must equal the output without it.

Usage: workload.py [SCALE]   (SCALE defaults to 1)
"""

import collections
import decimal
import difflib
import hashlib
import heapq
import io
import json
import re
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import zlib

SCALE = int(sys.argv[1]) if len(sys.argv) > 1 else 1
OUT = []


def emit(*parts):
    OUT.append(" ".join(str(p) for p in parts))


def digest(obj):
    if isinstance(obj, str):
        obj = obj.encode()
    return hashlib.sha256(obj).hexdigest()[:16]


class Rng:
    """A tiny LCG so that every run builds the same data."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return self.s >> 33

    def word(self):
        n = 3 + self.next() % 8
        return "".join(chr(97 + self.next() % 26) for _ in range(n))


def make_records(rng, n):
    recs = []
    for i in range(n):
        recs.append({
            "id": i,
            "name": rng.word().capitalize() + " " + rng.word().capitalize(),
            "email": "%s.%d@%s.example" % (rng.word(), i, rng.word()),
            "tags": [rng.word() for _ in range(rng.next() % 5)],
            "score": (rng.next() % 100000) / 100.0,
            "nested": {"a": [rng.next() % 1000 for _ in range(4)],
                       "b": {"c": rng.word(), "d": None, "e": i % 2 == 0}},
        })
    return recs


def part_json(rng):
    recs = make_records(rng, 20000 * SCALE)
    text = json.dumps(recs, sort_keys=True)
    back = json.loads(text)
    assert back == recs
    pretty = json.dumps(back[:200], indent=2, sort_keys=True)
    emit("json", len(text), digest(text), len(pretty), digest(pretty))
    return recs, text


def part_re(recs, text):
    email_re = re.compile(r'"email": "([a-z]+)\.(\d+)@([a-z]+)\.example"')
    found = email_re.findall(text)
    emit("re emails", len(found), digest("|".join(".".join(f) for f in found)))
    words = re.findall(r"[A-Z][a-z]+", text)
    emit("re capwords", len(words), digest(" ".join(words)))
    swapped = re.sub(r"(\w+) (\w+)", r"\2_\1",
                     " ".join(r["name"] for r in recs))
    emit("re sub", len(swapped), digest(swapped))
    parts = re.split(r"[aeiou]{2,}", swapped)
    emit("re split", len(parts), digest("/".join(parts)))
    return words


def part_collections(recs, words):
    cnt = collections.Counter(words)
    emit("counter top", cnt.most_common(5))
    by_tag = collections.defaultdict(list)
    for r in recs:
        for t in r["tags"]:
            by_tag[t].append(r["id"])
    biggest = sorted(by_tag.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]
    emit("defaultdict", len(by_tag), [(k, len(v)) for k, v in biggest])
    od = collections.OrderedDict()
    for i, w in enumerate(words):
        od[w] = i
        if len(od) > 5000:
            od.popitem(last=False)
    emit("ordereddict", len(od), digest(",".join(od)))
    dq = collections.deque(maxlen=1000)
    for w in words:
        dq.append(w)
        if len(w) % 3 == 0:
            dq.rotate(1)
    emit("deque", len(dq), digest(",".join(dq)))
    Point = collections.namedtuple("Point", "x y z")
    pts = [Point(i, i * i % 97, i * 7 % 13) for i in range(50000 * SCALE)]
    emit("namedtuple", sum(p.x * p.y - p.z for p in pts))
    chain = collections.ChainMap({"a": 1}, {"b": 2}, dict(cnt))
    emit("chainmap", len(chain), chain["a"], chain["b"])
    heap = [(r["score"], r["id"]) for r in recs]
    heapq.heapify(heap)
    emit("heapq", [heapq.heappop(heap) for _ in range(5)])


def part_sqlite(recs):
    db = sqlite3.connect(":memory:")
    db.execute("create table person(id integer primary key, name text,"
               " email text, score real, ntags integer)")
    db.execute("create table tag(person integer, tag text)")
    db.executemany("insert into person values(?,?,?,?,?)",
                   [(r["id"], r["name"], r["email"], r["score"], len(r["tags"]))
                    for r in recs])
    db.executemany("insert into tag values(?,?)",
                   [(r["id"], t) for r in recs for t in r["tags"]])
    db.execute("create index tag_tag on tag(tag)")
    db.commit()
    rows = db.execute(
        "select t.tag, count(*), round(avg(p.score), 3), max(p.name)"
        " from tag t join person p on p.id = t.person"
        " group by t.tag order by count(*) desc, t.tag limit 8").fetchall()
    emit("sqlite group", rows)
    rows = db.execute(
        "select id, name, rank() over (order by score desc, id) from person"
        " where name like '%a%' order by 3 limit 5").fetchall()
    emit("sqlite window", rows)
    total = db.execute("select count(*), sum(ntags), total(score)"
                       " from person").fetchone()
    emit("sqlite totals", total[0], total[1], "%.2f" % total[2])
    dump = "\n".join(db.iterdump())
    emit("sqlite dump", len(dump), digest(dump))
    db.close()


def part_difflib(rng):
    a = [" ".join(rng.word() for _ in range(6)) for _ in range(1500 * SCALE)]
    b = list(a)
    for i in range(0, len(b), 17):
        b[i] = b[i].upper()
    for i in range(0, len(b), 53):
        b.insert(i, "inserted line %d" % i)
    del b[100:120]
    diff = list(difflib.unified_diff(a, b, "a", "b", lineterm=""))
    emit("difflib unified", len(diff), digest("\n".join(diff)))
    sm = difflib.SequenceMatcher(None, "\n".join(a[:300]), "\n".join(b[:300]),
                                 autojunk=False)
    emit("difflib ratio", "%.6f" % sm.ratio(), len(sm.get_opcodes()))
    close = difflib.get_close_matches("abcdef", [w for l in a[:500] for w in l.split()],
                                      n=5, cutoff=0.3)
    emit("difflib close", close)


def part_decimal():
    decimal.getcontext().prec = 300
    D = decimal.Decimal
    # pi by Machin's formula, e by its series, sqrt(2).
    def arctan_inv(x):
        x = D(x)
        total = term = D(1) / x
        x2 = x * x
        n = 1
        while True:
            term /= -x2
            n += 2
            new = total + term / n
            if new == total:
                return total
            total = new
    pi = 4 * (4 * arctan_inv(5) - arctan_inv(239))
    e = D(0)
    f = D(1)
    for k in range(1, 200):
        e += 1 / f
        f *= k
    emit("decimal pi", str(pi)[:60], digest(str(pi)))
    emit("decimal e", str(e)[:60], digest(str(e)))
    emit("decimal sqrt2", digest(str(D(2).sqrt())))
    money = sum((D(i) / D(7)).quantize(D("0.01")) for i in range(20000 * SCALE))
    emit("decimal money", money)


def worker(idx, seed, results, lock):
    rng = Rng(seed)
    local = collections.Counter()
    blobs = []
    for i in range(4000 * SCALE):
        w = rng.word()
        local[w[:2]] += 1
        blobs.append((w * (1 + i % 7)).encode())
        if len(blobs) > 200:
            data = b"".join(blobs)
            blobs = [zlib.compress(data)[:16]]
    h = hashlib.sha256()
    for k, v in sorted(local.items()):
        h.update(struct.pack("<2sI", k.encode()[:2].ljust(2), v))
    with lock:
        results[idx] = (len(local), h.hexdigest()[:16])


def part_threads():
    results = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, args=(i, 1000 + i, results, lock))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in sorted(results):
        emit("thread", i, *results[i])


def part_subprocess():
    child = ("import sys, json\n"
             "data = json.load(sys.stdin)\n"
             "print(json.dumps(sorted(data, key=lambda r: r['k'])[:3]))\n"
             "print(sum(r['v'] for r in data))\n")
    payload = json.dumps([{"k": "key%05d" % ((i * 7919) % 10007), "v": i}
                          for i in range(10007)])
    res = subprocess.run([sys.executable, "-c", child], input=payload,
                         capture_output=True, text=True, check=True)
    emit("subprocess", res.stdout.strip().replace("\n", " | "))
    res = subprocess.run(["sh", "-c", "printf '%s\\n' c b a | sort"],
                         stdout=subprocess.PIPE, text=True, check=True)
    emit("subprocess sh", res.stdout.split())


def part_text(recs):
    buf = io.StringIO()
    for r in recs[:3000]:
        buf.write(textwrap.fill(" ".join([r["name"]] + r["tags"] * 5), width=40))
        buf.write("\n")
    s = buf.getvalue()
    emit("textwrap", len(s), digest(s))
    comp = zlib.compress(s.encode(), 9)
    assert zlib.decompress(comp) == s.encode()
    emit("zlib", len(comp))


def main():
    rng = Rng(42)
    recs, text = part_json(rng)
    words = part_re(recs, text)
    part_collections(recs, words)
    part_sqlite(recs)
    part_difflib(rng)
    part_decimal()
    part_threads()
    part_subprocess()
    part_text(recs)
    sys.stdout.write("\n".join(OUT) + "\n")
    sys.stdout.write("total %d lines, digest %s\n" % (len(OUT), digest("\n".join(OUT))))


if __name__ == "__main__":
    main()

"""gen_ps.py - a PostScript document for ghostscript to render (bench/run.sh).

Usage: python3 gen_ps.py SCALE > doc.ps. SCALE pages, each with a few
thousand filled and stroked paths (curves, polygons, dashes, clipping),
text in several fonts and sizes, and gradients drawn as strips: the mix of
small, medium and large allocations that a rasterizer makes (paths,
glyph caches, band buffers). Deterministic: the same SCALE gives the same
file.
"""
import random
import sys

FONTS = ["Times-Roman", "Helvetica-Bold", "Courier", "Times-Italic", "Helvetica"]
WORDS = ("allocator segment page block heap thread purge arena slab span "
         "malloc free realloc memory cache remote local fast slow").split()


def page(rng, n):
    out = ["%%Page: {0} {0}".format(n), "gsave"]
    for _ in range(900):
        out.append("%.3f %.3f %.3f setrgbcolor" % (rng.random(), rng.random(), rng.random()))
        x, y = rng.uniform(0, 612), rng.uniform(0, 792)
        out.append("newpath %.1f %.1f moveto" % (x, y))
        for _ in range(rng.randint(2, 8)):
            out.append("%.1f %.1f %.1f %.1f %.1f %.1f curveto" % tuple(rng.uniform(0, 700) for _ in range(6)))
        out.append("closepath " + ("fill" if rng.random() < 0.5 else "%.1f setlinewidth stroke" % rng.uniform(0.2, 4)))
    for _ in range(120):
        out.append("/%s findfont %d scalefont setfont" % (rng.choice(FONTS), rng.randint(6, 40)))
        out.append("%.1f %.1f moveto (%s) show" % (rng.uniform(0, 550), rng.uniform(0, 780),
                                                     " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))))
    for k in range(200):
        out.append("%.3f setgray %.1f 0 3 792 rectfill" % (k / 200.0, k * 3.06))
    out += ["grestore", "showpage"]
    return out


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    rng = random.Random(20261202)
    lines = ["%!PS-Adobe-3.0", "%%Pages: {}".format(scale), "%%EndComments"]
    for n in range(1, scale + 1):
        lines += page(rng, n)
    lines.append("%%EOF")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

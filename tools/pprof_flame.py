#!/usr/bin/env python3
"""pprof_flame.py - a flame graph (SVG) from `go tool pprof -raw` output.

    go tool pprof -raw PROFILE | python3 tools/pprof_flame.py [INDEX] [TITLE] > flame.svg

INDEX is the sample type to draw (inuse_space, alloc_space, ...; default:
the profile's default, marked [dflt]). Each box is a function; its width is
the share of INDEX of the samples whose stacks pass through it, callers
below callees. Frames pprof could not name show as [file]. `go tool pprof
-http` draws the same interactively; this one needs nothing but python3.
"""
import html
import re
import sys
import zlib

WIDTH, ROW, FONT = 1200, 17, 11


def parse(lines, index):
    """(stacks, unit): stacks is a list of (value, [frames root first])."""
    section, header, col, unit = None, None, None, ""
    samples, locs, maps, last = [], {}, {}, None
    for line in lines:
        line = line.rstrip("\n")
        if line in ("Samples:", "Locations", "Mappings"):
            section = line
            continue
        if section == "Samples:":
            if header is None:
                header = line.split()
                names = [h.split("/")[0] for h in header]
                if index is None:
                    col = next((i for i, h in enumerate(header) if h.endswith("[dflt]")), len(header) - 1)
                else:
                    col = names.index(index)
                unit = header[col].split("/")[1].replace("[dflt]", "")
                continue
            m = re.match(r"^\s*([-\d\s]+):\s*([\d\s]*)$", line)
            if m:
                values = m.group(1).split()
                samples.append((int(values[col]), [int(x) for x in m.group(2).split()]))
        elif section == "Locations":
            # "ID: ADDR M=MAPPING [FUNCTION FILE:LINE s=N]", then a line per
            # inlined caller; a line without a function has two fields
            m = re.match(r"^\s*(\d+): (0x[0-9a-f]+) M=(\d+)\s*(.*)$", line)
            if m:
                last = int(m.group(1))
                fields = m.group(4).split()
                locs[last] = {"map": int(m.group(3)), "funcs": fields[:1] if len(fields) >= 3 else []}
            elif last is not None and len(line.split()) >= 3:
                locs[last]["funcs"].append(line.split()[0])
        elif section == "Mappings":
            m = re.match(r"^(\d+): \S+ (\S+)", line)
            if m:
                maps[int(m.group(1))] = m.group(2).rsplit("/", 1)[-1]
    stacks = []
    for value, ids in samples:
        if value <= 0:
            continue
        frames = []
        for i in ids:   # leaf first
            loc = locs.get(i, {"map": 0, "funcs": []})
            frames.extend(loc["funcs"] or ["[%s]" % maps.get(loc["map"], "?")])
        stacks.append((value, frames[::-1]))
    return stacks, unit


def tree(stacks):
    root = {"name": "all", "value": 0, "kids": {}}
    for value, frames in stacks:
        node = root
        node["value"] += value
        for f in frames:
            node = node["kids"].setdefault(f, {"name": f, "value": 0, "kids": {}})
            node["value"] += value
    return root


def depth(node, least):
    """Levels holding a box at least `least` wide (the others are not drawn)."""
    return 1 + max((depth(k, least) for k in node["kids"].values() if k["value"] >= least), default=0)


def fmt(v, unit):
    if unit != "bytes":
        return "%d" % v
    for u in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or u == "GiB":
            return ("%.0f %s" if u == "B" else "%.1f %s") % (v, u)
        v /= 1024.0


def render(root, title, unit):
    rows = depth(root, max(root["value"], 1) / (WIDTH - 20))
    height = (rows + 2) * ROW + 10
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="%d">'
           % (WIDTH, height, FONT),
           '<rect width="100%" height="100%" fill="#fdfdf6"/>',
           '<text x="%d" y="%d" text-anchor="middle" font-size="%d">%s</text>'
           % (WIDTH // 2, ROW, FONT + 2, html.escape(title))]
    scale = (WIDTH - 20) / max(root["value"], 1)

    def draw(node, x, level):
        w = node["value"] * scale
        if w < 1:
            return
        y = height - (level + 1) * ROW - 5
        h = zlib.crc32(node["name"].encode())
        color = "rgb(%d,%d,%d)" % (205 + h % 50, 80 + (h >> 8) % 120, 40 + (h >> 16) % 50)
        label = "%s (%s, %.1f%%)" % (node["name"], fmt(node["value"], unit), 100.0 * node["value"] / max(root["value"], 1))
        text = node["name"]
        fit = int(w / (FONT * 0.62))
        if len(text) > fit:
            text = text[:fit - 2] + ".." if fit > 3 else ""
        out.append('<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#fdfdf6"/>'
                   '<text x="%.1f" y="%d">%s</text></g>'
                   % (html.escape(label), x, y, w, ROW - 1, color, x + 3, y + ROW - 5, html.escape(text)))
        for kid in sorted(node["kids"].values(), key=lambda k: -k["value"]):
            draw(kid, x, level + 1)
            x += kid["value"] * scale

    draw(root, 10, 0)
    out.append("</svg>")
    return "\n".join(out)


def main():
    index = sys.argv[1] if len(sys.argv) > 1 else None
    stacks, unit = parse(sys.stdin, index)
    title = sys.argv[2] if len(sys.argv) > 2 else "%s: %s" % (index or "default", fmt(sum(v for v, _ in stacks), unit))
    print(render(tree(stacks), title, unit))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Draws the CSV of scripts/bench-rss.sh as an SVG (standard library only): VmRSS and RssAnon
in MB on the left axis, the server's Encrypt rate (requests/s, from GET /metrics) on the right,
the 100 MB target and the end of the load marked.
    python3 scripts/plot-rss.py IN.csv OUT.svg [TITLE]"""
import csv
import sys
from xml.sax.saxutils import escape

W, H = 900, 420
L, R, T, B = 70, 80, 40, 50  # margins


def nice_max(v, steps=(1, 2, 2.5, 5, 10)):
    if v <= 0:
        return 1.0
    mag = 10 ** (len(str(int(v))) - 1)
    for s in steps:
        if v <= s * mag:
            return s * mag
    return 10 * mag


def main():
    src, dst = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "Server RSS over time"
    rows = list(csv.DictReader(open(src)))
    t = [float(r["seconds"]) for r in rows]
    rss = [float(r["vmrss_mb"]) for r in rows]
    anon = [float(r["rssanon_mb"]) for r in rows]
    total = [float(r["encrypts_total"]) for r in rows]
    rate = [0.0] + [
        max(0.0, (total[i] - total[i - 1]) / max(t[i] - t[i - 1], 1e-9)) for i in range(1, len(t))
    ]
    load_end = next((t[i] for i, r in enumerate(rows) if r["phase"] == "after"), None)
    tmax = max(t) or 1.0
    ymax = nice_max(max(max(rss), 100.0) * 1.1)
    rmax = nice_max(max(rate) * 1.1)
    pw, ph = W - L - R, H - T - B

    def x(v):
        return L + pw * v / tmax

    def y(v):
        return T + ph * (1 - v / ymax)

    def yr(v):
        return T + ph * (1 - v / rmax)

    def path(xs, ys, f):
        return " ".join(f"{x(a):.1f},{f(b):.1f}" for a, b in zip(xs, ys))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]
    for i in range(6):  # grid and left/right ticks
        v = ymax * i / 5
        out.append(
            f'<line x1="{L}" x2="{L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
            f'<text x="{L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>'
            f'<text x="{L + pw + 6}" y="{y(v) + 4:.1f}" fill="#888">{rmax * i / 5:,.0f}</text>'
        )
    for i in range(11):
        v = tmax * i / 10
        out.append(f'<text x="{x(v):.1f}" y="{T + ph + 16}" text-anchor="middle">{v:.0f}</text>')
    out += [
        f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>',
        f'<text x="{L + pw / 2}" y="{H - 12}" text-anchor="middle">seconds</text>',
        f'<text transform="translate(18,{T + ph / 2}) rotate(-90)" text-anchor="middle">RSS, MB</text>',
        f'<text transform="translate({W - 14},{T + ph / 2}) rotate(90)" text-anchor="middle" '
        f'fill="#888">Encrypt requests/s</text>',
        f'<line x1="{L}" x2="{L + pw}" y1="{y(100):.1f}" y2="{y(100):.1f}" stroke="#c00" '
        f'stroke-dasharray="6,4"/>',
        f'<text x="{L + 4}" y="{y(100) - 4:.1f}" fill="#c00">100 MB target</text>',
        f'<polyline fill="none" stroke="#bbb" stroke-width="1" points="{path(t, rate, yr)}"/>',
        f'<polyline fill="none" stroke="#e69500" stroke-width="1.5" points="{path(t, anon, y)}"/>',
        f'<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{path(t, rss, y)}"/>',
    ]
    if load_end is not None:
        out.append(
            f'<line x1="{x(load_end):.1f}" x2="{x(load_end):.1f}" y1="{T}" y2="{T + ph}" '
            f'stroke="#444" stroke-dasharray="2,3"/>'
            f'<text x="{x(load_end) - 4:.1f}" y="{T + 14}" text-anchor="end">load stops</text>'
        )
    lx, ly = L + 12, T + 16
    for i, (name, colour) in enumerate(
        [("VmRSS", "#1f5fbf"), ("RssAnon", "#e69500"), ("Encrypt req/s (right axis)", "#bbb")]
    ):
        out.append(
            f'<line x1="{lx}" x2="{lx + 20}" y1="{ly + 16 * i + 14}" y2="{ly + 16 * i + 14}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="{lx + 26}" y="{ly + 16 * i + 18}">{escape(name)}</text>'
        )
    peak = max(rss)
    out.append(
        f'<text x="{L + pw - 6}" y="{T + 16}" text-anchor="end">peak VmRSS {peak:.1f} MB; '
        f'last {rss[-1]:.1f} MB</text>'
    )
    out.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

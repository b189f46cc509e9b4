#!/usr/bin/env python3
"""Draws the 64x64 icons of the desk's stock apps (caplets/desk-*/icon.png).

Only the standard library: pixels are drawn by hand and written as an
RGBA PNG with zlib and struct. Run from the repository root:
    python3 scripts/desk-icons.py
"""
import math
import struct
import zlib

N = 64


def png(pixels):
    raw = b"".join(b"\0" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", N, N, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def canvas():
    return [[(0, 0, 0, 0) for _ in range(N)] for _ in range(N)]


def rect(p, x0, y0, x1, y1, c):
    for y in range(max(0, y0), min(N, y1)):
        for x in range(max(0, x0), min(N, x1)):
            p[y][x] = c


def line(p, x0, y0, x1, y1, w, c):
    """A thick segment: every pixel within w/2 of it."""
    for y in range(N):
        for x in range(N):
            dx, dy = x1 - x0, y1 - y0
            t = max(0.0, min(1.0, ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy)))
            if math.hypot(x - (x0 + t * dx), y - (y0 + t * dy)) <= w / 2:
                p[y][x] = c


def disc(p, cx, cy, r, c):
    for y in range(N):
        for x in range(N):
            if math.hypot(x + 0.5 - cx, y + 0.5 - cy) <= r:
                p[y][x] = c


def editor():
    p = canvas()
    rect(p, 10, 4, 50, 60, (40, 40, 48, 255))       # page outline
    rect(p, 12, 6, 48, 58, (255, 255, 255, 255))    # page
    for y in range(14, 52, 8):
        rect(p, 17, y, 43, y + 3, (60, 110, 200, 255))  # lines of text
    line(p, 56, 20, 30, 50, 8, (240, 150, 30, 255))  # pencil
    line(p, 30, 50, 26, 56, 4, (40, 40, 48, 255))    # its tip
    return p


def notes(accent=(250, 215, 60, 255), fold=(220, 180, 40, 255)):
    p = canvas()
    rect(p, 6, 6, 58, 58, accent)                     # sticky note
    for i in range(14):                               # folded corner
        rect(p, 58 - 14 + i, 58 - i - 1, 58, 58 - i, (0, 0, 0, 0))
        rect(p, 58 - 14, 58 - i - 1, 58 - 14 + i, 58 - i, fold)
    for y in (18, 28, 38):
        rect(p, 14, y, 50, y + 3, (120, 100, 40, 255))
    rect(p, 14, 48, 36, 51, (120, 100, 40, 255))
    return p


def clock():
    p = canvas()
    disc(p, 32, 32, 30, (30, 60, 110, 255))          # rim
    disc(p, 32, 32, 26, (245, 248, 255, 255))        # face
    for h in range(12):
        a = h * math.pi / 6
        disc(p, 32 + 21 * math.sin(a), 32 - 21 * math.cos(a), 2, (30, 60, 110, 255))
    line(p, 32, 32, 32 - 11, 32 - 7, 5, (20, 20, 30, 255))   # hour hand, 10
    line(p, 32, 32, 32 + 15, 32 - 10, 3, (20, 20, 30, 255))  # minute hand, 2
    disc(p, 32, 32, 3, (210, 50, 40, 255))
    return p


def hostile():
    # A look-alike of the notes icon (Granma's rule 1), one shade off.
    return notes(accent=(248, 212, 64, 255), fold=(218, 176, 44, 255))


for app, draw in [("editor", editor), ("notes", notes), ("clock", clock), ("hostile", hostile)]:
    with open(f"caplets/desk-{app}/icon.png", "wb") as f:
        f.write(png(draw()))

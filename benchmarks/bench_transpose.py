"""The loader's transposing copy alone: numpy's ways of turning gathered int8 columns into rows of X.

The loader gathers a row group's columns side by side (``buf``: columns × rows) and copies them into the
row-major matrix in tiles of rows. This times that copy in CPU ns per byte for several tile shapes, with
``np.copyto`` on the transposed view, with 2 or 4 columns packed into one wide element first (numpy shifts
and ors, per tile), and Arrow's ``RecordBatch.to_tensor(row_major=True)``; best of 3 each. Then what a
column-major matrix would cost instead: one pass of LightGBM's float32 row blocks from each layout.

    .venv/bin/python benchmarks/bench_transpose.py
    .venv/bin/python benchmarks/bench_transpose.py --native   # also a C kernel (needs cc), see below

``--native`` compiles ``benchmarks/native_transpose.c`` (SSE2 16 × 16 byte-block transposes, called through
ctypes) for a few tile heights and times it on the same copy, from the gathered buffer and straight from
separate column arrays (what a loader without the gather would hand it), with ``-O2`` and with
``-O3 -march=native``. Benchmark only: numerflow ships no native code.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

ROWS, COLS, WIDTH = 100_000, 392, 780  # a row group of the 1 M x 780 benchmark file, ~half its columns


def _tiles(X: np.ndarray, buf: np.ndarray, t: int, c: int, copyto: bool) -> None:
    for a in range(0, ROWS, t):
        for j in range(0, COLS, c):
            k = min(j + c, COLS)
            if copyto:
                np.copyto(X[a : a + t, j:k].T, buf[j:k, a : a + t])
            else:
                X[a : a + t, j:k] = buf[j:k, a : a + t].T


def _packed(X: np.ndarray, buf: np.ndarray, k: int, t: int = 4096) -> None:
    wide = {2: np.uint16, 4: np.uint32}[k]
    Xw, u = X.view(wide), buf.view(np.uint8)
    packed, part = np.empty((COLS // k, t), wide), np.empty(t, wide)
    for a in range(0, ROWS, t):
        n = min(a + t, ROWS) - a
        for g in range(COLS // k):
            out = packed[g, :n]
            np.copyto(out, u[g * k, a : a + n], casting="unsafe")
            for m in range(1, k):
                np.copyto(part[:n], u[g * k + m, a : a + n], casting="unsafe")
                np.left_shift(part[:n], 8 * m, out=part[:n])
                np.bitwise_or(out, part[:n], out=out)
        Xw[a : a + n, : COLS // k] = packed[:, :n].T


_SWAR = {  # 8 x 8 byte-block transpose in uint64 words: (shift, mask) per stage
    4: (np.uint64(32), np.uint64(0x00000000FFFFFFFF)),
    2: (np.uint64(16), np.uint64(0x0000FFFF0000FFFF)),
    1: (np.uint64(8), np.uint64(0x00FF00FF00FF00FF)),
}


def _swar(X: np.ndarray, buf: np.ndarray, chunk: int = 4096) -> None:
    """Each 8 columns × 8 rows as eight uint64 words transposed with shifts, xors and masks (three
    stages), all column groups of a chunk of rows at once, then written as 8-byte pieces of X's rows."""
    groups, cols = COLS // 8, COLS // 8 * 8
    words = buf[:cols].view(np.uint64).reshape(groups, 8, ROWS // 8)
    a_all, t_all = np.empty((groups, 8, chunk // 8), np.uint64), np.empty((groups, chunk // 8), np.uint64)
    for c0 in range(0, ROWS, chunk):
        j0, j1 = c0 // 8, min(c0 + chunk, ROWS) // 8
        a, t = a_all[:, :, : j1 - j0], t_all[:, : j1 - j0]
        np.copyto(a, words[:, :, j0:j1])
        for step in (4, 2, 1):
            shift, mask = _SWAR[step]
            for i in (i for i in range(8) if not i & step):
                x, y = a[:, i], a[:, i + step]
                np.right_shift(x, shift, out=t)
                np.bitwise_xor(t, y, out=t)
                np.bitwise_and(t, mask, out=t)
                np.bitwise_xor(y, t, out=y)
                np.left_shift(t, shift, out=t)
                np.bitwise_xor(x, t, out=x)
        dst = np.ndarray((j1 - j0, 8, groups), np.uint64, X, c0 * WIDTH, (8 * WIDTH, WIDTH, 8))
        np.copyto(dst, a.transpose(2, 1, 0))


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        c = time.process_time()
        fn()
        best = min(best, time.process_time() - c)
    return best / (ROWS * COLS) * 1e9


def _consumers(n: int = 1_000_000, width: int = WIDTH) -> None:
    """What a column-major matrix would cost its consumers: LightGBM's float32 row blocks (32 MiB each, as
    ``modeling/estimators.py`` builds them) from a row-major and from a column-major int8 matrix."""
    C = np.random.default_rng(1).integers(0, 5, (n, width), dtype=np.int8)
    F = np.asfortranarray(C)
    rows = (32 << 20) // (4 * width)

    def blocks(X: np.ndarray) -> None:
        for a in range(0, n, rows):
            np.asarray(X[a : a + rows], dtype=np.float32, order="C")  # what LightGBM's push_rows needs

    print(f"\n{n:,} × {width} int8 as C-ordered float32 row blocks of {rows:,} rows (one pass, best of 2)\n")
    print("| matrix | CPU s |\n|---|---:|")
    for name, X in (("row-major (numerflow's)", C), ("column-major (pandas' `to_numpy()`)", F)):
        best = min(_timed(lambda X=X: blocks(X)) for _ in range(2))
        print(f"| {name} | {best:.2f} |")


def _timed(fn: Callable[[], object]) -> float:
    c = time.process_time()
    fn()
    return time.process_time() - c


def _native(X: np.ndarray, buf: np.ndarray, expect: np.ndarray) -> list[tuple[float, str]]:
    """The C kernel of ``native_transpose.c``, compiled here, from the gathered buffer and from separate
    column arrays."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("--native: no C compiler (cc) on PATH; skipped")
        return []
    src = Path(__file__).with_name("native_transpose.c")
    cols = [np.array(row) for row in buf]  # each column in its own allocation, as Arrow's buffers are
    rows: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for flags in (["-O2"], ["-O3", "-march=native"]):
            for tile in (64, 256, 1024, 4096):
                lib = Path(tmp) / f"k{tile}{len(flags)}.so"
                cmd = [cc, *flags, f"-DTILE={tile}", "-shared", "-fPIC", "-o", str(lib), str(src)]
                subprocess.run(cmd, check=True)
                f = ctypes.CDLL(str(lib)).nf_gather_t
                f.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_ssize_t]
                f.argtypes += [ctypes.c_ssize_t]
                f.restype = None
                for name, arrays in (("gathered buffer", list(buf)), ("separate columns", cols)):
                    ptrs = np.array([a.ctypes.data for a in arrays], dtype=np.intp)
                    X[:] = 1
                    ns = _best(lambda f=f, ptrs=ptrs: f(X.ctypes.data, WIDTH, ptrs.ctypes.data, COLS, ROWS))
                    assert np.array_equal(X[:, :COLS], expect) and (X[:, COLS:] == 1).all()
                    how = f"C, {' '.join(flags)}, tiles of {tile:,} rows, from the {name}"
                    rows.append((ns, how))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--native", action="store_true", help="also time the C kernel (needs cc)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    buf = rng.integers(0, 5, (COLS, ROWS), dtype=np.int8)
    X = np.ones((ROWS, WIDTH), np.int8)
    expect = buf.T
    rows = []
    for t in (256, 1024, 4096, 16384):
        for c in (32, 128, COLS):
            for copyto in (False, True):
                how = "np.copyto(X[tile].T, buf[tile])" if copyto else "X[tile] = buf[tile].T"
                ns = _best(lambda t=t, c=c, copyto=copyto: _tiles(X, buf, t, c, copyto))
                assert np.array_equal(X[:, :COLS], expect)
                rows.append((ns, f"{how}, tiles of {t:,} rows × {c} columns"))
    for k in (2, 4):
        ns = _best(lambda k=k: _packed(X, buf, k))
        assert np.array_equal(X[:, :COLS], expect)
        rows.append((ns, f"{k} columns packed into uint{8 * k} first, then tiles of 4,096 rows"))
    assert ROWS % 8 == 0 and COLS % 8 == 0
    ns = _best(lambda: _swar(X, buf))
    assert np.array_equal(X[:, :COLS], expect)
    rows.append(
        (ns, "8 × 8 byte blocks as uint64 words, transposed with shifts and masks (SWAR), 4,096 rows")
    )
    flat = np.empty_like(buf)
    rows.append(
        (_best(lambda: np.copyto(flat, buf)), "reference: a plain copy of the same bytes (`np.copyto`)")
    )
    if args.native:
        rows += _native(X, buf, expect)
    batch = pa.RecordBatch.from_arrays([pa.array(col) for col in buf], names=[f"c{j}" for j in range(COLS)])
    rows.append(
        (_best(lambda: batch.to_tensor(row_major=True)), "Arrow `RecordBatch.to_tensor(row_major=True)`")
    )
    print(
        f"{ROWS:,} rows × {COLS} int8 columns into a {WIDTH}-column row-major matrix; "
        "CPU ns per byte, best of 3\n"
    )
    print("| transposing copy | ns / byte |\n|---|---:|")
    for ns, what in sorted(rows):
        print(f"| {what} | {ns:.2f} |")
    _consumers()
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; numpy {np.__version__}")
    print(f"command: `.venv/bin/python benchmarks/bench_transpose.py{' --native' if args.native else ''}`")


if __name__ == "__main__":
    main()

"""Benchmark: Signals scoring of one day for K submissions, numerflow.metrics.signals vs numerai-tools.

A universe of TICKERS tickers (Numerai: ~7,200 live), NEUTRALIZERS neutralizer columns (Numerai: ~200),
K submissions: Alpha and MPC of the K submissions on one target, with numerai-tools 0.7
(``alpha``, ``meta_portfolio_contribution``) and with numerflow (the same rules on aligned arrays). Prints
the time of each (best of REPEATS) and the largest difference; run by hand, figures in docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_signals_scoring.py [--tickers 7200 --neutralizers 200 --subs 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from numerai_tools import scoring as nt

from numerflow.metrics.signals import alpha, meta_portfolio_contribution


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickers", type=int, default=7200)
    ap.add_argument("--neutralizers", type=int, default=200)
    ap.add_argument("--subs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, m, k = args.tickers, args.neutralizers, args.subs
    preds = rng.random((n, k))
    neut = rng.standard_normal((n, m)) / np.sqrt(n)
    weights = rng.random(n) + 0.1
    target = np.round(rng.random(n) * 4) / 4
    stakes = rng.random(k) * 100
    idx = pd.Index([f"T{i:05d} US" for i in range(n)])
    p = pd.DataFrame(preds, index=idx, columns=[f"s{j}" for j in range(k)])
    nn, v, t = pd.DataFrame(neut, index=idx), pd.Series(weights, index=idx), pd.Series(target, index=idx)
    s = pd.Series(stakes, index=p.columns)

    t_nt, (a_nt, m_nt) = best(
        lambda: (nt.alpha(p, nn, v, t), nt.meta_portfolio_contribution(p, s, nn, v, t)), args.repeats
    )
    t_nf, (a_nf, m_nf) = best(
        lambda: (
            alpha(preds, neut, weights, target),
            meta_portfolio_contribution(preds, stakes, neut, weights, target),
        ),
        args.repeats,
    )
    diff = max(np.abs(a_nf - a_nt.to_numpy()).max(), np.abs(m_nf - m_nt.to_numpy()).max())
    print(f"Signals scoring, one day: {n} tickers x {m} neutralizers x {k} submissions (Alpha + MPC)")
    print(f"  numerai-tools 0.7: {t_nt * 1000:8.1f} ms")
    print(f"  numerflow:         {t_nf * 1000:8.1f} ms  ({t_nt / t_nf:.1f}x)")
    print(f"  largest difference: {diff:.2e}")


if __name__ == "__main__":
    main()

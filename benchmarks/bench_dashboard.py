"""Benchmark: time to a fully rendered dashboard page in headless Chromium, plus the dashboard screenshots.

Builds the browser tests' project (tests/e2e/dashboard_seed.py: simulator data, real models, real rounds,
synced scores), serves it with the real service under uvicorn on 127.0.0.1, and measures in Chromium:

* overview, cold: a new browser context (empty cache, logged in through the API) loads ``/`` until the
  load event (HTML, CSS, JS done; the sparklines are server-rendered SVG, so they are drawn by then);
* overview, warm: the same page again with the static files cached (a user coming back);
* the same two on a large database: 100 model slots x 500 rounds of CORR/MMC/BMC (150,000 score rows,
  inserted directly) and a payout per slot and round;
* model page: until plotly.js (the vendored basic bundle, 1.2 MB, 395 kB gzipped; 4.8 MB before) has
  drawn every chart: the page marks ``numerflow:charts-drawn`` when it has, and that mark is the time;
* the peer: ``GET /api/overview``, the JSON the overview is rendered from, fetched by the same browser
  context (no rendering): what the page costs beyond its data.

Each figure is the median (and the worst) of ``--runs`` loads. With ``--screenshots DIR`` it also saves
PNGs of the main pages (1366x800, a laptop screen). Prints a Markdown table and the command.

    .venv/bin/python benchmarks/bench_dashboard.py [--runs 15] [--screenshots docs/screenshots]
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from dashboard_seed import PASSWORD, seed_project  # noqa: E402
from dashboard_server import CHROMIUM_ARGS, serve  # noqa: E402

VIEWPORT = {"width": 1366, "height": 800}


def fill_large(db_url: str, slots: int, rounds: int) -> None:
    """``slots`` model slots x ``rounds`` resolved rounds of CORR/MMC/BMC and payouts, inserted in bulk."""
    import numpy as np
    from sqlalchemy import insert

    from numerflow.service import accounts
    from numerflow.store import open_database, session_scope
    from numerflow.store.tables.tournament import Payout, Round, Score, Submission

    engine = open_database(db_url)
    rng = np.random.default_rng(0)
    first, now = 500, datetime.now(UTC)
    with session_scope(engine) as s:
        s.execute(
            insert(Round),
            [
                {"number": first + r, "status": "complete", "open_time": now - timedelta(days=rounds - r)}
                for r in range(rounds)
            ],
        )
        for k in range(slots):
            slot = f"model_{k:03d}"
            corr = rng.normal(0.01, 0.03, rounds)
            s.execute(
                insert(Score),
                [
                    {
                        "numerai_model": slot,
                        "round_number": first + r,
                        "day": 20,
                        "metric": metric,
                        "value": float(v),
                        "resolved": True,
                    }
                    for r in range(rounds)
                    for metric, v in (
                        ("canon_corr", corr[r]),
                        ("canon_mmc", corr[r] / 2),
                        ("canon_bmc", corr[r] / 3),
                    )
                ],
            )
            s.execute(
                insert(Payout),
                [
                    {
                        "numerai_model": slot,
                        "round_number": first + r,
                        "at_risk_nmr": 10.0,
                        "payout_nmr": float(corr[r]),
                        "status": "settled",
                    }
                    for r in range(rounds)
                ],
            )
            s.execute(
                insert(Submission),
                [
                    {
                        "numerai_model": slot,
                        "round_number": first + rounds - 1,
                        "status": "confirmed",
                        "model_name": "",
                        "file_sha256": "0" * 64,
                    }
                ],
            )
    accounts.create_user(engine, "bench_user", PASSWORD, "read")


def api_login(context: Any, base: str, username: str) -> None:
    r = context.request.post(f"{base}/api/auth/login", data={"username": username, "password": PASSWORD})
    assert r.ok, r.text()


def page_load(context: Any, url: str, ready: str | None = None) -> float:
    """Seconds from navigation start to the load event (or to ``ready`` matching, when later)."""
    page = context.new_page()
    page.goto(url, wait_until="load")
    if ready:
        page.wait_for_selector(ready, state="attached")
    # the page's own mark when it has one (the model page marks its charts drawn): the time the browser
    # finished, not the time this harness got round to asking
    ms = page.evaluate(
        """() => {
          const load = performance.getEntriesByType('navigation')[0].loadEventEnd;
          const mark = performance.getEntriesByName('numerflow:charts-drawn')[0];
          return mark ? Math.max(load, mark.startTime) : Math.max(load, performance.now());
        }"""
        if ready
        else "() => performance.getEntriesByType('navigation')[0].loadEventEnd"
    )
    page.close()
    return ms / 1000.0


def measure(
    browser: Any, base: str, user: str, path: str, runs: int, ready: str | None
) -> dict[str, list[float]]:
    cold, warm = [], []
    for _ in range(runs):
        context = browser.new_context(viewport=VIEWPORT)
        api_login(context, base, user)
        cold.append(page_load(context, base + path, ready))
        warm.append(page_load(context, base + path, ready))
        context.close()
    return {"cold": cold, "warm": warm}


def api_fetch(browser: Any, base: str, user: str, runs: int) -> list[float]:
    context = browser.new_context()
    api_login(context, base, user)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = context.request.get(f"{base}/api/overview")
        assert r.ok
        r.body()
        out.append(time.perf_counter() - t)
        time.sleep(1.05)  # past the overview's 1 s cache: each fetch recomputes it
    context.close()
    return out


def screenshots(browser: Any, base: str, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())
    saved: list[Path] = []

    def shot(name: str, full: bool = False) -> None:
        path = out_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        saved.append(path)

    page.goto(f"{base}/login")
    page.fill("input[name=username]", "admin_user")
    shot("login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.wait_for_selector("#live.on")
    shot("overview")
    page.goto(f"{base}/models/ridge_a")
    page.wait_for_selector("body[data-charts=drawn]")
    page.wait_for_timeout(300)
    shot("model", full=True)
    page.goto(f"{base}/rounds")
    shot("rounds")
    page.goto(f"{base}/jobs")
    page.wait_for_selector("#live.on")
    page.select_option("#job-kind", "train")
    page.select_option("#job-model", "lgbm_b")
    page.click("#start-job-button")
    page.wait_for_selector(
        '#jobs-body tr[data-status="running"] .bar span:not([style*="width: 0%"])', timeout=60_000
    )
    shot("jobs")
    page.wait_for_selector('#jobs-body tr[data-status="succeeded"]', timeout=60_000)
    page.goto(f"{base}/data")
    page.locator("button[data-check]").first.click()
    page.wait_for_selector(".checks p", timeout=120_000)
    shot("data")
    page.goto(f"{base}/settings")
    shot("settings")
    context.close()
    return saved


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms (max {max(values) * 1000:.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--screenshots", type=Path, default=None, help="save PNGs of the pages here")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="numerflow-bench-dash-") as tmp:
        t0 = time.perf_counter()
        seeded = seed_project(Path(tmp) / "project")
        print(f"seeded the project in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        big_url = f"sqlite:///{Path(tmp) / 'large.db'}"
        t0 = time.perf_counter()
        fill_large(big_url, args.slots, args.rounds)
        print(f"filled the large database in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        big = seeded.settings()
        big.database.url = big_url
        big.models = {}
        big.schedules = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            with serve(seeded.settings()) as (base, _):
                if args.screenshots:
                    for path in screenshots(browser, base, args.screenshots):
                        print(f"saved {path}", file=sys.stderr)
                small = measure(browser, base, "read_user", "/", args.runs, "#overview-table svg.spark")
                model = measure(
                    browser, base, "read_user", "/models/ridge_a", args.runs, "body[data-charts=drawn]"
                )
                peer_small = api_fetch(browser, base, "read_user", min(args.runs, 10))
            with serve(big, background=False) as (base, _):
                large = measure(browser, base, "bench_user", "/", args.runs, "#overview-table svg.spark")
                peer_large = api_fetch(browser, base, "bench_user", min(args.runs, 10))
            browser.close()
        seeded.sim.stop()
    label = f"{args.slots} slots x {args.rounds} rounds"
    rows += [
        ("Overview, demo project (3 slots), cold cache", fmt(small["cold"]), "< 1 s"),
        ("Overview, demo project, warm cache", fmt(small["warm"]), "< 1 s"),
        (f"Overview, {label}, cold cache", fmt(large["cold"]), "< 1 s"),
        (f"Overview, {label}, warm cache", fmt(large["warm"]), "< 1 s"),
        ("Model page, plotly charts drawn, cold cache", fmt(model["cold"]), ""),
        ("Model page, plotly charts drawn, warm cache", fmt(model["warm"]), ""),
        ("Peer: GET /api/overview JSON, demo project (uncached)", fmt(peer_small), ""),
        (f"Peer: GET /api/overview JSON, {label} (uncached)", fmt(peer_large), ""),
    ]
    print(f"\n{datetime.now(UTC):%Y-%m-%d} · {platform.python_version()} · {platform.machine()} · "
          f"headless Chromium, median of {args.runs} loads (max)\n")  # fmt: skip
    print("| Measure | Time | Target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    print("\nCommand: `.venv/bin/python benchmarks/bench_dashboard.py " + " ".join(sys.argv[1:]) + "`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

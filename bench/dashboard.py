"""The dashboard in a real browser (headless Chromium through Playwright): how long a page of a
20,000-trial experiment takes to load, and how long a broadcast takes to appear on it.

    python bench/dashboard.py                       # 20,000 trials, 3 page loads, 8 s of live updates
    python bench/dashboard.py --shots docs          # also screenshots of a digits search (JAX)

Page load: from navigation to the page's first full render (the snapshot drawn: header, table,
learning curves, best so far), plotly.js included, as ``performance.now()`` reports it.
Live update: trials broadcast their own wall-clock time as the metric, every 0.2 s; the page
notes when each point arrives; the difference is the whole way from ``reporter.broadcast`` to
the page (agent, kernel, curves.jsonl, dashboard, server-sent event, the page's handler).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit, percentile  # noqa: E402

from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402


def synthetic(hparams, reporter):
    """A learning curve of 10 steps whose height depends on the parameters."""
    peak = 0.95 - 0.08 * abs(math.log10(hparams["lr"]) + 2.5) - (0.03 if hparams["act"] == "tanh" else 0.0)
    for step in range(10):
        reporter.broadcast(metric=peak * (1 - math.exp(-(step + 1) / (1 + hparams["width"] / 64))), step=step)
    return {"accuracy": peak}


def clock(hparams, reporter):
    """Broadcasts the wall-clock time it broadcasts at, every 0.2 s, for ``steps`` steps."""
    for step in range(hparams["steps"]):
        reporter.broadcast(metric=time.time(), step=step)
        time.sleep(0.2)
    return {"t": time.time()}


def space():
    return Searchspace(lr=("DOUBLE", [1e-5, 1e-1], "log"), width=("DISCRETE", [16, 32, 64, 128, 256]),
                       act=("CATEGORICAL", ["relu", "tanh", "gelu"]))


def serve(path):
    proc = subprocess.Popen([sys.executable, "-m", "kernel", "dashboard", str(path), "--port", "0"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    return proc, re.search(r"(http://\S+)", proc.stdout.readline()).group(1)


def browser(p):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    return p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--enable-unsafe-swiftshader"])


def page_loads(p, url, loads):
    times = []
    b = browser(p)
    for _ in range(loads):
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_function("window.lagomDash && window.lagomDash.S.ready", timeout=60000)
        times.append(page.evaluate("window.lagomDash.S.readyAt") / 1000)
        page.close()
    b.close()
    return times


def live_latency(p, root, seconds):
    ctx = HyperparameterSearch(Searchspace(steps=("DISCRETE", [int(seconds / 0.2)])), num_trials=2, workers=2,
                               metric="t", name="live")
    box = {}
    run = threading.Thread(target=lambda: box.setdefault("r", lagom(clock, ctx, path=root, verbose=0, report=False)))
    run.start()
    while not list(root.glob("live-*/journal.jsonl")):
        time.sleep(0.01)
    folder = next(root.glob("live-*/journal.jsonl")).parent
    proc, url = serve(folder)
    b = browser(p)
    page = b.new_page()
    page.goto(url)
    page.wait_for_function("window.lagomDash && window.lagomDash.S.ready", timeout=60000)
    run.join()
    page.wait_for_timeout(500)
    arrivals = page.evaluate("window.lagomDash.S.arrivals")
    b.close()
    proc.kill()
    # each arrival's last point was broadcast at its value (a wall-clock time)
    return [a["at"] / 1000 - a["last"][1] for a in arrivals if a["last"][1] > 1e9]


def screenshots(p, root, out):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import digits_hpo

    digits_hpo.main(["--path", str(root / "digits"), "--trials", "20"])
    proc, url = serve(root / "digits")
    b = browser(p)
    page = b.new_page(viewport={"width": 1400, "height": 1250})
    page.goto(url)
    page.wait_for_function("window.lagomDash && window.lagomDash.S.ready", timeout=60000)
    page.wait_for_timeout(500)
    os.makedirs(out, exist_ok=True)
    page.screenshot(path=os.path.join(out, "dashboard.png"))
    page.click("#tabs button[data-tab=params]")
    page.wait_for_timeout(1000)
    page.screenshot(path=os.path.join(out, "dashboard-params.png"))
    b.close()
    proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20000)
    ap.add_argument("--loads", type=int, default=3)
    ap.add_argument("--live-seconds", type=float, default=8.0)
    ap.add_argument("--shots", default=None, help="write screenshots of a digits search into this folder")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    root = __import__("pathlib").Path(tempfile.mkdtemp(prefix="lagom-dash-"))
    t0 = time.perf_counter()
    big = lagom(synthetic, HyperparameterSearch(space(), num_trials=args.trials, workers=2, metric="accuracy",
                                                direction="max", name="big"), path=root, verbose=0, report=False)
    made = time.perf_counter() - t0
    journal_mb = os.path.getsize(big.path / "journal.jsonl") / 1e6
    proc, url = serve(big.path)
    with sync_playwright() as p:
        loads = page_loads(p, url, args.loads)
        proc.kill()
        latency = live_latency(p, root, args.live_seconds)
        if args.shots:
            screenshots(p, root, args.shots)
    shutil.rmtree(root, ignore_errors=True)
    print(f"page load of {args.trials} trials: {', '.join(f'{t:.2f}' for t in loads)} s; live update "
          f"p50 {statistics.median(latency) * 1000:.0f} ms, max {max(latency) * 1000:.0f} ms ({len(latency)} points)")
    emit({"bench": "dashboard", "trials": args.trials, "journal_mb": round(journal_mb, 1),
          "experiment_s": round(made, 1), "page_load_s": [round(t, 3) for t in loads],
          "page_load_median_s": round(statistics.median(loads), 3),
          "live_update_ms": {"p50": round(statistics.median(latency) * 1000, 1),
                             "p95": round(percentile(latency, 95) * 1000, 1), "max": round(max(latency) * 1000, 1),
                             "points": len(latency)}})


if __name__ == "__main__":
    main()

"""The dashboard in a real browser (headless Chromium through Playwright) on a 100,000-trial
experiment: how long its page takes to load, to sort and to filter, how long a broadcast takes
to appear on it while it runs, and what the server holds in memory.

    python bench/dashboard.py                       # 100,000 trials, 3 page loads, 8 s live
    python bench/dashboard.py --trials 20000        # a smaller one
    python bench/dashboard.py --shots docs          # also screenshots of a digits search (JAX)

Page load: from navigation to the page's first full render (the snapshot drawn: header, table,
learning curves, best so far), plotly.js included, as ``performance.now()`` reports it; each in
a fresh browser context (nothing cached). Sort and filter: from the click (or the last key
typed) to the table's rows replaced and painted. Live update: the experiment is resumed with
two more trials that broadcast their own wall-clock time as the metric every 0.2 s, while the
page is open on it; the page notes when each point arrives: the whole way from
``reporter.broadcast`` to the page (agent, kernel, curves.jsonl, dashboard, server-sent event,
the page's handler), with 100,000 trials on the page.
"""
from __future__ import annotations

import argparse
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


def clock(seconds):
    """A trial that broadcasts the wall-clock time it broadcasts at, every 0.2 s, for ``seconds``."""
    def trial(hparams, reporter):
        for step in range(int(seconds / 0.2)):
            reporter.broadcast(metric=time.time(), step=step)
            time.sleep(0.2)
        return {"accuracy": 0.0}
    return trial


def context(trials):
    return HyperparameterSearch(space(), num_trials=trials, workers=2, metric="accuracy", direction="max", name="big")


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


READY = "window.lagomDash && window.lagomDash.S.ready"

# From an action on the page to the table's rows replaced and the next frame painted.
TIMED = """async (action) => {
  const S = window.lagomDash.S, t0 = performance.now();
  eval(action);
  while (!(S.tableAt > t0)) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}"""
ACTIONS = {
    "sort by metric": "document.querySelectorAll('#trials thead th')[2].click()",
    "sort by a parameter (lr)": "Array.from(document.querySelectorAll('#trials thead th')).find(th => th.textContent === 'lr').click()",
    "filter by state": "(() => { const s = document.getElementById('filter-state'); s.value = 'finished'; s.onchange(); })()",
    "filter typed (accuracy>0.9 gelu)": "(() => { const f = document.getElementById('filter-text'); "
                                        "f.value = 'accuracy>0.9 gelu'; f.dispatchEvent(new Event('input')); })()",
}


def page_loads(p, url, loads):
    times, marks, actions, heap = [], [], {name: [] for name in ACTIONS}, []
    b = browser(p)
    for _ in range(loads):
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_function(READY, timeout=60000)
        times.append(page.evaluate("window.lagomDash.S.readyAt") / 1000)
        marks.append(page.evaluate("window.lagomDash.S.marks"))
        for name, action in ACTIONS.items():
            actions[name].append(page.evaluate(TIMED, action) / 1000)
        heap.append(page.evaluate("performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null"))
        page.close()
    b.close()
    return times, marks, actions, heap


def rss_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def live_latency(p, url, big, root, seconds, trials):
    """The big experiment resumed with two more trials, its page open."""
    b = browser(p)
    page = b.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_function(READY, timeout=60000)
    box = {}
    run = threading.Thread(target=lambda: box.setdefault("r", lagom(clock(seconds), context(trials + 2), path=root,
                                                                     resume=big, verbose=0, report=False)))
    run.start()
    run.join()
    page.wait_for_function(f"window.lagomDash.S.trials.size === {trials + 2} && "
                           "document.getElementById('exp-state').textContent === 'ended'", timeout=30000)
    arrivals = page.evaluate("window.lagomDash.S.arrivals")
    b.close()
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
    ap.add_argument("--trials", type=int, default=100000)
    ap.add_argument("--loads", type=int, default=3)
    ap.add_argument("--live-seconds", type=float, default=8.0)
    ap.add_argument("--shots", default=None, help="write screenshots of a digits search into this folder")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    root = __import__("pathlib").Path(tempfile.mkdtemp(prefix="lagom-dash-"))
    t0 = time.perf_counter()
    big = lagom(synthetic, context(args.trials), path=root, verbose=0, report=False)
    made = time.perf_counter() - t0
    journal_mb = os.path.getsize(big.path / "journal.jsonl") / 1e6
    t0 = time.perf_counter()
    proc, url = serve(big.path)
    up = time.perf_counter() - t0
    rss = rss_of(proc.pid)
    with sync_playwright() as p:
        loads, marks, actions, heap = page_loads(p, url, args.loads)
        latency = live_latency(p, url, big.path, root, args.live_seconds, args.trials)
        rss_after = rss_of(proc.pid)
        proc.kill()
        if args.shots:
            screenshots(p, root, args.shots)
    shutil.rmtree(root, ignore_errors=True)
    worst = {name: max(v) for name, v in actions.items()}
    print(f"{args.trials} trials: page load {', '.join(f'{t:.2f}' for t in loads)} s; "
          + "; ".join(f"{name} {t * 1000:.0f} ms" for name, t in worst.items())
          + f" (worst of {args.loads}); live update p50 {statistics.median(latency) * 1000:.0f} ms, "
          f"max {max(latency) * 1000:.0f} ms ({len(latency)} points); server {rss:.0f} MB "
          f"({rss_after:.0f} MB after the live run), ready {up:.1f} s after its start")
    emit({"bench": "dashboard", "trials": args.trials, "journal_mb": round(journal_mb, 1),
          "experiment_s": round(made, 1), "server_start_s": round(up, 2), "server_rss_mb": round(rss),
          "server_rss_after_live_mb": round(rss_after), "page_heap_mb": [h and round(h) for h in heap],
          "page_load_s": [round(t, 3) for t in loads], "page_load_median_s": round(statistics.median(loads), 3),
          "page_marks_ms": [{k: round(v) for k, v in m.items()} for m in marks],
          "actions_ms": {name: [round(t * 1000) for t in v] for name, v in actions.items()},
          "live_update_ms": {"p50": round(statistics.median(latency) * 1000, 1),
                             "p95": round(percentile(latency, 95) * 1000, 1), "max": round(max(latency) * 1000, 1),
                             "points": len(latency)}})


if __name__ == "__main__":
    main()

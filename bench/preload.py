"""Searches whose agents cannot be forked from the driver: the clean zygote loads the function's
libraries once per process (``LAGOM_PRELOAD=1``, the default) or every agent imports them
itself (``LAGOM_PRELOAD=0``), measured side by side.

    python bench/preload.py                 # 3 rounds, 3 searches per process
    python bench/preload.py --rounds 1
    python bench/preload.py --workers 4     # more agents than cores

Two ways a user's agents come from the clean zygote rather than a fork of the script: *tried*,
the script calls ``train`` once in its own process before ``lagom()`` (JAX's backend starts
there, so the script may not be forked); *notebook*, ``lagom()`` runs in a thread, as in
Jupyter. Each runs the README's search (bench/compile.py's: random over ``lr`` and 3 widths,
20 trials, 2 agents or ``--workers``) ``--searches`` times in one process, as a notebook's
cells or a script's loop would, on a compilation cache warmed before the first round. Each
process is started anew, cases interleaved; the figures are the medians over rounds of the
first search's wall clock and of the later ones'.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit  # noqa: E402

CASES = [("tried", "1"), ("tried", "0"), ("notebook", "1"), ("notebook", "0")]


def child(case: str, searches: int, runs: str, workers: int) -> list[float]:
    from compile import readme_after, search

    readme = readme_after()
    if case == "tried":  # the function tried once by hand: JAX's backend starts in this process
        readme["train"]({"lr": 1e-3, "width": 32, "budget": 1}, type("R", (), {"broadcast": lambda *a, **k: None})())
    cache, walls = os.environ["JAX_COMPILATION_CACHE_DIR"], []

    def one(seed: int) -> None:
        walls.append(search(readme["train"], cache, runs, seed, workers=workers)["wall_s"])

    for seed in range(searches):
        if case == "notebook":
            cell = threading.Thread(target=one, args=(seed,))
            cell.start()
            cell.join()
        else:
            one(seed)
    return walls


def run_child(case: str, preload: str, searches: int, cache: str, runs: str, workers: int = 2) -> list[float]:
    env = {**os.environ, "LAGOM_PRELOAD": preload, "JAX_COMPILATION_CACHE_DIR": cache, "LAGOM_REPORT": "0"}
    out = subprocess.run([sys.executable, __file__, "--child", case, "--searches", str(searches), "--runs", runs,
                          "--workers", str(workers)],
                         env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{case} (LAGOM_PRELOAD={preload}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--searches", type=int, default=3, help="searches per process (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="agents per search (default 2)")
    ap.add_argument("--child", choices=["tried", "notebook"], help=argparse.SUPPRESS)
    ap.add_argument("--runs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.searches, args.runs, args.workers)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        cache, runs = os.path.join(tmp, "cache"), os.path.join(tmp, "runs")
        run_child("tried", "1", 1, cache, runs)  # warms the compilation cache: every case finds it so
        walls: dict[str, list[list[float]]] = {f"{c}_preload{p}": [] for c, p in CASES}
        for _ in range(args.rounds):
            for case, preload in CASES:
                walls[f"{case}_preload{preload}"].append(run_child(case, preload, args.searches, cache, runs,
                                                                  args.workers))
    figures = {}
    for name, rounds in walls.items():
        figures[f"{name}_first_s"] = statistics.median(r[0] for r in rounds)
        if args.searches > 1:
            figures[f"{name}_later_s"] = statistics.median(w for r in rounds for w in r[1:])
        print(f"{name:22s} first {figures[f'{name}_first_s']:.2f} s"
              + (f", later {figures[f'{name}_later_s']:.2f} s" if args.searches > 1 else "")
              + f"   (all: {rounds})", flush=True)
    emit({"rounds": args.rounds, "searches": args.searches, "workers": args.workers, **figures})


if __name__ == "__main__":
    main()

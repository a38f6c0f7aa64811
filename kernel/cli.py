"""``python -m kernel``: agent, status, report, resume and dashboard, for experiments on disk.

Every subcommand reads the experiment folder (the journal is written as things happen), so
``status`` works on a running experiment and ``resume`` on one whose kernel died. Mistakes give
one line, not a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import records

if TYPE_CHECKING:
    from .timeline import Timeline


def _folder(path: str) -> Path:
    folder = Path(path)
    if not (folder / records.JOURNAL).exists():
        raise SystemExit(f"lagom: error: {path} is not an experiment folder (it has no journal.jsonl)")
    return folder


def status(args) -> int:
    folder = _folder(args.folder)
    if not args.watch:
        print("\n".join(_status(folder)[0]))
        return 0
    return _watch(folder, args.interval, args.rows)


def _watch(folder: Path, interval: float, rows: int) -> int:
    """Print the status again whenever the journal grows (checked every ``interval`` seconds),
    until the experiment ends or its kernel is gone; Ctrl-C leaves quietly."""
    journal, size = folder / records.JOURNAL, -1
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    try:
        while True:
            now = journal.stat().st_size
            if now != size:
                size = now
                lines, over = _status(folder, rows)
                print(clear + "\n".join(lines) + ("" if clear else "\n"), flush=True)
                if over:
                    return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def _state(folder: Path, timeline: "Timeline") -> tuple[str, bool]:
    """How the experiment stands, in words, and whether it is over (nothing more will happen)."""
    outcome = timeline.outcome(timeline.alive)
    if outcome == "running":
        kernel = timeline.kernel or {}
        return f"running (kernel pid {kernel.get('pid', '?')} on {kernel.get('host', '?')})", False
    if outcome == "interrupted":
        return f"{timeline.status['interrupted']}: continue it with python -m kernel resume {folder}", True
    if outcome == "kernel died":
        return f"its kernel died: continue it with python -m kernel resume {folder}", True
    return outcome, True


def _status(folder: Path, rows: int | None = None) -> tuple[list[str], bool]:
    """The status lines; with ``rows``, the running trials and then the latest ended ones."""
    from .timeline import Timeline

    timeline = Timeline.read(folder)
    head, trials = timeline.head, timeline.trials
    state, over = _state(folder, timeline)
    lines = [f"{folder.name}: {head.get('context', '?')}, {state}; "
             + ", ".join(f"{v} {k}" for k, v in sorted(timeline.counts().items())),
             f"{'id':>5}  {'state':11s} {'metric':>10s} {'budget':>7s} {'seconds':>8s}  params"]
    shown = sorted(trials.values(), key=lambda t: t["id"])
    if rows is not None and len(shown) > rows:
        running = [t for t in shown if t["state"] == "running"]
        ended = [t for t in shown if t["state"] != "running"]
        shown = sorted(running[:rows] + ended[len(ended) - max(0, rows - len(running)):], key=lambda t: t["id"])
        lines[0] += f" (showing {len(shown)} of {len(trials)}: running and latest)"
    lines.extend(_row(t) for t in shown)
    for name, (before, now) in (timeline.status.get("edits") or {}).items():
        lines.append(f"edited on resume: {name} {before} -> {now}")
    if head.get("objectives"):
        from .pareto import front_of_records

        on = front_of_records(list(trials.values()), head["directions"])
        names = ", ".join(f"{d} {m}" for m, d in zip(head["objectives"], head["directions"]))
        lines.append(f"Pareto front ({names}): " + (", ".join(
            f"trial {t['id']} (" + ", ".join(f"{v:.4g}" for v in t["values"]) + ")" for t in on) or "none yet"))
    return lines, over


def _row(t: dict) -> str:
    metric = "" if t.get("metric") is None else f"{t['metric']:.6g}"
    duration = "" if t.get("duration") is None else f"{t['duration']:.1f}"
    budget = "" if t.get("budget") is None else str(t["budget"])
    params = (t.get("info") or {}).get("ablated") and f"left out: {t['info']['ablated']}" or \
        ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
    return f"{t['id']:>5}  {t['state']:11s} {metric:>10s} {budget:>7s} {duration:>8s}  {params}"


def report(args) -> int:
    from .outputs.report import write_report

    from .journal import holder

    folder = _folder(args.folder)
    out = write_report(folder)
    print(out)
    if not (folder / records.RESULT).exists() and holder(folder) is None:  # a full disk kept it out
        from .result import Result
        print(Result.of_folder(folder).save())
    return 0


def importance(args) -> int:
    from .outputs.importance import lines, of_trials
    from .timeline import Timeline

    timeline = Timeline.read(_folder(args.folder))  # a running experiment too
    head = timeline.head
    directions = head.get("directions") or [head.get("direction") or "max"]
    rows = of_trials(list(timeline.trials.values()), directions, args.budget, args.top, method=args.method)
    print("\n".join(lines(rows, shown=len(rows))))
    return 0


def resume(args) -> int:
    import cloudpickle

    from . import shipping
    from .runner import lagom

    folder = _folder(args.folder)
    try:
        fn = shipping.unpack((folder / "function.pkl").read_bytes())
        context = cloudpickle.loads((folder / "context.pkl").read_bytes())
    except FileNotFoundError:
        raise SystemExit(f"lagom: error: {folder} holds no saved function and context; resume it from "
                         f"Python with lagom(train, context, resume={str(folder)!r})") from None
    except Exception as exc:
        raise SystemExit(f"lagom: error: cannot load the saved function or context ({type(exc).__name__}: "
                         f"{exc}); resume it from Python with lagom(train, context, resume=...)") from None
    changes = {k: v for k, v in (("num_trials", args.num_trials), ("max_time", args.max_time),
                                 ("max_budget", args.max_budget)) if v is not None}
    if changes:
        if not hasattr(context, "edit"):
            raise SystemExit(f"lagom: error: a {type(context).__name__} has no num_trials, max_time or max_budget "
                             f"to change")
        context.edit(**changes)
    result = lagom(fn, context, resume=folder, path=folder.parent, verbose=args.verbose, **_listening(args, folder))
    return 0 if result is not None else 1


def _listening(args, folder: Path) -> dict:
    """``--listen``: agents started by hand re-attach, so the resumed kernel takes the token
    they hold: ``--token-file``, else the file the dead kernel left in its folder, else
    LAGOM_TOKEN (a fresh token would turn them away)."""
    if args.listen is None:
        return {}
    from .agent.cli import TOKEN_ENV
    from .plan import TOKEN_FILE

    path = Path(args.token_file) if args.token_file else folder / TOKEN_FILE
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise SystemExit(f"lagom: error: {path} can be read by other users; chmod 600 {path}")
        return {"listen": args.listen, "token": path.read_text(encoding="utf-8").strip()}
    if args.token_file or not os.environ.get(TOKEN_ENV):
        raise SystemExit(f"lagom: error: no token for the agents to re-attach with: {path} is not there; pass "
                         f"--token-file FILE or set {TOKEN_ENV} to the token they were started with")
    return {"listen": args.listen, "token": os.environ[TOKEN_ENV]}


def dashboard(args) -> int:
    from .outputs.dashboard import main as serve

    return serve(args.path, host=args.host, port=args.port, token_file=args.token_file,
                 exit_with_stdin=args.exit_with_stdin)


def _budget(text: str) -> float | int:
    """A budget as the function will see it: 27, not 27.0 (``range(budget)`` takes no float)."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _resume_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder")
    p.add_argument("--num-trials", type=int, default=None, help="raise the search's num_trials")
    p.add_argument("--max-time", type=float, default=None, help="seconds the resumed search may run")
    p.add_argument("--max-budget", type=_budget, default=None, help="raise ASHA's or Hyperband's max_budget")
    p.add_argument("--listen", default=None, metavar="URL", help="accept agents started by hand at URL (the "
                   "address the experiment listened on, for its agents to re-attach)")
    p.add_argument("--token-file", default=None, help="with --listen: the token the agents hold (default: the "
                   "file the experiment left in its folder, else LAGOM_TOKEN)")
    p.add_argument("--verbose", type=int, default=1)
    p.set_defaults(run=resume)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernel", description="lagom-kernel's command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("agent", help="run a worker agent (as python -m kernel.agent)", add_help=False)
    p = sub.add_parser("status", help="a table of an experiment's trials (also while it runs)")
    p.add_argument("folder")
    p.add_argument("--watch", action="store_true", help="print it again as trials start and end, until the end")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between looks at the journal (--watch)")
    p.add_argument("--rows", type=int, default=30, help="at most this many trials per look (--watch)")
    p.set_defaults(run=status)
    p = sub.add_parser("report", help="write report.html with plots into an experiment folder")
    p.add_argument("folder")
    p.set_defaults(run=report)
    p = sub.add_parser("importance", help="which hyperparameters mattered, with intervals")
    p.add_argument("folder")
    p.add_argument("--budget", type=float, default=None, help="trials of this budget (default: the largest finished)")
    p.add_argument("--top", type=float, default=0.1, help="the share of trials counted as the best (default 0.1)")
    p.add_argument("--method", choices=["ped", "fanova"], default="ped", help="ped: how much the best trials "
                   "prefer certain values (default); fanova: the variance each explains alone (scikit-learn)")
    p.set_defaults(run=importance)
    _resume_parser(sub.add_parser("resume", help="continue an experiment whose kernel died"))
    p = sub.add_parser("dashboard", help="a live web page over the experiments under a folder")
    p.add_argument("path", nargs="?", default=None,
                   help="an experiment folder, or a folder of them (default: $LAGOM_RUNS or ./lagom-runs)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default loopback; elsewhere the experiment's token is asked for)")
    p.add_argument("--port", type=int, default=8470, help="port (0: any free one; default 8470)")
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="the token a browser must give when --host is not loopback (or set $LAGOM_TOKEN)")
    p.add_argument("--exit-with-stdin", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run=dashboard)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["agent"]:
        from .agent import main as agent_main

        return agent_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except SystemExit:
        raise
    except Exception as exc:  # a one-line error, not a traceback
        print(f"lagom: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

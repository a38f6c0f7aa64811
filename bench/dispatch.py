"""How fast the kernel runs trials when the training function costs nothing.

Many trivial trials (each broadcasts 10 metrics and returns) on 2 local agent processes over
tcp://, random search over a small space. Random search proposes without results, so each agent
is handed trials ahead and sends its finals in batches (``--no-lease``: one at a time, as the
kernel did before; measures what leasing gives). The per-trial cost must stay flat as trials pile up:
run it at 1,000 and at 20,000 and compare ``trials_per_s``.

    python bench/dispatch.py --trials 1000
    python bench/dispatch.py --trials 20000
    python bench/dispatch.py --trials 2000 --vs-optuna   # Optuna in one process, same work, same run
    python bench/dispatch.py --trials 2000 --no-lease
    python bench/dispatch.py --trials 20000 --cpu       # CPU per trial, kernel and agents

Each search runs ``--repeat`` times (3), interleaved with Optuna's runs when asked: a run of
2,000 trivial trials lasts a tenth of a second, and one slow spell of a shared machine moves
one run's rate by a third. Figures (last line, JSON): trials_per_s (the median run's; every
run's in trials_per_s_runs), metrics_per_s, dispatch_latency_ms (p50, p99: how
long an agent waited between two trials: a result arriving at the kernel -> the next trial
starting on that agent, or for a trial handed out ahead the one before ending -> it starting,
by the agent's clock), startup_s (lagom()
called -> the first trial running), kernel_rss_mb, and stop_latency_ms (p50, p99: the kernel
deciding to stop a trial that broadcasts continuously -> that trial ending with EarlyStop),
from a second experiment of ``--stop-trials`` trials; broadcast_ms: a trial's run time per
broadcast, waiting for the kernel's verdict on each (judged: that second experiment, with a
rule) or not (unjudged: the first, without one). With ``--vs-optuna``: optuna_trials_per_s
(random sampling of one float, 10 reports, no pruning, in this process, in-memory storage)
(the median of its runs, each in optuna_trials_per_s_runs), vs_optuna, the ratio of the two
medians, and vs_optuna_pairs, each run's ratio to the Optuna run after it. With ``--cpu``:
cpu_us_per_trial, the CPU microseconds per trial of the kernel's process and of the agents
together (median run), the steadier figure when comparing two versions of the kernel.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import emit, percentile, rss_mb  # noqa: E402

from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402
from kernel import Observer  # noqa: E402
from plugins.earlystop import EarlyStopper  # noqa: E402


def trivial(hparams, reporter):
    x = hparams["x"]
    for step in range(10):
        reporter.broadcast(metric=x * step, step=step)
    return {"value": x}


def continuous(hparams, reporter):
    """Broadcasts as fast as it can until stopped."""
    for step in range(10_000_000):
        reporter.broadcast(metric=1.0, step=step)
    return {"value": 0.0}


def optuna_rate(trials: int) -> float:
    """Trials per second of the same trivial work through Optuna, in process."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.NopPruner())

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(10):
            trial.report(x * step, step)
        return x

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return trials / (time.perf_counter() - t0)


class StopAt(EarlyStopper):
    def should_stop(self, trial_id, history):
        return len(history) >= 20


class Grab(Observer):
    view = None

    def experiment_started(self, view):
        self.view = view


def _descendants_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each process below this one (the zygote, the agents), from
    /proc: the agents are not this process's children, so its rusage cannot count them."""
    tick, table = os.sysconf("SC_CLK_TCK"), {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(pid)] = (int(stat[1]), (int(stat[11]) + int(stat[12])) / tick)
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - found
        found |= frontier
    return {pid: table[pid][1] for pid in found}


class CpuClock(Observer):
    """With ``--cpu``: the CPU the kernel's process and the agents spend from the first trial's
    start to the last one's end. Steadier than a rate on a shared machine: a slow spell of the
    machine delays work without adding to it. (Its trial_ended hook costs each trial a call.)"""

    def __init__(self, trials: int):
        self.trials, self.ended, self.first, self.last = trials, 0, None, None

    def trial_started(self, view, trial):
        if self.first is None:
            self.first = (time.process_time(), _descendants_cpu())

    def trial_ended(self, view, trial):
        self.ended += 1
        if self.ended == self.trials:
            self.last = (time.process_time(), _descendants_cpu())

    def per_trial_us(self) -> dict[str, float]:
        (k0, a0), (k1, a1) = self.first, self.last
        agents = sum(a1.get(pid, cpu) - cpu for pid, cpu in a0.items())
        return {"kernel": (k1 - k0) / self.trials * 1e6, "agents": agents / self.trials * 1e6}


def _search(space: Searchspace, args: argparse.Namespace) -> dict:
    """One search of ``args.trials`` trivial trials: its rate over the span from the first
    trial's start to the last one's end, and what else one run tells. (No report.html: its
    process would draw it while the next run goes, and into a folder being removed.)"""
    grab, clock = Grab(), CpuClock(args.trials) if args.cpu else None
    with tempfile.TemporaryDirectory() as root:
        t0 = time.time()
        result = lagom(trivial, HyperparameterSearch(space, "randomsearch", num_trials=args.trials,
                                                     metric="value", workers=args.workers, seed=0),
                       listen=args.url, path=root, verbose=0, report=False, insecure=args.insecure,
                       observers=[grab] + ([clock] if clock else []))
        wall = time.time() - t0
    trials = result.trials
    assert all(t.state == "finished" for t in trials), "every trial must finish"
    first_start = min(t.started for t in trials)
    span = max(t.ended for t in trials) - first_start
    # figures only: trials kept alive would slow every later run in this process (Optuna's too)
    # through the garbage collector's full passes
    return {"trials_per_s": len(trials) / span,
            "metrics_per_s": sum(len(t.history) for t in trials) / span,
            "latencies": [x * 1000 for x in grab.view.dispatch_latencies],
            "unjudged": [(t.ended - t.started) * 1000 / len(t.history) for t in trials if t.history],
            "startup_s": first_start - t0, "wall_s": wall, "cpu_us": clock.per_trial_us() if clock else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stop-trials", type=int, default=200, help="trials of the stop-latency run")
    ap.add_argument("--url", default="tcp://127.0.0.1:0", help="where the kernel listens")
    ap.add_argument("--insecure", action="store_true", help="no CurveZMQ (measures what it costs)")
    ap.add_argument("--no-lease", action="store_true", help="hand each agent one trial at a time")
    ap.add_argument("--repeat", type=int, default=3,
                    help="searches (and Optuna runs, interleaved); the figures are the median run's")
    ap.add_argument("--vs-optuna", action="store_true",
                    help="also run the same work through Optuna in this process, and give the ratio")
    ap.add_argument("--cpu", action="store_true",
                    help="also give the CPU per trial of the kernel's process and of the agents (Linux: /proc)")
    ap.add_argument("--sync-every", type=float, default=None,
                    help="seconds between journal fsyncs (default the kernel's; 0: one per trial end; "
                         "-1: none, as before the journal was made durable)")
    args = ap.parse_args()
    if args.no_lease:
        from kernel import ahead

        ahead.LEASE_MAX = 0
    if args.sync_every is not None:  # measures what durability costs
        from kernel import journal

        if args.sync_every < 0:
            journal.os.fsync = lambda fd: None
        else:
            journal.ExperimentFolder.__init__.__defaults__ = (args.sync_every,)

    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    runs, optuna_runs = [], []
    for _ in range(args.repeat):  # interleaved, so a slow spell of the machine falls on both
        gc.collect()
        runs.append(_search(space, args))
        if args.vs_optuna:
            gc.collect()
            optuna_runs.append(optuna_rate(args.trials))
    rates = [r["trials_per_s"] for r in runs]
    typical = sorted(runs, key=lambda r: r["trials_per_s"])[len(runs) // 2]  # the median run's figures
    optuna_per_s = statistics.median(optuna_runs) if optuna_runs else None

    with tempfile.TemporaryDirectory() as root:
        stopped = lagom(continuous, HyperparameterSearch(space, "randomsearch", num_trials=args.stop_trials,
                                                         metric="value", workers=args.workers, seed=0,
                                                         es_policy=StopAt(), es_min=0),
                        listen=args.url, path=root, verbose=0, report=False, insecure=args.insecure)
    assert all(t.state == "stopped" for t in stopped.trials), "every trial must be stopped"
    stop_ms = [(t.ended - t.stop_requested) * 1000 for t in stopped.trials]
    # what one broadcast costs the function: a trial's run time over its broadcasts, waiting for
    # the kernel's verdict on each (judged by a rule) or not (no rule)
    judged = [(t.ended - t.started) * 1000 / len(t.history) for t in stopped.trials if t.history]
    unjudged = typical["unjudged"]
    lat = typical["latencies"]
    emit({
        "bench": "dispatch",
        "trials": args.trials,
        "workers": args.workers,
        "transport": args.url.split(":")[0],
        "curve": not args.insecure and args.url.startswith("tcp"),
        "lease": not args.no_lease,
        "journal_sync_every_s": args.sync_every,
        "repeat": args.repeat,
        "trials_per_s": round(statistics.median(rates), 1),
        "trials_per_s_runs": [round(r, 1) for r in rates],
        "metrics_per_s": round(typical["metrics_per_s"], 1),
        "dispatch_latency_ms": {"p50": round(percentile(lat, 50), 3), "p99": round(percentile(lat, 99), 3)},
        "startup_s": round(typical["startup_s"], 3),
        "wall_s": round(typical["wall_s"], 2),
        "kernel_rss_mb": round(rss_mb(), 1),
        "stop_latency_ms": {"p50": round(percentile(stop_ms, 50), 3), "p99": round(percentile(stop_ms, 99), 3),
                            "trials": len(stop_ms)},
        **({"optuna_trials_per_s": round(optuna_per_s, 1),
            "optuna_trials_per_s_runs": [round(r, 1) for r in optuna_runs],
            "vs_optuna": round(statistics.median(rates) / optuna_per_s, 3),
            "vs_optuna_pairs": [round(a / b, 3) for a, b in zip(rates, optuna_runs)]} if optuna_per_s else {}),
        **({"cpu_us_per_trial": {who: round(statistics.median(r["cpu_us"][who] for r in runs), 1)
                                 for who in ("kernel", "agents")}} if args.cpu else {}),
        "broadcast_ms": {"judged_p50": round(percentile(judged, 50), 3), "judged_p99": round(percentile(judged, 99), 3),
                         "unjudged_p50": round(percentile(unjudged, 50), 3)},
    })


if __name__ == "__main__":
    main()

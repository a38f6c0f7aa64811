"""A chaos soak: an ASHA search of thousands of short trials on agents in hosts of their own
(bench/netlab.py: network namespaces joined by veth links), under a seeded schedule of faults,
then its history checked against a model (bench/chaos_check.py).

    sudo python bench/chaos.py                       # 5,000 trials, 8 agents, faults; then fault-free
    python bench/chaos.py --trials 600 --agents 4    # smaller
    python bench/chaos.py --lossy                    # no faults: 100 ms and 2% loss on every link

Faults, drawn at random (``--seed``) every ``--fault-every`` seconds on average, one at a time
per host: kill -9 of an agent (a new one starts on its host 0.3-1.5 s later), an agent frozen
(SIGSTOP) and thawed 1-7 s later (past the kernel's 5 s agent timeout or not), its link cut
(taken down) and healed 0.5-6 s later, its link degraded (50-200 ms, 20 ms jitter, 1-5% loss)
for 1-5 s; every ``--kernel-every`` seconds kill -9 of the kernel, resumed from its folder
0.2-1 s later (the agents, which outlive it, say hello again); once, halfway, the experiment's
disk filled (a tmpfs of its own): the kernel ends on it, the soak frees the disk and resumes.

Figures: trials, faults by kind, violations by rule (exit 1 on any), throughput under faults
against the fault-free run of the same search in the same script, and per fault kind the time
to detect (the kernel declares the agent gone; for a killed kernel, its agents see the
connection close) and to recover (the host's agent runs a trial again after the fault ends; a
resumed kernel starts its first trial).
"""
from __future__ import annotations

import argparse
import collections
import heapq
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from _common import emit  # noqa: E402
from chaos_check import check  # noqa: E402
from netlab import Lab  # noqa: E402

PORT = 23999


class Soak:
    def __init__(self, args, faults: bool, lossy: bool = False):
        self.args, self.faults, self.lossy = args, faults, lossy
        self.rng = random.Random(args.seed)
        self.dir = tempfile.mkdtemp(prefix="lagom-chaos-")
        self.lab = Lab(args.agents, PORT, self.dir)
        self.kernel: subprocess.Popen | None = None
        self.folder: str | None = None
        self.timers: list = []  # (when, seq, action)
        self.seq = 0
        self.faults_done: collections.Counter = collections.Counter()
        self.marks: list[tuple[str, str, float, float | None]] = []  # (kind, agent or "", fault at, undone at)
        self.kernel_kills: list[float] = []
        self.deaths: list[float] = []  # kills, and ends on the full disk (faults.json)
        self.resumes: list[float] = []
        self.agent_saw_close: list[float] = []
        self._watching: float | None = None  # since a kernel kill: when, until an agent says it saw it
        self._closed_before: dict[str, int] = {}  # each agent log's "closed" lines before that kill
        self.disk_filled = False

    # -- running -------------------------------------------------------------------------------
    def run(self) -> dict:
        self.lab.up()
        try:
            self.runs_root = os.path.join(self.lab.small_disk(self.args.disk_mb), "runs")
            self.runs_log = os.path.join(self.dir, "runs.log")  # beside the small disk: it must not fill
            self.token_file = os.path.join(self.dir, "token")
            with open(self.token_file, "w") as f:
                f.write("chaos-soak-token-" + "%032x" % self.rng.getrandbits(128))
            os.chmod(self.token_file, 0o600)
            if self.lossy:
                for h in self.lab.hosts:
                    self.lab.quality(h, 0.1, 0.0, 0.02)
            env = {"CHAOS_EPOCH_S": str(self.args.epoch_s), "CHAOS_RUNS_LOG": self.runs_log}
            self.agent_env = env
            for h in self.lab.hosts:
                self.lab.start_agent(h, self.token_file, env)
            began = time.time()
            self._start_kernel(resume=False)
            self._loop(began)
            wall = time.time() - began
            kept = os.path.join(self.dir, "experiment")  # off the small disk, which goes with the lab
            shutil.copytree(self._folder(), kept, ignore=shutil.ignore_patterns("ballast"))
            self.folder = kept
            return self._figures(wall)
        finally:
            if self.kernel is not None and self.kernel.poll() is None:
                self.kernel.kill()
            self.lab.down()

    def _start_kernel(self, resume: bool) -> None:
        argv = [sys.executable, os.path.join(HERE, "chaos_trial.py"), self.runs_root, str(PORT), self.token_file,
                str(self.args.trials), str(self.args.epoch_s)]
        if resume:
            argv.append(self._folder())
            self.resumes.append(time.time())
        self.kernel = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(os.path.join(self.dir, "kernel.log"), "a"),
                                       text=True, start_new_session=True)

    def _folder(self) -> str:
        if self.folder is None:
            found = [d for d in os.listdir(self.runs_root) if d.startswith("chaos")]
            self.folder = os.path.join(self.runs_root, found[0])
        return self.folder

    def _later(self, delay: float, action) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (time.time() + delay, self.seq, action))

    def _loop(self, began: float) -> None:
        next_fault = began + self.rng.expovariate(1 / self.args.fault_every)
        next_kernel_kill = began + self.args.kernel_every
        last_report = began
        while True:
            now = time.time()
            code = self.kernel.poll() if self.kernel is not None else None
            if code == 0:
                return
            if code == 3:  # the disk filled: free it, resume
                self.deaths.append(now)
                self._free_disk()
                self._start_kernel(resume=True)
            elif code is not None:
                raise SystemExit(f"the kernel exited with {code}: see {self.dir}/kernel.log")
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            if self.faults and now >= next_fault:
                self._fault()
                next_fault = now + self.rng.expovariate(1 / self.args.fault_every)
            if self.faults and now >= next_kernel_kill and self.kernel is not None and self.kernel.poll() is None:
                self._kill_kernel()
                next_kernel_kill = now + self.args.kernel_every
            if self.faults and not self.disk_filled and now - began > self.args.kernel_every * 1.5:
                self._fill_disk()
            self._watch_agents_logs()
            if now - last_report > 10:
                last_report = now
                print(f"  {now - began:6.0f} s: {self._ended()} trials ended, faults {dict(self.faults_done)}",
                      flush=True)
            time.sleep(0.02)

    def _ended(self) -> int:
        try:
            with open(os.path.join(self._folder(), "journal.jsonl"), "rb") as f:
                return sum(1 for line in f if b'"event": "end"' in line[:40] or b'"event":"end"' in line[:40])
        except (OSError, IndexError):
            return 0

    # -- faults --------------------------------------------------------------------------------
    def _fault(self) -> None:
        free = [h for h in self.lab.hosts if not (h.cut or h.frozen or h.agent is None or h.degraded)]
        if not free:
            return
        h = self.rng.choice(free)
        kind = self.rng.choice(self.args.kinds)
        agent = self._agent_id(h)
        at = time.time()
        self.faults_done[kind] += 1
        if kind == "agent-kill":
            self.lab.kill_agent(h)
            delay = self.rng.uniform(0.3, 1.5)
            self._later(delay, lambda: self._undo(h, kind, agent, at, lambda: self.lab.start_agent(h, self.token_file, self.agent_env)))
        elif kind == "freeze":
            self.lab.freeze(h)
            self._later(self.rng.uniform(1, 7), lambda: self._undo(h, kind, agent, at, lambda: self.lab.thaw(h)))
        elif kind == "cut":
            self.lab.cut(h)
            self._later(self.rng.uniform(0.5, 6), lambda: self._undo(h, kind, agent, at, lambda: self.lab.heal(h)))
        else:
            h.degraded = True
            self.lab.quality(h, self.rng.uniform(0.05, 0.2), 0.02, self.rng.uniform(0.01, 0.05))

            def restore():
                self.lab.quality(h, 0.0, 0.0, 0.0)
                h.degraded = False
            self._later(self.rng.uniform(1, 5), lambda: self._undo(h, kind, agent, at, restore))

    def _undo(self, h, kind: str, agent: str, at: float, action) -> None:
        if kind == "freeze" and h.agent is None:
            return
        action()
        self.marks.append((kind, agent, at, time.time()))

    def _agent_id(self, h) -> str:
        return h.started[-1][0] if h.started else ""

    def _kill_kernel(self) -> None:
        os.killpg(self.kernel.pid, signal.SIGKILL)
        self.kernel.wait()
        self.kernel_kills.append(time.time())
        self.deaths.append(time.time())
        self.faults_done["kernel-kill"] += 1
        self._closed_before = {h.log: self._closes(h.log) for h in self.lab.hosts if h.agent is not None}
        self._watching = time.time()
        self.kernel = None
        self._later(self.rng.uniform(0.2, 1.0), lambda: self._start_kernel(resume=True))

    @staticmethod
    def _closes(log: str) -> int:
        try:
            with open(log) as f:
                return f.read().count("end of the connection closed")
        except OSError:
            return 0

    def _watch_agents_logs(self) -> None:
        """After a kernel kill: when the first agent says it saw the connection close."""
        if self._watching is None:
            return
        if any(self._closes(log) > n for log, n in self._closed_before.items()):
            self.agent_saw_close.append(time.time() - self._watching)
            self._watching = None
        elif time.time() - self._watching > 10:
            self._watching = None

    def _fill_disk(self) -> None:
        self.disk_filled = True
        self.faults_done["full-disk"] += 1
        self.ballast = self.lab.fill_disk()

    def _free_disk(self) -> None:
        os.remove(self.ballast)

    # -- figures -------------------------------------------------------------------------------
    def _figures(self, wall: float) -> dict:
        print(f"  the experiment and its logs: {self.dir}", flush=True)
        folder = self._folder()
        verdict = check(folder, self.runs_log)
        from kernel.journal import read_journal
        events = read_journal(folder)[0]
        out = {"trials": verdict["trials"], "wall_s": round(wall, 1), "trials_per_s": round(verdict["trials"] / wall, 2),
               "faults": dict(self.faults_done), "fault_count": sum(self.faults_done.values()),
               "violations": verdict["violations"], "violation_count": verdict["violation_count"],
               "states": verdict["states"], "promotions": verdict["promotions"], "stops": verdict["stops"],
               "agents_gone": sum(e["event"] == "agent-gone" for e in events)}
        if self.faults:
            out["detect_recover_s"] = self._timings(events)
            with open(os.path.join(self.dir, "faults.json"), "w") as f:  # for a look at any one of them
                json.dump({"marks": self.marks, "kernel_kills": self.kernel_kills, "deaths": self.deaths}, f)
        out["dispatch_gap_ms"] = _gaps(events)
        return out

    def _timings(self, events: list[dict]) -> dict:
        gone = [(e["time"], e["id"]) for e in events if e["event"] == "agent-gone"]
        starts = [(e["time"], e["agent"]) for e in events if e["event"] == "start"]
        per: dict[str, dict[str, list]] = collections.defaultdict(lambda: {"detect": [], "recover": []})
        for kind, agent, at, undone in self.marks:
            host = agent.split("-")[0]
            # declared gone while the fault lasted (a killed agent's id is never seen again)
            until = at + 30 if kind == "agent-kill" else (undone or at) + 0.5
            seen = next((t for t, a in gone if a == agent and at <= t <= until), None)
            if seen is not None:
                per[kind]["detect"].append(seen - at)
            if undone is not None:
                back = next((t for t, a in starts if a and a.split("-")[0] == host and t >= undone), None)
                if back is not None:
                    per[kind]["recover"].append(back - undone)
        resumed = [e["time"] for e in events if e["event"] == "resumed"]
        for at in self.kernel_kills:
            r = next((t for t in resumed if t >= at), None)
            first = next((t for t, _ in starts if r is not None and t >= r), None)
            if first is not None:
                per["kernel-kill"]["recover"].append(first - at)
        per["kernel-kill"]["detect"] = list(self.agent_saw_close)

        def stat(xs):
            return {"n": len(xs), "median": round(statistics.median(xs), 3), "max": round(max(xs), 3)} if xs else {"n": 0}
        return {k: {"detect": stat(v["detect"]), "recover": stat(v["recover"])} for k, v in per.items()}


def _gaps(events: list[dict]) -> dict:
    """Per agent, the time between a trial's end and the next one's start (the agents' clocks:
    one machine): what dispatch costs an agent, links included."""
    by_agent = collections.defaultdict(list)
    for e in events:
        if e["event"] == "end" and e["trial"].get("agent") and e["trial"].get("started"):
            t = e["trial"]
            by_agent[t["agent"]].append((t["started"], t["started"] + (t["duration"] or 0)))
    gaps = []
    for spans in by_agent.values():
        spans.sort()
        gaps += [(b[0] - a[1]) * 1000 for a, b in zip(spans, spans[1:]) if b[0] >= a[1]]
    if not gaps:
        return {}
    gaps.sort()
    return {"median": round(statistics.median(gaps), 2), "p99": round(gaps[int(0.99 * (len(gaps) - 1))], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=3500, help="new configurations (ASHA adds its promotions)")
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--epoch-s", type=float, default=0.05, help="seconds per epoch (budgets 1, 3, 9 epochs)")
    ap.add_argument("--fault-every", type=float, default=0.4, help="mean seconds between faults")
    ap.add_argument("--kernel-every", type=float, default=15.0, help="seconds between kills of the kernel")
    ap.add_argument("--disk-mb", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lossy", action="store_true", help="no faults: 100 ms and 2%% loss on every link")
    ap.add_argument("--no-baseline", action="store_true", help="skip the fault-free run")
    ap.add_argument("--kinds", nargs="+", default=["agent-kill", "freeze", "cut", "degrade"],
                    choices=["agent-kill", "freeze", "cut", "degrade"], help="the faults of one host to draw from")
    args = ap.parse_args()
    why = Lab.check()
    if why:
        raise SystemExit(f"bench/chaos.py {why}")
    out: dict = {"bench": "chaos", "agents": args.agents, "seed": args.seed}
    if args.lossy:
        out["lossy"] = Soak(args, faults=False, lossy=True).run()
        print(f"lossy links: {out['lossy']}", flush=True)
    else:
        out["soak"] = Soak(args, faults=True).run()
        print(f"under faults: {out['soak']}", flush=True)
    if not args.no_baseline:
        out["fault_free"] = Soak(args, faults=False).run()
        print(f"fault-free: {out['fault_free']}", flush=True)
        key = "lossy" if args.lossy else "soak"
        out["throughput_vs_fault_free"] = round(out[key]["trials_per_s"] / out["fault_free"]["trials_per_s"], 3)
    emit(out)
    bad = sum(v.get("violation_count", 0) for v in out.values() if isinstance(v, dict))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

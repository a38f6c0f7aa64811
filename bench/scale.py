"""A kernel for many agents, measured with simulated ones.

``--procs`` helper processes each hold a share of ``--agents`` agent connections that speak the
real protocol: the real codec (HMAC-signed msgpack), CurveZMQ on tcp://, a heartbeat socket per
agent beating every second, hello/welcome/ready. Each simulated agent "runs" a trial by
sleeping ``--duration`` seconds while broadcasting ``--broadcasts`` metrics, then sends its final;
trials handed out ahead wait in its queue and start the moment the one before ends (a "skip"
drops one unstarted, answered by a "skipped" final), as a real agent's do. The real kernel (this
process) runs a random search of ``--trials`` trials over them; ``--no-lease`` hands each agent
one trial at a time (the kernel as it was before trials were handed out ahead).

    python bench/scale.py --agents 64
    python bench/scale.py --agents 1024 --trials 20000

Figures (last line, JSON): dispatch latency p50/p99 (an agent's idle time between two trials: a
trial's end -> the next one's start there, by the agent's clock; one time from one host), the
same once each agent's first trial told its pace and before the last round (when it holds its
next trial ahead), its share of the agents' time, heartbeat gaps seen by agents (max and p99 of the time between two kernel beats),
agents declared lost (must be 0), kernel CPU seconds per trial and per metric (this process:
the kernel's loop and ZeroMQ's threads), metrics ingested per second, trials per second,
kernel RSS, how many trials the agents ran (to see that the simulators kept up), and how long
agents waited to be admitted (hello sent -> welcome; the CurveZMQ handshake and its ZAP check
included), with how many joined the experiment and how many were never admitted before it ended.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from _common import emit, percentile, rss_mb  # noqa: E402

TOKEN_ENV = "LAGOM_SCALE_TOKEN"


# -- the simulated agents (helper processes) -------------------------------------------------
class SimAgent:
    """One agent's two sockets and its protocol, on asyncio."""

    def __init__(self, ctx, url: str, agent_id: str, codec, curve, duration: float, broadcasts: int):
        import zmq

        self.id, self.codec = agent_id, codec
        self.duration, self.broadcasts = duration, broadcasts
        self.main = self._socket(ctx, zmq, url, agent_id.encode(), curve)
        self.beat = self._socket(ctx, zmq, url, agent_id.encode() + b"#beat", curve)
        self.gaps: list[float] = []
        self.trials = 0
        self.queue: list[dict] = []  # trials handed out ahead
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.hello_at: float | None = None
        self.admitted_s: float | None = None  # hello sent -> welcome received

    @staticmethod
    def _socket(ctx, zmq, url, identity, curve):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = \
            curve.server_public, curve.public, curve.secret
        sock.connect(url)
        return sock

    async def send(self, sock, msg_type: str, **fields) -> None:
        await sock.send_multipart(self.codec.encode(msg_type, **fields))

    async def run(self) -> None:
        from transports.codec import PROTOCOL

        self.hello_at = time.monotonic()
        await self.send(self.main, "hello", agent=self.id, host=socket.gethostname(), pid=os.getpid(),
                        devices=["cpu:1"], protocol=PROTOCOL, address="127.0.0.1", port=1)
        beating = asyncio.ensure_future(self._beat())
        running = asyncio.ensure_future(self._work())
        self.last_beat = None
        try:
            while True:
                msg = self.codec.decode(await self.main.recv_multipart())
                for m in (msg["items"] if msg["type"] == "batch" else [msg]):
                    if m["type"] == "shutdown":
                        return
                    await self._handle(m)
        finally:
            beating.cancel()
            running.cancel()
            self.main.close()
            self.beat.close()

    async def _handle(self, msg: dict) -> None:
        kind = msg["type"]
        if kind == "welcome":
            self.admitted_s = time.monotonic() - self.hello_at
            await self.send(self.main, "ready", ok=True, error=None)
        elif kind == "trial":
            self.queue.append(msg)
            self.ready.set()
        elif kind == "skip" and any(m["trial"] == msg["trial"] for m in self.queue):
            from transports.codec import final_fields

            self.queue = [m for m in self.queue if m["trial"] != msg["trial"]]
            await self.send(self.main, "final", **final_fields(msg["trial"], outcome="skipped", started=time.time()))
        elif kind == "heartbeat":
            now = time.monotonic()
            if self.last_beat is not None:
                self.gaps.append(now - self.last_beat)
            self.last_beat = now

    async def _work(self) -> None:
        """Run the queued trials one after the other, noting the idle time between them."""
        self.idle: list[float] = []
        ended = None
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            if ended is not None:
                self.idle.append(time.time() - ended)
            await self._trial(self.queue.pop(0))
            ended = time.time()

    async def _beat(self) -> None:
        frames = self.codec.encode("heartbeat")
        while True:
            await asyncio.sleep(1.0)
            await self.beat.send_multipart(frames)

    async def _trial(self, msg: dict) -> None:
        from transports.codec import final_fields

        started, t0 = time.time(), time.perf_counter()
        x = float(msg["params"].get("x", 0.0))
        for step in range(self.broadcasts):
            await asyncio.sleep(self.duration / self.broadcasts)
            await self.send(self.main, "metric", trial=msg["trial"], points=[[step, x * step]])
        self.trials += 1
        await self.send(self.main, "final", **final_fields(
            msg["trial"], outcome="ok", result={"value": x}, started=started,
            duration=time.perf_counter() - t0, step=self.broadcasts - 1, value=x * (self.broadcasts - 1)))


async def simulate(url: str, first: int, count: int, duration: float, broadcasts: int) -> dict:
    import zmq
    import zmq.asyncio

    from transports.codec import agent_codec, token_key
    from transports.curve import derive

    token = os.environ[TOKEN_ENV]
    ctx = zmq.asyncio.Context()
    ctx.set(zmq.MAX_SOCKETS, 4 * count + 64)
    curve = derive(token)[1]
    agents = [SimAgent(ctx, url, f"sim-{i:05d}", agent_codec(token_key(token)), curve, duration, broadcasts)
              for i in range(first, first + count)]
    # stagger the hellos over a second, as agents started by a cluster would arrive
    async def start(agent, delay):
        await asyncio.sleep(delay)
        await agent.run()

    rng = random.Random(first)
    running = asyncio.gather(*(start(a, rng.random()) for a in agents))
    # The bench closes our stdin when the experiment is over: an agent admitted too late for
    # it never hears a shutdown, and must not keep this process waiting.
    over = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, sys.stdin.read))
    await asyncio.wait({running, over}, return_when=asyncio.FIRST_COMPLETED)
    running.cancel()
    ctx.destroy(linger=0)
    gaps = [g for a in agents for g in a.gaps]
    admitted = [a.admitted_s for a in agents if a.admitted_s is not None]
    idle = [x for a in agents for x in a.idle]
    steady = [x for a in agents for x in a.idle[1:-2]]  # past its first trial, before the last ones
    return {"trials": sum(a.trials for a in agents), "gap_max_s": max(gaps, default=None), "idle_s": idle, "steady_idle_s": steady,
            "gap_p99_s": percentile(gaps, 99), "gaps": len(gaps), "admitted_s": admitted,
            "never_admitted": len(agents) - len(admitted)}


# -- the kernel (this process) ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def never_called(hparams, reporter):
    raise RuntimeError("simulated agents never run the function")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=64)
    ap.add_argument("--procs", type=int, default=2, help="helper processes holding the simulated agents")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per trial")
    ap.add_argument("--broadcasts", type=int, default=10, help="metrics per trial")
    ap.add_argument("--trials", type=int, default=None, help="default: 10 per agent")
    ap.add_argument("--no-lease", action="store_true", help="one trial at a time per agent (nothing ahead)")
    ap.add_argument("--sim", nargs=2, type=int, metavar=("FIRST", "COUNT"), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sim:
        out = asyncio.run(simulate(args.url, args.sim[0], args.sim[1], args.duration, args.broadcasts))
        print(json.dumps(out), flush=True)
        return

    from contexts import HyperparameterSearch, Searchspace
    from kernel import Observer, ahead, lagom

    if args.no_lease:
        ahead.LEASE_MAX = 0
    trials = args.trials or 10 * args.agents
    token = os.urandom(16).hex()
    url = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, **{TOKEN_ENV: token})
    shares = [args.agents // args.procs + (i < args.agents % args.procs) for i in range(args.procs)]
    firsts = [sum(shares[:i]) for i in range(args.procs)]

    class Watch(Observer):
        """The kernel's CPU time from the first trial's start to the last trial's end."""
        view = cpu_first = cpu_last = None
        ended = 0

        def experiment_started(self, view):
            self.view = view

        def trial_started(self, view, trial):
            if self.cpu_first is None:
                self.cpu_first = resource.getrusage(resource.RUSAGE_SELF)

        def trial_ended(self, view, trial):
            self.ended += 1
            if self.ended == trials:  # one system call, not one per trial
                self.cpu_last = resource.getrusage(resource.RUSAGE_SELF)

    watch = Watch()
    sims = [subprocess.Popen([sys.executable, __file__, "--sim", str(first), str(share), "--url", url,
                              "--duration", str(args.duration), "--broadcasts", str(args.broadcasts)],
                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for first, share in zip(firsts, shares) if share]
    with tempfile.TemporaryDirectory() as root:
        result = lagom(never_called, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), "randomsearch",
                                                          num_trials=trials, metric="value", workers=0, seed=0),
                       listen=url, token=token, launcher="none", path=root, verbose=0, report=False,
                       observers=[watch])
        events = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    sim_out = [json.loads(p.communicate("", timeout=60)[0].strip().splitlines()[-1]) for p in sims]
    admitted = [x for s in sim_out for x in s["admitted_s"]]
    cpu0, cpu1 = watch.cpu_first, watch.cpu_last
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ended = [t for t in result.trials if t.ended is not None]
    first = min(t.started for t in ended)
    last = max(t.ended for t in ended)
    # steady state: once every agent has had its first trial, until the last trial is handed out
    metrics = sum(len(t.history) for t in result.trials)
    idle = [x for s in sim_out for x in s["idle_s"]]
    lat = [x * 1000 for x in idle]
    steady = [x * 1000 for s in sim_out for x in s["steady_idle_s"]]
    gaps_max = [s["gap_max_s"] for s in sim_out if s["gap_max_s"] is not None]
    gaps_p99 = [s["gap_p99_s"] for s in sim_out if s["gap_p99_s"] is not None]
    emit({
        "bench": "scale",
        "agents": args.agents,
        "procs": args.procs,
        "trial_s": args.duration,
        "broadcasts": args.broadcasts,
        "trials": len(result.trials),
        "finished": result.count("finished"),
        "lost_agents": sum(e["event"] == "agent-gone" for e in events),
        "agents_joined": sum(e["event"] == "agent" for e in events),
        "admitted_s": {"p50": round(percentile(admitted, 50), 3), "p99": round(percentile(admitted, 99), 3),
                       "max": round(max(admitted), 3), "never": sum(s["never_admitted"] for s in sim_out)},
        "requeued_trials": sum(1 for t in result.trials if t.interruptions),
        "lease": not args.no_lease,
        "dispatch_latency_ms": {"p50": round(percentile(lat, 50), 3), "p99": round(percentile(lat, 99), 3),
                                "max": round(max(lat), 3)},
        # An agent's first trial goes alone (its pace unknown) and the last ones too (fewer left
        # than agents): between them it holds its next trial, and dispatch is that queue's.
        "steady_dispatch_latency_ms": {"p50": round(percentile(steady, 50), 3),
                                       "p99": round(percentile(steady, 99), 3)} if steady else None,
        "idle_share": round(sum(idle) / (args.agents * (last - first)), 4),  # of the agents' time, between trials
        "heartbeat_gap_s": {"max": round(max(gaps_max), 3) if gaps_max else None,
                            "p99": round(max(gaps_p99), 3) if gaps_p99 else None},
        "trials_per_s": round(len(ended) / (last - first), 1),
        "ideal_trials_per_s": round(args.agents / args.duration, 1),
        "metrics_per_s": round(metrics / (last - first), 1),
        "kernel_cpu_s": round(cpu, 2),  # from the first trial's start to the last one's end
        "kernel_cpu_share": round(cpu / (last - first), 3),
        "kernel_cpu_ms_per_trial": round(1000 * cpu / max(1, len(ended)), 3),
        "kernel_cpu_us_per_message": round(1e6 * cpu / max(1, metrics + len(ended)), 2),  # metrics and finals
        "kernel_rss_mb": round(rss_mb(), 1),
        "agents_ran": sum(s["trials"] for s in sim_out),
        "span_s": round(last - first, 2),
    })


if __name__ == "__main__":
    main()

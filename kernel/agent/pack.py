"""Trials packed into one run: the function runs once, each trial a lane of its program.

The kernel hands an agent several trials of one shape at once (``trial.pack`` names them all,
in lane order; they arrive in one message). The function runs once with the ``packed``
strategy and a :class:`LaneReporter`: a broadcast of per-lane values reaches each trial as its
own metric, a stop masks that lane alone, and what the function returns is split into one
final per trial. Each lane is a whole trial to the kernel; only the process is shared, so a
crash of it is every lane's.
"""
from __future__ import annotations

import collections
import os
import time
from typing import TYPE_CHECKING, Any, Sequence

from ..reporter import EarlyStop, KernelAway, Reporter
from . import execute
from .inprocess import LOOK_S, read_waiting

if TYPE_CHECKING:
    from .serve import Agent


def take_pack(first: dict, queue: "collections.deque[dict]") -> list[dict]:
    """The messages of the pack ``first`` opens, in lane order, taken off the queue (the kernel
    sends a pack's trials in one message, so they are all there)."""
    ids = first["pack"]
    lanes = {first["trial"]: first}
    for msg in list(queue):
        if msg.get("pack") == ids:
            lanes[msg["trial"]] = msg
            queue.remove(msg)
    return [lanes[t] for t in ids if t in lanes]


def packed_strategy(agent: "Agent") -> Any:
    """The agent's ``packed`` strategy, made once: its compiled steps serve every later pack."""
    if agent.packed is None:
        from plugins.registry import resolve
        from plugins.strategies import Strategy

        agent.packed = resolve("lagom.strategies", "packed", Strategy)
    return agent.packed


def lane_value(value: Any, lane: int, lanes: int, what: str) -> Any:
    """Lane ``lane``'s part of ``value``: one value for every lane, or one per lane."""
    shape = getattr(value, "shape", None)
    if shape is None or shape == ():
        return value
    if len(shape) == 1 and shape[0] == lanes:
        return value[lane]
    raise TypeError(f"{what} has shape {tuple(shape)}; in a pack of {lanes} trials give one value per "
                    f"trial (shape ({lanes},), as strategy.evaluate and strategy.gather return) or one for all")


def run_pack(agent: "Agent", msgs: list[dict]) -> None:
    """Run a pack's trials as one call of the function; send one final per trial."""
    ids = [m["trial"] for m in msgs]
    strategy = packed_strategy(agent)
    strategy.bind_lanes([execute.hparams_of(m) for m in msgs], msgs[0]["traced"])
    channel = PackChannel(agent, ids, msgs[0]["verdicts"])
    reporter = LaneReporter(ids, channel, strategy, [m["checkpoint"] for m in msgs],
                            [m["parent_checkpoint"] for m in msgs], metric=msgs[0]["metric"])
    available = {"hparams": strategy.hparams, "reporter": reporter, "strategy": strategy, **agent.data}
    returned: dict[str, Any] = {}

    def fn(**kwargs: Any) -> None:
        returned["value"] = agent.fn(**kwargs)

    agent.current = ids[0]
    try:
        if agent.injector is not None and any(n not in available for n in agent.names):
            available.update(agent.injector.provide(msgs[0]["extra"]))
        final = execute.call(fn, {n: available[n] for n in agent.names}, reporter, agent.echo,
                             keep_in=agent.keep_errors)
    except KernelAway:
        agent.log(f"the kernel went quiet during the pack of trials {ids}; left it, and will say hello again")
        return
    except Exception as exc:  # a generator that cannot be built fails these trials, not the agent
        final = execute.final_fields(ids[0], outcome="error", error=f"{type(exc).__name__}: {exc}",
                                     traceback=execute.user_traceback(exc), started=time.time())
    finally:
        agent.current = None
    with agent.outbox.lock:
        for lane_final in lane_finals(final, returned.get("value"), reporter):
            agent.outbox.post("final", lane_final)
        agent.outbox.flush()


def lane_finals(final: dict[str, Any], value: Any, reporter: "LaneReporter") -> list[dict[str, Any]]:
    """One final per lane from the pack's: its own result, last broadcast and outcome; the time
    compiling is each lane's (each waited for it), the programs counted once, in the first."""
    finals = []
    for lane, tid in enumerate(reporter.ids):
        f = dict(final, trial=tid)
        if lane and f["compile"] is not None:
            f["compile"] = [f["compile"][0], 0, 0]
        step, point = reporter.lasts[lane] if reporter.lasts[lane] else (None, None)
        f["step"], f["value"] = step, point
        if f["outcome"] != "error":
            f["outcome"] = "stopped" if lane in reporter.stopped else "ok"
            try:
                f["result"] = execute.normalize_result(_split(value, lane, reporter.strategy.lanes))
            except TypeError as exc:
                f.update(outcome="error", result=None, error=f"TypeError: {exc}", traceback=None)
        finals.append(f)
    return finals


def _split(value: Any, lane: int, lanes: int) -> Any:
    if isinstance(value, dict):
        return {k: lane_value(v, lane, lanes, f"the returned {k!r}") for k, v in value.items()}
    return lane_value(value, lane, lanes, "the returned value")


class LaneReporter(Reporter):
    """The reporter of a pack: ``broadcast`` takes a value per lane (or one for all) and reports
    each to its lane's trial; a lane whose trial the kernel stopped is masked in the strategy and
    reports no more; ``EarlyStop`` is raised once every lane is stopped."""

    def __init__(self, ids: Sequence[int], channel: "PackChannel", strategy: Any, checkpoints: list[str | None],
                 parents: list[str | None], metric: str | None = None):
        super().__init__(ids[0], channel, None, None, metric=metric)
        self.ids, self.strategy = list(ids), strategy
        self._checkpoints, self._parents = checkpoints, parents
        self.lasts: list[tuple[float, float] | None] = [None] * len(self.ids)
        self.stopped: set[int] = set()  # lanes

    @property
    def checkpoint_dir(self) -> str | None:
        raise AttributeError("in a packed run each trial has its own folder: strategy.save(state, reporter) "
                             "saves each lane in its own (or use reporter.checkpoint_dirs[lane])")

    @property
    def checkpoint_dirs(self) -> list[str | None]:
        for folder in self._checkpoints:
            if folder is not None:
                os.makedirs(folder, exist_ok=True)
                self.saved = True
        return list(self._checkpoints)

    @property
    def parent_checkpoint_dirs(self) -> list[str | None]:
        return list(self._parents)

    def broadcast(self, metric: Any = None, step: int | float | None = None, **named: Any) -> None:
        k, points = self.strategy.lanes, []
        for lane, tid in enumerate(self.ids):
            if lane in self.stopped:
                continue
            step, value, values = self._checked(None if metric is None else lane_value(metric, lane, k, "metric"),
                                                {n: lane_value(v, lane, k, n) for n, v in named.items()}, step)
            if value is not None:
                self.lasts[lane] = (step, value)
            if value is not None or values:
                points.append((tid, [step, value, values] if values else [step, value]))
        for tid in self.channel.send_lanes(points):
            self.stop_lane(self.ids.index(tid))
        if self.should_stop():
            raise EarlyStop(f"every trial of the pack {self.ids} was stopped by the kernel at step "
                            f"{self._step if step is None else step}")  # None: every lane had stopped

    def stop_lane(self, lane: int) -> None:
        if lane not in self.stopped:
            self.stopped.add(lane)
            self.strategy.stop_lane(lane)

    def should_stop(self) -> bool:
        for tid in self.channel.stops_seen():
            self.stop_lane(self.ids.index(tid))
        self._stopped = len(self.stopped) == len(self.ids)
        return self._stopped


class PackChannel:
    """A pack's lanes reach the kernel over the agent's socket: each broadcast's points go in
    one message, and where an early-stopping rule judges them, the verdicts are awaited together."""

    def __init__(self, agent: "Agent", ids: list[int], verdicts: bool):
        self._agent, self._ids, self._verdicts = agent, set(ids), verdicts
        self._stops: set[int] = set()
        self._new: list[int] = []
        self._awaited: set[int] = set()
        self._looked = 0.0

    def send_lanes(self, points: list[tuple[int, list]]) -> list[int]:
        """Send each lane's point; returns the trials a verdict stopped (the kernel's answer to
        these very points, when it judges them)."""
        agent = self._agent
        with agent.outbox.lock:
            for tid, point in points:
                agent.outbox.post("metric", {"trial": tid, "points": [point]})
            agent.outbox.flush()
        if self._verdicts:
            self._awaited = {tid for tid, _ in points}
            while self._awaited:
                self._take(agent.next_message())
                if self._awaited and agent.quiet:
                    raise KernelAway(f"no verdict for trials {sorted(self._awaited)}")
        return self.stops_seen()

    def send_log(self, lines: list[str]) -> None:
        with self._agent.outbox.lock:
            for tid in sorted(self._ids):
                self._agent.outbox.post("log", {"trial": tid, "lines": lines})
            self._agent.outbox.flush()

    def stop_requested(self) -> bool:
        return bool(self.stops_seen()) or len(self._stops) == len(self._ids)

    def stops_seen(self) -> list[int]:
        """Trials stopped since the last call (looking, without blocking, at most every LOOK_S)."""
        now = time.monotonic()
        if now - self._looked >= LOOK_S:
            self._looked = now
            read_waiting(self._agent, self._take)
        new, self._new = self._new, []
        return new

    def _take(self, msg: dict | None) -> None:
        if msg is not None:
            self._agent.router.route(msg, {"stop": self._on_stop, "verdict": self._on_stop})

    def _on_stop(self, msg: dict) -> None:
        tid = msg["trial"]
        if tid not in self._ids:
            return  # a late word for a trial that ended
        if msg["type"] == "verdict":
            self._awaited.discard(tid)
        if (msg["type"] == "stop" or msg["stop"]) and tid not in self._stops:
            self._stops.add(tid)
            self._new.append(tid)

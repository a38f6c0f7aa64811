"""Trials run in the agent's own warm process, on its thread: the single-device strategy, and
the channel through which the reporter reaches the kernel over the agent's socket.

A distributed run goes to a fresh process instead (child.py).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from transports.codec import final_fields

from ..reporter import KernelAway, Reporter
from . import execute

if TYPE_CHECKING:
    from .serve import Agent

LOOK_S = 0.001  # the socket is looked at, for a stop or what waits, at most this often (a trial's loop, a queue)

_single: Any = None


def single_strategy() -> Any:
    """The class of the in-process strategy ("single"), looked up once per process: the lookup
    reads every installed package's entry points (~30 ms). The zygote looks it up before it
    forks, so the agents it forks start without: 32 of them on 2 cores began their first
    trials 0.15 s apart, and that spread was the ramp-up of a search."""
    global _single
    if _single is None:
        from plugins.registry import load

        _single = load("lagom.strategies", "single")
    return _single


def in_process_strategy() -> Any:
    """An instance of the in-process strategy, for the trials this agent runs in its process."""
    from plugins.registry import resolve
    from plugins.strategies import Strategy

    return resolve("lagom.strategies", single_strategy(), Strategy)



def run_here(agent: "Agent", msg: dict) -> None:
    """A trial in this warm process, with the single-device strategy."""
    tid = msg["trial"]
    channel = SocketChannel(agent, tid, msg["verdicts"])
    reporter = Reporter(tid, channel, msg["checkpoint"], msg["parent_checkpoint"], metric=msg["metric"])
    hparams = execute.hparams_of(msg)
    agent.single.bind(hparams, msg["traced"])
    available = {"hparams": hparams, "reporter": reporter, "strategy": agent.single, **agent.data}
    agent.current = tid
    agent.outbox.running(tid)  # its broadcasts wait as points until sent
    try:
        if agent.injector is not None and any(n not in available for n in agent.names):
            available.update(agent.injector.provide(msg["extra"]))
    except Exception as exc:  # a generator that cannot be built fails this trial, not the agent
        final = final_fields(tid, outcome="error", error=f"{type(exc).__name__}: {exc}",
                             traceback=execute.user_traceback(exc), started=time.time())
    else:
        try:
            final = execute.call(agent.fn, {n: available[n] for n in agent.names}, reporter, agent.echo,
                             keep_in=agent.keep_errors)
        except KernelAway:  # nobody waits for this trial any more: the kernel runs it again
            agent.log(f"the kernel went quiet during trial {tid}; left it, and will say hello again")
            return
    finally:
        agent.current = None
    with agent.outbox.lock:  # the broadcasts not sent yet travel in the final (the kernel takes them first)
        agent.outbox.final(final)


def read_waiting(agent: "Agent", take: Callable[[dict | None], Any]) -> None:
    """Hand ``take`` every message waiting on the agent's socket, without blocking (a running
    trial's look for a stop or a verdict)."""
    while True:
        with agent.outbox.lock:
            frames = agent.recv()
        if frames is None:
            return
        take(agent.decode(frames))


class SocketChannel:
    """A trial on the agent's own thread reaches the kernel over the agent's socket.

    With ``verdicts`` (an early-stopping rule judges this trial) each broadcast waits for the
    kernel's answer to it, about one round trip. Otherwise a broadcast costs an append to the
    outbox, which sends bursts as one message (outbox.py), and a stop pushed by the kernel is
    picked up, without blocking, at the next broadcast.
    """

    def __init__(self, agent: "Agent", trial_id: int, verdicts: bool):
        self._agent, self._trial, self._verdicts = agent, trial_id, verdicts
        self._stopped = False
        self._looked = 0.0
        if not verdicts:  # a broadcast goes straight to the outbox: one call less per broadcast
            self.send_metric = agent.outbox.point  # type: ignore[method-assign]

    def send_metric(self, step: float, value: float | None, named: dict[str, float] | None = None) -> None:
        """A broadcast that waits for the kernel's verdict (without ``verdicts``, the outbox's
        ``point`` takes this method's place)."""
        agent = self._agent
        agent.send("metric", trial=self._trial, points=[[step, value, named] if named else [step, value]])
        while not self._take(agent.next_message()):
            if agent.quiet:  # the kernel died or cannot hear us: no verdict is coming
                raise KernelAway(f"no verdict for trial {self._trial}")

    def send_log(self, lines: list[str]) -> None:
        self._agent.send("log", trial=self._trial, lines=lines)

    def stop_requested(self) -> bool:
        """Whether the kernel said stop. Looking costs a system call, so a trial that
        broadcasts in a tight loop looks once every LOOK_S (a stop waits at most that long)."""
        now = time.monotonic()
        if self._stopped or now - self._looked < LOOK_S:
            return self._stopped
        self._looked = now
        read_waiting(self._agent, self._take)
        return self._stopped

    def _take(self, msg: dict | None) -> bool:
        """Route a message that arrived during the trial; True if it is this broadcast's verdict."""
        return msg is not None and self._agent.router.route(msg, {"stop": self._on_stop, "verdict": self._on_stop}) is True

    def _on_stop(self, msg: dict) -> bool | None:
        if msg["trial"] != self._trial:
            return None  # a late word for a trial that ended
        self._stopped = self._stopped or msg["type"] == "stop" or msg["stop"]
        return msg["type"] == "verdict" or None

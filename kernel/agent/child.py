"""A run in a fresh process, a child of its agent: both ends of the pipe between them.

``jax.distributed.initialize`` must come before any other JAX call and cannot be repeated, a
dead peer makes JAX abort the whole process, and forced CPU device counts (XLA_FLAGS) only act
before JAX starts. So a distributed run never happens inside the long-lived agent: the agent
spawns a child (:func:`child_main`), relays its metrics, logs and final to the kernel
(:class:`ChildRun`), passes a stop in, and kills it when the kernel aborts the run.

The pipe protocol. Child -> agent: ``("metric", step, value)``, ``("log", lines)``,
``("final", fields)``. Agent -> child: ``("stop",)``.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from typing import TYPE_CHECKING, Any

import cloudpickle

from transports.codec import final_fields

from .. import shipping
from ..reporter import Reporter, Shutdown
from . import compiles, execute

if TYPE_CHECKING:
    from .serve import Agent


# -- the agent's end ---------------------------------------------------------------------------
class ChildRun:
    """One trial message run in a spawned process; ``run()`` sends its final to the kernel."""

    def __init__(self, agent: "Agent", msg: dict[str, Any]):
        self.agent, self.trial = agent, msg["trial"]
        self.rank = int(msg["run"].get("process_id", 0))
        self.payload = {"trial": self.trial, "run": msg["run"], "function": agent.function_bytes,
                        "names": agent.names, "hparams": execute.hparams_of(msg), "checkpoint": msg["checkpoint"],
                        "parent_checkpoint": msg["parent_checkpoint"], "echo": agent.echo,
                        "inject": agent.inject_bytes, "extra": msg["extra"], "metric": msg["metric"],
                        "traced": msg["traced"]}
        self._run = {"stop": self._on_stop, "verdict": self._on_stop, "abort": self._on_abort,
                     "shutdown": self._on_shutdown, "rejoin": self._on_rejoin}  # the rest: where the router says

    def run(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=child_main, args=(theirs, self.payload), name=f"lagom-run-{self.trial}",
                                daemon=True)
        self.proc.start()
        theirs.close()
        try:
            # The final goes out before the child is waited for: a multihost child may take its
            # time leaving the process group, and the kernel must hear of a failure at once.
            self.agent.send("final", **self._relay())
        finally:
            self.pipe.close()
            self.proc.join(30)  # a multihost child leaves its process group with its peers first
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()

    def _relay(self) -> dict[str, Any]:
        """Pass messages both ways until the child's final (or its death, or an abort)."""
        conn = self.agent.conn
        while True:
            from_kernel, from_child = conn.wait(self.agent.heartbeat, [self.pipe.fileno()])
            final = (self._from_child() if from_child else None) or (self._from_kernel() if from_kernel else None)
            if final is not None:
                return final

    def _from_child(self) -> dict[str, Any] | None:
        try:
            while self.pipe.poll():
                item = self.pipe.recv()
                if item[0] == "final":
                    return item[1]
                if item[0] == "metric":
                    point = [item[1], item[2], item[3]] if item[3] else [item[1], item[2]]
                    self.agent.send("metric", trial=self.trial, points=[point])
                elif item[0] == "log":
                    self.agent.send("log", trial=self.trial, lines=item[1])
        except (EOFError, OSError):
            self.proc.join(5)
            return self._died(f"the run's process died (exit code {self.proc.exitcode})")
        return None

    def _from_kernel(self) -> dict[str, Any] | None:
        while (frames := self._recv()) is not None:
            msg = self.agent.decode(frames)
            final = self.agent.router.route(msg, self._run) if msg is not None else None
            if final is not None:
                return final
        return None

    def _recv(self) -> list[bytes] | None:
        with self.agent.outbox.lock:
            return self.agent.recv()

    def _on_stop(self, msg: dict) -> None:
        if msg["trial"] == self.trial and (msg["type"] == "stop" or msg["stop"]):
            self.pipe.send(("stop",))

    def _on_abort(self, msg: dict) -> dict[str, Any] | None:
        if msg["trial"] != self.trial:
            return None
        self.proc.kill()
        return self._died(f"aborted: {msg['reason']}")

    def _on_rejoin(self, msg: dict) -> None:
        """The kernel gave this agent up: this run is stale (it runs elsewhere)."""
        self.proc.kill()
        self.agent.rejoin(msg)

    def _on_shutdown(self, msg: dict) -> None:
        self.proc.kill()
        raise Shutdown(msg["reason"])

    def _died(self, why: str) -> dict[str, Any]:
        return final_fields(self.trial, rank=self.rank, outcome="error", error=why, started=time.time())


# -- the child's end ---------------------------------------------------------------------------
class PipeChannel:
    """The reporter's channel in the child: the pipe to the agent. Only rank 0's broadcasts
    reach the kernel; every rank's log lines do, marked with their rank."""

    def __init__(self, conn, rank: int):
        self._conn, self._rank = conn, rank
        self._stopped = False

    def send_metric(self, step: float, value: float | None, named: dict[str, float] | None = None) -> None:
        if self._rank == 0:
            self._conn.send(("metric", step, value, named))

    def send_log(self, lines: list[str]) -> None:
        self._conn.send(("log", lines if self._rank == 0 else [f"[rank {self._rank}] {line}" for line in lines]))

    def stop_requested(self) -> bool:
        while self._conn.poll():
            if self._conn.recv()[0] == "stop":
                self._stopped = True
        return self._stopped


def build_strategy(run: dict[str, Any]):
    """The strategy a run names, placed in the process group the kernel assigned."""
    from plugins.registry import resolve
    from plugins.strategies import Strategy

    spec = cloudpickle.loads(run["strategy_pickle"]) if run.get("strategy_pickle") else run["strategy"]
    strategy = resolve("lagom.strategies", spec, Strategy)
    strategy.configure(run)
    return strategy


def child_main(conn, payload: dict[str, Any]) -> None:
    """The child process: build the strategy, run the function once, send the final, leave."""
    os.environ.update({str(k): str(v) for k, v in payload["run"].get("env", {}).items()})
    compiles.watch()
    run, tid = payload["run"], payload["trial"]
    rank = int(run.get("process_id", 0))
    reporter = Reporter(tid, PipeChannel(conn, rank), payload.get("checkpoint"), payload.get("parent_checkpoint"),
                        metric=payload.get("metric"))
    strategy = None
    try:
        strategy = build_strategy(run)
        strategy.setup()  # multihost: joins the process group before anything else touches JAX
        strategy.bind(payload["hparams"], payload["traced"])
        fn, data = shipping.split(shipping.unpack(payload["function"]))
        available = {"hparams": payload["hparams"], "reporter": reporter, "strategy": strategy, **data}
        if payload.get("inject"):  # the context's dataset and model generators
            available.update(cloudpickle.loads(payload["inject"]).provide(payload.get("extra")))
        final = execute.call(fn, {n: available[n] for n in payload["names"]}, reporter,
                             echo=payload.get("echo", False), rank=rank)
    except Exception as exc:  # the strategy could not start: a failed run, with why
        final = final_fields(tid, rank=rank, outcome="error", error=f"{type(exc).__name__}: {exc}",
                             traceback=execute.user_traceback(exc))
    conn.send(("final", final))
    conn.close()
    if strategy is not None:
        try:
            strategy.teardown()  # multihost: leave the process group together with the peers
        except Exception:
            pass

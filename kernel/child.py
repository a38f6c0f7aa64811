"""A distributed run's training process: fresh, one per run, a child of its agent.

``jax.distributed.initialize`` must come before any other JAX call and cannot be repeated, a
dead peer makes JAX abort the whole process, and forced CPU device counts (XLA_FLAGS) only act
before JAX starts. So a distributed run never happens inside the long-lived agent: the agent
spawns this process, relays its metrics, logs and outcome to the kernel, forwards a stop, and
kills it when the kernel aborts the run.

Child -> agent over a multiprocessing pipe: ("metric", step, value), ("log", lines),
("final", fields). Agent -> child: ("stop",).
"""
from __future__ import annotations

import os
from typing import Any

import cloudpickle


def build_strategy(run: dict[str, Any]):
    """The strategy a run names, placed in the process group the kernel assigned."""
    from plugins.registry import resolve
    from plugins.strategies import MultiHost, Strategy

    spec = cloudpickle.loads(run["strategy_pickle"]) if run.get("strategy_pickle") else run["strategy"]
    strategy = resolve("lagom.strategies", spec, Strategy)
    if isinstance(strategy, MultiHost):
        strategy.coordinator = run.get("coordinator")
        strategy.num_processes = int(run.get("num_processes", 1))
        strategy.process_id = int(run.get("process_id", 0))
        strategy.timeout_s = int(run.get("timeout", strategy.timeout_s))
    return strategy


def main(conn, payload: dict[str, Any]) -> None:
    os.environ.update({str(k): str(v) for k, v in payload["run"].get("env", {}).items()})
    from . import execute
    from .reporter import Reporter

    run, tid = payload["run"], payload["trial"]
    rank = int(run.get("process_id", 0))
    stopped = [False]

    def send_metric(trial_id, step, value):
        if rank == 0:  # the kernel records rank 0's broadcasts
            conn.send(("metric", step, value))

    def send_log(trial_id, lines):
        conn.send(("log", lines if rank == 0 else [f"[rank {rank}] {line}" for line in lines]))

    def check_stop():
        while conn.poll():
            if conn.recv()[0] == "stop":
                stopped[0] = True
        return stopped[0]

    reporter = Reporter(tid, send_metric, send_log, check_stop, payload.get("checkpoint"),
                        payload.get("parent_checkpoint"))
    strategy = None
    try:
        strategy = build_strategy(run)
        strategy.setup()  # multihost: joins the process group before anything else touches JAX
        fn = cloudpickle.loads(payload["function"])
        available = {"hparams": payload["hparams"], "reporter": reporter, "strategy": strategy}
        if payload.get("inject"):  # the context's dataset and model generators
            available.update(cloudpickle.loads(payload["inject"]).provide(payload.get("extra")))
        fields = execute.call(fn, {n: available[n] for n in payload["names"]}, reporter, send_log,
                              echo=payload.get("echo", False))
    except Exception as exc:  # the strategy could not start: a failed run, with why
        fields = {"outcome": "error", "result": None, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": execute.user_traceback(exc), "started": 0.0, "duration": 0.0,
                  "step": None, "value": None}
    conn.send(("final", fields))
    conn.close()
    if strategy is not None and getattr(strategy, "_initialized", False):
        import jax

        try:
            jax.distributed.shutdown()  # leave the process group together with the peers
        except Exception:
            pass

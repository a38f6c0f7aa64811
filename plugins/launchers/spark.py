"""Agents as long-running Spark tasks, one per executor slot, in barrier mode (as Maggy does).

The kernel runs in the Spark driver (your program); one barrier stage of ``count`` tasks starts
``count`` agents, which connect back to the kernel with the token and run trials until the
kernel says shutdown. Barrier mode starts all tasks together or none, and a failed task fails
the stage, which the launcher reports as the agents' exit.

On a cluster, the driver must be reachable from the executors: listen on a routable address
(``lagom(..., listen="tcp://0.0.0.0:7777")``) and make this package and the training function's
modules importable on the executors (``spark.submit.pyFiles``, or install the package there).
"""
from __future__ import annotations

import os
import sys
import threading
import uuid
from pathlib import Path

from .base import Launcher, OnExit


def _agent_task(url: str, token: str, prefix: str, insecure: bool):
    def run(partition):
        from pyspark import BarrierTaskContext

        from kernel.agent import Agent

        ctx = BarrierTaskContext.get()
        yield Agent(url, token, agent_id=f"{prefix}-{ctx.partitionId()}", insecure=insecure).run()  # Spark's process

    return run


class SparkLauncher(Launcher):
    """``spark``: a SparkSession (or SparkContext) to use, or None to make one with ``master``."""

    def __init__(self, spark=None, master: str = "local[2]", app_name: str = "lagom-agents"):
        self.spark = spark
        self.master = master
        self.app_name = app_name
        self._thread: threading.Thread | None = None
        self._own_session = None
        self._stopping = threading.Event()

    def _context(self):
        if self.spark is not None:
            return getattr(self.spark, "sparkContext", self.spark)
        from pyspark.sql import SparkSession

        path = os.pathsep.join(p for p in sys.path if p)
        self._own_session = (SparkSession.builder.master(self.master).appName(self.app_name)
                             .config("spark.pyspark.python", sys.executable)  # the driver's interpreter
                             .config("spark.pyspark.driver.python", sys.executable)
                             .config("spark.executorEnv.PYTHONPATH", path)
                             .config("spark.ui.enabled", "false")
                             .getOrCreate())
        return self._own_session.sparkContext

    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        sc = self._context()
        prefix = f"spark-{uuid.uuid4().hex[:6]}"
        ids = [f"{prefix}-{i}" for i in range(count)]
        job = f"lagom-{prefix}"

        def stage() -> None:
            detail = "the Spark stage ended"
            try:
                sc.setJobGroup(job, "lagom agents", interruptOnCancel=True)
                codes = sc.parallelize(range(count), count).barrier() \
                    .mapPartitions(_agent_task(url, token, prefix, insecure)).collect()
                detail = f"exit codes {codes}"
            except Exception as exc:  # a failed task fails the stage: every agent is gone
                detail = f"Spark stage failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            if not self._stopping.is_set():
                for agent_id in ids:
                    on_exit(agent_id, detail)

        self._sc, self._job = sc, job
        self._thread = threading.Thread(target=stage, name=f"lagom-{job}", daemon=True)
        self._thread.start()
        return ids

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout * 4)  # the agents were told to shut down; let the stage end
            if self._thread.is_alive():
                self._sc.cancelJobGroup(self._job)
                self._thread.join(timeout)
        if self._own_session is not None:
            self._own_session.stop()
            self._own_session = None

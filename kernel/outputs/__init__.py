"""What an experiment shows while it runs and leaves behind: the progress line, curves.jsonl
and agents.json, report.html, TensorBoard, MLflow, the web dashboard.

Each is an observer of the kernel (kernel/views.py) or a reader of the experiment folder
(kernel/records.py, kernel/timeline.py); none is needed for a search to run, and the kernel
core imports none of them.
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .. import shipping
from ..agent.cli import TOKEN_ENV


async def start_dashboard(folder: Path, port: bool | int) -> None:
    """The live dashboard of the experiments beside this one, in a process of its own (its page
    never costs the kernel a dispatch), opened at this experiment; it stays after lagom()
    returns, until this program ends. One that cannot start is said, not fatal."""
    from urllib.parse import quote

    try:
        from .dashboard import serving

        board = await asyncio.to_thread(serving, folder.parent, 0 if port is True else int(port))
    except (ImportError, RuntimeError, OSError) as exc:
        print(f"lagom: no dashboard: {exc}", file=sys.stderr, flush=True)
        return
    print(f"lagom: dashboard at {board.url}#{quote(folder.name)} (until this program ends; later: python -m "
          f"kernel dashboard {folder.parent})", flush=True)


def start_report(folder: Path) -> None:
    """report.html is drawn by a process of its own, once the folder is complete (an ablation's
    chart included), so ``lagom()`` returns at once: matplotlib's import and plots took 1-1.5 s
    of a 40-trial search's 0.5 s. Without matplotlib (the ``report`` extra) there is no report;
    ``python -m kernel report`` makes one later."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(shipping.import_path())}
    env.pop(TOKEN_ENV, None)
    try:
        subprocess.Popen([sys.executable, "-m", "kernel", "report", str(folder)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    except OSError:
        pass

"""A live web dashboard over the experiments under a folder (``python -m kernel dashboard``,
or ``lagom(..., dashboard=True)``): status and counts, the trials table, learning curves that
grow as broadcasts arrive, the best so far, parameters against the metric, ASHA's rungs, the
agents and their health, the ablation ranking, and each trial's log.

It reads the experiment folders alone (journal.jsonl, curves.jsonl, agents.json, the logs), so
it shows running, finished and resumed experiments alike, also from another host that shares
the folder. An optional extra (``pip install "lagom-kernel[dashboard]"``: aiohttp, and plotly
for the plotly.js it ships); nothing is fetched from the network.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

DEFAULT_PORT = 8470


def main(path: str | None, host: str, port: int, token_file: str | None, exit_with_stdin: bool) -> int:
    """``python -m kernel dashboard``: serve until Ctrl-C (or, for lagom, until stdin closes)."""
    import asyncio

    from ...journal import DEFAULT_ROOT_ENV

    try:
        from .server import serve, token_from
    except ImportError as exc:
        raise SystemExit(f'lagom: error: the dashboard needs aiohttp and plotly ({exc}): '
                         f'pip install "lagom-kernel[dashboard]"') from None

    root = Path(path or os.environ.get(DEFAULT_ROOT_ENV) or "lagom-runs")
    if not root.is_dir():
        raise SystemExit(f"lagom: error: {root} is not a folder; pass an experiment folder or a folder of them")

    async def run() -> None:
        until = asyncio.get_running_loop().create_future()
        if exit_with_stdin:
            _when_stdin_closes(lambda: until.get_loop().call_soon_threadsafe(_done, until))

        def announce(url: str) -> None:
            print(f"lagom dashboard: {url} ({root})", flush=True)

        await serve(root, host=host, port=port, token=token_from(token_file), announce=announce, until=until)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


def _done(future) -> None:
    if not future.done():
        future.set_result(None)


def _when_stdin_closes(then) -> None:
    def wait() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            then()

    threading.Thread(target=wait, name="lagom-dashboard-stdin", daemon=True).start()


class Running:
    """A dashboard started by lagom(): its URL, and a way to stop it."""

    def __init__(self, process: subprocess.Popen, url: str):
        self.process, self.url = process, url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # it leaves when its stdin closes (also if we die)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


_SERVING: dict[tuple[Path, int], Running] = {}  # started by this process, which holds their stdin


def serving(root: Path, port: int = 0) -> Running:
    """The dashboard over the experiments under ``root`` that this process started (one per
    root and port), started now if there is none: a notebook's later experiments show in the
    page already open. It lives as long as this process, so the page still shows an experiment
    that has ended, and goes when the program does (its stdin is this process's pipe)."""
    key = (Path(root).resolve(), port)
    board = _SERVING.get(key)
    if board is None or board.process.poll() is not None:
        board = _SERVING[key] = start(Path(root), port)
    return board


def stop_all() -> None:
    """Stop the dashboards this process started (they would stop when it ends)."""
    while _SERVING:
        _SERVING.popitem()[1].stop()


def start(folder: Path, port: int = 0, timeout: float = 20.0) -> Running:
    """Start ``python -m kernel dashboard folder`` on loopback; returns once it listens (or
    raises RuntimeError saying why not)."""
    root = Path(__file__).resolve().parent.parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    env.pop("LAGOM_TOKEN", None)  # loopback needs none, and a child should not hold it
    log = open(folder / "dashboard.log", "ab")
    with log:
        process = subprocess.Popen([sys.executable, "-m", "kernel", "dashboard", str(folder), "--port", str(port),
                                    "--exit-with-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=log, env=env, text=True)
    found: dict[str, str] = {}
    reader = threading.Thread(target=lambda: found.setdefault("line", process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = found.get("line", "")
    if not line.startswith("lagom dashboard: "):
        process.kill()
        process.wait()
        error = (folder / "dashboard.log").read_text(errors="replace").strip().splitlines()[-1:] or ["it exited"]
        raise RuntimeError(f"the dashboard did not start: {error[0]}")
    return Running(process, line.split()[2])

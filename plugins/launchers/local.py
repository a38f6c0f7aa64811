"""Agents as subprocesses of this machine: the default, so ``lagom()`` needs no setup.

Each agent is ``python -m kernel.agent`` with the token in its environment (never on a command
line that ``ps`` shows) and this interpreter's ``sys.path``, so a training function defined in
any module the driver can import unpickles in the agent too. Its output goes to
``agents/<id>.log`` in the experiment folder.

On a host with GPUs each agent gets GPUs of its own when there are enough (``CUDA_VISIBLE_DEVICES``),
and agents that must share them do not each preallocate 75% of a GPU's memory.

An agent process that dies (a trial that segfaults, aborts, calls ``os._exit``, or is killed by
the OOM killer) is replaced at once by a fresh one (``<id>+1``, up to ``max_restarts`` times per
slot), so one bad trial never takes the search's agents with it; the kernel is told how it died,
with the last lines of its output.

Agents are forked from a warm process (plugins/launchers/zygote.py), so 32 agents start in a
fraction of a second instead of 32 interpreters importing the same modules on 2 cores. Where it
is safe (plugins/launchers/forking.py: a script on Linux whose JAX has not started), that
process is a fork of the driver's own, made for the experiment: its agents start with every
module the driver imported (JAX, optax, the user's own), so a function's ~2 s of imports are
paid once, by the user's script, not again by each agent. Elsewhere (the driver's JAX has
started, as after a try of the function in the script; ``lagom()`` runs in a notebook) it is
the clean zygote, one per process and environment, started with the agent's modules and no
thread or ZeroMQ context; before it forks an experiment's agents it imports the installed
libraries the function imports (kernel/shipping.py's ``libraries``: JAX, optax, scikit-learn;
never the user's own modules, which may change between experiments), so they are paid once
per process, and a notebook's second search starts as fast as a script's
(``preload_libraries=False`` or ``LAGOM_PRELOAD=0`` leaves them to each agent). Each fork sets
its own environment, working directory, ``sys.path`` and log before the agent runs, so it is
the agent a fresh ``python -m kernel.agent`` would be, with the driver's modules loaded (a
restarted one comes from the same zygote).
``LocalLauncher(from_driver=False)`` or ``LAGOM_FORK_DRIVER=0`` keeps to the clean zygote;
``LocalLauncher(python=...)`` (another interpreter) starts fresh processes.
"""
from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from kernel.agent.blackbox import ENV as BOX_ENV
from kernel.agent.blackbox import last_trial
from kernel.agent.cli import TOKEN_ENV
from kernel.shipping import import_path, libraries

from . import forking
from .base import Exit, Launcher, OnExit

FORK_ENV = "LAGOM_FORK_DRIVER"  # 0: this process's agents never come from a fork of it
PRELOAD_ENV = "LAGOM_PRELOAD"  # 0: the clean zygote loads no library of the function's ahead of its agents
READY_S = 30.0  # a zygote says it is ready within this, or agents start without it
PRELOAD_S = 120.0  # a zygote's imports for an experiment's agents end within this, or it is retired


def host_gpus() -> list[str]:
    """This host's GPUs as CUDA numbers them (``CUDA_VISIBLE_DEVICES`` if set, else what
    ``nvidia-smi -L`` lists); none on a host without NVIDIA's driver. JAX is not imported."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def gpu_environments(gpus: list[str], count: int) -> list[dict[str, str]]:
    """What each of ``count`` agents sees of ``gpus``: a share of its own when there are enough
    (4 GPUs, 2 agents: two each), else all of them, shared, without JAX's default of taking 75%
    of a GPU's memory per process (the second agent would find none left)."""
    if not gpus:
        return [{} for _ in range(count)]
    if len(gpus) >= count:
        per = len(gpus) // count
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * per:(i + 1) * per])} for i in range(count)]
    return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus), "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
            for _ in range(count)]


def _tail(path: Path, lines: int = 60, limit: int = 16384) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""


class _Zygote:
    """A zygote (plugins/launchers/zygote.py) and the agents it forked: a clean one, shared by
    all experiments of the process whose agents have one environment (it is started in it,
    and the libraries it loads for them read it as they import), started with the first agent;
    or one forked from this process (plugins/launchers/forking.py) for one experiment's agents."""

    _clean: "dict[frozenset, _Zygote]" = {}
    _lock = threading.Lock()
    never: set[str] = set()  # libraries whose import made a zygote unsafe to fork: not loaded again

    @classmethod
    def get(cls, env: dict[str, str] | None = None) -> "_Zygote":
        """The clean zygote for agents that run with ``env`` (this process's own by default)."""
        env = {k: v for k, v in (os.environ if env is None else env).items() if k not in forking.PER_AGENT}
        key = forking.early(env)
        with cls._lock:
            zygote = cls._clean.get(key)
            if zygote is None or zygote.dead or zygote.retired:
                for other in [z for z in cls._clean.values() if not z._ended]:  # idle, of another environment
                    other.close()
                env["PYTHONPATH"] = os.pathsep.join(import_path())
                # A session of its own: Ctrl-C in a terminal, or a notebook's interrupt (sent to the
                # whole process group), is for the driver, which ends the trials and the agents itself.
                proc = subprocess.Popen([sys.executable, "-m", "plugins.launchers.zygote"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env, cwd=os.getcwd(), start_new_session=True)
                cls._clean = {k: z for k, z in cls._clean.items() if z._ended and not z.dead}
                zygote = cls._clean[key] = cls(proc.pid, proc.stdin, proc.stdout, proc.wait)
            return zygote

    @classmethod
    def from_driver(cls) -> "_Zygote":
        pid, requests, replies = forking.fork_zygote()
        return cls(pid, os.fdopen(requests, "wb"), os.fdopen(replies, "rb"), lambda: os.waitpid(pid, 0))

    def __init__(self, pid: int, requests, replies, reap: Callable[[], object]) -> None:
        self.pid, self.requests, self.replies, self._reap = pid, requests, replies, reap
        answered, _, _ = select.select([replies], [], [], READY_S)  # a fork that hangs is given up, not waited on
        if not answered or not json.loads(self.replies.readline() or b"{}").get("ready"):
            _signal(pid, signal.SIGKILL)
            reap()
            raise OSError(f"the agents' zygote did not start{'' if answered else f' in {READY_S:.0f} s'}")
        self.dead = self.retired = False
        self.loaded: set[str] = set()  # the libraries it has imported for its agents
        self._replies: queue.Queue[_Forked | str | None] = queue.Queue()
        self._preloads: queue.Queue[dict] = queue.Queue()
        self._ended: dict[int, tuple[threading.Event, list]] = {}
        self._request_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="lagom-zygote", daemon=True)
        self._reader.start()

    def close(self, timeout: float = 5.0) -> None:
        """No more agents: the zygote ends those still alive, and leaves."""
        with self._request_lock:
            self.requests.close()
        self._reader.join(timeout)

    def fork(self, request: dict) -> "_Forked":
        with self._request_lock:
            self._send(request)
            forked = self._replies.get(timeout=30)
        if forked is None:
            raise OSError("the agents' zygote is gone")
        if isinstance(forked, str):
            raise OSError(forked)
        return forked

    def preload(self, names: list[str], timeout: float = PRELOAD_S) -> str | None:
        """Have the zygote import ``names`` (what the function will import) for every agent it
        forks from now on. One that leaves the zygote unsafe to fork, or an import that does not
        end, retires it (the next ``get`` starts another, which never loads that one again, nor
        all of ``names`` when it is not known which import hung); then this says why."""
        names = [n for n in names if n not in self.loaded and n not in _Zygote.never]
        if not names:
            return None
        with self._request_lock:
            self._send({"preload": names})
            try:
                answer = self._preloads.get(timeout=timeout)
            except queue.Empty:  # which import hangs is not known: none of them is loaded again
                answer = {"unsafe": f"importing {', '.join(names)} did not end in {timeout:.0f} s", "culprits": names}
                if not self._ended:  # stuck in an import, it would never read its stdin's end
                    _signal(self.pid, signal.SIGKILL)
        self.loaded.update(answer.get("preloaded", ()))
        if answer.get("unsafe"):
            self.retired = True
            _Zygote.never.update(answer.get("culprits", ()))
        return answer.get("unsafe")

    def _send(self, request: dict) -> None:
        self.requests.write(json.dumps(request).encode() + b"\n")
        self.requests.flush()

    def _read(self) -> None:
        for line in self.replies:
            msg = json.loads(line)
            if "preloaded" in msg:
                self._preloads.put(msg)
            elif msg.get("pid", 0) is None:  # refused: the zygote may no longer fork
                self._replies.put(msg.get("error", "the agents' zygote refused to fork"))
            elif "pid" in msg:  # handed over whole: its exit may be read before fork() looks
                self._ended[msg["pid"]] = (threading.Event(), [None])
                self._replies.put(_Forked(msg["pid"], *self._ended[msg["pid"]]))
            elif "exit" in msg:
                event, code = self._ended.pop(msg["exit"], (threading.Event(), [None]))
                code[0] = msg["code"]
                event.set()
        # The zygote is gone (killed): its agents can no longer be watched, so they are ended.
        self.dead = True
        self._replies.put(None)  # a fork() waiting for its pid hears it now, not in 30 s
        for pid, (event, code) in list(self._ended.items()):
            _signal(pid, signal.SIGKILL)
            code[0] = -signal.SIGKILL
            event.set()
        self._reap()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class _Forked:
    """An agent forked by the zygote, with the part of Popen's interface the launcher uses."""

    def __init__(self, pid: int, ended: threading.Event, code: list):
        self.pid, self._ended, self._code = pid, ended, code

    @property
    def returncode(self) -> int | None:
        return self._code[0]

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired("kernel.agent", timeout)
        return self._code[0]

    def terminate(self) -> None:
        if not self._ended.is_set():
            _signal(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        if not self._ended.is_set():
            _signal(self.pid, signal.SIGKILL)


class LocalLauncher(Launcher):
    def __init__(self, python: str | None = None, env: dict[str, str] | None = None, max_restarts: int = 5,
                 from_driver: bool | None = None, preload_libraries: bool | None = None):
        self.python = python or sys.executable
        self._fork = python is None and hasattr(os, "fork")
        self.from_driver = from_driver if from_driver is not None else os.environ.get(FORK_ENV, "1") != "0"
        self.not_from_driver: str | None = None  # why this experiment's agents were not forked from the driver
        self._zygote: _Zygote | None = None
        self._function: bytes | None = None  # pickled, when the runner hands it over (preload)
        self._load_libraries = (preload_libraries if preload_libraries is not None
                                else os.environ.get(PRELOAD_ENV, "1") != "0")
        self.not_preloaded: str | None = None  # why the clean zygote could not load the function's libraries
        self.env = dict(env or {})
        self.max_restarts = max_restarts
        self._procs: dict[str, subprocess.Popen | _Forked] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self, *, url: str, token: str, count: int, log_dir: Path, on_exit: OnExit,
              insecure: bool = False) -> list[str]:
        env = dict(os.environ)
        env.update(self.env)
        env[TOKEN_ENV] = token
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(import_path() + env.get("PYTHONPATH", "").split(os.pathsep)))
        env.setdefault("PYTHONUNBUFFERED", "1")
        # --quiet: a trial's output is kept once, in its trial log, not again in the agent's
        self._command = [self.python, "-m", "kernel.agent", "--connect", url, "--quiet",
                         *(["--insecure"] if insecure else [])]
        self._env, self._log_dir, self._on_exit = env, Path(log_dir), on_exit
        ids = [f"local-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
        gpus = [{**own, **self.env} for own in gpu_environments(host_gpus(), count)]  # env= still wins
        self._slot_env = dict(zip(ids, gpus))
        self._zygote = self._from_driver(env, gpus)
        if self._zygote is None and self._fork and self._function is not None:
            self._preload(env)
        for agent_id in ids:
            self._spawn(agent_id, agent_id, 0)
        return ids

    def _spawn(self, agent_id: str, slot: str, restarts: int) -> None:
        log_path = self._log_dir / f"{agent_id}.log"
        env = {**self._env, **self._slot_env.get(slot, {}), BOX_ENV: str(self._log_dir / f".{agent_id}.box")}
        proc = self._forked(agent_id, env, log_path) if self._fork else None
        if proc is None:
            with open(log_path, "ab") as log:
                proc = subprocess.Popen([*self._command, "--id", agent_id], env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd(),
                                        start_new_session=True)
        with self._lock:
            self._procs[agent_id] = proc
        if self._stopping.is_set():  # a replacement that lost the race with stop()
            proc.terminate()
            return
        threading.Thread(target=self._watch, args=(agent_id, proc, log_path, slot, restarts),
                         name=f"lagom-watch-{agent_id}", daemon=True).start()

    def _from_driver(self, env: dict[str, str], slots: list[dict[str, str]]) -> "_Zygote | None":
        """A zygote forked from this process for this experiment's agents, where that is safe
        (plugins/launchers/forking.py): they start with the driver's modules imported."""
        if not self._fork or not self.from_driver:
            self.not_from_driver = ("fresh interpreters: LocalLauncher(python=...), or no fork here" if not self._fork
                                    else f"LocalLauncher(from_driver=False), or {FORK_ENV}=0")
            return None
        self.not_from_driver = forking.unsafe({**env, **{k: v for slot in slots for k, v in slot.items()}})
        if self.not_from_driver:
            return None
        try:
            return _Zygote.from_driver()
        except OSError as exc:
            self.not_from_driver = str(exc)
            return None

    def preload(self, function: bytes) -> None:
        """The pickled training function: agents forked from the clean zygote find the installed
        libraries it imports (kernel/shipping.py's ``libraries``) imported there, once for all
        of them and for later experiments of this process, instead of importing them each (a
        fork of the driver has them already, so it is read only where that fork is not made)."""
        self._function = function if self._load_libraries else None

    def _preload(self, env: dict[str, str]) -> None:
        """The clean zygote for ``env`` loads the function's libraries; one that a library left
        unsafe is retired, and another loads the rest (at most three tries)."""
        names = libraries(self._function)
        if not names:
            return
        try:
            for _ in range(3):
                zygote = _Zygote.get(env)
                why = zygote.preload(names)
                self.not_preloaded = why or self.not_preloaded
                if not zygote.retired:
                    return
        except (OSError, ValueError) as exc:
            self.not_preloaded = str(exc)

    def _forked(self, agent_id: str, env: dict[str, str], log_path: Path) -> _Forked | None:
        """An agent forked by a zygote, or None where it cannot start (then a fresh process)."""
        path = [p for p in env["PYTHONPATH"].split(os.pathsep) if p]  # sys.path as a fresh agent's would be
        zygote = self._zygote if self._zygote is not None and not self._zygote.dead else _Zygote.get(env)
        try:
            return zygote.fork({"argv": [*self._command[3:], "--id", agent_id], "env": env,
                                "cwd": os.getcwd(), "path": path, "log": str(log_path.absolute())})
        except (OSError, ValueError, queue.Empty):
            self._fork = False
            return None

    def _watch(self, agent_id: str, proc: "subprocess.Popen | _Forked", log_path: Path, slot: str, restarts: int) -> None:
        code = proc.wait()
        trial = last_trial(self._log_dir / f".{agent_id}.box")  # read (and removed) whatever ended it
        if self._stopping.is_set():
            return
        # Exit code 0: the agent left because it was told to (the experiment ended) or its kernel
        # went silent; a replacement would have nothing to do. Anything else took a trial with it.
        again = restarts < self.max_restarts and code != 0
        self._on_exit(agent_id, Exit(code, _tail(log_path), restarting=again, trial=trial))
        if again and not self._stopping.is_set():
            with self._lock:
                self._procs.pop(agent_id, None)
            self._spawn(f"{slot}+{restarts + 1}", slot, restarts + 1)

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {k: p.pid for k, p in self._procs.items()}

    def stop(self, timeout: float = 0.25) -> None:
        """The agents were told to shut down: give them ``timeout`` seconds in all, then end them
        (one that never joined never heard, so waiting longer helps nobody)."""
        self._stopping.set()
        with self._lock:
            procs = list(self._procs.values())
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._zygote is not None:
            self._zygote.close()

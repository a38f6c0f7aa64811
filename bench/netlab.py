"""Hosts with network stacks of their own, on one Linux machine, for soaks under faults.

Each agent host is a network namespace joined to the kernel's (the machine's own) by a veth
pair: the agent reaches the kernel over a real address (10.99.<host>.1), not loopback, and a
cut is the link taken down (``ip link set ... down``: packets go nowhere, nothing is reset). On
the kernel's side of each link a relay (netlab_relay.py) gives the link latency, jitter and
loss, since this machine's kernel has neither sch_netem nor tc actions nor iptables. The
experiment folder may live on a small tmpfs of its own, so a full disk is real too.

Needs root (namespaces, links, mounts). ``Lab.check()`` says why it cannot run, or None.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PREFIX = "lgl"  # names of this lab's namespaces and links
LOCK = os.path.join(tempfile.gettempdir(), "lagom-netlab.lock")  # one lab at a time: they share these names


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = (["ip", "netns", "exec", ns, "ip"] if ns else ["ip"]) + list(args)
    subprocess.run(cmd, check=True, capture_output=True)


@dataclass
class Host:
    index: int
    ns: str
    link: str  # the kernel's end of the veth pair
    relay_port: int
    control: str  # the relay's control file
    relay: subprocess.Popen | None = None
    agent: subprocess.Popen | None = None
    generation: int = 0  # agents started on this host so far
    log: str = ""
    cut: bool = False
    frozen: bool = False
    degraded: bool = False  # its link slowed and lossy (bench/chaos.py)
    started: list = field(default_factory=list)  # (agent id, wall clock) of each agent started here

    @property
    def url(self) -> str:
        return f"tcp://10.99.{self.index}.1:{self.relay_port}"


class Lab:
    def __init__(self, hosts: int, kernel_port: int, folder: str):
        self.folder = folder
        self.kernel_port = kernel_port
        self.hosts = [Host(i, f"{PREFIX}h{i}", f"{PREFIX}k{i}", 24000 + i, os.path.join(folder, f"link{i}.json"))
                      for i in range(1, hosts + 1)]
        self.disk: str | None = None

    @staticmethod
    def check() -> str | None:
        """Why a lab cannot run here (not root, no ip), or None."""
        if os.geteuid() != 0:
            return "needs root (network namespaces, veth links, a tmpfs)"
        if shutil.which("ip") is None:
            return "needs iproute2's ip"
        return None

    @classmethod
    def probe(cls) -> str | None:
        """``check``, and a namespace actually made and removed (a container may forbid it)."""
        why = cls.check()
        if why:
            return why
        made = subprocess.run(["ip", "netns", "add", f"{PREFIX}probe"], capture_output=True, text=True)
        subprocess.run(["ip", "netns", "del", f"{PREFIX}probe"], capture_output=True)
        return None if made.returncode == 0 else f"ip netns add failed: {made.stderr.strip()}"

    # -- the network ---------------------------------------------------------------------------
    def up(self) -> None:
        self._lock = open(LOCK, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SystemExit(f"another lab is running on this machine (it holds {LOCK}); wait for it to end")
        self._clean()  # what a lab that was killed left behind
        for h in self.hosts:
            _ip("netns", "add", h.ns)
            _ip("link", "add", h.link, "type", "veth", "peer", "name", f"{PREFIX}p{h.index}")
            _ip("link", "set", f"{PREFIX}p{h.index}", "netns", h.ns)
            _ip("addr", "add", f"10.99.{h.index}.1/24", "dev", h.link)
            _ip("link", "set", h.link, "up")
            _ip("link", "set", "lo", "up", ns=h.ns)
            _ip("addr", "add", f"10.99.{h.index}.2/24", "dev", f"{PREFIX}p{h.index}", ns=h.ns)
            _ip("link", "set", f"{PREFIX}p{h.index}", "up", ns=h.ns)
            self.quality(h, 0.0, 0.0, 0.0)
            h.relay = subprocess.Popen([sys.executable, os.path.join(HERE, "netlab_relay.py"), f"10.99.{h.index}.1",
                                        str(h.relay_port), str(self.kernel_port), h.control],
                                       stdout=subprocess.PIPE, text=True)
            if h.relay.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the relay of host {h.index} did not start")

    def down(self) -> None:
        self._clean()
        if getattr(self, "_lock", None) is not None and not self._lock.closed:
            self._lock.close()

    def _clean(self) -> None:
        for h in self.hosts:
            for proc in (h.agent, h.relay):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
            subprocess.run(["ip", "netns", "del", h.ns], capture_output=True)
            subprocess.run(["ip", "link", "del", h.link], capture_output=True)
        if self.disk is not None:
            subprocess.run(["umount", "-l", self.disk], capture_output=True)
            self.disk = None

    def cut(self, h: Host) -> None:
        _ip("link", "set", h.link, "down")
        h.cut = True

    def heal(self, h: Host) -> None:
        _ip("link", "set", h.link, "up")
        h.cut = False

    def quality(self, h: Host, delay: float, jitter: float, loss: float) -> None:
        tmp = h.control + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"delay": delay, "jitter": jitter, "loss": loss}, f)
        os.replace(tmp, h.control)

    # -- agents --------------------------------------------------------------------------------
    def start_agent(self, h: Host, token_file: str, env: dict | None = None) -> str:
        h.generation += 1
        agent_id = f"h{h.index}-{h.generation}"
        h.log = os.path.join(self.folder, f"{agent_id}.log")
        env = {**os.environ, **(env or {})}
        pythonpath = os.pathsep.join([ROOT, HERE, env.get("PYTHONPATH", "")])
        h.agent = subprocess.Popen(
            ["ip", "netns", "exec", h.ns, sys.executable, "-m", "kernel.agent", "--connect", h.url,
             "--token-file", token_file, "--id", agent_id, "--patience", "600", "--wait", "600"],
            cwd=ROOT, env={**env, "PYTHONPATH": pythonpath},
            stdout=subprocess.DEVNULL, stderr=open(h.log, "w"), start_new_session=True)
        h.frozen = False
        h.started.append((agent_id, time.time()))
        return agent_id

    def kill_agent(self, h: Host) -> None:
        if h.agent is not None and h.agent.poll() is None:
            os.killpg(h.agent.pid, signal.SIGKILL)  # the agent and any trial process of its own
            h.agent.wait()
        h.agent, h.frozen = None, False

    def freeze(self, h: Host) -> None:
        os.killpg(h.agent.pid, signal.SIGSTOP)
        h.frozen = True

    def thaw(self, h: Host) -> None:
        os.killpg(h.agent.pid, signal.SIGCONT)
        h.frozen = False

    # -- the disk ------------------------------------------------------------------------------
    def small_disk(self, mb: int) -> str:
        self.disk = tempfile.mkdtemp(prefix="lagom-disk-", dir=self.folder)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", self.disk], check=True)
        return self.disk

    def fill_disk(self) -> str:
        """Fill the small disk to its last byte; returns the ballast file (remove it to free it)."""
        ballast = os.path.join(self.disk, "ballast")
        with open(ballast, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        return ballast

"""The agents the kernel knows: who they are, whether they are alive, what they are running."""
from __future__ import annotations

import collections
import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from .lifecycle import Attempt

BEAT_SUFFIX = b"#beat"  # an agent's heartbeat socket has its routing id plus this


class AgentState(enum.StrEnum):
    """What an agent is doing, as the kernel sees it."""

    JOINING = "joining"    # said hello, loading the function
    IDLE = "idle"          # nothing to do, and the controller has nothing more
    BUSY = "busy"          # running an attempt
    WAITING = "waiting"    # parked: the controller said WAIT
    RESERVED = "reserved"  # held for a distributed trial that is gathering its agents
    GONE = "gone"          # left, died, was declared lost or restarted
    BROKEN = "broken"      # cannot run the training function


_DEAD = frozenset({AgentState.GONE, AgentState.BROKEN})


@dataclass(eq=False)
class AgentInfo:
    peer: bytes
    id: str
    host: str
    pid: int
    devices: list[str]
    address: str = "127.0.0.1"
    port: int = 0
    state: AgentState = AgentState.JOINING
    attempt: "Attempt | None" = None  # what it is running now
    queued: "collections.deque[Attempt]" = field(default_factory=collections.deque)  # handed out ahead
    lanes: "dict[int, Attempt]" = field(default_factory=dict)  # a pack it runs: its lanes not ended, by trial
    shapes: set = field(default_factory=set)  # the shapes of the trials it ran (affinity.py)
    pace: float | None = None  # its recent trials' run time, seconds (a moving average)
    last_seen: float = field(default_factory=time.monotonic)
    last_final_at: float | None = None  # wall clock when its last result arrived
    last_end: float | None = None  # when its last trial ended, by its own clock
    error: str | None = None

    @property
    def alive(self) -> bool:
        return self.state not in _DEAD

    def running(self) -> "list[Attempt]":
        """What it runs now: a pack's lanes not ended, else its one attempt, if any."""
        if self.lanes:
            return list(self.lanes.values())
        return [] if self.attempt is None else [self.attempt]


class AgentRegistry:
    def __init__(self) -> None:
        self._by_peer: dict[bytes, AgentInfo] = {}
        self._beats: dict[bytes, AgentInfo] = {}
        self.expected: int | None = None  # agents a launcher promised; None: any may join
        self.exited = 0  # of those, how many exited for good (not restarting)

    def none_to_come(self) -> bool:
        """Every agent the launcher promised has exited: no other will join."""
        return self.expected is not None and self.exited >= self.expected

    def add(self, peer: bytes, msg: dict[str, Any]) -> AgentInfo:
        info = AgentInfo(peer, msg["agent"], msg["host"], msg["pid"], list(map(str, msg["devices"])),
                         msg["address"], msg["port"])
        self._by_peer[peer] = info
        self._beats[peer + BEAT_SUFFIX] = info  # the agent's heartbeat socket speaks for it
        return info

    def get(self, peer: bytes) -> AgentInfo | None:
        info = self._by_peer.get(peer)
        return info if info is not None else self._beats.get(peer)

    def by_id(self, agent_id: str) -> AgentInfo | None:
        for info in self._by_peer.values():
            if info.id == agent_id:
                return info
        return None

    def __iter__(self) -> Iterator[AgentInfo]:
        return iter(list(self._by_peer.values()))

    def all(self) -> list[AgentInfo]:
        return list(self._by_peer.values())

    def alive(self) -> list[AgentInfo]:
        return [a for a in self._by_peer.values() if a.alive]

    def __len__(self) -> int:
        return len(self._by_peer)

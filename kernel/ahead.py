"""Trials handed out ahead (leases): how many an agent holds, and when one comes back.

When the controller's proposals do not depend on results
(``controller.lease``: random and grid search), an agent is handed its next trials while one
runs, and starts each the moment the one before ends: no agent waits for the kernel between
trials, and short trials' finals come back in batches. No trial may wait in a queue while an
agent is idle or about to be, so: an agent whose pace is not known yet (its first trial) holds
nothing ahead; one whose trials are short (under LEASE_WINDOW) holds LEASE_WINDOW of its work,
at most LEASE_MAX; one whose trials are longer holds one, and only while more trials remain to
be proposed than there are agents (near the end every trial goes to an agent that asks).
While the kernel handles a batch of messages, the hand-outs wait (``hold``) and go once per
agent at its end. A trial handed out ahead that has not started is taken back when the time is
up, or when an agent is idle while it waits behind a trial that runs longer than a queue of
short trials lasts (a hung one, or the last long ones); an agent that is lost hands its queue
back, and none of it counts as an attempt. LEASE_MAX = 0: none ahead.

This module holds the rules; the scheduler asks them (``Scheduler.lease_depth``,
``Scheduler._steal_for``) and the driver carries out what they decide (``Kernel.lease``,
``Kernel.take_back``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from .decisions import LookAgain, TakeBack

if TYPE_CHECKING:
    from .registry import AgentInfo

LEASE_WINDOW = 0.005  # seconds of an agent's work handed to it ahead
LEASE_MAX = 64  # trials handed to one agent ahead, at most (0: one trial at a time)


def depth(pace: float | None, plenty: Callable[[], bool]) -> int:
    """How many trials an agent whose trials take ``pace`` seconds should hold beyond the one
    it runs: none while its pace is unknown, LEASE_WINDOW of its work when its trials are
    short, else one, and only while ``plenty()``: more trials remain to be proposed than there
    are agents (asked only then: this runs at every trial's end)."""
    if LEASE_MAX <= 0 or pace is None:
        return 0
    if pace < LEASE_WINDOW:
        return min(LEASE_MAX, int(LEASE_WINDOW / max(pace, 1e-6)))
    return 1 if plenty() else 0


def steal(agents: Iterable["AgentInfo"], now: float) -> TakeBack | LookAgain | None:
    """For an agent idle for good: the last trial queued behind the longest queue whose running
    trial has run longer than a whole queue was meant to last (a trial of the usual pace ends
    before the trials queued behind it could start anywhere else); when every holder's trial
    is younger than that, when to look again."""
    oldest, holders = None, []  # the age of the holders' oldest young trial
    for a in agents:
        if a.queued and not a.queued[-1].taken_back and a.attempt is not None:
            age = now - a.attempt.since
            if age >= LEASE_WINDOW:
                holders.append(a)
            elif oldest is None or age > oldest:
                oldest = age
    if holders:
        return TakeBack(max(holders, key=lambda a: len(a.queued)).queued[-1])
    return None if oldest is None else LookAgain(LEASE_WINDOW - oldest)


def paced(agent: "AgentInfo", leased: bool, started: float, duration: float, now: float) -> float | None:
    """What a final says of dispatch: how long ``agent``'s trials run (a moving average: the
    shorter, the more it is handed ahead), and the gap before this one started (for a trial
    handed out ahead, after the one before it ended, both by the agent's clock; else after the
    kernel heard its last result: one host, or NTP)."""
    latency = None
    if leased and agent.last_end is not None:
        latency = max(0.0, started - agent.last_end)
    elif agent.last_final_at is not None:
        latency = started - agent.last_final_at
    agent.last_final_at, agent.last_end = now, started + duration
    agent.pace = duration if agent.pace is None else 0.75 * agent.pace + 0.25 * duration
    return latency

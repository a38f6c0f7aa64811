"""Every message a kernel sends an agent, and who handles it, whatever the agent is doing.

An agent is idle (the serve loop reads the socket), running a trial in its process (the
trial's channel reads it at each broadcast), or relaying a child's run (the relay reads it);
its heartbeat thread reads a socket of its own. Each used to route messages itself, and a
message one of them forgot was dropped without a word. Now each hands what it reads to one
:class:`Router`, with the handlers of the run in progress, if any:

- ``AGENT`` messages go to the agent's own handlers in every state (a trial handed out ahead
  arrives while another runs; a shutdown ends a run too), unless the run handles them itself;
- ``RUN`` messages go to the running trial's handlers; between trials they are late (a stop
  for a trial that just ended) and dropped;
- ``BEAT`` messages are for the heartbeat socket (a kill must reach an agent whose main
  thread is stuck), whose thread routes with handlers of its own; ``NOTHING`` messages only
  prove the kernel alive;
- anything else is counted in :attr:`Router.unknown` and logged, once per type.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

AGENT, RUN, BEAT, FETCH, NOTHING = "agent", "run", "beat", "fetch", "nothing"

ROUTES: dict[str, str] = {
    "welcome": AGENT,  # the function (again, from a resumed kernel)
    "trial": AGENT,  # to run now, or handed out ahead
    "skip": AGENT,  # a trial handed out ahead, taken back
    "rejoin": AGENT,  # this agent was given up on: drop what it holds, say hello again
    "shutdown": AGENT,  # the experiment is over
    "stop": RUN,  # the running trial should stop at its next broadcast
    "verdict": RUN,  # the early-stopping rule's answer to a broadcast
    "abort": RUN,  # another rank of this distributed run failed
    "kill": BEAT,  # the running trial would not stop: restart this agent
    "part": FETCH,  # a part of a large function, read by the agent while it fetches them
    "heartbeat": NOTHING,
}

Handlers = Mapping[str, Callable[[dict], Any]]


class Router:
    """Routes a decoded message (a batch item by item) by :data:`ROUTES`; returns the last
    result a handler gave that is not None (a relay's final, a channel's "this was my verdict")."""

    def __init__(self, agent: Handlers, log: Callable[[str], None]):
        self.agent, self._log = agent, log
        self.unknown: dict[str, int] = {}

    def route(self, msg: dict, run: Handlers | None = None) -> Any:
        kind = msg["type"]
        if kind == "batch":
            answer = None
            for item in msg["items"]:
                result = self.route(item, run)
                if result is not None:
                    answer = result
            return answer
        where = ROUTES.get(kind)
        if where is None:
            self._unknown(kind)
            return None
        handler = run.get(kind) if run is not None else None  # the run in progress first
        if handler is None and where == AGENT:
            handler = self.agent.get(kind)
        return None if handler is None else handler(msg)

    def _unknown(self, kind: str) -> None:
        self.unknown[kind] = self.unknown.get(kind, 0) + 1
        if self.unknown[kind] == 1:
            self._log(f"a message of a type this agent does not know ({kind!r}) was dropped: the kernel is "
                      f"newer than this agent; install the same lagom-kernel version on both")

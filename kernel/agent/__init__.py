"""The worker agent: ``python -m kernel.agent --connect URL`` (the token in ``LAGOM_TOKEN``).

An agent is a long-lived process (or, for in-process runs, a thread) that connects to the
kernel, receives the training function once, then runs trial after trial in the same warm
interpreter: JAX is imported and steps are compiled once per agent, not once per trial.

- ``cli``: the command line.
- ``serve``: the :class:`Agent`: hello and welcome, then a serve loop with a handler table.
- ``beat``: the heartbeat thread, on a socket of its own, which also hears ``kill``.
- ``child``: a run in a fresh process (distributed training), both ends of its pipe.
- ``execute``: calling the function once, arguments by name, outcome as a ``final``.
"""
from .cli import RESTARTS_ENV, TOKEN_ENV, main
from .serve import Agent

__all__ = ["Agent", "main", "TOKEN_ENV", "RESTARTS_ENV"]

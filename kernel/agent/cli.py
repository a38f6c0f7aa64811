"""``python -m kernel.agent``: the agent's command line."""
from __future__ import annotations

import argparse
import os
import sys

TOKEN_ENV = "LAGOM_TOKEN"
RESTARTS_ENV = "LAGOM_AGENT_RESTARTS"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kernel.agent",
        description="A lagom worker agent: connects to a kernel and runs the trials it is given.",
    )
    p.add_argument("--connect", required=True, metavar="URL",
                   help="the kernel's address, e.g. tcp://driver-host:7777 (printed by the kernel)")
    p.add_argument("--token", default=None,
                   help=f"the experiment's token, printed by the kernel (or set {TOKEN_ENV})")
    p.add_argument("--id", default=None, help="this agent's name (default: host-pid-random)")
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for the kernel to answer before giving up (default 60)")
    p.add_argument("--insecure", action="store_true",
                   help="no CurveZMQ on tcp:// (only when the kernel was started with insecure=True)")
    p.add_argument("--patience", type=float, default=30.0,
                   help="seconds of silence from the kernel after which the agent leaves (default 30)")
    return p


def _enable_jax_cache() -> None:
    """One persistent compilation cache per host, so a step compiled once is reused by every
    agent and every later run; min compile time 0, or JAX skips most small compiles."""
    cache = os.path.join(os.path.expanduser("~"), ".cache", "lagom", "jax")
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def main(argv: list[str] | None = None) -> int:
    from .serve import Agent

    args = _parser().parse_args(argv)
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        _parser().error(f"no token: pass --token TOKEN (printed by the kernel) or set {TOKEN_ENV}")
    _enable_jax_cache()
    restarts = int(os.environ.get(RESTARTS_ENV, "0"))
    agent_id = args.id and (f"{args.id}~{restarts}" if restarts else args.id)
    agent = Agent(args.connect, token, agent_id=agent_id, wait=args.wait, patience=args.patience,
                  insecure=args.insecure)
    agent.can_restart = True
    agent.argv = list(argv if argv is not None else sys.argv[1:])
    try:
        return agent.run()
    except KeyboardInterrupt:
        return 130

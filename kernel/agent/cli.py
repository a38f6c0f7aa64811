"""``python -m kernel.agent``: the agent's command line."""
from __future__ import annotations

import argparse
import faulthandler
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
    p.add_argument("--token-file", default=None, metavar="FILE",
                   help="a file holding the experiment's token, readable by you alone (chmod 600)")
    p.add_argument("--token", default=None,
                   help=f"the token itself; every user of this host can read it in ps, so prefer "
                        f"the {TOKEN_ENV} environment variable or --token-file")
    p.add_argument("--id", default=None, help="this agent's name (default: host-pid-random)")
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait for the kernel to answer before giving up (default 60)")
    p.add_argument("--insecure", action="store_true",
                   help="no CurveZMQ on tcp:// (only when the kernel was started with insecure=True)")
    p.add_argument("--quiet", action="store_true",
                   help="do not also print trials' output here: the kernel keeps it, once, in each trial's log "
                        "(for agents whose own output goes to a file in the experiment folder)")
    p.add_argument("--patience", type=float, default=30.0,
                   help="seconds of silence from the kernel after which the agent leaves (default 30)")
    return p


def _token(args: argparse.Namespace) -> str:
    """The token from the environment, a private file, or (warned against) the command line."""
    if args.token_file:
        try:
            mode = os.stat(args.token_file).st_mode
            token = open(args.token_file, encoding="utf-8").read().strip()
        except OSError as exc:
            _parser().error(f"--token-file {args.token_file}: {exc.strerror}")
        if mode & 0o077:
            _parser().error(f"--token-file {args.token_file} can be read by other users (mode "
                            f"{mode & 0o777:o}); chmod 600 {args.token_file}")
        return token
    if args.token:
        print(f"lagom agent: warning: --token is visible to every user of this host (ps, /proc); "
              f"set {TOKEN_ENV} or use --token-file instead", file=sys.stderr, flush=True)
        return args.token
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        _parser().error(f"no token: set {TOKEN_ENV}=TOKEN (printed by the kernel) or pass --token-file FILE")
    return token


def main(argv: list[str] | None = None) -> int:
    from .blackbox import Blackbox
    from .serve import Agent

    args = _parser().parse_args(argv)
    token = _token(args)
    faulthandler.enable()  # a trial that segfaults or aborts leaves its Python stack in the log
    restarts = int(os.environ.get(RESTARTS_ENV, "0"))
    agent_id = args.id and (f"{args.id}~{restarts}" if restarts else args.id)
    agent = Agent(args.connect, token, agent_id=agent_id, wait=args.wait, patience=args.patience,
                  insecure=args.insecure, echo=not args.quiet, own_process=True,
                  argv=list(argv if argv is not None else sys.argv[1:]), box=Blackbox.from_env())
    try:
        return agent.run()
    except KeyboardInterrupt:
        return 130

"""The search example's training function, unchanged, as one data-parallel run.

    python examples/distributed_digits.py                    # multihost: 2 agents x 2 CPU devices
    python examples/distributed_digits.py --strategy pmap    # one agent, its 2 CPU devices

On a GPU host drop --cpu-devices: each agent uses its GPUs. Each agent runs the function in a
fresh process; with ``multihost`` the kernel makes the first agent JAX's coordinator and the
processes form one runtime (gloo collectives on CPU, NCCL on GPUs).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    import cloudpickle

    import digits_hpo
    from contexts import Distributed
    from kernel import lagom

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", default="multihost", help="multihost, pmap, jaxpmap, single")
    ap.add_argument("--agents", type=int, default=None, help="default: 2 for multihost, else 1")
    ap.add_argument("--cpu-devices", type=int, default=2, help="CPU devices per agent (0: the real devices)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--path", default=None)
    args = ap.parse_args(argv)

    # Ship the training function's module by value, so agents on other hosts need not have it.
    cloudpickle.register_pickle_by_value(digits_hpo)
    hparams = {"lr": 3e-3, "width": 64, "depth": 2, "act": "relu", "budget": args.epochs}
    result = lagom(digits_hpo.train, Distributed(strategy=args.strategy, agents=args.agents,
                                                 cpu_devices=args.cpu_devices or None, hparams=hparams,
                                                 metric="accuracy"),
                   path=args.path)
    trial = result.trials[0]
    print(f"\n{args.strategy} on {trial.ranks or [trial.agent]}: "
          f"validation accuracy {trial.result['accuracy']:.4f} after {args.epochs} epochs")
    return result


if __name__ == "__main__":
    main()

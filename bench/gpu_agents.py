"""Local agents on a GPU host: each gets GPUs of its own, or shares them without preallocating.

    python bench/gpu_agents.py            # 2 local agents, 4 trials of a small matmul on the GPU

Figures (last line, JSON): the devices each agent reported, each trial's JAX platform, and the
GPU memory each trial's process held (a shared GPU must not be 75% taken by the first agent).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import emit  # noqa: E402

from contexts import HyperparameterSearch, Searchspace  # noqa: E402
from kernel import lagom  # noqa: E402


def matmul(hparams, reporter):
    import jax
    import jax.numpy as jnp

    x = jnp.ones((2048, 2048))
    jax.block_until_ready(x @ x)
    stats = jax.devices()[0].memory_stats() or {}
    return {"score": 1.0, "platform": jax.devices()[0].platform, "bytes_in_use": stats.get("bytes_in_use", -1),
            "bytes_limit": stats.get("bytes_limit", -1)}


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        result = lagom(matmul, HyperparameterSearch(Searchspace(n=("DISCRETE", [1, 2, 3, 4])), "gridsearch",
                                                    metric="score", workers=2), path=root, verbose=0)
        journal = [json.loads(line) for line in open(result.path / "journal.jsonl")]
    emit({"bench": "gpu_agents", "agents": {e["id"]: e["devices"] for e in journal if e["event"] == "agent"},
          "trials": [{k: t.result.get(k) for k in ("platform", "bytes_in_use", "bytes_limit")} | {"agent": t.agent}
                     for t in result.trials if t.result]})


if __name__ == "__main__":
    main()

"""Coverage-guided fuzzing of what faces the network, with atheris (``pip install -e ".[bench]"``).

    python bench/fuzz.py --runs 20000          # each target (codec, agent, kernel) for 20,000 inputs

Each target (bench/fuzz_targets.py) runs in a process of its own under libFuzzer; a crash is
an exception other than the ones the part is meant to raise, and libFuzzer saves the input that
caused it under ``--artifacts``. Figures (last line, JSON): per target, the inputs run and the
crashes found.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]


def child(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():  # coverage of our modules: transports, kernel, the agent
        import fuzz_targets
        from kernel.agent import serve  # noqa: F401
        from kernel import driver  # noqa: F401
    fuzz_targets.TARGETS[target](b"")  # build the harness once, outside the measured inputs
    atheris.Setup([sys.argv[0], *libfuzzer_args], fuzz_targets.TARGETS[target])
    atheris.Fuzz()


def run(target: str, runs: int, artifacts: str, seed: int) -> dict:
    os.makedirs(artifacts, exist_ok=True)
    out = subprocess.run([sys.executable, __file__, "--child", target, f"-runs={runs}", f"-seed={seed}",
                          "-max_len=512", f"-artifact_prefix={artifacts}/{target}-"],
                         capture_output=True, text=True, env={**os.environ, "LAGOM_REPORT": "0"})
    done = re.findall(r"Done (\d+) runs", out.stderr)
    crashes = sorted(f for f in os.listdir(artifacts) if f.startswith(f"{target}-crash"))
    return {"runs": int(done[-1]) if done else 0, "crashes": len(crashes) + (0 if out.returncode == 0 or crashes else 1),
            "exit": out.returncode, "artifacts": crashes,
            **({"tail": out.stderr[-1500:]} if out.returncode else {})}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20_000, help="inputs per target")
    ap.add_argument("--targets", default="codec,agent,kernel")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--artifacts", default=os.path.join(tempfile.gettempdir(), "lagom-fuzz"),
                    help="where crashing inputs are saved")
    args = ap.parse_args()
    figures = {t: run(t, args.runs, args.artifacts, args.seed) for t in args.targets.split(",")}
    for name, f in figures.items():
        print(f"{name}: {f['runs']} inputs, {f['crashes']} crashes" + (f" ({f['artifacts']})" if f["crashes"] else ""))
    from _common import emit

    emit({"bench": "fuzz", "targets": figures, "crashes": sum(f["crashes"] for f in figures.values())})


if __name__ == "__main__":
    main()

"""The soak's experiment (bench/chaos.py): its training function, its search, and the kernel's
process, killed and resumed by the soak: ``python chaos_trial.py FOLDER PORT TOKEN_FILE
TRIALS EPOCH_S [RESUME_FOLDER]``. Exits 0 when the search is over, 3 when it ended on an error
(a full disk) that a resume gets past; prints the experiment folder first.

The function learns towards ``x`` over ``budget`` epochs of ``EPOCH_S`` seconds each, checkpoints and broadcasts
every epoch (the median rule judges them), continues a promotion from its parent's checkpoint
(ASHA with checkpoint continuation), and appends one line per run to ``runs.log`` beside the
experiment folder (the trial, the process, when), the record the soak checks runs against.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def train(hparams, reporter):
    epoch_s, log = float(os.environ["CHAOS_EPOCH_S"]), os.environ["CHAOS_RUNS_LOG"]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{reporter.trial_id} {os.getpid()} {time.time():.6f}\n".encode())
    os.close(fd)
    start, value = 0, 0.0
    if reporter.parent_checkpoint_dir:
        with open(os.path.join(reporter.parent_checkpoint_dir, "state.json")) as f:
            start, value = json.load(f)
    for epoch in range(start, int(hparams["budget"])):
        time.sleep(epoch_s)
        value = hparams["x"] * (1 - 0.7 ** (epoch + 1))
        if reporter.checkpoint_dir:  # every epoch: a trial the median rule stops may still be promoted
            with open(os.path.join(reporter.checkpoint_dir, "state.json"), "w") as f:
                json.dump([epoch + 1, value], f)
        reporter.broadcast(metric=value, step=epoch)
    return {"score": value}


def context(trials: int):
    from contexts import HyperparameterSearch, Searchspace
    from plugins.optimizers import ASHA

    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    return HyperparameterSearch(space, ASHA(3, 1, 9), num_trials=trials, metric="score", direction="max",
                                workers=0, seed=11, es_policy="median", es_min=5, name="chaos")


def main(argv: list[str]) -> int:
    from kernel import ExperimentError, lagom

    folder, port, token_file, trials, epoch_s = argv[:5]
    resume = argv[5] if len(argv) > 5 else None
    os.environ["CHAOS_EPOCH_S"] = epoch_s
    os.environ["CHAOS_RUNS_LOG"] = os.path.join(os.path.dirname(folder.rstrip("/")) or ".", "runs.log")
    token = open(token_file).read().strip()
    try:
        result = lagom(train, context(int(trials)), listen=f"tcp://127.0.0.1:{port}", token=token, path=folder,
                       resume=resume, verbose=0, report=False)
    except ExperimentError as exc:
        print(json.dumps({"folder": str(getattr(exc, "path", "") or ""), "error": str(exc)}), flush=True)
        return 3
    print(json.dumps({"folder": str(result.path), "error": None}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

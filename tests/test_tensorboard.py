"""TensorBoard event files, read back record by record."""
import struct

import pytest

from contexts import HyperparameterSearch, Searchspace
from kernel import lagom

pytest.importorskip("tensorboardX")


def events(path):
    """Every Event in a TFRecord file (length, crc, data, crc), parsed with tensorboardX's protos."""
    from tensorboardX.proto import event_pb2

    out, data = [], path.read_bytes()
    i = 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        out.append(event_pb2.Event.FromString(data[i + 12:i + 12 + n]))
        i += 12 + n + 4
    return out


def curve(hparams, reporter):
    for step in range(4):
        reporter.broadcast(metric=hparams["lr"] * (step + 1), step=step)
    return {"score": hparams["lr"] * 4}


def test_broadcasts_become_scalars_and_trials_become_hparams(runs):
    space = Searchspace(lr=("DISCRETE", [0.1, 0.2]), act=("CATEGORICAL", ["relu"]))
    result = lagom(curve, HyperparameterSearch(space, "gridsearch", metric="score", workers=1, launcher="thread"),
                   path=runs, verbose=0, tensorboard=True)
    for t in result.trials:
        folder = result.path / "tensorboard" / f"trial-{t.id:05d}"
        all_events = [e for f in sorted(folder.rglob("events.out.tfevents.*")) for e in events(f)]
        scalars = [(e.step, v.simple_value) for e in all_events for v in e.summary.value if v.tag == "score"]
        assert scalars == [(s, pytest.approx(t.params["lr"] * (s + 1))) for s in range(4)]
        plugins = {v.metadata.plugin_data.plugin_name for e in all_events for v in e.summary.value}
        assert "hparams" in plugins  # the HParams plugin's session records
        final = [v.simple_value for e in all_events for v in e.summary.value if v.tag == "hparam/score"]
        assert final == [pytest.approx(t.metric)]


def several(hparams, reporter):
    for step in range(3):
        reporter.broadcast(accuracy=hparams["lr"] * step, loss=1 - hparams["lr"], step=step)
    return {"accuracy": hparams["lr"] * 2, "loss": 1 - hparams["lr"]}


def test_several_named_metrics_per_broadcast_reach_the_result_and_tensorboard(runs):
    """broadcast(accuracy=..., loss=...): the search judges the one it optimizes, keeps them all."""
    import json

    space = Searchspace(lr=("DISCRETE", [0.1, 0.2]))
    result = lagom(several, HyperparameterSearch(space, "gridsearch", metric="accuracy", workers=1,
                                                 launcher="thread", es_policy="median", es_min=5),
                   path=runs, verbose=0, tensorboard=True)
    for t in result.trials:
        lr = t.params["lr"]
        assert t.history == [(s, pytest.approx(lr * s)) for s in range(3)]  # the optimized one, judged
        assert t.series["loss"] == [(s, pytest.approx(1 - lr)) for s in range(3)]
        folder = result.path / "tensorboard" / f"trial-{t.id:05d}"
        tags = {v.tag for f in folder.rglob("events.out.tfevents.*") for e in events(f) for v in e.summary.value}
        assert {"accuracy", "loss"} <= tags
    saved = json.loads((result.path / "result.json").read_text())
    assert [p[1] for p in saved["trials"][0]["series"]["loss"]] == pytest.approx([0.9, 0.9, 0.9])


def test_the_report_draws_the_other_named_values(runs):
    from kernel.outputs.report import write_report

    space = Searchspace(lr=("DISCRETE", [0.1, 0.2]))
    result = lagom(several, HyperparameterSearch(space, "gridsearch", metric="accuracy", workers=1,
                                                 launcher="thread"), path=runs, verbose=0)
    text = write_report(result.path).read_text()
    assert 'src="report_series.png"' in text and "broadcast: loss" in text
    assert (result.path / "report_series.png").read_bytes()[:4] == b"\x89PNG"

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

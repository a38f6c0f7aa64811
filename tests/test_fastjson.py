"""The journal's JSON: what orjson writes reads back as the standard library would have it."""
import json
import math

from hypothesis import given
from hypothesis import strategies as st

from kernel import fastjson
from kernel.journal import ExperimentFolder, read_journal

values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(values)
def test_a_line_reads_back_as_json_wrote_it(value):
    line = fastjson.line({"event": "x", "v": value})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert fastjson.loads(line) == json.loads(json.dumps({"event": "x", "v": value}))


def test_what_json_cannot_hold_is_its_str_and_old_nan_lines_still_read():
    class Odd:
        def __str__(self):
            return "odd!"

    assert fastjson.loads(fastjson.line({"o": Odd(), 3: "int key"})) == {"o": "odd!", "3": "int key"}
    assert math.isnan(fastjson.loads(b'{"event": "end", "metric": NaN}')["metric"])


def test_the_journal_round_trips_and_skips_a_cut_off_line(tmp_path):
    folder = ExperimentFolder(tmp_path / "exp")
    folder.write("start", False, {"trial": 1, "params": {"lr": 0.1}, "big": 2 ** 80})
    folder.close()
    with open(tmp_path / "exp" / "journal.jsonl", "ab") as f:
        f.write(b'{"event": "end", "tri')  # a kernel killed mid-write
    events, bad = read_journal(tmp_path / "exp")
    assert bad == 1 and events[0]["params"] == {"lr": 0.1} and events[0]["big"] == 2 ** 80


def test_long_floats_stay_on_the_fast_path_and_long_integers_take_the_exact_one(monkeypatch):
    line = b'{"duration": 0.00044655799865722656, "metric": 0.18569308000450832, "big": 123456789012345678901}'
    assert fastjson.loads(line)["big"] == 123456789012345678901  # exact, through json
    monkeypatch.setattr(fastjson.json, "loads", lambda *a, **k: (_ for _ in ()).throw(AssertionError("slow path")))
    assert fastjson.loads(line.replace(b"123456789012345678901", b"1"))["duration"] == 0.00044655799865722656

"""The experiment folder's one reading (kernel/timeline.py): every journal event the kernel
writes (kernel/records.py) folded into trial states that match the kernel's own, and every
reader (status, the dashboard, report.html, resume) agreeing on a journal."""
import inspect
import json

import pytest

import fns
from kernel import records
from kernel.outputs.dashboard.experiment import Experiment
from kernel.timeline import Timeline, events_known
from kernel.trials import Trial, TrialState


class Capture:
    def __init__(self):
        self.events = []

    def write(self, event, durable, fields):
        self.events.append((event, tuple(fields)))


def test_every_declared_event_is_written_with_its_fields_and_read_by_the_fold():
    assert set(events_known()) == set(records.EVENTS)
    trial = Trial(id=3, params={"x": 1})
    written = Capture()
    for name, fn in inspect.getmembers(records, inspect.isfunction):
        if fn.__module__ != records.__name__ or name.startswith("_"):
            continue
        args = [trial if p == "trial" and name in ("lease", "proposed", "start", "end") else [] if p == "trials" else 0
                for p in list(inspect.signature(fn).parameters)[1:]
                if inspect.signature(fn).parameters[p].kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
        fn(written, *args)
    assert {event for event, _ in written.events} == set(records.EVENTS)
    for event, fields in written.events:
        assert fields[:len(records.EVENTS[event])] == records.EVENTS[event], event


def journal(*events):
    return [dict(e, time=float(i)) for i, e in enumerate(events)]


def start(tid, attempt=1, agent="a1"):
    return {"event": "start", "trial": tid, "params": {"x": tid}, "budget": None, "agent": agent,
            "attempt": attempt, "info": {}, "parent": None, "ranks": None}


def end(tid, state):
    return {"event": "end", "trial": Trial(id=tid, params={"x": tid}, state=TrialState(state), agent="a1",
                                           metric=1.0 if state in ("finished", "stopped") else None).to_dict()}


def test_each_event_moves_a_trial_as_the_kernel_does():
    x = Timeline()
    states, interruptions = [], []
    for e in journal({"event": "experiment", "id": "e", "context": "HyperparameterSearch", "metric": "m",
                      "direction": "max", "controller": {}},
                     {"event": "agent", "id": "a1", "host": "h", "pid": 1, "devices": []},
                     {"event": "lease", "trial": 0, "params": {"x": 0}, "budget": None, "info": {}, "parent": None,
                      "agent": "a1"},
                     start(0), {"event": "requeue", "trial": 0, "reason": "agent a1 is silent"},
                     start(0, attempt=2), end(0, "finished"),
                     {"event": "lease", "trial": 1, "params": {"x": 1}, "budget": None, "info": {}, "parent": None,
                      "agent": "a1"},
                     {"event": "withdrawn", "trial": 1},
                     start(2), {"event": "overtime", "trial": 2, "limit": 1.0}, {"event": "killed", "trial": 2,
                                                                                   "agent": "a1"},
                     end(2, "stopped"), start(3), end(3, "lost"), start(4), end(4, "failed"),
                     start(5), start(6), {"event": "requeue", "trial": 6, "reason": "handed back unstarted"},
                     {"event": "interrupt", "reason": "interrupted (Ctrl-C)"}, {"event": "interrupted", "trials": [5]},
                     {"event": "closed", "counts": {}}):
        x.apply(e)
        states.append({tid: t["state"] for tid, t in x.trials.items()})
        interruptions.append(list(x.trials.get(0, {}).get("interruptions", [])))
    assert states[2] == {0: TrialState.PENDING}  # proposed, handed out ahead
    assert states[3][0] == TrialState.RUNNING
    assert states[4][0] == TrialState.PENDING and interruptions[4] == ["agent a1 is silent"]
    assert states[5][0] == TrialState.RUNNING and states[6][0] == TrialState.FINISHED
    assert 1 in states[7] and 1 not in states[8] and x.withdrawn == {1}
    assert {tid: s for tid, s in states[-1].items()} == {
        0: "finished", 2: "stopped", 3: "lost", 4: "failed", 5: "interrupted", 6: "pending"}
    assert x.outcome(alive=False) == "interrupted" and x.outcome(alive=True) == "running"
    assert sorted(x.unfinished()) == [1, 5, 6]  # what a resume runs again
    assert x.agents["a1"]["state"] == "idle"
    x.apply({"event": "resumed", "ended": 4, "requeued": 3, "replay_mismatches": 0, "time": 99.0})
    assert {tid: t["state"] for tid, t in x.trials.items() if tid in (5, 6)} == {5: "pending", 6: "pending"}
    assert x.outcome(alive=False) == "kernel died" and not x.status["interrupted"]


def test_a_kernel_that_died_leaves_no_trial_running():
    x = Timeline()
    for e in journal(start(0), start(1), end(1, "finished")):
        x.apply(e)
    assert x.settle(alive=True) == [] and x.trials[0]["state"] == "running"
    assert x.settle(alive=False) == [0] and x.trials[0]["state"] == "interrupted"
    assert x.outcome(alive=False) == "kernel died"


def write(folder, events):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "journal.jsonl", "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def test_status_the_dashboard_and_the_report_agree_on_an_interrupted_journal(tmp_path):
    """The journal that once read three ways: trial 0 requeued, trial 1 cut short by an interrupt."""
    folder = tmp_path / "cut"
    write(folder, journal({"event": "experiment", "id": "e", "context": "HyperparameterSearch", "metric": "m",
                           "direction": "max", "controller": {}},
                          start(0), {"event": "requeue", "trial": 0, "reason": "agent a1 is gone"}, start(1),
                          {"event": "interrupt", "reason": "interrupted (SIGTERM)"},
                          {"event": "interrupted", "trials": [1]}, {"event": "closed", "counts": {}}))
    assert fns.readers_agree(folder) == {0: "pending", 1: "interrupted"}
    page = Experiment(folder)
    page.update()
    assert page.state() == "interrupted"  # not "ended": it was cut short, and a resume continues it
    from kernel.outputs.report import write_report

    html = write_report(folder).read_text()
    assert "<td>0</td><td>pending</td>" in html and "<td>1</td><td>interrupted</td>" in html


def test_a_withdrawn_trial_leaves_the_page_it_was_on(tmp_path):
    folder = tmp_path / "w"
    write(folder, journal({"event": "lease", "trial": 4, "params": {"x": 4}, "budget": None, "info": {},
                           "parent": None, "agent": "a1"}))
    page = Experiment(folder)
    page.update()
    assert page.trials[4]["state"] == "pending"
    with open(folder / "journal.jsonl", "a") as f:
        f.write(json.dumps({"event": "withdrawn", "trial": 4, "time": 5.0}) + "\n")
    frame = page.frame(page.update())
    assert frame["removed"] == [4] and 4 not in page.trials
    assert fns.readers_agree(folder) == {}


@pytest.mark.parametrize("state", [s for s in TrialState if s not in (TrialState.PENDING, TrialState.RUNNING)])
def test_an_ended_trial_keeps_the_state_its_end_record_gives(state, tmp_path):
    x = Timeline()
    x.apply(start(0))
    x.apply(end(0, state))
    assert x.trials[0]["state"] == state


def test_the_folder_files_have_the_fields_records_declares(tmp_path):
    """curves.jsonl, agents.json and result.json of a real run, against kernel/records.py."""
    from contexts import HyperparameterSearch, Searchspace
    from kernel import lagom

    result = lagom(fns.quadratic, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), num_trials=2,
                                                       metric="score", workers=1), path=tmp_path, verbose=0)
    saved = json.loads((result.path / records.RESULT).read_text())
    assert set(records.RESULT_FIELDS) <= set(saved)
    agents = json.loads((result.path / records.AGENTS).read_text())["agents"]
    assert agents and all(set(records.AGENT_FIELDS) == set(a) for a in agents)
    for line in (result.path / records.CURVES).read_text().splitlines():
        assert set(records.CURVE_FIELDS) <= set(json.loads(line))
    assert set(Timeline.read(result.path).trials) == {t.id for t in result.trials}

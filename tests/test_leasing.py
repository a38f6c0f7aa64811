"""Short trials handed out ahead, through real agents over tcp:// with CurveZMQ.

An agent whose trials take microseconds is handed many at once and sends its finals back in
batches (kernel/scheduler.py); these tests hold that to the promises of one trial at a time:
every trial runs once, in the order and with the parameters the optimizer proposed, a crash
or a time limit loses nothing it should not, and a resume still replays the journal exactly.
"""
import json

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom

SPACE = Searchspace(x=("DOUBLE", [0.0, 1.0]))


def journal(result):
    return [json.loads(line) for line in open(result.path / "journal.jsonl")]


def test_trivial_trials_run_once_each_with_the_parameters_of_a_one_worker_search(runs):
    search = dict(metric="score", num_trials=400, seed=3)
    result = lagom(fns.trivial, HyperparameterSearch(SPACE, "randomsearch", workers=2, **search),
                   path=runs, verbose=0, listen="tcp://127.0.0.1:0")
    assert [t.id for t in result.trials] == list(range(400)) and result.count("finished") == 400
    assert all(t.attempts == 1 and len(t.history) == 10 for t in result.trials)
    events = journal(result)
    leased = [e["trial"] for e in events if e["event"] == "lease"]
    assert len(leased) > 200 and leased == sorted(leased)  # most went ahead, in the order proposed
    assert result.rejected == {}
    alone = lagom(fns.trivial, HyperparameterSearch(SPACE, "randomsearch", workers=1, **search),
                  path=runs, verbose=0)
    assert [t.params for t in result.trials] == [t.params for t in alone.trials]


def test_a_trial_that_kills_its_agent_fails_alone_and_the_queue_it_held_runs_elsewhere(runs):
    """An agent that dies holding trials handed out ahead may have run some of them (their
    finals die with it): none is blamed until one dies again running alone."""
    space = Searchspace(n=("DISCRETE", list(range(60))))
    result = lagom(fns.crashes_on, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   path=runs, verbose=0)
    assert result.count("finished") == 58 and result.count("failed") == 2
    failed = {t.params["n"]: t.error for t in result.trials if t.state == "failed"}
    assert set(failed) == {1, 2} and "exit code 3" in failed[1] and "SIGSEGV" in failed[2]
    assert all(t.attempts <= 2 for t in result.trials)


def test_a_time_limited_search_of_trivial_trials_ends_on_time_with_only_trials_that_ran(runs):
    result = lagom(fns.trivial, HyperparameterSearch(SPACE, "randomsearch", metric="score", max_time=1.0,
                                                     workers=2, seed=0), path=runs, verbose=0)
    assert len(result.trials) > 100 and result.duration < 5.0
    assert {t.state for t in result.trials} <= {"finished", "stopped"}
    assert all(len(t.history) > 0 for t in result.trials)  # no trial that never ran is in it
    ran = {t.id for t in result.trials}
    withdrawn = {e["trial"] for e in journal(result) if e["event"] == "withdrawn"}
    assert not ran & withdrawn


def test_a_resumed_search_of_trials_handed_out_ahead_replays_exactly(runs):
    """Ctrl-C's journal state, made by hand: a search cut off after its first 150 ends (with
    trials leased and started past them) resumes to the same trials as a search never cut."""
    search = dict(metric="score", num_trials=300, seed=5, workers=2)
    whole = lagom(fns.trivial, HyperparameterSearch(SPACE, "randomsearch", **search), path=runs, verbose=0)
    cut = runs / "cut"
    cut.mkdir()
    kept, ends = [], 0
    for line in open(whole.path / "journal.jsonl"):
        e = json.loads(line)
        if e["event"] in ("closed", "withdrawn"):
            continue
        ends += e["event"] == "end"
        kept.append(line)
        if ends == 150:
            break
    (cut / "journal.jsonl").write_text("".join(kept))
    resumed = lagom(fns.trivial, HyperparameterSearch(SPACE, "randomsearch", **search), path=runs,
                    resume=cut, verbose=0)
    assert [(t.id, t.params) for t in resumed.trials] == [(t.id, t.params) for t in whole.trials]
    assert resumed.count("finished") == 300
    summary = [e for e in journal(resumed) if e["event"] == "resumed"][0]
    assert summary["replay_mismatches"] == 0 and summary["ended"] == 150


@pytest.mark.parametrize("workers,optimizer", [(4, "gridsearch"), (8, "randomsearch")])
def test_as_many_trials_as_agents_run_all_at_once(runs, workers, optimizer):
    """No trial waits queued behind another while an agent is free: each of the first trials
    waits until ``workers`` agent processes have one, so two trials held by one agent would
    time out."""
    space = Searchspace(x=("DISCRETE", [i / 10 for i in range(workers)]),
                        barrier=("CATEGORICAL", [str(runs.parent / "barrier")]), parties=("DISCRETE", [workers]))
    result = lagom(fns.quadratic, HyperparameterSearch(space, optimizer, metric="score", num_trials=workers,
                                                       workers=workers), path=runs, verbose=0)
    assert result.count("finished") == workers
    assert len({t.agent for t in result.trials}) == workers
    assert not [e for e in journal(result) if e["event"] == "lease"]


def test_a_trial_that_kills_its_agent_while_one_waits_behind_it_fails_at_its_first_attempt(runs):
    """The agent that runs n=2 holds n=3 ahead (trials of 0.2 s, more left than agents); its
    process dies of n=2, and the launcher's blackbox says so: n=2 fails once, n=3 runs elsewhere
    as if never handed out, and nothing else is blamed or retried."""
    space = Searchspace(n=("DISCRETE", list(range(8))), sleep=("DISCRETE", [0.2]))
    result = lagom(fns.crashes_on, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   path=runs, verbose=0)
    assert result.count("finished") == 6 and result.count("failed") == 2
    assert {t.params["n"]: t.attempts for t in result.trials if t.state == "failed"} == {1: 1, 2: 1}
    assert all(t.attempts == 1 and not t.interruptions for t in result.trials)
    crashed = next(t for t in result.trials if t.params["n"] == 2)
    events = journal(result)
    gone = next(i for i, e in enumerate(events) if e["event"] == "agent-gone" and e["id"] == crashed.agent)
    assert [e["trial"] for e in events[:gone] if e["event"] == "lease" and e["agent"] == crashed.agent]
    assert not list((result.path / "agents").glob(".*.box"))  # read, and removed


def test_trials_handed_out_ahead_of_a_hung_trial_run_on_the_agent_left_idle(runs):
    """Trial 30 hangs until all the others have run; those its agent held ahead are taken back
    (its heartbeat thread answers while the function hangs) and run on the other agent."""
    space = Searchspace(n=("DISCRETE", list(range(120))), waiter=("DISCRETE", [30]), trials=("DISCRETE", [120]),
                        folder=("CATEGORICAL", [str(runs.parent / "ran")]))
    result = lagom(fns.waits_for_the_others, HyperparameterSearch(space, "gridsearch", metric="score", workers=2),
                   path=runs, verbose=0)
    assert result.count("finished") == 120, [t.error for t in result.trials if t.error]
    waiter = next(t for t in result.trials if t.params["n"] == 30)
    handed_back = [e["trial"] for e in journal(result) if e["event"] == "requeue"]
    assert handed_back and all(result.trials[i].agent != waiter.agent for i in handed_back)

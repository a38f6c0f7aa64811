"""The dashboard: what it reads from a folder, who it answers, and a real browser watching a
running experiment's page."""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom

pytest.importorskip("aiohttp")
pytest.importorskip("plotly")
from kernel.outputs.dashboard import columns  # noqa: E402
from kernel.outputs.dashboard.experiment import Experiment  # noqa: E402


def _get(url, headers=None, data=None):
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _serve(path, *args, env=None):
    """``python -m kernel dashboard`` in a process of its own, and the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "kernel", "dashboard", str(path), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})})
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"no URL: {line!r} {proc.stderr.read()}")
    return proc, match.group(1)


@pytest.fixture
def finished(runs):
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    return lagom(fns.quadratic, HyperparameterSearch(space, num_trials=5, metric="score", workers=2), path=runs,
                 verbose=0)


def test_the_folder_tells_trials_curves_best_and_agents_and_a_torn_line_waits(finished):
    x = Experiment(finished.path)
    delta = x.update()
    assert delta is not None and x.update() is None  # nothing new, nothing sent
    snap = x.snapshot()
    assert snap["state"] == "ended" and snap["counts"] == {"finished": 5} and len(columns.decode(snap["trials"])) == 5
    assert {t.id: [list(p) for p in t.history] for t in finished.trials} == {int(k): v for k, v in snap["curves"].items()}
    assert snap["best_so_far"][-1][1:] == [finished.best.metric, finished.best.id, None]
    assert snap["agents"] and all(a["host"] and a["pid"] and a["state"] for a in snap["agents"])
    line = json.dumps({"event": "start", "time": 1.0, "trial": 99, "params": {"x": 0.5}, "agent": None, "attempt": 1})
    with open(finished.path / "journal.jsonl", "a") as f:
        f.write(line[:20])  # a kernel mid-write
        f.flush()
        assert x.update() is None
        f.write(line[20:] + "\n")
    assert [t["id"] for t in x.update()["trials"]] == [99]
    assert x.trials[99]["state"] == "interrupted"  # started in the journal, but no kernel holds the folder


def test_lagom_dashboard_true_prints_a_url_that_serves_the_running_experiment(runs, capsys):
    marker = runs.parent / "go-board"
    space = Searchspace(marker=("CATEGORICAL", [str(marker)]))
    ctx = HyperparameterSearch(space, num_trials=1, metric="score", workers=1)
    run = fns.Background(fns.broadcasts_then_waits, ctx, path=runs, dashboard=True)
    seen = []
    try:
        def url():
            seen.append(capsys.readouterr().out)
            return re.search(r"dashboard at (http://\S+)", "".join(seen))
        base = fns.wait_for(url, "the dashboard's URL").group(1).split("#")[0]
        status, body, _ = _get(base + "api/experiments")
        assert status == 200
        (listed,) = json.loads(body)["experiments"]
        assert listed["state"] == "running" and listed["context"] == "HyperparameterSearch"
        status, body, headers = _get(base)
        assert status == 200 and b"/static/plotly.min.js" in body and "script-src 'self'" in headers["Content-Security-Policy"]
        assert _get(base + "static/plotly.min.js")[0] == 200  # served from the plotly package, no CDN
        assert re.search(r"dashboard at http://\S+#" + run.folder(runs).name, "".join(seen))  # opened at this one
    finally:
        marker.touch()
        run.join(60)
    assert run.result.count("finished") == 1
    try:  # it stays after lagom() returned, and shows the experiment ended, its agents gone with it
        (listed,) = json.loads(_get(base + "api/experiments")[1])["experiments"]
        assert listed["state"] == "ended"
        x = Experiment(run.result.path)
        x.update()
        assert x.agents and {a["state"] for a in x.agents.values()} <= {"left", "gone"}
        assert all(a["silent_s"] is None for a in x.agents.values())
    finally:
        from kernel.outputs.dashboard import stop_all

        stop_all()
    with pytest.raises(OSError):  # and goes when the program does (here: asked to)
        urllib.request.urlopen(base + "api/experiments", timeout=5)


def test_beyond_loopback_it_answers_only_to_the_experiment_s_token(finished):
    token = "s3cret-token-of-this-experiment"
    refused = subprocess.run([sys.executable, "-m", "kernel", "dashboard", str(finished.path), "--host", "0.0.0.0",
                              "--port", "0"], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "LAGOM_TOKEN": ""})
    assert refused.returncode != 0 and "needs the experiment's token" in refused.stderr
    proc, url = _serve(finished.path, "--host", "0.0.0.0", env={"LAGOM_TOKEN": token})
    try:
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        assert token not in ps  # the token is never on a command line
        status, body, _ = _get(url + "api/experiments")
        assert status == 401 and b"hpo" not in body and b"token" in body
        status, body, _ = _get(url)
        assert status == 401 and b'name="token"' in body and b"hpo" not in body  # the login form, nothing else
        status, body, headers = _get(url + "login", data=b"token=guess")
        assert status == 403 and "Set-Cookie" not in headers
        assert _get(url + "api/experiments", {"Authorization": "Bearer guess"})[0] == 401
        assert _get(url + "api/experiments", {"Cookie": "lagom_dashboard=made-up"})[0] == 401
        status, body, _ = _get(url + "api/experiments", {"Authorization": f"Bearer {token}"})
        assert status == 200 and json.loads(body)["experiments"][0]["name"] == finished.path.name
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(url + "login", data=f"token={token}".encode(), timeout=10) as r:
            assert r.status == 200 and b"plotly.min.js" in r.read()  # logged in: the page itself
        with opener.open(url + "api/experiments", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.kill()
        proc.wait()


def test_on_loopback_a_request_for_another_host_name_is_refused(finished):
    proc, url = _serve(finished.path)
    try:
        assert _get(url + "api/experiments")[0] == 200
        assert _get(url + "api/experiments", {"Host": "attacker.example"})[0] == 403  # DNS rebinding
        assert _get(url + "api/e/..%2F..%2Fetc/events")[0] == 404
        assert _get(url + "api/e/" + finished.path.name + "/trial/9999")[0] == 404
    finally:
        proc.kill()
        proc.wait()


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(p):
    """Headless Chromium with one page, and the page's script errors as they come."""
    browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--enable-unsafe-swiftshader"])
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


@pytest.mark.slow
@pytest.mark.skipif(not _chromium(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_browser_sees_a_new_trial_and_a_new_point_appear_on_a_running_experiment(runs):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    marker = runs.parent / "step"
    space = Searchspace(n=("DISCRETE", [0, 1]), marker=("CATEGORICAL", [str(marker)]))
    ctx = HyperparameterSearch(space, "gridsearch", metric="score", workers=1)
    run = fns.Background(fns.steps_on_markers, ctx, path=runs, verbose=0)
    go = lambda n, step: (runs.parent / f"step-{n}-{step}").touch()
    proc = None
    try:
        run.folder(runs)
        proc, url = _serve(runs)
        with sync_playwright() as p:
            browser, page, errors = _browser(p)
            page.goto(url)
            wait = lambda js: page.wait_for_function(js, timeout=30000)
            wait("window.lagomDash.S.ready && window.lagomDash.drawnPoints(0) === 1")
            assert page.locator("#trials tbody tr").count() == 1 and page.inner_text("#exp-state") == "running"
            go(0, 1)
            wait("window.lagomDash.drawnPoints(0) === 2")  # a new point on the running trial's curve
            go(0, 2)
            wait("window.lagomDash.rows().includes(1) && window.lagomDash.drawnPoints(1) === 1")  # a new trial
            assert page.inner_text("#trials tbody tr[data-trial='0'] td:nth-child(2)") == "finished"
            page.click("#tabs button[data-tab=agents]")
            wait("document.querySelectorAll('#agents tbody tr').length === 1")
            assert "busy" in page.inner_text("#agents tbody")
            page.click("#tabs button[data-tab=trials]")
            page.click("#trials tbody tr[data-trial='0']")
            wait("document.getElementById('trial-log').textContent.includes('trial n=0 step 2')")
            go(1, 1), go(1, 2)
            wait("document.getElementById('exp-state').textContent === 'ended'")
            assert page.inner_text("#counts").startswith("2 trials") and not errors
            assert page.evaluate("window.lagomDash.rows()") == [1, 0]  # newest first
            page.click("#tabs button[data-tab=trials]")
            page.click("#trials thead th:nth-child(1)")
            wait("JSON.stringify(window.lagomDash.rows()) === '[0,1]'")  # sorted by trial, the other way
            page.fill("#filter-text", "score>1")
            wait("JSON.stringify(window.lagomDash.rows()) === '[1]'")  # trial 1 scored 1.3, trial 0 0.3
            page.fill("#filter-text", "n=0 finished")
            wait("JSON.stringify(window.lagomDash.rows()) === '[0]'")
            browser.close()
    finally:
        for n in (0, 1):
            go(n, 1), go(n, 2)
        run.join(60)
        if proc is not None:
            proc.kill()
            proc.wait()
    assert run.result.count("finished") == 2


def test_an_experiment_that_minimizes_is_read_as_minimizing(runs):
    """The journal says the direction whatever the context describes (an ablation of a loss)."""
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    r = lagom(fns.quadratic, HyperparameterSearch(space, num_trials=6, metric="score", direction="min", workers=1,
                                                  launcher="thread"), path=runs, verbose=0)
    x = Experiment(r.path)
    x.update()
    assert x.direction == "min" and x.metric == "score"
    assert x.best[-1][1:3] == [r.best.metric, r.best.id]  # the smallest, as result.best


def test_an_ablation_s_ranking_with_its_intervals_reaches_the_page_once_the_result_has_it(runs):
    from contexts import Ablation, AblationStudy

    import numpy as np

    rng = np.random.default_rng(0)
    study = AblationStudy(dataset={"a": rng.normal(size=20), "b": rng.normal(size=20), "c": rng.normal(size=20),
                                   "y": rng.integers(0, 2, size=20)}, label="y")
    study.features.include("a", "b")
    result = lagom(fns.feature_loss, Ablation(study, direction="min", metric="loss", repeats=2, workers=1,
                                              launcher="thread"), path=runs, verbose=0)
    x = Experiment(result.path)
    frame = x.frame(x.update())
    assert [r["component"] for r in frame["ranking"]] == [r["component"] for r in result.ranking]
    assert all(r["ci"] is not None and r["repeats"] == 2 for r in frame["ranking"])
    assert {t["ablated"] for t in frame["trials"]} == {"baseline", "feature a", "feature b"}


@pytest.mark.slow
@pytest.mark.skipif(not _chromium(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_browser_sees_every_objective_the_front_and_one_budget_at_a_time(runs):
    """Several objectives: a column each, the front named and drawn (not one 'best'). ASHA: the
    parameters' plot shows one budget's trials (the largest finished), the budget axis ticks
    the budgets themselves."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    from plugins.optimizers import ASHA

    space = Searchspace(x1=("DOUBLE", [0.0, 1.0]), x2=("DOUBLE", [0.0, 1.0]))
    front = lagom(fns.two_objectives, HyperparameterSearch(space, num_trials=12, metric=["f1", "f2"], direction="min",
                                                           workers=1, launcher="thread", seed=1), path=runs,
                  verbose=0, name="front")
    rungs = lagom(fns.rises_to_x, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), ASHA(3, 1, 9),
                                                       num_trials=12, metric="score", workers=1, launcher="thread",
                                                       seed=0), path=runs, verbose=0, name="rungs")
    proc, url = _serve(runs)
    try:
        with sync_playwright() as p:
            browser, page, errors = _browser(p)
            page.goto(url + "#" + front.path.name)
            page.wait_for_function("window.lagomDash.S.ready && window.lagomDash.S.name === " + json.dumps(front.path.name),
                                   timeout=30000)
            heads = page.eval_on_selector_all("#trials thead th", "ths => ths.map(th => th.textContent)")
            assert "f1" in heads and "f2" in heads and "metric" not in heads
            assert page.inner_text("#best").startswith(f"Pareto front: {len(front.pareto)} trial(s)")
            assert page.inner_text("#best-title").startswith("Pareto front (min f1, min f2)")
            drawn = page.evaluate("document.getElementById('best-plot').data.find(t => t.name === 'Pareto front').x.length")
            assert drawn == len(front.pareto)
            page.goto(url + "#" + rungs.path.name)
            page.wait_for_function("window.lagomDash.S.ready && window.lagomDash.S.name === " + json.dumps(rungs.path.name),
                                   timeout=30000)
            page.click("#tabs button[data-tab=params]")
            page.wait_for_function("document.getElementById('parcoords').data", timeout=30000)
            top = max(t.budget for t in rungs.trials if t.state == "finished")
            assert page.input_value("#params-budget") == str(top)
            lines = page.evaluate("document.getElementById('parcoords').data[0].dimensions[0].values.length")
            assert lines == sum(t.budget == top and t.state in ("finished", "stopped") for t in rungs.trials)
            page.click("#tabs button[data-tab=rungs]")
            page.wait_for_function("document.getElementById('rungs').layout", timeout=30000)
            ticks = page.evaluate("document.getElementById('rungs').layout.xaxis.tickvals")
            assert ticks == sorted({t.budget for t in rungs.trials if t.metric is not None})
            assert not errors
            browser.close()
    finally:
        proc.kill()
        proc.wait()


def _planted(runs, num_trials, **kw):
    """A search of fns.planted: a and b matter, c weakly, d, e and kind not at all."""
    space = Searchspace(**{k: ("DOUBLE", [0.0, 1.0]) for k in "abcde"}, kind=("CATEGORICAL", ["x", "y", "z"]))
    return lagom(fns.planted, HyperparameterSearch(space, "randomsearch", num_trials=num_trials, metric="score",
                                                   workers=2, seed=3, **kw), path=runs, verbose=0)


def test_the_page_asks_which_hyperparameters_mattered_so_far(runs, finished):
    planted = _planted(runs, 300)
    proc, url = _serve(runs)
    try:
        status, body, _ = _get(url + "api/e/" + planted.path.name + "/importance")
        rows = json.loads(body)["rows"]
        assert status == 200 and {r["param"] for r in rows if r["stands_out"]} == {"a", "b"}
        assert [r["param"] for r in rows] == [r["param"] for r in planted.importance()]
        few = json.loads(_get(url + "api/e/" + finished.path.name + "/importance")[1])
        assert "at least 10 trials" in few["note"]
        assert _get(url + "api/e/" + planted.path.name + "/importance?budget=x")[0] == 400
    finally:
        proc.kill()
        proc.wait()


# -- very large experiments ------------------------------------------------------------------------
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=5))
_summary = st.fixed_dictionaries({
    "id": st.integers(0, 10**6), "state": st.sampled_from(["running", "finished", "stopped", "failed", "pending"]),
    "params": st.dictionaries(st.sampled_from(["lr", "width", "act", "momentum"]), _scalar, max_size=4),
    "budget": st.one_of(st.none(), st.integers(1, 81), st.floats(0.5, 81.0)),
    "metric": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    "agent": st.one_of(st.none(), st.sampled_from(["local-0", "local-1", "gpu-3"])),
    "ablated": st.one_of(st.none(), st.text(max_size=8)), "values": st.one_of(st.none(), st.lists(st.floats(-1, 1), max_size=3)),
    "error": st.one_of(st.none(), st.text(max_size=20)), "started": st.one_of(st.none(), st.floats(0, 1e4)),
})


def _typed(x):
    """A value as JSON tells it apart: True is not 1, 1.0 is not 1."""
    return json.loads(json.dumps(x, sort_keys=True), parse_int=lambda s: ("int", s), parse_float=lambda s: ("float", s),
                      parse_constant=str)


@given(st.lists(_summary, max_size=30))
@settings(max_examples=200, deadline=None)
def test_trials_sent_as_columns_come_back_exactly_as_they_were(rows):
    """What the snapshot sends (a fifth of the JSON at 100,000 trials) decodes to the same trials:
    a conditional parameter absent stays absent, a choice that is None stays None, True stays True."""
    import orjson

    sent = orjson.loads(orjson.dumps(columns.encode(rows)))  # the wire, as the page gets it
    assert _typed(columns.decode(sent)) == _typed(rows)


def test_a_page_that_names_no_experiment_gets_the_newest(runs, finished):
    newer = lagom(fns.quadratic, HyperparameterSearch(Searchspace(x=("DOUBLE", [0.0, 1.0])), num_trials=2,
                                                      metric="score", workers=1, launcher="thread"),
                  path=runs, verbose=0, name="newer")
    proc, url = _serve(runs)
    try:
        with urllib.request.urlopen(url + "api/events", timeout=10) as r:  # server-sent events: the first is the snapshot
            first = json.loads(r.readline().decode()[len("data: "):])
        assert first["kind"] == "snapshot" and first["name"] == newer.path.name != finished.path.name
        assert len(columns.decode(first["trials"])) == 2
    finally:
        proc.kill()
        proc.wait()
    empty = runs.parent / "empty"
    empty.mkdir()
    proc, url = _serve(empty)
    try:
        assert _get(url + "api/events")[0] == 404  # nothing yet: the page tries again when the list has one
    finally:
        proc.kill()
        proc.wait()


def test_the_page_s_importance_of_a_huge_search_is_drawn_from_a_sample_and_says_so(runs, monkeypatch):
    from kernel.outputs.dashboard import experiment

    planted = _planted(runs, 400, launcher="thread")
    monkeypatch.setattr(experiment, "IMPORTANCE_SAMPLE", 300)
    x = Experiment(planted.path)
    x.update()
    got = x.importance()
    assert (got["sampled"], got["of"]) == (300, 400) and all(r["sampled"] == 300 for r in got["rows"])
    assert {r["param"] for r in got["rows"] if r["stands_out"]} == {"a", "b"}
    assert x.importance() is got  # nothing ended since: not computed again


@pytest.mark.slow
@pytest.mark.skipif(not _chromium(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_large_experiment_s_page_has_every_trial_as_the_server_has_it_and_samples_its_plots(runs):
    """2,600 trials: the page rebuilds each from the snapshot's columns exactly (a conditional
    parameter, a choice of mixed types); the parallel coordinates draw the best 500 and a sample
    of the rest, and say so; the table sorts and filters the whole set."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), opt=("CATEGORICAL", ["sgd", "adam"]),
                        flag=("CATEGORICAL", [True, 1, "1"]))
    space.add("momentum", ("DOUBLE", [0.0, 0.99]), when={"opt": "sgd"})
    big = lagom(fns.quadratic, HyperparameterSearch(space, "randomsearch", num_trials=2600, metric="score", workers=2,
                                                    launcher="thread", seed=5), path=runs, verbose=0, report=False)
    served = Experiment(big.path)
    served.update()
    proc, url = _serve(big.path)
    try:
        with sync_playwright() as p:
            browser, page, errors = _browser(p)
            page.goto(url)
            page.wait_for_function("window.lagomDash && window.lagomDash.S.ready", timeout=60000)
            shown = page.evaluate("Array.from(window.lagomDash.S.trials.values())")
            tag = lambda t: {**t, "params": {k: ("bool", v) if isinstance(v, bool) else v for k, v in t["params"].items()}}
            assert sorted(map(tag, shown), key=lambda t: t["id"]) == sorted(map(tag, served.trials.values()),
                                                                           key=lambda t: t["id"])
            assert sum("momentum" in t["params"] for t in shown) == sum("momentum" in t.params for t in big.trials) > 0
            page.click("#tabs button[data-tab=params]")
            page.wait_for_function("document.getElementById('parcoords').data", timeout=30000)
            lines = page.evaluate("document.getElementById('parcoords').data[0].dimensions.at(-1).values")
            ranked = sorted((t for t in big.trials if t.metric is not None), key=lambda t: -t.metric)
            assert len(lines) == 2000 and sorted(lines, reverse=True)[:500] == [t.metric for t in ranked[:500]]
            note = page.inner_text("#params-note")
            assert "2,000 of the 2,600" in note and "the best 500 and 1,500 of the rest drawn at random" in note
            page.click("#tabs button[data-tab=trials]")
            page.click("#trials thead th:nth-child(3)")  # by score, best first
            page.wait_for_function(f"window.lagomDash.rows()[0] === {ranked[0].id}", timeout=10000)
            page.fill("#filter-text", "opt=sgd score>-0.01")
            want = sum(t.params["opt"] == "sgd" and t.metric > -0.01 for t in big.trials)
            page.wait_for_function(f"document.getElementById('rows-info').textContent.endsWith('of {want}')",
                                   timeout=10000)
            assert not errors
            browser.close()
    finally:
        proc.kill()
        proc.wait()


def test_a_journal_read_in_chunks_gives_every_line_once_whatever_the_chunk_cuts(tmp_path, monkeypatch):
    from kernel.outputs.dashboard.tail import Tail

    path = tmp_path / "journal.jsonl"
    lines = [{"event": "start", "trial": i, "params": {"x": i / 7}} for i in range(20)]
    path.write_text("".join(json.dumps(e) + "\n" for e in lines[:15]) + json.dumps(lines[15])[:9])
    tail = Tail(path)
    monkeypatch.setattr(Tail, "CHUNK", 7)  # lines cut everywhere
    assert list(tail.read()) == lines[:15]  # the torn one waits
    with open(path, "a") as f:
        f.write(json.dumps(lines[15])[9:] + "\n" + "".join(json.dumps(e) + "\n" for e in lines[16:]))
    assert list(tail.read()) == lines[15:] and list(tail.read()) == []

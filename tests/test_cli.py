"""python -m kernel: status, report, resume, agent; one-line errors."""
import os
import subprocess
import sys

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom
from kernel.outputs.report import write_report


def cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "kernel", *args], capture_output=True, text=True,
                          env=env, timeout=kw.get("timeout", 60))


@pytest.fixture
def finished(runs):
    space = Searchspace(n=("DISCRETE", [1, 2, 3, 4]))
    return lagom(fns.fails_on_odd, HyperparameterSearch(space, "gridsearch", metric="score", workers=1,
                                                        launcher="thread"), path=runs, verbose=0)


def test_status_lists_every_trial(finished):
    out = cli("status", str(finished.path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "ended; 2 failed, 2 finished" in lines[0]
    assert [line.split()[1] for line in lines[2:]] == ["failed", "finished", "failed", "finished"]
    assert "n=4" in lines[-1] and "4" in lines[-1].split()[2]


def test_lagom_returns_before_its_report_which_a_process_of_its_own_draws(runs, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("LAGOM_REPORT", "1")
    space = Searchspace(n=("DISCRETE", [2, 4]))
    result = lagom(fns.fails_on_odd, HyperparameterSearch(space, "gridsearch", metric="score", workers=1,
                                                          launcher="thread"), path=runs, verbose=0)
    html = fns.wait_for(lambda: (result.path / "report.html").exists() and result.path / "report.html",
                        "report.html", timeout=60)
    text = html.read_text()
    assert text.count("<tr>") == 3 and "</html>" in text
    assert not list(result.path.glob("*.part"))


def test_report_writes_html_with_its_images(finished):
    html = write_report(finished.path)
    text = html.read_text()
    images = [part.split('"')[0] for part in text.split('<img src="')[1:]]
    assert images and all((finished.path / name).read_bytes()[:4] == b"\x89PNG" for name in images)
    assert "<table>" in text and text.count("<tr>") == 5
    out = cli("report", str(finished.path))
    assert out.returncode == 0 and out.stdout.strip().endswith("report.html")


def _files(folder):
    return {(p.name, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}


def test_the_report_is_drawn_aside_and_moved_in_at_the_end(finished, monkeypatch):
    """A folder removed while its report is drawn (a TemporaryDirectory around lagom()) must not
    see files appear in it meanwhile: rmtree would fail with "Directory not empty"."""
    pytest.importorskip("matplotlib")
    from kernel.outputs import report

    before, during, save = _files(finished.path), [], report._Report.save

    def watched(self, fig, name, caption):
        save(self, fig, name, caption)
        during.append(_files(finished.path))

    monkeypatch.setattr(report._Report, "save", watched)
    html = write_report(finished.path)
    assert during and all(seen == before for seen in during)  # nothing new, nothing rewritten
    images = [part.split('"')[0] for part in html.read_text().split('<img src="')[1:]]
    assert len(images) == len(during) and all((finished.path / n).exists() for n in images)
    assert not list(finished.path.glob("*.part"))


def test_a_folder_removed_while_its_report_is_drawn_stays_removed(finished, monkeypatch):
    pytest.importorskip("matplotlib")
    import shutil

    from kernel.outputs import report

    save = report._Report.save

    def removing(self, fig, name, caption):
        save(self, fig, name, caption)
        shutil.rmtree(finished.path, ignore_errors=True)

    monkeypatch.setattr(report._Report, "save", removing)
    with pytest.raises(FileNotFoundError, match="removed while its report was drawn"):
        write_report(finished.path)
    assert not finished.path.exists()


def test_wrong_paths_and_arguments_give_one_line(tmp_path):
    for args in (("status", str(tmp_path / "nope")), ("report", str(tmp_path)), ("resume", str(tmp_path))):
        out = cli(*args)
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert out.stderr.strip().count("\n") == 0 and "not an experiment folder" in out.stderr
    out = cli("frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [("--help",), ("status", "--help"), ("report", "--help"), ("resume", "--help"),
                                  ("agent", "--help")])
def test_help_everywhere(args):
    out = cli(*args)
    assert out.returncode == 0 and "usage:" in out.stdout


@pytest.mark.slow
def test_resume_from_the_command_line(runs):
    from test_resume import kill_after

    folder = kill_after("random", runs, ended=3)
    assert "its kernel died: continue it with python -m kernel resume" in cli("status", str(folder)).stdout
    out = cli("resume", str(folder), "--verbose", "0", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    status = cli("status", str(folder))
    assert "ended; 12 finished" in status.stdout.splitlines()[0]


def _chromium():
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(not _chromium(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_report_renders_in_headless_chromium_with_its_images(finished, tmp_path):
    html = write_report(finished.path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120)
    n = len([p for p in html.read_text().split('<img src="')[1:]])
    assert f'data-images-loaded="{n}/{n}"' in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1000,1400", html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_a_live_experiment_cannot_be_resumed_twice_and_status_names_its_kernel(runs):
    """One kernel per folder: a second one (resume, by hand or by mistake) would run trials twice."""
    import os
    import socket

    import fns
    from contexts import HyperparameterSearch, Searchspace
    from kernel.journal import FolderBusy

    marker = runs.parent / "go"
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), marker=("CATEGORICAL", [str(marker)]))
    ctx = HyperparameterSearch(space, num_trials=2, metric="score", workers=1, launcher="thread")
    run = fns.Background(fns.after_marker, ctx, path=runs, verbose=0)
    try:
        folder = run.folder(runs)
        with pytest.raises(FolderBusy, match=f"its kernel .pid {os.getpid()} on {socket.gethostname()}"):
            lagom(fns.after_marker, ctx, path=runs, resume=folder, verbose=0)
        assert f"running (kernel pid {os.getpid()} on {socket.gethostname()})" in cli("status", str(folder)).stdout
    finally:
        marker.touch()
        run.join(30)
    assert run.result.count("finished") == 2
    assert "ended" in cli("status", str(folder)).stdout.splitlines()[0]


def test_the_report_shows_parameters_as_people_read_them(runs):
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    result = lagom(fns.quadratic, HyperparameterSearch(space, num_trials=3, metric="score", workers=1,
                                                       launcher="thread", seed=1), path=runs, verbose=0)
    text = write_report(result.path).read_text()
    x = result.trials[0].params["x"]
    assert f"x={x:.4g}" in text and repr(x) not in text


def test_the_report_opens_with_the_best_configuration(finished):
    text = write_report(finished.path).read_text()
    assert text.index("Best: trial 3, score = 4") < text.index("<img")  # the answer before the plots
    assert "n=4" in text.split("<img")[0]


def test_a_large_experiment_s_report_draws_the_best_and_a_sample_and_lists_the_best(runs, monkeypatch):
    """Beyond CURVES trials the curves are the best tenth and an even sample; beyond ROWS the
    table lists the best; result.json (written a trial per line) still holds every trial."""
    import json

    from kernel.outputs import report

    space = Searchspace(x=("DOUBLE", [0.0, 1.0]))
    result = lagom(fns.quadratic, HyperparameterSearch(space, num_trials=30, metric="score", workers=1,
                                                       launcher="thread", seed=1), path=runs, verbose=0)
    monkeypatch.setattr(report, "CURVES", 10)
    monkeypatch.setattr(report, "ROWS", 5)
    text = write_report(result.path).read_text()
    assert "10 of 30: the 1 best and an even sample of the rest" in text
    assert "the 5 best of 30 (result.json has every one)" in text
    best5 = sorted(result.trials, key=lambda t: t.metric, reverse=True)[:5]
    listed = [int(row.split("</td>")[0]) for row in text.split("<tr><td>")[1:]]
    assert listed == sorted(t.id for t in best5)
    saved = json.loads((result.path / "result.json").read_text())
    assert len(saved["trials"]) == 30 and saved["best"]["trial"] == result.best.id
    assert saved["trials"][7]["history"] == [list(p) for p in result.trials[7].history]


def test_status_watch_follows_a_running_experiment_to_its_end(runs):

    marker = runs.parent / "go-watch"
    space = Searchspace(x=("DOUBLE", [0.0, 1.0]), marker=("CATEGORICAL", [str(marker)]))
    ctx = HyperparameterSearch(space, num_trials=3, metric="score", workers=1, launcher="thread")
    run = fns.Background(fns.after_marker, ctx, path=runs, verbose=0)
    watch = None
    try:
        folder = run.folder(runs)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        watch = subprocess.Popen([sys.executable, "-m", "kernel", "status", str(folder), "--watch",
                                  "--interval", "0.05"], stdout=subprocess.PIPE, text=True, env=env)
        seen = []
        while not any("1 running" in line for line in seen):
            seen.append(watch.stdout.readline())
            assert seen[-1], "status --watch ended before the trial ran"
    finally:
        marker.touch()
        run.join(30)
    out, _ = watch.communicate(timeout=30)
    assert watch.returncode == 0
    last = out.strip().split("\n\n")[-1].splitlines()
    assert "ended; 3 finished" in last[0] and len(last) == 5
    assert run.result.count("finished") == 3

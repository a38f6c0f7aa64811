"""The live display: a rich panel on a terminal, plain lines elsewhere, nothing with verbose=0."""
import io

import pytest

import fns
from contexts import HyperparameterSearch, Searchspace
from kernel import lagom
from kernel.progress import Progress

SPACE = Searchspace(x=("DOUBLE", [0.0, 1.0]), sleep=("DISCRETE", [0.02]))


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run(progress, runs):
    return lagom(fns.quadratic, HyperparameterSearch(SPACE, num_trials=6, metric="score", workers=2,
                                                     launcher="thread", seed=2),
                 path=runs, verbose=0, observers=[progress])


def test_a_terminal_gets_a_live_panel(runs):
    pytest.importorskip("rich")
    out = Terminal()
    result = run(Progress(stream=out), runs)
    text = out.getvalue()
    assert "lagom · HyperparameterSearch" in text and "6 done, 0 running" in text
    assert f"score = {result.best.metric:.4g}" in text


def test_a_log_gets_plain_lines(runs):
    out = io.StringIO()
    run(Progress(stream=out, interval=0.05), runs)
    last = out.getvalue().strip().splitlines()[-1]
    assert "6/6 trials" in last and "best score=" in last and "\\x1b" not in last


def test_verbose_zero_prints_nothing(runs, capsys):
    lagom(fns.quadratic, HyperparameterSearch(SPACE, num_trials=2, metric="score", workers=1, launcher="thread"),
          path=runs, verbose=0)
    assert capsys.readouterr().out == ""

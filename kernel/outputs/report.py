"""The experiment's report: report.html with PNG plots, made from the journal alone, so it works
for a finished experiment, one still running, and one whose kernel died.

Plots: every trial's learning curve (stopped ones end early, failed ones in grey), the best
metric so far over time, each parameter against the metric, budgets against the metric (ASHA's
rungs), and the ablation ranking when there is one.
"""
from __future__ import annotations

import collections
import html
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..direction import Direction
from ..pareto import front_of_records
from ..timeline import Timeline, lineages
from ..trials import rank_key
from .publish import PAGE, publish

CURVES = 2000
"""At most this many learning curves are drawn: the best tenth and an even sample of the rest
(100,000 curves are a blue block, and cost a minute to draw)."""
ROWS = 1000
"""At most this many rows in the trials table: the best ones (result.json holds every trial)."""

COLORS = {"finished": "#2e86c1", "stopped": "#e67e22", "failed": "#95a5a6", "lost": "#c0392b",
          "running": "#27ae60", "interrupted": "#8e44ad", "pending": "#bdc3c7"}


def write_report(folder: str | Path) -> Path:
    """Write report.html and its PNGs into ``folder``: its path (FileNotFoundError if ``folder`` went)."""
    import matplotlib

    matplotlib.use("Agg")
    folder = Path(folder)
    timeline = Timeline.read(folder)
    with tempfile.TemporaryDirectory(prefix="lagom-report-") as staging:  # moved in at the end (publish.py)
        report = _Report(folder, Path(staging), {**timeline.head, "edits": timeline.status.get("edits") or {}},
                         timeline.trials)
        report.curves()
        report.series()
        if report.ended:
            report.best_so_far()
            report.parameters()
            report.importance()
            report.budgets()
            report.lineages()
            if timeline.head.get("objectives"):
                report.front()
        if (folder / "ablation.png").exists():
            report.images.append(("ablation.png", "Ablation: effect of leaving each component out"))
        (Path(staging) / PAGE).write_text(report.page(), encoding="utf-8")
        return publish(Path(staging), folder)


def _ranked_as(t: dict[str, Any]) -> SimpleNamespace:
    """What :func:`rank_key` reads of a trial, from its journaled dict (a whole ``Trial`` per
    ended trial, its history converted, was a sixth of a large report's time)."""
    return SimpleNamespace(id=t["id"], state=t.get("state"), metric=t.get("metric"), budget=t.get("budget"),
                           info=t.get("info") or {})


class _Report:
    """The plots of one experiment, each saved as a PNG beside report.html."""

    def __init__(self, folder: Path, staging: Path, head: dict[str, Any], trials: dict[int, dict[str, Any]]):
        import matplotlib.pyplot as plt

        self.plt, self.folder, self.staging, self.head, self.trials = plt, folder, staging, head, trials
        controller = head.get("controller", {})
        self.direction = Direction.of(head.get("direction") or controller.get("direction") or "max")
        self.metric = head.get("metric") or controller.get("metric") or "metric"
        self.ended = sorted((t for t in trials.values() if t.get("metric") is not None),
                            key=lambda t: t.get("ended") or 0)
        self.images: list[tuple[str, str]] = []
        # best first, by the one best rule (finished first, the largest budget, the metric)
        keyed = [(key, t) for t in self.ended if (key := rank_key(_ranked_as(t), self.direction)) is not None]
        self.ranked = [t for _, t in sorted(keyed, key=lambda kt: kt[0], reverse=True)]
        self.with_curves = [t for t in trials.values() if t.get("history")]
        self.drawn = self._drawn()

    def _drawn(self) -> list[dict[str, Any]]:
        """The trials whose curves are drawn: all, or the best and an even sample."""
        if len(self.with_curves) <= CURVES:
            return self.with_curves
        best = self.ranked[:CURVES // 10]
        picked = {t["id"] for t in best}
        rest = [t for t in self.with_curves if t["id"] not in picked]
        step = len(rest) / (CURVES - len(best))
        return best + [rest[int(i * step)] for i in range(CURVES - len(best))]

    def _sampled(self) -> str:
        total = len(self.with_curves)
        if len(self.drawn) == total:
            return ""
        return f" ({len(self.drawn):,} of {total:,}: the {CURVES // 10:,} best and an even sample of the rest)"

    def save(self, fig, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(self.staging / name, dpi=100)
        self.plt.close(fig)
        self.images.append((name, caption))

    def curves(self) -> None:
        """Every trial's broadcasts, coloured by budget when trials had different budgets (ASHA's
        rungs), else by how they ended."""
        fig, ax = self.plt.subplots(figsize=(8, 4.5))
        budgets = sorted({t.get("budget") for t in self.trials.values() if t.get("budget") is not None})
        palette = self.plt.get_cmap("viridis")
        groups: dict[Any, tuple[Any, list]] = {}
        for t in self.drawn:
            hist = t["history"]
            if len(budgets) > 1 and t.get("budget") in budgets:
                key = f"budget {t['budget']}"
                color = palette(budgets.index(t["budget"]) / (len(budgets) - 1))
            else:
                key, color = t.get("state"), COLORS.get(t.get("state"), "#333")
            groups.setdefault(key, (color, []))[1].append([point[:2] for point in hist])
        labelled = _draw_lines(ax, groups)
        if labelled:
            ax.legend(title="budget" if len(budgets) > 1 else "trial state", fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel(self.metric)
        ax.set_title("Learning curves")
        self.save(fig, "report_curves.png", "Every trial's broadcasts" + self._sampled())

    def series(self) -> None:
        """The other values trials broadcast by name (loss beside accuracy, say), one plot each."""
        names = sorted({n for t in self.trials.values() for n in (t.get("series") or {}) if n != self.metric})[:4]
        if not names:
            return
        fig, axes = self.plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
        for ax, name in zip(axes[0], names):
            groups: dict[Any, tuple[Any, list]] = {}
            for t in self.drawn:
                points = (t.get("series") or {}).get(name)
                if points:
                    state = t.get("state")
                    groups.setdefault(state, (COLORS.get(state, "#333"), []))[1].append(points)
            _draw_lines(ax, groups, labels=False)
            ax.set_xlabel("step")
            ax.set_title(name)
        self.save(fig, "report_series.png", "The other values each trial broadcast: " + ", ".join(names))

    def best_so_far(self) -> None:
        ended = self.ended
        starts = [t["started"] for t in ended if t.get("started")]
        t0 = min(starts) if starts else 0
        best, xs, ys = None, [], []
        for t in ended:
            m = t["metric"]
            best = m if best is None or self.direction.better(m, best) else best
            xs.append((t.get("ended") or t0) - t0)
            ys.append(best)
        fig, ax = self.plt.subplots(figsize=(8, 3.5))
        ax.step(xs, ys, where="post")
        ax.scatter(_floats(xs), _floats([t["metric"] for t in ended]), s=8, alpha=0.4)
        ax.set_xlabel("seconds")
        ax.set_ylabel(f"{self.metric} ({self.direction})")
        ax.set_title("Best so far")
        self.save(fig, "report_best.png", "The best metric over time (dots: each trial)")

    def parameters(self) -> None:
        """Each parameter against the metric, at the largest budget any trial reached (ASHA's
        lower rungs measure less training, and would blur the picture)."""
        budgets = [t.get("budget") for t in self.ended if t.get("budget") is not None]
        top = max(budgets) if budgets else None
        ended = [t for t in self.ended if top is None or t.get("budget") == top]
        names = [k for k in ended[0]["params"] if k != "budget"]
        if not names:
            return
        fig, axes = self.plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
        metrics = _floats([t["metric"] for t in ended])
        for ax, name in zip(axes[0], names):
            values = [t["params"].get(name) for t in ended]
            if all(isinstance(v, (int, float)) for v in values):
                ax.scatter(_floats(values), metrics, s=10)
                if min(values) > 0 and max(values) / max(min(values), 1e-12) > 100:
                    ax.set_xscale("log")
            else:
                cats = sorted({str(v) for v in values})
                where = {c: i for i, c in enumerate(cats)}
                ax.scatter(_floats([where[str(v)] for v in values]), metrics, s=10)
                ax.set_xticks(range(len(cats)), cats, rotation=30)
            ax.set_xlabel(name)
        axes[0][0].set_ylabel(self.metric)
        self.save(fig, "report_params.png", "Each parameter against the metric"
                  + (f" (trials with budget {top})" if top is not None else ""))

    def importance(self) -> None:
        """Which hyperparameters mattered (a search only, with numpy and enough finished trials)."""
        if self.head.get("context") in (None, "HyperparameterSearch"):
            from .importance import chart

            fig = chart(self.plt, list(self.trials.values()), self.head.get("directions") or [str(self.direction)])
            if fig is not None:
                self.save(fig, "report_importance.png", "Which hyperparameters mattered: how much the best 10% "
                          "of the finished trials prefer certain values (blue: stands out from the rest)")

    def budgets(self) -> None:
        budgets = [t.get("budget") for t in self.ended]
        if not (any(b is not None for b in budgets) and len(set(budgets)) > 1):
            return
        fig, ax = self.plt.subplots(figsize=(6, 3.5))
        ax.scatter(_floats(budgets), _floats([t["metric"] for t in self.ended]), s=12)
        ax.set_xscale("log")
        ax.set_xlabel("budget (rung)")
        ax.set_ylabel(self.metric)
        ax.set_title("Results by budget (ASHA's rungs)")
        self.save(fig, "report_rungs.png", "Results at each budget")

    def lineages(self) -> None:
        """Hyperparameters along each chain of checkpoints (a trial continuing its parent), when
        they change along the way (population-based training): the schedule each final trial was
        trained with, the best in bold."""
        chains = lineages(self.trials, self.ranked)
        names = [k for k in (chains[0][-1]["params"] if chains else {})
                 if all(isinstance(t["params"].get(k), (int, float)) for c in chains for t in c)][:4]
        if not names:
            return
        fig, axes = self.plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
        for ax, name in zip(axes[0], names):
            for i, chain in enumerate(reversed(chains)):  # the best drawn last, on top
                best = i == len(chains) - 1
                xs = [0] + [t.get("budget") or 0 for t in chain]
                ys = [chain[0]["params"][name]] + [t["params"][name] for t in chain]
                ax.step(xs, ys, where="pre", color="#1a5276" if best else "#aab7b8", lw=2.2 if best else 0.8,
                        alpha=1.0 if best else 0.6, zorder=3 if best else 1)
            values = [t["params"][name] for c in chains for t in c]
            if min(values) > 0 and max(values) / min(values) > 20:
                ax.set_yscale("log")
            ax.set_xlabel("budget")
            ax.set_title(name)
        self.save(fig, "report_lineage.png", f"Hyperparameters along each lineage ({len(chains)} final trials; "
                                             "the best in bold): the schedule population-based training found")

    def page(self) -> str:
        counts = collections.Counter(t.get("state", "?") for t in self.trials.values())
        name, metric = html.escape(self.folder.name), html.escape(self.metric)
        shown = list(self.trials.values())
        heading = "Trials"
        if len(shown) > ROWS:
            shown = self.ranked[:ROWS]
            heading = f"Trials: the {len(shown):,} best of {len(self.trials):,} (result.json has every one)"
        rows = "".join(_row(t) for t in sorted(shown, key=lambda t: t["id"]))
        what = "left out" if any(_left_out(t) for t in self.trials.values()) else "params"
        edits = "".join(f"; edited on resume: {k} {a} -> {b}" for k, (a, b) in self.head.get("edits", {}).items())
        body = "".join(f'<figure><img src="{n}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}'
                       f'</figcaption></figure>' for n, c in self.images)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title>"
                "<style>body{font-family:sans-serif;margin:2em}img{max-width:100%}td,th{padding:2px 8px}"
                "table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style></head><body>"
                f"<h1>{name}</h1>{self.best_line()}<p>{html.escape(self.head.get('context', ''))}: "
                f"{html.escape(', '.join(f'{v} {k}' for k, v in sorted(counts.items())) + edits)}</p>{body}"
                f"<h2>{html.escape(heading)}</h2><table><tr><th>id</th><th>state</th><th>budget</th><th>{metric}</th><th>compile s</th><th>{what}</th></tr>"
                f"{rows}</table>"
                # Lets a headless browser (and the tests) tell that every plot actually rendered.
                "<script>window.addEventListener('load',function(){var i=document.images,n=0;"
                "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0){n++}}"
                "document.body.setAttribute('data-images-loaded',n+'/'+i.length)})</script>"
                "</body></html>")

    def front(self) -> None:
        """A search of several objectives: every finished trial in the plane of the first two,
        the Pareto front joined."""
        names, ways = self.head["objectives"], self.head["directions"]
        done = [t for t in self.trials.values() if t.get("state") == "finished" and t.get("values")]
        on = front_of_records(list(self.trials.values()), ways)
        if not done:
            return
        fig, ax = self.plt.subplots(figsize=(6, 4.5))
        ax.scatter(_floats([t["values"][0] for t in done]), _floats([t["values"][1] for t in done]), s=10,
                   color="#aab7b8", label="trials")
        ax.plot(_floats([t["values"][0] for t in on]), _floats([t["values"][1] for t in on]), "o-", color="#c0392b",
                ms=5, label=f"Pareto front ({len(on)})")
        ax.set_xlabel(f"{names[0]} ({ways[0]})")
        ax.set_ylabel(f"{names[1]} ({ways[1]})")
        ax.legend(fontsize=8)
        ax.set_title("Pareto front")
        self.save(fig, "report_front.png", f"Every finished trial by {names[0]} and {names[1]}; the front in red"
                  + (f" (of {len(names)} objectives, the first two)" if len(names) > 2 else ""))

    def best_line(self) -> str:
        """The answer first: the best trial, its metric and its configuration (several
        objectives: the front)."""
        if self.head.get("objectives"):
            on = front_of_records(list(self.trials.values()), self.head["directions"])
            listed = "; ".join(f"trial {t['id']}: " + ", ".join(f"{m}={v:.4g}" for m, v in zip(self.head["objectives"], t["values"]))
                               for t in on[:10])
            return f"<p class='best'><b>Pareto front: {len(on)} trial(s)</b><br>{html.escape(listed)}</p>"
        if not self.ranked:
            return "<p><b>No trial finished.</b></p>"
        best = self.ranked[0]
        budgets = {t.get("budget") for t in self.ended if t.get("budget") is not None}
        at = f" at budget {best['budget']:g}, the largest finished" if len(budgets) > 1 \
            and isinstance(best.get("budget"), (int, float)) and best.get("state") == "finished" else ""
        what = _left_out(best) or _params(best["params"])
        return (f"<p class='best'><b>Best: trial {best['id']}, {html.escape(self.metric)} = {best['metric']:.6g}"
                f"</b> ({self.direction}){at}<br>{html.escape(what)}</p>")


MARKED = 100
"""Curves drawn with a marker at each point; beyond this many the markers hide the lines."""


def _floats(values: list) -> Any:
    """A float array: matplotlib turns a long list into a masked array element by element."""
    import numpy as np

    return np.asarray(values, dtype=float)


def _draw_lines(ax: Any, groups: dict[Any, tuple[Any, list]], labels: bool = True) -> set:
    """One LineCollection per group (colour): drawing 100,000 curves as separate Line2D objects
    takes minutes, as one collection a fraction of a second."""
    from matplotlib.collections import LineCollection

    count = sum(len(curves) for _, curves in groups.values())
    few, alpha = count <= MARKED, max(0.05, min(0.6, 60 / max(count, 1)))  # thousands of curves: see the density
    for key, (color, curves) in groups.items():
        ax.add_collection(LineCollection(curves, colors=[color], alpha=alpha, linewidths=1,
                                         label=key if labels else None))
        if few:
            xs = [p[0] for c in curves for p in c]
            ys = [p[1] for c in curves for p in c]
            ax.plot(xs, ys, linestyle="none", marker="o", markersize=2, color=color, alpha=0.6)
    ax.autoscale_view()
    return set(groups) if labels else set()


def _left_out(t: dict) -> str | None:
    """What an ablation trial left out (its info says), or None."""
    return (t.get("info") or {}).get("ablated")


def _params(params: dict) -> str:
    """Parameters as a person reads them: 4 significant digits, not a float's 17."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _row(t: dict) -> str:
    value = "" if t.get("metric") is None else format(t["metric"], ".6g")
    what = _left_out(t) or _params(t.get("params") or {})
    budget, compiled = ("" if t.get(k) is None else format(t[k], f) for k, f in (("budget", "g"), ("compile_s", ".3g")))
    state = f"{t.get('state')}" + ("" if (a := (t.get("info") or {}).get("audit")) is None else f" (audits trial {a})")
    return (f"<tr><td>{t['id']}</td><td>{html.escape(state)}</td><td>{budget}</td><td>{value}</td>"
            f"<td>{compiled}</td><td>{html.escape(what)}</td></tr>")

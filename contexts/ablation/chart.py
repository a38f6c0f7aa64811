"""The ablation ranking as a bar chart (PNG), for the experiment folder."""
from __future__ import annotations

from pathlib import Path


def ranking_chart(ranking: list[dict], baseline: float, metric: str, path: Path) -> Path | None:
    """Horizontal bars of each component's effect on the metric; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [r for r in ranking if r["effect"] is not None][::-1]  # most important at the top
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(3, len(rows)) + 1.2))
    effects = [r["effect"] for r in rows]
    # 95% intervals as error bars (repeated studies); a component whose interval holds zero is grey
    errors = [[r["effect"] - r["ci"][0] if r.get("ci") else 0.0 for r in rows],
              [r["ci"][1] - r["effect"] if r.get("ci") else 0.0 for r in rows]]
    colors = [{"important": "#2e86c1", "harmful": "#c0392b", "hurts": "#85c1e9", "helps": "#f1948a"}.get(
        r.get("verdict"), "#aab7b8") for r in rows]
    ax.barh([r["component"] for r in rows], effects, color=colors,
            xerr=errors if any(r.get("ci") for r in rows) else None, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{metric} without the component - baseline ({baseline:.4g})")
    repeats = max((r.get("repeats", 1) for r in rows), default=1)
    ax.set_title("Ablation: effect of leaving each component out\n(blue: important, leaving it out hurts; red: "
                 "harmful, leaving it out helps" + (f"; grey: indistinguishable from zero; mean of {repeats} seeds, "
                                                    f"95% interval)" if repeats > 1 else ")"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Several objectives at once: which results dominate, the Pareto front, an order of results best
first (non-dominated sorting, then crowding), and the hypervolume a front covers.

``signs`` say which way each objective improves (+1 max, -1 min: ``Direction.sign``); every
function reads ``sign * value`` as "larger is better", so one code path serves both.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, TypeVar

Point = Sequence[float]
T = TypeVar("T")


def dominates(a: Point, b: Point, signs: Sequence[float]) -> bool:
    """``a`` is at least as good as ``b`` in every objective and better in one."""
    better = False
    for x, y, s in zip(a, b, signs):
        if s * x < s * y:
            return False
        better = better or s * x > s * y
    return better


def ranks(points: Sequence[Point], signs: Sequence[float]) -> list[int]:
    """Each point's non-dominated rank: 0 for the front, 1 for the front once it is removed, ..."""
    n = len(points)
    beaten_by = [0] * n
    beats: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j], signs):
                beats[i].append(j)
                beaten_by[j] += 1
            elif dominates(points[j], points[i], signs):
                beats[j].append(i)
                beaten_by[i] += 1
    rank, level = [0] * n, [i for i in range(n) if beaten_by[i] == 0]
    depth = 0
    while level:
        nxt = []
        for i in level:
            rank[i] = depth
            for j in beats[i]:
                beaten_by[j] -= 1
                if beaten_by[j] == 0:
                    nxt.append(j)
        level, depth = nxt, depth + 1
    return rank


def crowding(points: Sequence[Point], members: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each of ``members`` within that set (the ends: infinite)."""
    out = {i: 0.0 for i in members}
    if len(members) <= 2:
        return {i: math.inf for i in members}
    for k in range(len(points[members[0]])):
        ordered = sorted(members, key=lambda i: points[i][k])
        low, high = points[ordered[0]][k], points[ordered[-1]][k]
        out[ordered[0]] = out[ordered[-1]] = math.inf
        if high == low:
            continue
        for prev, i, nxt in zip(ordered, ordered[1:], ordered[2:]):
            out[i] += (points[nxt][k] - points[prev][k]) / (high - low)
    return out


def order(points: Sequence[Point], signs: Sequence[float]) -> list[int]:
    """Indices best first: by non-dominated rank, then the less crowded first (spread along the
    front is worth more than a point beside another), then the earlier point."""
    rank = ranks(points, signs)
    dist: dict[int, float] = {}
    for level in set(rank):
        dist.update(crowding(points, [i for i in range(len(points)) if rank[i] == level]))
    return sorted(range(len(points)), key=lambda i: (rank[i], -dist[i], i))


def front(points: Sequence[Point], signs: Sequence[float]) -> list[int]:
    """The indices of the non-dominated points (ties: every copy is on the front)."""
    return [i for i, r in enumerate(ranks(points, signs)) if r == 0]


def hypervolume(points: Sequence[Point], reference: Point, signs: Sequence[float]) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (a point worse than all
    that count); exact, by slicing along the first objective (fine for two or three)."""
    flipped = [[s * x for x, s in zip(p, signs)] for p in points]
    ref = [s * r for r, s in zip(reference, signs)]
    inside = [p for p in flipped if all(x > r for x, r in zip(p, ref))]
    return _volume(inside, ref)


def _volume(points: list[list[float]], ref: list[float]) -> float:
    if not points:
        return 0.0
    if len(ref) == 1:
        return max(p[0] for p in points) - ref[0]
    ordered = sorted(points, key=lambda p: -p[0])  # largest first objective first
    total = 0.0
    for i, p in enumerate(ordered):
        below = ordered[i + 1][0] if i + 1 < len(ordered) else ref[0]
        width = p[0] - below
        if width > 0:
            total += width * _volume([q[1:] for q in ordered[:i + 1]], ref[1:])
    return total


def front_at_top_budget(items: Sequence[T], values: Callable[[T], Point | None], budget: Callable[[T], float],
                        ident: Callable[[T], int], directions: Sequence[str]) -> list[T]:
    """The front among ``items`` whose values are all finite, at the largest budget any of them
    has (the rule of ``result.best``); by the first objective, best first, then by ``ident``."""
    signs = [1.0 if str(d) == "max" else -1.0 for d in directions]
    done = [x for x in items if (v := values(x)) and all(isinstance(e, (int, float)) and math.isfinite(e) for e in v)]
    top = max((budget(x) for x in done), default=None)
    done = [x for x in done if budget(x) == top]
    on = [done[i] for i in front([values(x) for x in done], signs)]
    return sorted(on, key=lambda x: (-signs[0] * values(x)[0], ident(x)))


def front_of_records(trials: Sequence[dict], directions: Sequence[str]) -> list[dict]:
    """The front among trial records (journal or result.json dicts), as ``result.pareto`` has it."""
    def budget(t: dict) -> float:
        b = t.get("budget")
        return float(b) if isinstance(b, (int, float)) and not isinstance(b, bool) else 0.0

    return front_at_top_budget([t for t in trials if t.get("state") == "finished"], lambda t: t.get("values"),
                               budget, lambda t: t["id"], directions)

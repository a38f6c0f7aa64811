"""The trials of a snapshot as columns: what lets a page start on 100,000 trials.

A list of 100,000 trial objects is 33 MB of JSON, most of it the same keys, the same state and
agent names, and nulls, again and again; the page spends longer parsing it than drawing it. As
columns it is a fifth of that: one array per field, repeated strings sent once with an index
per trial, and a field that is null for every trial not sent at all. dash.js's ``fromColumns``
rebuilds the trial objects, so nothing else on the page knows.

``names`` lists every field, the ones sent and the ones null throughout. A column is ``{"v": [values]}`` or, coded, ``{"c": [labels], "i": [index per trial]}`` where -1
is a parameter the trial does not have (a conditional one) and null a field it has as null.
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any, Iterable

CODED = ("state", "agent", "ablated", "kind")
"""Fields whose few distinct values repeat over many trials."""


def _key(v: Any) -> Any:
    """A label's identity: 1, 1.0 and True are three labels (JSON tells them apart)."""
    return (type(v).__name__, v) if isinstance(v, (int, float, str, bool, type(None))) else (None, repr(v))


def _coded(values: list[Any], absent: Any) -> dict[str, Any]:
    if all(v.__class__ is str or v is None or v is absent for v in values):  # the usual case, 5x quicker
        names: dict[Any, int] = {}
        index = [-1 if v is absent else names.setdefault(v, len(names)) for v in values]
        return {"c": list(names), "i": index}
    codes: dict[Any, int] = {}
    labels: list[Any] = []
    index = []
    for v in values:
        if v is absent:
            index.append(-1)
            continue
        k = codes.get(_key(v))
        if k is None:
            k = codes[_key(v)] = len(labels)
            labels.append(v)
        index.append(k)
    return {"c": labels, "i": index}


def encode(trials: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Trial summaries (dashboard/experiment.py's ``summary``: the same keys in each) as columns."""
    rows = list(trials)
    names = [k for k in (rows[0] if rows else {}) if k != "params"]
    fields: dict[str, Any] = {}
    if rows:
        for name, values in zip(names, map(list, zip(*map(itemgetter(*names), rows)))):  # transposed in C
            if values.count(None) == len(values):
                continue  # null for every trial: the page fills it in
            fields[name] = _coded(values, absent=_ABSENT) if name in CODED else {"v": values}
    found: dict[str, None] = {}
    for t in rows:
        found.update(dict.fromkeys(t["params"]))
    params = {}
    for p in found:
        values = [t["params"].get(p, _ABSENT) for t in rows]
        if {v.__class__ for v in values} <= {int, float, _Absent}:
            params[p] = {"v": [None if v is _ABSENT else v for v in values]}  # a number is never null
        else:
            params[p] = _coded(values, absent=_ABSENT)
    return {"n": len(rows), "names": names, "fields": fields, "params": params}


def decode(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """The summaries again (dash.js does the same): for tests, and readers in Python."""
    n = columns["n"]

    def at(column: dict[str, Any], i: int, absent: Any) -> Any:
        if "v" in column:
            return column["v"][i]
        k = column["i"][i]
        return absent if k < 0 else column["c"][k]

    fields = columns["fields"]
    rows = [{name: at(fields[name], i, None) if name in fields else None for name in columns["names"]}
            for i in range(n)]
    for i, row in enumerate(rows):
        params = {}
        for p, col in columns["params"].items():
            v = at(col, i, _ABSENT)
            if v is not _ABSENT and not ("v" in col and v is None):
                params[p] = v
        row["params"] = params
    return rows


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()

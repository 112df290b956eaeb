"""``sum``, ``avg``, ``min``, ``max``, ``count``, ``topk``, ``bottomk`` with ``by``/``without``.

Groups are found once per query (labels do not change between evaluation times); each
group's rows are then reduced over the series axis for every time at once.
"""

from __future__ import annotations

import numpy as np

from appliance.promql.model import Vector
from appliance.promql.plan import Aggregate, QueryError


def _group_labels(labels: dict[str, str], node: Aggregate) -> dict[str, str]:
    if node.by is not None:
        return {k: labels[k] for k in node.by if labels.get(k, "")}
    drop = set(node.without or ()) | {"__name__"}
    return {k: v for k, v in labels.items() if k not in drop}


def aggregate(node: Aggregate, vec: Vector, param: np.ndarray | None) -> Vector:
    """``vec`` aggregated by ``node``; ``param`` is topk/bottomk's k at each time."""
    groups: dict[tuple, list[int]] = {}
    out_labels: dict[tuple, dict[str, str]] = {}
    for i, lab in enumerate(vec.labels):
        g = _group_labels(lab, node) if node.by is not None or node.without is not None else {}
        key = tuple(sorted(g.items()))
        groups.setdefault(key, []).append(i)
        out_labels.setdefault(key, g)
    if node.op in ("topk", "bottomk"):
        return Vector(list(vec.labels), _top(vec.values, list(groups.values()), param,
                                             node.op == "topk"))
    rows = []
    for members in groups.values():
        block = vec.values[members]
        known = ~np.isnan(block)
        count = known.sum(axis=0)
        if node.op == "count":
            value = count.astype(float)
        elif node.op == "min":
            value = np.fmin.reduce(block, axis=0)
        elif node.op == "max":
            value = np.fmax.reduce(block, axis=0)
        else:
            total = np.where(known, block, 0.0).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                value = total / count if node.op == "avg" else total
        rows.append(np.where(count > 0, value, np.nan))
    values = np.array(rows) if rows else np.empty((0, vec.values.shape[1]))
    return Vector(list(out_labels.values()), values)


def _top(values: np.ndarray, groups: list[list[int]], param: np.ndarray | None,
         largest: bool) -> np.ndarray:
    if param is None or np.isnan(param).any():
        raise QueryError("topk/bottomk need a numeric parameter")
    k = param.astype(np.int64)
    out = np.full_like(values, np.nan)
    for members in groups:
        block = values[members]
        # NaN (no sample) sorts last either way.
        key = np.where(np.isnan(block), np.inf, -block if largest else block)
        order = np.argsort(key, axis=0, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(len(members))[:, None], axis=0)
        keep = (rank < k[None, :]) & ~np.isnan(block)
        out[members] = np.where(keep, block, np.nan)
    return out

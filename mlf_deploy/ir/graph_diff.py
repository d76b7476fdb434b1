"""Structural comparison of two graphs: every node and field that differs, by name.

``verify --graph`` uses it to say whether a supplied graph file is the checkpoint's own lowering:
an accuracy tolerance does not notice a threshold raised by one mantissa unit, this does.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mlf_deploy.ir.graph import Graph


def _field_diff(a, b) -> str | None:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return f"shape {a.shape} != {b.shape}"
        differ = a != b
        if not differ.any():
            return None
        i = tuple(int(k) for k in np.argwhere(differ)[0])
        return (f"{int(differ.sum())} of {a.size} values differ (first at {i}: {a[i]} != {b[i]}; "
                f"max |diff| {float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()):g})")
    return None if a == b else f"{a!r} != {b!r}"


def graph_differences(theirs: Graph, ours: Graph, limit: int = 50) -> list[str]:
    """Lines ``node.field: theirs != ours`` for each difference (at most ``limit``, then a
    count)."""
    out = []
    if theirs.numeric != ours.numeric:
        out.append(f"numeric: {theirs.numeric} != {ours.numeric}")
    for name in [*ours.nodes, *(n for n in theirs.nodes if n not in ours.nodes)]:
        a, b = theirs.nodes.get(name), ours.nodes.get(name)
        if a is None or b is None:
            out.append(f"{name}: {'missing' if a is None else 'not in the fresh lowering'}")
        elif type(a) is not type(b):
            out.append(f"{name}: a {type(a).__name__}, expected a {type(b).__name__}")
        else:
            for f in dataclasses.fields(a):
                diff = _field_diff(getattr(a, f.name), getattr(b, f.name))
                if diff:
                    out.append(f"{name}.{f.name}: {diff}")
    if list(theirs.nodes) != list(ours.nodes) and set(theirs.nodes) == set(ours.nodes):
        out.append("node order differs")
    for key in sorted(set(theirs.metadata) | set(ours.metadata)):
        if _plain(theirs.metadata.get(key)) != _plain(ours.metadata.get(key)):
            out.append(f"metadata.{key}: {str(theirs.metadata.get(key))[:60]} != "
                       f"{str(ours.metadata.get(key))[:60]}")
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more differences"]
    return out


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

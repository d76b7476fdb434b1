"""The checks of one field of a node as ``graph.json`` stores it, each naming the node and field.

:class:`mlf_deploy.ir.validate.Schema` builds on these: they know JSON types, ranges, names and
array references, nothing of what a node means.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from mlf_deploy import limits
from mlf_deploy.ir.semantics import signed_limit


class FieldChecks:
    """Field checkers over ``self.arrays`` (key -> array); each returns the value or raises
    ValueError. An array may be referred to once (``self.used`` collects the references)."""

    def __init__(self, arrays: dict):
        self.arrays, self.used = arrays, set()

    def fail(self, node, field, expected, value):
        raise ValueError(f"node {node.get('name', '?')!r} field {field!r}: expected {expected}, "
                         f"got {str(value)[:60]!r}")

    def integer(self, node, field, lo, hi):
        v = node.get(field)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(node, field, f"an integer in {lo}..{hi}", v)
        return v

    def number(self, node, field, lo=-math.inf, hi=math.inf, whole=False):
        v = node.get(field)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                or not lo <= v <= hi or (whole and v != int(v)):
            kind = "integer" if whole else "number"
            self.fail(node, field, f"a finite {kind} in [{lo}, {hi}]", v)
        return v

    def numbers(self, node, field, counts, lo=-math.inf, hi=math.inf, whole=False):
        """A list of ``len in counts`` numbers, each as :meth:`number` checks it."""
        v = node.get(field)
        if not isinstance(v, list) or len(v) not in counts:
            self.fail(node, field, f"a list of {' or '.join(map(str, counts))} numbers", v)
        for x in v:
            self.number({**node, field: x}, field, lo, hi, whole)
        return tuple(v)

    def name(self, node, field):
        v = node.get(field)
        if not isinstance(v, str) or not 0 < len(v) <= limits.MAX_NAME_CHARS:
            self.fail(node, field, f"a name of 1..{limits.MAX_NAME_CHARS} characters", v)
        return v

    def ints(self, node, field, n, lo, hi):
        v = node.get(field)
        if not isinstance(v, list) or len(v) != n or any(
                isinstance(d, bool) or not isinstance(d, int) or not lo <= d <= hi for d in v):
            self.fail(node, field, f"{n} integers in {lo}..{hi}", v)
        return tuple(v)

    def shape(self, node, field="shape"):
        return self.ints(node, field, 3, 1, limits.MAX_DIM)

    def peek(self, node, field):
        """The array a field refers to, unchecked; None when the reference is not one."""
        ref = node.get(field)
        key = ref.get("$array") if isinstance(ref, dict) else None
        return self.arrays.get(key) if isinstance(key, str) else None

    def array(self, node, field, shape, bits=0):
        ref = node.get(field)
        key = ref.get("$array") if isinstance(ref, dict) else None
        if not isinstance(key, str) or key not in self.arrays or key in self.used:
            self.fail(node, field, "a reference to an array of this file used once", ref)
        self.used.add(key)
        a = self.arrays[key]
        if tuple(a.shape) != tuple(shape):
            self.fail(node, field, f"an array of shape {tuple(shape)}", f"shape {a.shape}")
        if bits:
            if a.dtype.kind not in "iu":
                self.fail(node, field, "integer mantissas", f"dtype {a.dtype}")
            limit = signed_limit(bits)
            if a.size and (int(a.max()) > limit or int(a.min()) < -limit):
                self.fail(node, field, f"mantissas within +-{limit} ({bits} bits)",
                          f"range {a.min()}..{a.max()}")
        elif a.size and not np.isfinite(a.astype(np.float64, copy=False)).all():
            self.fail(node, field, "finite values", "NaN or infinity")
        return a

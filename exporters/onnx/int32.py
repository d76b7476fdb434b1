r"""Int graphs' membrane arithmetic in int32, for the layers whose bounds allow it (the others keep
the float64 arithmetic of :mod:`mlf_deploy.exporters.onnx.ops`). Half the bytes of float64 per
value, and ONNX Runtime's int32 elementwise kernels are ~3x faster.

Exactness. A layer runs in int32 when :func:`plan` says so: every projection into it is
exact in float32 (:func:`~mlf_deploy.exporters.onnx.projections.fits_float32`; its ``Conv`` result
is an integer below 2^24, the weight shift multiplies it by a power of two, exactly, and the right
shift floors it, also in float32), and ``2^23 + max(2^23, 64 A) + B < 2^31``, where ``A`` bounds the
shifted current ``|a|`` and ``B`` the shifted bias ``|bias << e|``. Then every int32 intermediate
is below 2^31: ``u = 64 a`` is at most ``64 A``; after the single conditional wrap at most
``max(2^23, 64 A)``; the decay ``|trunc0(v r / 2^12)| <= |v| <= 2^23 - 1`` (``v`` is saturated and
``r <= 2^12``), so ``|trunc0(v r / 2^12) + wrap(u) + bias|`` is below the bound.

The decay ``trunc0(v r / 2^12)``: write ``r / 2^12 = r' / 2^k`` with ``r'`` odd (or ``r' = 1``).
ONNX Runtime's integer ``Div`` truncates toward zero (C++ semantics), which is ``trunc0``. When
``r' (2^23 - 1) < 2^31`` it is ``Div(v r', 2^k)``. Otherwise ``v = q 2^k + m`` with ``q =
Div(v, 2^k)`` and ``m`` of ``v``'s sign and ``|m| < 2^k``: ``v r' / 2^k = q r' + m r' / 2^k``, and
as ``q r'`` is an integer of the same sign as ``m r'``, ``trunc0`` of the sum is ``q r' + Div(m r',
2^k)``, where ``|q r'| < 2^23`` and ``|m r'| < 2^24``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from onnx import TensorProto

from mlf_deploy.exporters.onnx.ops import Builder, fire_and_reset, row_sum, saturate
from mlf_deploy.exporters.onnx.projections import fits_float32
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.semantics import V_MAX

INT32 = TensorProto.INT32
LIMIT32 = 2 ** 31


def source_limits(graph, sources) -> float | None:
    """The largest ``|x|`` a fan-in group of ``sources`` sums to in an int graph: the input's clip
    limit, or the number of levels a spike source sends (a graded payload is at most K); None for
    an unbounded (float) input."""
    inp = graph.input
    if inp.name in sources and inp.value_bits <= 0:
        return None
    return sum(float(sem.signed_limit(inp.value_bits)) if s == inp.name else
               float(len(graph.sender_levels(s))) for s in sources)


class LayerPlan(NamedTuple):
    """What an int layer's ONNX arithmetic needs, from its bounds (module docstring)."""

    int32: bool  # projections exact in float32, membrane arithmetic in int32
    wraps: bool  # 64 |a| can reach 2^23: the 24-bit wrap can change u (it wraps u <= -2^23)
    saturates: bool  # starting from v = 0 (a sequence), |v| can pass V_MAX


def plan(graph, layer) -> LayerPlan:
    """The :class:`LayerPlan` of ``layer``, from ``A`` (the bound of the shifted current ``|a|``),
    ``B`` (of ``|bias << e|``) and the largest retention ``rho``. From ``v = 0``, ``|v| <= M`` with
    ``M = (W + B) / (1 - rho)``, ``W`` the bound of the wrapped ``u``: by induction, ``|trunc0(v r
    / 2^12)| <= rho M``, so the next ``|v| <= rho M + W + B = M``; no saturation if
    ``M <= V_MAX``."""
    current, exact32 = 0.0, True
    for p, sources in sem.projection_groups(graph, layer):
        src = source_limits(graph, sources)
        exact32 = exact32 and src is not None and fits_float32(p, src)
        current += (np.inf if src is None else src) * row_sum(p.weight) \
            * 2.0 ** max(layer.weight_exp, 0)
    bias = np.abs(sem.shift(np.asarray(layer.bias, np.float64), layer.bias_exp)).max(initial=0)
    half, u = sem.STATE_HALF, sem.MEMBRANE_GAIN * current
    wrapped = u if u <= half else max(half, u - sem.STATE_WRAP)  # Lava wraps once
    rho = max(sem.retention_mant(p.v_retention)
              for p in graph.levels_of(layer.name)) / sem.DECAY_UNIT
    saturates = wrapped + bias > (1 - rho) * V_MAX
    return LayerPlan(exact32 and half + max(half, u) + bias < LIMIT32, u >= half, saturates)


def decay_terms(retention: float) -> tuple[int, int]:
    """``(r', k)`` with ``r / 2^12 = r' / 2^k`` in lowest terms."""
    r, k = sem.retention_mant(retention), sem.DECAY_BITS
    while r and r % 2 == 0 and k:
        r, k = r // 2, k - 1
    return r, k


def decay(b: Builder, v: str, retention: float, n: str) -> str | None:
    """``trunc0(v r / 2^12)`` in int32 (see the module docstring); None when ``r = 0``."""
    r, k = decay_terms(retention)
    i32 = lambda value: b.const(value, np.int32)
    if r == 0:
        return None
    if k == 0:
        return v
    if r * V_MAX < LIMIT32:
        scaled = v if r == 1 else b.op("Mul", [v, i32(r)], f"{n}/decay")
        return b.op("Div", [scaled, i32(2 ** k)], f"{n}/trunc0")
    q = b.op("Div", [v, i32(2 ** k)], f"{n}/quotient")
    m = b.op("Sub", [v, b.op("Mul", [q, i32(2 ** k)], f"{n}/whole")], f"{n}/remainder")
    part = b.op("Div", [b.op("Mul", [m, i32(r)], f"{n}/rem_decay"), i32(2 ** k)], f"{n}/rem_trunc0")
    return b.op("Add", [b.op("Mul", [q, i32(r)], f"{n}/decay"), part], f"{n}/trunc0")


def population_step(b: Builder, pop, v: str | None, drive: str, tag: str, saturates: bool = True):
    """:func:`mlf_deploy.exporters.onnx.ops.population_step` of an int layer, in int32."""
    n = f"{pop.name}/{tag}"
    d = None if v is None else decay(b, v, pop.v_retention, n)
    if d is not None:
        drive = b.op("Add", [d, drive], f"{n}/integrate")
    saturated = None
    if saturates:
        drive, saturated = saturate(b, drive, n, np.int32)
    s, v = fire_and_reset(b, drive, int(sem.membrane_threshold(pop.v_threshold, True)), n, np.int32)
    return s, v, saturated

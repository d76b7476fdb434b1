r"""ONNX building blocks for :mod:`mlf_deploy.exporters.onnx.export`: a small graph builder, the
projections as exact
float64 (or, where exact, float32) arithmetic, and one MLF population's update.

Why no float64 ``Conv``: ONNX Runtime's CPU provider implements ``Conv`` for float32 only ("Could
not find an implementation for Conv(11)" for double, still in 1.32), and float32 cannot reproduce
the reference's float64 currents. A float64 convolution is therefore written as im2col (``Pad``,
then one ``Gather`` of channels-last pixels) followed by one float64 ``MatMul``. That is the same
sum of products as ``conv2d``, each output a float64 dot product, so float graphs differ from the
reference only by summation order (~1 ulp), and int graphs not at all (see below).

Exactness of int graphs (integers held in float64 here; the int32 form of the membrane arithmetic,
where bounds allow it, is in :mod:`mlf_deploy.exporters.onnx.int32`). Let ``|x| <= 2^(b-1) - 1`` be
the input bound (``prepare_input`` clips), spikes be 0/1 and a fan-in group sum of ``m`` spike
trains be in ``[0, m]``. Then every partial sum of a projection, in any order and with or without
FMA, is an integer of magnitude at most ``max|src| * max_o sum|W_o|`` (where that is below 2^24 the
projection runs as a float32 ``Conv``, exact for the same reason); shifts multiply by powers of two
(exact) or divide by one (exact, then ``Floor``); ``u = 64 a`` is wrapped once by ``2^24``; the
decay ``v * (r / 4096)`` has ``|v * r| <= 2^23 * 2^12 = 2^35``, so the product is exact, and
``trunc0(d) = Sign(d) * Floor(|d|)``; the membrane before saturation is bounded by
``2^23 + |u| + |bias << e|``; the readout accumulator by ``T H W * sources * max_o sum|W_o|``.
:func:`int_bounds` computes these bounds from the graph and the exporter refuses a graph where any
reaches ``2^53``, below which float64 holds every integer exactly. ``tests/test_onnx.py`` also
checks that every float64 intermediate of an exported int model is an integer on real data.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from mlf_deploy.errors import UserError
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.semantics import STATE_BITS, V_MAX

DOUBLE, INT64, UINT8 = TensorProto.DOUBLE, TensorProto.INT64, TensorProto.UINT8
EXACT = float(sem.FLOAT64_EXACT)  # float64 holds every integer up to this exactly
NHWC, NCHW = [0, 2, 3, 1], [0, 3, 1, 2]  # Transpose perms between the two layouts


class Builder:
    """Collects nodes and constants; ``op`` returns the new value's name. ``precision`` is the
    floating type of every tensor (float32 only for the inexact fast export of float graphs)."""

    def __init__(self, precision: str = "float64"):
        self.np = np.dtype(precision).type
        self.ftype = DOUBLE if self.np is np.float64 else TensorProto.FLOAT
        self.nodes, self.inits, self._consts, self._names, self._n = [], [], {}, set(), 0
        self.types = {}  # value name -> numpy type, for values whose type a Cast fixed
        # float64 models keep frames channels last (N, H, W, C), the im2col GEMM's layout; models
        # with ONNX Conv (float32 and int projections) keep ONNX's (N, C, H, W)
        self.nhwc = False

    def op(self, op_type: str, inputs, name: str | None = None, **attrs) -> str:
        self._n += 1
        name = name or f"{op_type}_{self._n}"
        name = name if name not in self._names else f"{name}_{self._n}"
        self._names.add(name)
        out = f"{name}:{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
        return out

    def emit(self, op_type: str, inputs, outputs, name: str, **attrs):
        """A node with given output names (graph outputs, multi-output ops)."""
        self._names.add(name)
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name, **attrs))

    def prune(self, outputs) -> None:
        """Drop the nodes nothing needs, e.g. the last step's reset of a model that does not
        output its membranes (ONNX Runtime would run them)."""
        needed, kept = set(outputs), []
        for node in reversed(self.nodes):
            if needed.intersection(node.output):
                kept.append(node)
                needed.update(node.input)
        self.nodes = kept[::-1]
        self.inits = [t for t in self.inits if t.name in needed]

    def concat(self, values: list, name: str) -> str:
        return values[0] if len(values) == 1 else self.op("Concat", values, name, axis=0)

    def const(self, value, dtype=None, key=None) -> str:
        a = np.asarray(value, dtype=dtype or self.np)
        key = key or (a.dtype.str, a.shape, a.tobytes())
        if key not in self._consts:
            name = f"const_{len(self._consts)}"
            self.inits.append(numpy_helper.from_array(a, name))
            self._consts[key] = name
        return self._consts[key]

    def ints(self, values) -> str:
        return self.const(list(values), np.int64)

    def cast(self, x: str, to, name: str, have=None) -> str:
        """``x`` as numpy type ``to``; no node when it is that type already (``have``, else what
        :meth:`cast` recorded; values of unrecorded type are of the model's type)."""
        if (have or self.types.get(x, self.np)) is to:
            return x
        out = self.op("Cast", [x], name, to=helper.np_dtype_to_tensor_dtype(np.dtype(to)))
        self.types[out] = to
        return out

    def add(self, values: list, name: str) -> str:
        """The sum of ``values``, typed as they are when all share one known type."""
        out = values[0]
        for i, other in enumerate(values[1:]):
            out = self.op("Add", [out, other], f"{name}{i}" if i else name)
        kinds = {self.types.get(v) for v in values}
        if len(kinds) == 1 and None not in kinds:
            self.types[out] = kinds.pop()
        return out


def row_sum(weight) -> float:
    """``max_o sum |W_o|``: the largest output for inputs of magnitude 1."""
    w = np.abs(np.asarray(weight, np.float64))
    return float(w.reshape(len(w), -1).sum(1).max())


def shift(b: Builder, x: str, exp: int, name: str, dtype=None) -> str:
    """``x << exp`` or ``floor(x / 2^-exp)``: powers of two scale floats exactly."""
    if exp >= 0:
        return x if exp == 0 else b.op("Mul", [x, b.const(2.0 ** exp, dtype)], f"{name}/shl")
    return b.op("Floor", [b.op("Mul", [x, b.const(2.0 ** exp, dtype)], f"{name}/shr")],
                f"{name}/floor")


def wrap24(b: Builder, u: str, name: str, dtype=None) -> tuple[str, str]:
    """Lava's single conditional 24-bit wrap of ``u = 64 a``; returns (u, wrapped mask).
    ``u - 2^24 [u > 2^23] + 2^24 [u <= -2^23]``, as masks cast to numbers: ``Where`` is slow."""
    dtype = dtype or b.np
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    top = b.const(sem.STATE_HALF, dtype)
    hi = b.op("Greater", [u, top], f"{name}/wrap_hi")
    lo = b.op("LessOrEqual", [u, b.const(-sem.STATE_HALF, dtype)], f"{name}/wrap_lo")
    turns = b.op("Sub", [b.op("Cast", [hi], f"{name}/hi_n", to=to),
                         b.op("Cast", [lo], f"{name}/lo_n", to=to)], f"{name}/turns")
    u = b.op("Sub", [u, b.op("Mul", [turns, b.const(2 ** STATE_BITS, dtype)], f"{name}/by")],
             f"{name}/wrap")
    return u, b.op("Or", [hi, lo], f"{name}/wrapped")


def population_step(b: Builder, pop, v: str | None, drive: str, bias: str | None, integer: bool,
                    tag: str) -> tuple[str, str, str | None]:
    """One timestep of one single-threshold population: ``(spikes bool, post-reset v, saturated)``.

    float: ``v = rho v + a + bias`` (the reference's order of additions); int: ``drive`` is already
    ``wrap(64 a) + (bias << e)`` and ``v = trunc0(v r / 4096) + drive``, saturated. ``v=None`` is
    ``v = 0`` (the first step), where the decay term vanishes exactly.
    """
    n = f"{pop.name}/{tag}"
    saturated = None
    if integer:
        if v is not None:
            retention = b.const(sem.retention_mant(pop.v_retention) / sem.DECAY_UNIT)
            d = b.op("Mul", [v, retention], f"{n}/decay")
            d = b.op("Mul", [b.op("Sign", [d], f"{n}/sign"),
                             b.op("Floor", [b.op("Abs", [d], f"{n}/abs")], f"{n}/floor")],
                     f"{n}/trunc0")
            drive = b.op("Add", [d, drive], f"{n}/integrate")
        drive, saturated = saturate(b, drive, n, b.np)
    else:
        if v is not None:
            drive = b.op("Add", [b.op("Mul", [v, b.const(pop.v_retention)], f"{n}/decay"), drive],
                         f"{n}/integrate")
        if bias is not None:  # None: ``drive`` already holds it (a + b is shared at t = 0)
            drive = b.op("Add", [drive, bias], f"{n}/bias")
    s, v = fire_and_reset(b, drive, sem.membrane_threshold(pop.v_threshold, integer), n, b.np)
    return s, v, saturated


def saturate(b: Builder, x: str, n: str, dtype) -> tuple[str, str]:
    """``(clip(x, +-V_MAX), |x| > V_MAX)``: Loihi's saturating 24-bit membrane."""
    sat = b.op("Greater", [b.op("Abs", [x], f"{n}/vabs"), b.const(V_MAX, dtype)], f"{n}/saturated")
    return b.op("Clip", [x, b.const(-V_MAX, dtype), b.const(V_MAX, dtype)], f"{n}/clip"), sat


def fire_and_reset(b: Builder, x: str, theta, n: str, dtype) -> tuple[str, str]:
    """``(x > theta, x where it did not fire, else 0)``. The reset multiplies by the 0/1 mask
    (``x * 1`` is ``x`` exactly): ONNX Runtime's ``Where`` with a broadcast scalar is ~8x slower
    than a ``Mul``."""
    theta = b.const(theta, dtype)
    s = b.op("Greater", [x, theta], f"{n}/fire")
    keep = b.op("Cast", [b.op("Not", [s], f"{n}/below")], f"{n}/keep",
                to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    return s, b.op("Mul", [x, keep], f"{n}/reset")


def int_bounds(graph) -> dict:
    """Largest magnitude of any intermediate integer, per layer and for the readout."""
    inp = graph.input
    limit = {inp.name: float(sem.signed_limit(inp.value_bits))}
    bounds = {}
    for layer in graph.layers:
        a = 0.0
        for p in graph.projections_into(layer.name):
            src = limit.get(p.source) or len(graph.sender_levels(p.source))  # payload <= K
            a += src * row_sum(p.weight) * 2.0 ** max(layer.weight_exp, 0)
        bias = np.abs(np.asarray(layer.bias, np.float64)).max() * 2.0 ** layer.bias_exp
        decayed = float(sem.STATE_HALF * sem.DECAY_UNIT)  # |v r| before the shift
        bounds[layer.name] = max(a * sem.MEMBRANE_GAIN, decayed) + 2.0 ** STATE_BITS + bias
    ro = graph.readout
    bounds[ro.name] = (sem.readout_norm(graph)
                       * sum(len(graph.sender_levels(s)) for s in ro.sources)
                       * np.abs(np.asarray(ro.weight, np.float64)).sum(1).max())
    return bounds


def check_exact(graph):
    for name, bound in int_bounds(graph).items():
        if not sem.exact_in_float64(bound):
            raise UserError(f"node {name!r}: integer values up to {bound:.3g} do not fit float64's "
                            f"exact range (2^53); reduce weight bits or fan-in")



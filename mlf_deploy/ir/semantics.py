r"""What a deployment graph means, stated once: every backend, exporter and estimator uses this.

- the fixed-point constants of an int graph (Loihi's membrane shift, 12-bit decay, 24-bit state,
  8-bit weights, 6-bit delays; sources in ``docs/references.md``) and its update rule,
- which projections into a layer are computed together (shared weights, summed sources),
- how population names are built from a layer and a level, and parsed back, and which level
  populations a (binary or graded) sender's spikes sum,
- the convolution output size,
- how a raw model input becomes the values the Input node delivers,
- the readout: spike counts -> accumulator -> logits.

The graph file's layout, the input pipeline and the readout are in :mod:`mlf_deploy.ir.portable`
(numpy only; the exporters ship that file whole beside their standalone scripts) and are re-exported
here, so the exported networks read input and output as the toolchain does.
"""

from __future__ import annotations

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.ir.portable import (  # noqa: F401 - re-exported: the graph's meaning in one place
    DECAY_BITS,
    DECAY_UNIT,
    describe_input,
    input_normalisation,
    logits_from_accumulator,
    logits_from_counts,
    readout_norm,
    retention_mant,
    signed_limit,
)
from mlf_deploy.ir.portable import input_values as _input_values
from mlf_deploy.ir.portable import model_units as _model_units

# -- fixed point (int graphs) ---------------------------------------------------------------------
MEMBRANE_SHIFT = 6  # Loihi: the membrane is 64x the current (u << 6), thresholds are vth << 6
MEMBRANE_GAIN = 2 ** MEMBRANE_SHIFT
STATE_BITS = 24  # signed u and v
STATE_WRAP = 2 ** STATE_BITS
V_MAX = signed_limit(STATE_BITS)  # v saturates at +-V_MAX
LOIHI_WEIGHT_BITS = 8  # signed weight mantissa bits of a synapse
WEIGHT_BITS_RANGE = (2, 16)  # the signed weight mantissa bits an int graph may be quantized to
MAX_DELAY = 63  # 6-bit synaptic delay (Lava's DelaySparse, Loihi 2)
STATE_HALF = 2 ** (STATE_BITS - 1)  # the 24-bit wrap: u > STATE_HALF or u <= -STATE_HALF wraps
FLOAT32_EXACT = 2 ** 24  # float32 (24-bit significand) holds every integer up to this magnitude
FLOAT64_EXACT = 2 ** 53  # and float64 (53-bit significand)


def exact_in_float32(bound) -> bool:
    """Whether integer sums whose every partial sum is at most ``bound`` in magnitude are exact in
    float32, in any summation order (each partial sum is representable)."""
    return bound <= FLOAT32_EXACT


def exact_in_float64(bound) -> bool:
    """:func:`exact_in_float32` for float64."""
    return bound <= FLOAT64_EXACT


def wrap_state(u):
    r"""Lava's single conditional 24-bit wrap of ``u = 64 a`` (numpy or torch, integer-valued)."""
    return u - STATE_WRAP * (u > STATE_HALF) + STATE_WRAP * (u <= -STATE_HALF)


def overflows(u):
    """Mask of the values :func:`wrap_state` wraps."""
    return (u > STATE_HALF) | (u <= -STATE_HALF)


def int_membrane(v, drive, retention, trunc):
    r"""One int step before the threshold: ``trunc0(v r / 2^12) + drive``, not yet saturated.

    ``drive`` is ``wrap(64 a) + (bias << bias_exp)``; ``trunc`` rounds toward zero (``np.trunc``
    or ``torch.trunc``). Every value is an integer below 2^36, exact in float64."""
    return trunc(v * retention / DECAY_UNIT) + drive


def valid_weight_bits(bits) -> bool:
    """Whether ``bits`` is a weight width an int graph may take (:data:`WEIGHT_BITS_RANGE`)."""
    return type(bits) is int and WEIGHT_BITS_RANGE[0] <= bits <= WEIGHT_BITS_RANGE[1]


def saturate(v):
    """Loihi's saturating membrane, numpy or torch (gradients pass where ``v`` is in range):
    ``(v clipped to +-V_MAX, how many values were clipped)``."""
    clipped = int((abs(v) > V_MAX).sum())
    return (v.clip(-V_MAX, V_MAX) if clipped else v), clipped


def float_membrane(v, current, bias, rho):
    """One float step before the threshold, in this order of additions (the exact backends follow
    it, so float graphs agree bit for bit): ``rho v + a + b``."""
    return rho * v + current + bias


def membrane_threshold(v_threshold, integer: bool):
    """The value the membrane must exceed, in membrane units: a threshold (counted in current
    units, as every graph holds it) ``<< 6`` in int graphs, itself in float graphs."""
    return v_threshold * MEMBRANE_GAIN if integer else v_threshold


def threshold_value(graph, pop) -> float:
    """A population's threshold in float current units: its count of the layer's current unit
    times that unit's value ``Layer.scale`` (1.0 in float graphs)."""
    return float(pop.v_threshold * graph.nodes[pop.layer].scale)


def shift(x, exp: int):
    """``x << exp``, or an arithmetic (floor) right shift for negative ``exp``, as Lava's Dense."""
    return x * 2.0 ** exp if exp >= 0 else (x / 2.0 ** -exp) // 1


def dequantize_state(v_int: np.ndarray, layer) -> np.ndarray:
    """Float membrane of an int graph's state (membrane units are 1/64 of a current unit)."""
    return v_int.astype(np.float64) * layer.scale / MEMBRANE_GAIN


# -- projections ----------------------------------------------------------------------------------
def weight_key(p) -> tuple:
    """Projections with equal keys apply the same synapses (lowering repeats one conv per source
    population of a multiset: the K levels, the residual fan-in)."""
    w = np.asarray(p.weight)
    return p.kind, w.shape, w.tobytes(), tuple(p.stride), tuple(p.padding)


def projection_groups(graph, layer) -> list:
    """Projections into ``layer`` with identical weights, as ``(projection, [sources])``.

    Summing the sources first and projecting once is exact (linear, integer-valued) unless a
    negative weight exponent floors each projection separately (int graphs), and fixes the order
    of float additions that every float backend follows."""
    integer = graph.numeric == "int"
    groups: dict = {}
    for p in graph.projections_into(layer.name):
        key = (p.name,) if integer and layer.weight_exp < 0 else weight_key(p)
        groups.setdefault(key, (p, []))[1].append(p.source)
    return list(groups.values())


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


# -- names ----------------------------------------------------------------------------------------
def population_name(layer: str, level: int) -> str:
    return f"{layer}/L{level}"


def parse_population(name: str) -> tuple[str, int]:
    """``(layer, level)`` of a population name built by :func:`population_name`."""
    layer, level = name.rsplit("/L", 1)
    return layer, int(level)


# -- input ----------------------------------------------------------------------------------------
def real_valued_input(graph) -> bool:
    """A static image or a normalised input: real values, quantized with a step (not counts)."""
    return graph.input.encoding == "static" or input_normalisation(graph).gain is not None


def input_values(graph, x: np.ndarray) -> np.ndarray:
    """Raw input ``(B, C, H, W)`` (static) or ``(T, B, C, H, W)`` (events), shapes already checked,
    -> the ``(T, B, C, H, W)`` float64 values the Input delivers (integers in int graphs)."""
    return _input_values(describe_input(graph), x)


def prepare_input(graph, x) -> np.ndarray:
    """``x``: ``(B, C, H, W)`` static image(s) or ``(T, B, C, H, W)`` event frames (torch or numpy).

    Returns ``(T, B, C, H, W)`` float64; integer-valued for int graphs.
    """
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    inp = graph.input
    want = tuple(inp.shape)
    if inp.encoding == "static":
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise UserError(f"input '{inp.name}' expects static images "
                            f"(B, {', '.join(map(str, want))}), got shape {tuple(x.shape)}")
    elif x.ndim != 5 or tuple(x.shape[2:]) != want or x.shape[0] != inp.timesteps:
        raise UserError(f"input '{inp.name}' expects event frames ({inp.timesteps}, B, "
                        f"{', '.join(map(str, want))}), got shape {tuple(x.shape)}")
    return input_values(graph, x)


def raw_model_input(graph, raw) -> np.ndarray:
    """Raw samples as the data set stores them -> the model's input: ``(B, C, H, W)`` images
    normalised as the Input node states, or ``(T, B, C, H, W)`` event frames. An Input without a
    data set normalisation takes its samples unchanged."""
    return _model_units(describe_input(graph), raw)


# -- readout --------------------------------------------------------------------------------------
def sender_levels(graph, source: str) -> list:
    """The level populations whose spikes sum to what ``source`` sends: itself (a binary
    population) or the K levels inside a graded population (its payload is their count)."""
    node = graph.nodes[source]
    thresholds = getattr(node, "v_thresholds", None)
    if thresholds is None:
        return [source]
    return [f"{node.layer}/L{k}" for k in range(len(thresholds))]  # population_name(layer, k)


def readout_counts(graph, spikes: dict) -> np.ndarray:
    """``(B, C)`` float64 spike counts over time and space, summed over the readout's sources
    (``spikes``: level population -> ``(T, B, C, H, W)``; a graded source counts its levels)."""
    return sum(np.asarray(spikes[level]).sum(axis=(0, 3, 4), dtype=np.float64)
               for s in graph.readout.sources for level in sender_levels(graph, s))


def readout_logits(graph, spikes: dict) -> np.ndarray:
    """The logits of :class:`mlf_deploy.ir.Readout` from the readout sources' spikes."""
    return logits_from_counts(graph, readout_counts(graph, spikes))

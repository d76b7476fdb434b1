"""Loihi-style fixed-point quantization of a float deployment graph.

For each destination layer, every projection into it shares one weight step
``q = max|W| / (2^(bits-1) - 1)`` (the signed mantissa range, no clipping by construction) and one
exponent ``e``. One integer current unit is then worth ``q * s_src * 2^-e`` float units, where
``s_src`` is 1 for spikes and the input step for the stem. ``e`` is chosen so that the top level's
threshold mantissa lands just under ``2^threshold_bits``: thresholds keep about ``threshold_bits``
bits of resolution while the 8-bit weights stay 8-bit. Retentions round to the nearest multiple
of 2^-12 (Loihi's 12-bit decay; tau = 0.3 becomes 1229/4096). Biases become 13-bit mantissas with
a 3-bit exponent in membrane units (1/64 of a current unit, Loihi's ``<< 6``). The readout keeps
its own step.

Every rounding is reported (:class:`QuantizationReport`); only what cannot be represented at all
(a threshold that rounds to zero or overflows, a retention outside [0, 1], ...) raises
:class:`mlf_deploy.quantization.rules.RuleViolation`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph, Layer
from mlf_deploy.ir.semantics import (
    DECAY_UNIT,
    MEMBRANE_GAIN,
    WEIGHT_BITS_RANGE,
    dequantize_state,
    input_normalisation,
    real_valued_input,
    retention_mant,
    signed_limit,
    valid_weight_bits,
)
from mlf_deploy.quantization.report import QuantizationReport
from mlf_deploy.quantization.rules import (
    BIAS_EXP_MAX,
    BIAS_MANT_MAX,
    REPRESENTABILITY_RULES,
    WEIGHT_EXP_RANGE,
    check_rules,
)

__all__ = ["quantize", "QuantizationReport", "dequantize_state", "weight_step", "layer_exponent",
           "bias_exponent", "input_grid", "input_max_of_range", "INPUT_BITS", "THRESHOLD_BITS"]

INPUT_BITS = 8  # signed bits of a quantized real-valued input
THRESHOLD_BITS = 12  # target resolution of a layer's top threshold mantissa
EVENT_INPUT_BITS = 16  # event counts are integers already; this only bounds them


# The scale choices below are shared with quantization-aware fine-tuning (mlf_deploy.qat), which
# must land on exactly the grid this module picks.
def weight_step(peak: float, bits: int) -> float:
    """Weight step of a layer whose largest |weight| is ``peak``: no clipping by construction."""
    return (peak if peak > 0 else 1.0) / signed_limit(bits)


def layer_exponent(unit0: float, top: float, threshold_bits: int = THRESHOLD_BITS) -> int:
    """Weight exponent that puts the top threshold's mantissa just under ``2^threshold_bits``."""
    exp = math.floor(math.log2(2 ** threshold_bits * unit0 / top)) if top > 0 else 0
    return min(max(exp, WEIGHT_EXP_RANGE[0]), WEIGHT_EXP_RANGE[1])


def bias_exponent(peak: float) -> int:
    """Smallest bias exponent whose 13-bit mantissa holds ``peak`` (membrane units)."""
    exp = 0
    while exp < BIAS_EXP_MAX and round(peak / 2 ** exp) > BIAS_MANT_MAX:
        exp += 1
    return exp


def input_grid(real_valued: bool, input_max: float | None, input_bits: int = INPUT_BITS):
    """``(scale, value_bits)`` of the Input of an int graph."""
    if not real_valued:
        return 1.0, EVENT_INPUT_BITS
    if input_max is None or not input_max > 0:
        raise UserError("quantizing a graph with a real-valued input needs input_max > 0 "
                        "(the largest |input value|, e.g. from the training split)")
    return float(input_max) / signed_limit(input_bits), input_bits


def _weight_step(weights, bits):
    return weight_step(max(float(np.abs(w).max()) for w in weights), bits)


def _round_weights(w, step, bits, report, where):
    mant = np.round(w / step)
    limit = signed_limit(bits)
    clipped = int((np.abs(mant) > limit).sum())
    report.add_weights(where, clipped, w.size,
                       float(np.abs(np.clip(mant, -limit, limit) * step - w).max()))
    return np.clip(mant, -limit, limit).astype(np.int32)


def _bias_mant_exp(bias_v: np.ndarray, report, where):
    """Bias in membrane units -> (13-bit mantissa, 3-bit exponent); clipped values are reported."""
    exp = bias_exponent(float(np.abs(bias_v).max()) if bias_v.size else 0.0)
    mant = np.round(bias_v / 2 ** exp)
    clipped = int((np.abs(mant) > BIAS_MANT_MAX).sum())
    mant = np.clip(mant, -BIAS_MANT_MAX, BIAS_MANT_MAX)
    report.add_bias(where, clipped,
                    float(np.abs(mant * 2 ** exp - bias_v).max()) if bias_v.size else 0.0)
    return mant.astype(np.int32), exp


def quantize(graph: Graph, weight_bits: int = 8, input_max: float | None = None,
             input_bits: int = INPUT_BITS,
             threshold_bits: int = THRESHOLD_BITS) -> tuple[Graph, QuantizationReport]:
    """The int graph of a float ``graph`` and the report of every rounding.

    Args:
        weight_bits: signed weight mantissa bits (2..16; Loihi takes up to 8).
        input_max: largest |input| for static images (the input step is input_max / (2^(bits-1)-1));
            event counts are integers and are taken as they are.
        input_bits: signed bits of a quantized static input value.
        threshold_bits: target resolution of the top level's threshold mantissa.
    """
    if graph.numeric != "float":
        raise UserError("quantize takes a float graph (the output of lower())")
    if graph.graded:
        raise UserError("quantize takes the binary float graph; make the graded form of the int "
                        "graph afterwards (mlf_deploy.graded_lowering.to_graded)")
    if not valid_weight_bits(weight_bits):
        raise UserError("weight bits must be an integer from {} to {}, got {}".format(
            *WEIGHT_BITS_RANGE, weight_bits))
    inp = graph.input
    scale, value_bits = input_grid(real_valued_input(graph), input_max, input_bits)
    new_input = dataclasses.replace(inp, scale=scale, value_bits=value_bits)
    report = QuantizationReport(weight_bits=weight_bits)
    nodes = {new_input.name: new_input}
    for node in graph.nodes.values():
        if isinstance(node, Layer):
            nodes.update(_quantize_layer(graph, node, new_input, weight_bits, threshold_bits,
                                         report))
    ro = graph.readout
    step = _weight_step([ro.weight], weight_bits)
    nodes[ro.name] = dataclasses.replace(
        ro, weight=_round_weights(ro.weight, step, weight_bits, report, ro.name), scale=step,
        weight_bits=weight_bits)
    order = [n for n in graph.nodes if n in nodes]
    meta = {**graph.metadata, "quantization": {"weight_bits": weight_bits, "input_bits": input_bits,
                                               "threshold_bits": threshold_bits,
                                               "input_max": input_max}}
    qgraph = Graph({n: nodes[n] for n in order}, "int", meta)
    check_rules(qgraph, REPRESENTABILITY_RULES)
    return qgraph, report


def _quantize_layer(graph, layer, new_input, bits, threshold_bits, report):
    projections = graph.projections_into(layer.name)
    src_units = {new_input.scale if p.source == new_input.name else 1.0 for p in projections}
    if len(src_units) != 1:
        raise UserError(f"layer {layer.name}: mixes input and spike sources; cannot share one "
                        "scale")
    step = _weight_step([p.weight for p in projections], bits)
    unit0 = step * src_units.pop()
    pops = graph.populations_of(layer.name)
    top = max(p.v_threshold for p in pops)
    exp = layer_exponent(unit0, top, threshold_bits)
    unit = unit0 * 2.0 ** -exp
    out = {}
    for p in projections:
        weight = _round_weights(p.weight, step, bits, report, layer.name)
        out[p.name] = dataclasses.replace(p, weight=weight, weight_bits=bits)
    bias_mant, bias_exp = _bias_mant_exp(layer.bias.astype(np.float64) / unit * MEMBRANE_GAIN,
                                         report, layer.name)
    out[layer.name] = dataclasses.replace(layer, bias=bias_mant, weight_exp=exp, bias_exp=bias_exp,
                                          scale=unit)
    for pop in pops:
        mant = round(pop.v_threshold / unit)
        report.add_threshold(pop.name, pop.v_threshold, mant * unit)
        rho = pop.v_retention
        if 0 <= rho <= 1:  # outside it no 12-bit decay exists: the rule refuses it
            rho = retention_mant(rho) / DECAY_UNIT
            report.add_retention(pop.name, pop.v_retention, rho)
        out[pop.name] = dataclasses.replace(pop, v_threshold=int(mant), v_retention=rho)
    return out


def input_max_of_range(graph: Graph, input_range: dict) -> float | None:
    """Largest |value| the Input delivers over the training split after the optional input
    normalisation, from the split's per-channel ``min``/``max`` (``mlf_deploy.data.ranges``, stored
    in the checkpoint); None for raw event counts, which are integers already."""
    lo = np.asarray(input_range["min"], dtype=np.float64)
    hi = np.asarray(input_range["max"], dtype=np.float64)
    norm = input_normalisation(graph)
    if norm.gain is None:
        events = input_range["timesteps"] is not None
        return None if events else float(np.maximum(np.abs(lo), np.abs(hi)).max())
    gain, offset = norm.gain[:, 0, 0], norm.offset[:, 0, 0]
    return float(np.maximum(np.abs(lo * gain + offset), np.abs(hi * gain + offset)).max())

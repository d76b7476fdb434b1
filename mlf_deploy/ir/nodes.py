r"""The nodes of the deployment graph. Every exporter, runtime and estimator reads these and
nothing else.

A graph is *float* (as lowered from torch) or *int* (Loihi-style fixed point, as produced by
:func:`mlf_deploy.quantization.quantize`). The same node types serve both; the graph's ``numeric``
field says which, and the docstrings give both rules. Weights and thresholds have one meaning in
both: they are counted in their layer's *current unit*, whose float value is ``Layer.scale`` (1.0
in a float graph); an int graph holds them as integers (mantissas), a float graph as reals.
:func:`mlf_deploy.ir.semantics.threshold_value` gives a threshold in float units. (An int graph's
bias is a mantissa of membrane units, 1/64 of a current unit: see :class:`Layer`.)

Time is discrete; within one timestep the whole graph is evaluated in topological order, so a spike
emitted at step ``t`` reaches the next layer at step ``t`` (same-timestep semantics, as in torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlf_deploy.ir.portable import payload_bits
from mlf_deploy.ir.semantics import population_name


@dataclass(frozen=True, eq=False)
class Input:
    r"""The network input, one value per ``(C, H, W)`` position and timestep.

    ``encoding="static"``: one image repeated at every timestep (direct encoding).
    ``encoding="events"``: a different frame per timestep (event counts, non-negative integers).

    A raw sample (as the data set stores it) becomes the values the Input delivers in up to three
    per-channel steps, each absent when its fields are empty:

    .. math::
        x = (\text{raw} / \text{raw\_divide} - \text{raw\_mean}) / \text{raw\_std}, \quad
        x \leftarrow x \cdot \text{gain} + \text{offset}, \quad
        x \leftarrow \mathrm{clip}(\mathrm{round}(x / \text{scale}),
        \pm(2^{\text{value\_bits}-1}-1))

    The first is the data set's normalisation (the model's input), the second a normalisation
    folded out of the model (computed on the host), the third the int graph's fixed point.
    :func:`mlf_deploy.ir.portable.input_normalisation` reads the first two.
    """

    name: str
    shape: tuple  # (C, H, W)
    encoding: str  # "static" | "events"
    timesteps: int  # T, model timesteps per sample
    scale: float = 1.0  # float value of one integer input unit (int graphs); 1.0 for float graphs
    value_bits: int = 0  # signed bits of an integer input value; 0 = float input
    raw_divide: float = 1.0  # raw samples are divided by this first (255 for 8-bit pixels)
    raw_mean: tuple = ()  # (C,) subtracted next; () = the model takes raw samples unchanged
    raw_std: tuple = ()  # (C,) divides last; () exactly when raw_mean is ()
    gain: tuple = ()  # (C,) folded normalisation x * gain + offset; () = none
    offset: tuple = ()  # (C,) ; () exactly when gain is ()

    def __post_init__(self):
        c = self.shape[0]
        for a, b in (("raw_mean", "raw_std"), ("gain", "offset")):
            sizes = (len(getattr(self, a)), len(getattr(self, b)))
            if sizes not in ((0, 0), (c, c)):
                raise ValueError(f"input {self.name}: {a} and {b} have {sizes[0]} and "
                                 f"{sizes[1]} values, expected none or {c} each")
        if not self.raw_mean and self.raw_divide != 1.0:
            raise ValueError(f"input {self.name}: raw_divide {self.raw_divide} without raw_mean "
                             "and raw_std (the data set normalisation is all three or none)")


@dataclass(frozen=True, eq=False)
class Layer:
    r"""The shared input current of the K level populations of one MLF layer.

    .. math::
        a[t] = \sum_{p \in \text{projections into this layer}}
        \mathrm{shift}(W_p \circledast s_p[t],\ e)
        \;+\; b

    float graph: ``e`` unused (shift is the identity), ``b = bias`` in current units.
    int graph: ``shift(x, e) = x << e`` for ``e >= 0``, ``floor(x / 2^-e)`` for ``e < 0``, applied
    per projection; the bias enters the membrane (see :class:`Population`) as ``bias << bias_exp``.
    One current unit is worth ``scale`` float current units.
    """

    name: str  # the MLF module's qualified name in the torch model, e.g. "blocks.0.mlf1"
    shape: tuple  # (C, H, W)
    bias: np.ndarray  # (C,) per-channel bias: float current units, or int mantissa (int graph)
    populations: tuple  # the K level populations, level 0 first; graded form: the one graded one
    weight_exp: int = 0  # int graph: shared exponent of every projection into this layer
    bias_exp: int = 0  # int graph: bias exponent (bias enters the membrane as bias << bias_exp)
    scale: float = 1.0  # float value of one current unit (int graph); 1.0 for float graphs

    def __post_init__(self):
        if self.bias.shape != (self.shape[0],):
            raise ValueError(f"layer {self.name}: bias shape {self.bias.shape}, "
                             f"expected ({self.shape[0]},)")


@dataclass(frozen=True, eq=False)
class Population:
    r"""A population of single-threshold LIF neurons: level ``k`` of an MLF layer.

    ``v_threshold`` is counted in the layer's current unit (worth ``Layer.scale``), in both forms;
    an int graph holds it as an integer mantissa.

    float graph:

    .. math::
        v[t] = \rho\, v[t-1] + a[t] + b, \quad s[t] = v[t] > \vartheta, \quad
        v[t] \leftarrow 0 \text{ if } s[t]

    int graph (Loihi / Lava ``bit_accurate_loihi`` LIF with full current decay; the membrane ``v``
    is a 24-bit integer in units of 1/64 current unit):

    .. math::
        v[t] = \mathrm{trunc}_0(v[t-1] \cdot r / 2^{12}) + 64\,a[t] + (b \ll e_b), \quad
        v \in [-(2^{23}-1), 2^{23}-1], \quad s[t] = v[t] > 64\,\vartheta, \quad
        v \leftarrow 0 \text{ if } s

    with ``r = round(rho * 4096)`` (:func:`mlf_deploy.ir.semantics.retention_mant`; 1024 for
    rho = 0.25) and ``trunc_0`` rounding toward zero. ``v[-1] = 0``. The recorded state of a step is
    ``v`` after the reset. The constants and this rule are code in :mod:`mlf_deploy.ir.semantics`.
    """

    name: str  # semantics.population_name(layer, level)
    layer: str  # the Layer whose current this population receives
    level: int  # k = 0..K-1
    shape: tuple  # (C, H, W), same as the layer
    v_threshold: float  # in the layer's current unit; an integer in int graphs
    v_retention: float = 0.25  # rho, fraction of v kept per step (tau of the paper)
    v_reset: float = 0.0  # hard reset value; every backend resets to 0, so only 0 is accepted

    def __post_init__(self):
        _check_reset(self)


@dataclass(frozen=True, eq=False)
class GradedPopulation:
    r"""One MLF layer as one population of graded-spike neurons (the ``graded`` form of a graph).

    Each neuron holds K membranes, one per threshold; level ``k`` is updated exactly as the
    :class:`Population` of level ``k`` in the binary form (same float or int rule, same reset per
    level). The neuron sends one spike whose integer payload is the count
    :math:`c[t] = \sum_k s_k[t] \in 0..K`, and a projection from it multiplies each weight by
    ``c``. Backends record the per-level spikes and membranes under the binary form's population
    names (:meth:`level_names`), so the two forms compare level by level.
    """

    name: str  # f"{layer}/graded"
    layer: str
    shape: tuple  # (C, H, W), same as the layer
    v_thresholds: tuple  # one per level, level 0 first; as Population.v_threshold
    v_retention: float = 0.25
    v_reset: float = 0.0  # as Population.v_reset

    def __post_init__(self):
        _check_reset(self)

    @property
    def levels(self) -> int:
        return len(self.v_thresholds)

    @property
    def payload_bits(self) -> int:
        """Unsigned bits of the payload ``0..K``."""
        return payload_bits(self.levels)

    def level_names(self) -> list[str]:
        return [population_name(self.layer, k) for k in range(self.levels)]

    def level_views(self) -> list[Population]:
        """The K levels as binary-form populations (not graph nodes): thresholds, names, rules."""
        return [Population(n, self.layer, k, self.shape, th, self.v_retention, self.v_reset)
                for k, (n, th) in enumerate(zip(self.level_names(), self.v_thresholds))]


@dataclass(frozen=True, eq=False)
class Projection:
    r"""Synapses from one source (the input or a population) into one layer's current.

    ``kind="conv2d"``: ``weight`` ``(C_out, C_in, kh, kw)`` applied as torch's ``conv2d`` (cross-
    correlation) with ``stride`` and zero ``padding``. ``kind="dense"``: ``weight``
    ``(N_out, N_in)`` over the flattened source. Residual adds appear as several projections with
    the same weights from every population of the block output (fan-in); in the graded form one
    projection per graded source, whose payload (the level count) multiplies the weights. Weights
    are in the target layer's current unit per spike: reals in a float graph; in an int graph
    signed mantissas of ``weight_bits`` bits, scaled by the target layer's ``weight_exp``.
    """

    name: str
    source: str  # the Input's, a Population's or a GradedPopulation's name
    target: str  # a Layer's name
    kind: str  # "conv2d" | "dense"
    weight: np.ndarray
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    weight_bits: int = 0  # int graph: signed mantissa bits; 0 in float graphs


@dataclass(frozen=True, eq=False)
class Readout:
    r"""Time-accumulated, globally average-pooled linear readout over a multiset of populations.

    .. math::
        \text{logits} = \frac{1}{T\,H\,W} \sum_t \sum_{p \in \text{sources}} \sum_{h,w}
        W\, s_p[t]_{:,h,w}
        \cdot \text{scale} + \text{bias}

    int graph: ``W`` is an integer mantissa and the time sum is an exact integer accumulator; the
    float ``scale`` and ``bias`` apply once at the end and never feed back into spikes.
    """

    name: str
    sources: tuple  # population names whose spikes sum to the network's last block output
    weight: np.ndarray  # (num_classes, C)
    bias: np.ndarray  # (num_classes,), float
    scale: float = 1.0  # float value of one weight unit
    weight_bits: int = 0


def _check_reset(pop) -> None:
    if pop.v_reset != 0.0:
        raise ValueError(f"population {pop.name}: reset value {pop.v_reset}; every backend resets "
                         "the membrane to 0, so v_reset must be 0")


NODE_TYPES = {cls.__name__: cls for cls in (Input, Layer, Population, GradedPopulation, Projection,
                                             Readout)}

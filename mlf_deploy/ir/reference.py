"""The reference simulator: runs a deployment graph in float or in exact integer arithmetic.

Same-timestep semantics (a spike at step ``t`` reaches the next layer at step ``t``), batched. Since
a layer depends on earlier layers only at the same step, each layer is computed for all timesteps at
once: one convolution over ``T * B`` frames, then the K-level membrane recurrence over time.

Integer mode reproduces Lava's ``bit_accurate_loihi`` LIF with full current decay bit for bit (see
:class:`mlf_deploy.ir.Population`): ``u = 64 a`` wrapped to 24 bits as Lava wraps it, membrane decay
rounded toward zero, saturation at +-(2^23 - 1), strict ``>``, reset to 0. Every wrap or saturation
is counted in ``RunResult.overflow`` (and raises with ``strict=True``) rather than passing silently.
Integers are held in float64 tensors, exact below 2^53 (far above any 24-bit state or conv sum).

On a CUDA device (``device=``) every int-graph projection runs in float64 and is rounded to the
nearest integer: GPU convolution algorithms (Winograd, FFT, TF32) are not exact even on integer
data, but in float64 their error on sums below 2^24 is many orders below 0.5, so rounding gives
the exact sum and the run stays bit for bit the CPU's (tests/test_device.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.results import RunResult


class StateOverflow(UserError):
    """A 24-bit limit was hit in a strict integer run."""


def _project(p, src: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``src``: ``(N, C, H, W)`` -> current ``(N, C', H', W')`` (in the dtype of ``w``)."""
    src = src.to(w.dtype)
    if p.kind == "conv2d":
        return F.conv2d(src, w, stride=tuple(p.stride), padding=tuple(p.padding))
    if p.kind == "dense":
        return (src.flatten(1) @ w.T).view(src.shape[0], -1, 1, 1)
    raise UserError(f"projection {p.name}: unknown kind {p.kind!r}")


class ReferenceSimulator:
    """Run ``graph`` on batches; ``strict=True`` turns any 24-bit overflow into an error."""

    def __init__(self, graph: Graph, strict: bool = False, record_states: bool = True,
                 device="cpu", rounded: bool | None = None):
        self.graph, self.strict, self.record_states = graph, strict, record_states
        self.device = torch.device(device)
        self.integer = graph.numeric == "int"
        # float64 projections rounded to integers: the GPU's way (None: on any non-CPU device)
        self.rounded = self.integer and (self.device.type != "cpu" if rounded is None else rounded)
        self.groups = {layer.name: self._group(layer) for layer in graph.layers}

    def _group(self, layer):
        """:func:`~mlf_deploy.ir.semantics.projection_groups` with each group's weight tensor. In
        int graphs a group whose every partial sum is an integer below 2^24 in magnitude
        (``sum |W| * max |source|``) runs in float32, which represents all of them exactly
        whatever the summation order."""
        out = []
        for p, sources in sem.projection_groups(self.graph, layer):
            w = np.asarray(p.weight, dtype=np.float64)
            dtype = torch.float64
            if self.integer:
                inp = self.graph.input
                src_max = 2 ** max(inp.value_bits - 1, 0) if sources == [inp.name] else \
                    sum(len(self.graph.sender_levels(s)) for s in sources)  # graded: payload <= K
                small = np.abs(w).reshape(w.shape[0], -1).sum(1).max() * src_max < 2 ** 24
                if small and not self.rounded:
                    dtype = torch.float32
            out.append((p, sources, torch.from_numpy(w).to(self.device, dtype)))
        return out

    @property
    def backend(self) -> str:
        return ("ir-int" if self.integer else "ir-float") + ("-graded" if self.graph.graded else "")

    def run(self, x, batch_size: int = 256) -> RunResult:
        """``x``: raw model input ``(B, C, H, W)`` or ``(T, B, C, H, W)``."""
        frames = prepare_input(self.graph, x)
        parts = [self._run_batch(frames[:, i:i + batch_size])
                 for i in range(0, frames.shape[1], batch_size)]
        return parts[0] if len(parts) == 1 else RunResult.concat(parts)

    def run_teacher_forced(self, frames: np.ndarray, teacher: dict) -> RunResult:
        """Each layer fed ``teacher``'s spikes (population -> ``(T, B, C, H, W)``, another run of
        a graph with the same populations) instead of its own sources' spikes, from already
        prepared Input values ``frames`` ``(T, B, C, H, W)``: every layer's deviation from the
        teacher is then its own (binary graphs only)."""
        return self._run_batch(frames, teacher)

    @torch.no_grad()
    def _run_batch(self, frames: np.ndarray, teacher: dict | None = None) -> RunResult:
        g = self.graph
        steps, batch = frames.shape[:2]
        values = {g.input.name: torch.from_numpy(frames).to(self.device).flatten(0, 1)}
        spikes, states, overflow = {}, {}, {}
        for layer in g.layers:
            current = None
            for p, sources, w in self.groups[layer.name]:
                src = values[sources[0]]
                for other in sources[1:]:
                    src = src + values[other]
                a = _project(p, src, w).to(torch.float64)
                if self.rounded:
                    a = a.round()
                if self.integer:
                    a = sem.shift(a, layer.weight_exp)
                current = a if current is None else current + a
            current = current.view(steps, batch, *current.shape[1:])
            pops = g.levels_of(layer.name)
            s, v, over = self._dynamics(layer, pops, current)
            if over:
                overflow[layer.name] = over
                if self.strict:
                    raise StateOverflow(f"layer {layer.name}: {over} 24-bit state overflows")
            if g.graded:  # one sender whose payload is the level count
                sender = g.populations_of(layer.name)[0].name
                values[sender] = s.sum(1).flatten(0, 1).to(torch.float64)
            for k, pop in enumerate(pops):
                if not g.graded:
                    sent = (s[:, k] if teacher is None
                            else torch.from_numpy(teacher[pop.name]).to(self.device))
                    values[pop.name] = sent.flatten(0, 1).to(torch.float64)
                spikes[pop.name] = s[:, k].to(torch.uint8).cpu().numpy()
                if self.record_states:
                    state = v[:, k].to(torch.int64) if self.integer else v[:, k]
                    states[pop.name] = state.cpu().numpy()
        logits = sem.readout_logits(g, spikes)
        return RunResult(self.backend, g.numeric, spikes, states, logits, overflow)

    def _dynamics(self, layer, pops, current):
        """K-level recurrence over time; returns spikes and post-reset states ``(T, K, B, ...)``."""
        steps = current.shape[0]
        on = dict(dtype=torch.float64, device=self.device)
        bias = torch.from_numpy(np.asarray(layer.bias, dtype=np.float64)).to(**on).view(-1, 1, 1)
        th = torch.tensor([p.v_threshold for p in pops], **on)
        th = th.view(-1, *[1] * (current.dim() - 1))
        rho = torch.tensor([p.v_retention for p in pops], **on).view_as(th)
        overflow = 0
        if self.integer:
            bias = sem.shift(bias, layer.bias_exp)
            th = sem.membrane_threshold(th, True)
            retention = torch.tensor([sem.retention_mant(p.v_retention) for p in pops],
                                     **on).view_as(th)
            u = current * sem.MEMBRANE_GAIN
            overflow += int(sem.overflows(u).sum())
            current = sem.wrap_state(u) + bias
        v = torch.zeros((len(pops), *current.shape[1:]), **on)
        out_s = torch.empty((steps, *v.shape), dtype=torch.bool, device=self.device)
        out_v = torch.empty((steps, *v.shape), **on) if self.record_states else None
        for t in range(steps):
            if self.integer:
                v = sem.int_membrane(v, current[t], retention, torch.trunc)
                v, clipped = sem.saturate(v)
                overflow += clipped
            else:
                v = sem.float_membrane(v, current[t], bias, rho)
            s = v > th
            v = torch.where(s, torch.zeros((), **on), v)
            out_s[t] = s
            if out_v is not None:
                out_v[t] = v
        return out_s, out_v, overflow


def run_reference(graph: Graph, x, strict: bool = False, record_states: bool = True,
                  batch_size: int = 256, device="cpu") -> RunResult:
    return ReferenceSimulator(graph, strict, record_states, device).run(x, batch_size)

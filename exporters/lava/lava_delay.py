"""A spike-delay Lava process: a ring buffer that re-emits a population's spikes later.

Skip paths of a DS-ResNet must arrive as many steps late as the layers they skip. Lava's own tool
for that, ``DelaySparse`` with identity weights, stores an (N x N) weight matrix and a stacked
(delay x N, N) one per relay (dense unless given sparse: ~300 GB for one 65,536-neuron relay),
and it needs a copy ``LIF`` behind it to turn its current back into spikes. This process holds a
``(delay, *shape)`` ring buffer instead: memory and work O(neurons x delay), one process per
delayed source. Each step it sends the oldest slot and stores the spikes it receives in its place,
so a spike received at step ``t`` leaves at step ``t + delay``, the slots being zero before. It
copies values, so the fixed-point and the floating-point model are bit-exact by construction.

:func:`spike_delay_classes` is self-contained (numpy + lava only): ``export_lava`` copies this
file whole into the exported folder, and Lava's model selection receives its models
through ``exception_proc_model_map`` (they live in no package Lava could search).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np


@functools.cache
def spike_delay_classes():
    """``SpikeDelay`` (the process) and its ``fixed_pt`` / ``floating_pt`` models, built once so
    that the process class a network uses and the one its run config maps are the same object."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.process.variable import Var
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    class SpikeDelay(AbstractProcess):
        """Delays the spikes on ``s_in`` by ``delay`` >= 1 steps onto ``s_out``."""

        def __init__(self, *, shape, delay, **kwargs):
            if int(delay) < 1:
                raise ValueError(f"SpikeDelay needs delay >= 1, got {delay}")
            super().__init__(shape=shape, delay=delay, **kwargs)
            self.s_in = InPort(shape=shape)
            self.s_out = OutPort(shape=shape)
            self.ring = Var(shape=(int(delay), *shape), init=0)

    class _RingModel(PyLoihiProcessModel):
        def run_spk(self):
            slot = (self.time_step - 1) % self.ring.shape[0]
            self.s_out.send(self.ring[slot])
            self.ring[slot] = self.s_in.recv()

    # Port types as Lava's LIF models send spikes (int32 in fixed_pt, float in floating_pt).
    @implements(proc=SpikeDelay, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class SpikeDelayFixed(_RingModel):
        s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        ring: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    @implements(proc=SpikeDelay, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class SpikeDelayFloat(_RingModel):
        s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        ring: np.ndarray = LavaPyType(np.ndarray, float)

    return SimpleNamespace(SpikeDelay=SpikeDelay, fixed=SpikeDelayFixed, float=SpikeDelayFloat)

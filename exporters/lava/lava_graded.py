"""A Lava process for one graded MLF population: K membranes per neuron, one graded spike out.

Lava 0.10 ships no neuron that sends a level count: its bit-accurate LIF sends ``v > vth`` (binary)
and its graded neurons (``GradedVec``, ``SigmaDelta``) have one membrane. ``GradedMLF`` holds one
shared current ``u`` and K membranes ``v[k]``; each level is updated by Lava's own LIF arithmetic
(the models inherit ``subthr_dynamics`` from Lava's abstract LIF models, which broadcast over the
level axis), fires on ``v[k] > vth[k]`` (``vth << 6`` in fixed point), resets only itself, and the
neuron sends ``sum_k s_k`` as an int32 payload (24-bit precision, Loihi 2's graded spike) into
``Conv``/``Dense`` with ``num_message_bits > 0``, which multiply it by the weight. Like
``LIFReset``, every state is zeroed when ``time_step % reset_interval == reset_offset`` (samples
tile in time).

Uses numpy and lava only: the Lava exporter copies this file whole into the exported folder.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat

GRADED_PAYLOAD_PRECISION = 24  # Loihi 2 graded spikes carry up to 24 bits


class GradedMLF(AbstractProcess):
    """``shape`` neurons with ``len(vth)`` levels; ``vth``, ``du``, ``dv``, ``bias_mant``,
    ``bias_exp`` as for Lava's ``LIFReset`` (one threshold per level, ascending)."""

    def __init__(self, *, shape, vth, du=0, dv=0, bias_mant=0, bias_exp=0, reset_interval=1,
                 reset_offset=0, name=None):
        super().__init__(shape=shape, name=name, reset_interval=reset_interval,
                         reset_offset=reset_offset)
        levels = len(vth)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=(levels, *shape), init=0)
        self.du = Var(shape=(1,), init=du)
        self.dv = Var(shape=(1,), init=dv)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
        self.vth = Var(shape=(levels,), init=np.asarray(vth))


class _GradedSteps:
    """The step shared by both models (Lava's ``LIFReset`` step, with K levels)."""

    def _per_level(self, vth):
        return np.reshape(vth, (-1,) + (1,) * (self.v.ndim - 1))

    def _reset_due(self) -> bool:
        interval = self.proc_params["reset_interval"]
        return self.time_step % interval == self.proc_params["reset_offset"] % interval

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        if self._reset_due():
            self.u *= 0
            self.v *= 0
        self._prepare()
        self.subthr_dynamics(activation_in=a_in)
        spikes = self.spiking_activation()
        self.v[spikes] = 0
        self.s_out.send(spikes.sum(axis=0).astype(self._payload_dtype))


@implements(proc=GradedMLF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyGradedMLFModelFixed(_GradedSteps, AbstractPyLifModelFixed):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=GRADED_PAYLOAD_PRECISION)
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    _payload_dtype = np.int32

    def _prepare(self) -> None:
        self.scale_bias()
        self.effective_vth = self._per_level(np.left_shift(self.vth, self.vth_shift))

    def spiking_activation(self):
        return self.v > self.effective_vth


@implements(proc=GradedMLF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGradedMLFModelFloat(_GradedSteps, AbstractPyLifModelFloat):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    _payload_dtype = np.float64

    def _prepare(self) -> None:
        pass

    def spiking_activation(self):
        return self.v > self._per_level(self.vth)


GRADED_MODELS = {"fixed": PyGradedMLFModelFixed, "float": PyGradedMLFModelFloat}

"""Custom Lava ProcessModels for the Lava backend: a fast bit-exact Conv and recording LIFs.

Imported only lazily (from exporters/lava.py and runtimes/lava.py), after lava itself, so that the
rest of the project never needs lava-nc. Models are plugged in through Lava's own model selection,
``Loihi2SimCfg(select_tag=..., exception_proc_model_map={Conv: FastConvFixed, ...})``.
"""

from __future__ import annotations

import numpy as np

from exporters.lava import correlate
from exporters.lava_import import import_lava

import_lava()

from lava.proc.conv.models import PyConvModelFixed, PyConvModelFloat  # noqa: E402
from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat  # noqa: E402
from lava.proc.sparse.models import PyDelaySparseModelBitAcc, PyDelaySparseModelFloat  # noqa: E402

from exporters.lava_graded import PyGradedMLFModelFixed, PyGradedMLFModelFloat  # noqa: E402

RECORD_KEY = "mlf_record"  # proc_params key: (path, rows, record_v) of a population's record file


class _FastConv:
    """Lava's Conv computes a true convolution with scipy, once per (Cout, Cin) pair; one strided
    tensordot over all channels gives the same sums (exact for ints, flipped kernel) ~10x faster.
    Assumes dilation 1 and groups 1, which is all the exporter builds."""

    dtype = np.float64

    def run_spk(self) -> None:
        if not hasattr(self, "_w"):
            self._w = np.ascontiguousarray(self.weight[:, ::-1, ::-1, :]).astype(self.dtype)
        self.a_out.send(self.a_buf)
        s_in = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            s_in = s_in.astype(bool)
        y = correlate(s_in.astype(self.dtype), self._w, self.stride, self.padding)
        self.a_buf = self.clamp_precision(y.astype(self.weight.dtype))


class FastConvFixed(_FastConv, PyConvModelFixed):
    dtype = np.int64


class FastConvFloat(_FastConv, PyConvModelFloat):
    pass


class _CachedDelayWeights:
    """Lava's DelaySparse rebuilds its stacked (delay x out, in) weight matrix from ``weights`` and
    ``delays`` on every step (sparse masks and vstack: ~140 ms per step for 1024 neurons, measured),
    which made the delay relays the slowest processes of a network. Weights and delays do not change
    during a run (Lava's fixed_pt model already assumes static weights), so the matrix is built
    once, on the first step, after Lava's own weight clipping; the arithmetic is Lava's."""

    def calc_act(self, s_in) -> np.ndarray:
        if getattr(self, "_delay_wgts", None) is None:
            self._delay_wgts = self.get_delay_wgts_mat(self.weights, self.delays,
                                                       self.a_buff.shape[-1] - 1)
        return np.reshape(self._delay_wgts.dot(s_in),
                          (self.a_buff.shape[-1], self.weights.shape[0])).T


class FastDelaySparseFixed(_CachedDelayWeights, PyDelaySparseModelBitAcc):
    pass


class FastDelaySparseFloat(_CachedDelayWeights, PyDelaySparseModelFloat):
    pass


class _Recording:
    """Writes the step's spikes and post-reset ``v`` (Lava's own state) into a memory-mapped file
    (a graded population: its K levels' spikes and membranes, ``v`` being ``(K, *shape)``).

    Monitor/Var.get move data one element at a time over a channel (~20 us each), which is minutes
    for a ResNet; a shared file mapping costs a memcpy. Row ``time_step - 1`` holds step ``time_step``.
    """

    def spiking_activation(self):
        self._spikes = super().spiking_activation()
        return self._spikes

    def run_spk(self) -> None:
        super().run_spk()
        path, rows, record_v = self.proc_params[RECORD_KEY]
        if not hasattr(self, "_rec"):
            self._rec = np.memmap(path, mode="r+", dtype=self.v.dtype,
                                  shape=(rows, 1 + record_v, *self.v.shape))
        self._rec[self.time_step - 1, 0] = self._spikes
        if record_v:
            self._rec[self.time_step - 1, 1] = self.v


class RecordingLifFixed(_Recording, PyLifResetModelBitAcc):
    pass


class RecordingLifFloat(_Recording, PyLifResetModelFloat):
    pass


class RecordingGradedFixed(_Recording, PyGradedMLFModelFixed):
    pass


class RecordingGradedFloat(_Recording, PyGradedMLFModelFloat):
    pass

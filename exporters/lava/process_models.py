"""Custom Lava ProcessModels for the Lava backend: a fast bit-exact Conv and recording LIFs
(the spike-delay process and its models are in exporters/lava/lava_delay.py).

Imported only lazily (from exporters/lava/export.py and runtimes/lava.py), after lava itself, so
that the rest of the project never needs lava-nc. Models are plugged in through Lava's own model
selection, ``Loihi2SimCfg(select_tag=..., exception_proc_model_map={Conv: FastConvFixed, ...})``.
"""

from __future__ import annotations

import numpy as np

from mlf_deploy.exporters.lava.lava_build import correlate
from mlf_deploy.exporters.lava.lava_import import import_lava

import_lava()

from lava.proc.conv.models import PyConvModelFixed, PyConvModelFloat  # noqa: E402
from lava.proc.conv.process import Conv  # noqa: E402
from lava.proc.dense.models import PyDenseModelBitAcc, PyDenseModelFloat  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.source import PySendModelFixed, PySendModelFloat, RingBuffer  # noqa: E402
from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat  # noqa: E402
from lava.proc.lif.process import LIFReset  # noqa: E402

from mlf_deploy.exporters.lava.lava_delay import spike_delay_classes  # noqa: E402
from mlf_deploy.exporters.lava.lava_graded import (  # noqa: E402
    GradedMLF,
    PyGradedMLFModelFixed,
    PyGradedMLFModelFloat,
)
from mlf_deploy.ir import semantics as sem  # noqa: E402

RECORD_KEY = "mlf_record"  # proc_params key: (path, rows, record_v) of a population's record file


class _FastConv:
    """Lava's Conv computes a true convolution with scipy, once per (Cout, Cin) pair; one strided
    tensordot over all channels gives the same sums (flipped kernel) ~10x faster.
    Assumes dilation 1 and groups 1, which is all the exporter builds."""

    def compute_dtype(self, w) -> type:
        return np.float64

    def run_spk(self) -> None:
        if not hasattr(self, "_w"):
            w = np.ascontiguousarray(self.weight[:, ::-1, ::-1, :])
            self._dtype = self.compute_dtype(w)
            self._w = w.astype(self._dtype)
        self.a_out.send(self.a_buf)
        s_in = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            s_in = s_in.astype(bool)
        y = correlate(s_in.astype(self._dtype), self._w, self.stride, self.padding)
        self.a_buf = self.clamp_precision(y.astype(self.weight.dtype))


class FastConvFixed(_FastConv, PyConvModelFixed):
    def compute_dtype(self, w) -> type:
        """The cheapest dtype whose sums are all exact. Every partial sum of an output is an
        integer of at most (sum of |weights| x largest input) in magnitude, and floats hold every
        integer up to 2^24 (float32) / 2^53 (float64) exactly, whatever the summation order; BLAS
        float matmul is ~10-50x faster than numpy's integer matmul (which has no BLAS)."""
        bits = int(self.num_message_bits.item())
        reach = int(np.abs(w.astype(np.int64)).sum(axis=(1, 2, 3)).max()) << bits
        return np.float32 if sem.exact_in_float32(reach) \
            else np.float64 if sem.exact_in_float64(reach) else np.int64


class FastConvFloat(_FastConv, PyConvModelFloat):
    pass


class _Recording:
    """Writes the step's spikes and post-reset ``v`` (Lava's own state) into a memory-mapped file
    (a graded population: its K levels' spikes and membranes, ``v`` being ``(K, *shape)``).

    Monitor/Var.get move data one element at a time over a channel (~20 us each), which is minutes
    for a ResNet; a shared file mapping costs a memcpy. Row ``time_step - 1`` holds step
    ``time_step``.
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


def model_table(integer: bool, fast_conv: bool = True, record: bool = True) -> dict:
    """Process class -> model for every process the exporter builds (fixed_pt or floating_pt)."""
    delay = spike_delay_classes()
    fixed = {Conv: FastConvFixed if fast_conv else PyConvModelFixed, Dense: PyDenseModelBitAcc,
             LIFReset: RecordingLifFixed if record else PyLifResetModelBitAcc,
             RingBuffer: PySendModelFixed, delay.SpikeDelay: delay.fixed,
             GradedMLF: RecordingGradedFixed if record else PyGradedMLFModelFixed}
    floating = {Conv: FastConvFloat if fast_conv else PyConvModelFloat, Dense: PyDenseModelFloat,
                LIFReset: RecordingLifFloat if record else PyLifResetModelFloat,
                RingBuffer: PySendModelFloat, delay.SpikeDelay: delay.float,
                GradedMLF: RecordingGradedFloat if record else PyGradedMLFModelFloat}
    return fixed if integer else floating


class RecordingGradedFixed(_Recording, PyGradedMLFModelFixed):
    pass


class RecordingGradedFloat(_Recording, PyGradedMLFModelFloat):
    pass

r"""The projections of an ONNX export: a convolution or a dense layer applied to all ``T B`` frames
of a layer's input at once.

Where ONNX ``Conv`` runs: ONNX Runtime's CPU provider implements it for float32 only, so it runs in
the inexact float32 export of float graphs and for int projections whose partial sums are integers
below 2^24 (:func:`fits_float32`), which float32 holds exactly in any summation order. Every other
projection is im2col (``Pad``, one ``Gather`` of channels-last pixels) plus one float64 ``MatMul``.
"""

from __future__ import annotations

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.onnx.ops import NCHW, NHWC, Builder, row_sum
from mlf_deploy.ir import semantics as sem


def conv2d(b: Builder, p, x: str, shape, dtype=None) -> str:
    """``x`` ``(N, C, H, W)`` -> ``(N, C', H', W')``. In float32 (the fast float export, and int
    projections whose partial sums all stay integers below 2^24) ONNX ``Conv``: any summation order
    of such integers is exact, and ONNX Runtime's float32 ``Conv`` is several times faster than
    im2col. In float64, which ``Conv`` lacks, im2col plus one ``MatMul``."""
    w = np.asarray(p.weight, dtype=np.float64)
    cout, cin, kh, kw = w.shape
    (sh, sw), (ph, pw) = tuple(p.stride), tuple(p.padding)
    if b.np is np.float32 or dtype is np.float32:
        return b.op("Conv", [x, b.const(w, np.float32)], f"{p.name}/conv", strides=[sh, sw],
                    pads=[ph, pw, ph, pw])
    hp, wp = shape[1] + 2 * ph, shape[2] + 2 * pw
    ho, wo = sem.conv_output_size(shape[1], kh, sh, ph), sem.conv_output_size(shape[2], kw, sw, pw)
    # channels last, so that im2col is one Gather of whole pixels and the product one GEMM of
    # (N Ho Wo, taps C) by (taps C, C'): a batched product per frame is many tiny GEMMs
    if ph or pw:
        pads = [0, ph, pw, 0] if b.nhwc else [0, 0, ph, pw]
        x = b.op("Pad", [x, b.ints(pads + pads)], f"{p.name}/pad")
    if not b.nhwc:
        x = b.op("Transpose", [x], f"{p.name}/nhwc", perm=NHWC)
    x = b.op("Reshape", [x, b.ints([0, hp * wp, cin])], f"{p.name}/pixels")
    rows, cols = np.meshgrid(np.arange(ho) * sh, np.arange(wo) * sw, indexing="ij")
    taps = np.add.outer((rows * wp + cols).ravel(), (np.arange(kh)[:, None] * wp
                                                      + np.arange(kw)).ravel())
    x = b.op("Gather", [x, b.const(taps.ravel(), np.int64)], f"{p.name}/im2col", axis=1)
    x = b.op("Reshape", [x, b.ints([-1, kh * kw * cin])], f"{p.name}/cols")
    wmat = w.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout)  # taps major, channel minor
    y = b.op("MatMul", [x, b.const(wmat, dtype)], f"{p.name}/matmul")
    y = b.op("Reshape", [y, b.ints([-1, ho, wo, cout])], f"{p.name}/unfold")
    return y if b.nhwc else b.op("Transpose", [y], f"{p.name}/out", perm=NCHW)


def dense(b: Builder, p, x: str, shape, dtype=None) -> str:
    w = np.asarray(p.weight, np.float64)
    if b.nhwc:  # the columns in the order a channels-last frame flattens
        w = w.reshape(len(w), *shape).transpose(0, 2, 3, 1).reshape(len(w), -1)
    flat = b.op("Flatten", [x], f"{p.name}/flatten", axis=1)
    y = b.op("MatMul", [flat, b.const(w.T, dtype)], f"{p.name}/matmul")
    return b.op("Reshape", [y, b.ints([0, 1, 1, -1] if b.nhwc else [0, -1, 1, 1])], f"{p.name}/out")


PROJECTIONS = {"conv2d": conv2d, "dense": dense}


def fits_float32(p, src_max: float | None) -> bool:
    """Whether every partial sum of ``p`` on integer inputs ``|x| <= src_max`` stays below 2^24,
    where float32 holds every integer exactly whatever the summation order."""
    return src_max is not None and sem.exact_in_float32(src_max * row_sum(p.weight))


def project(b: Builder, p, x: str, shape, src_max: float | None = None,
            float32_out: bool = False) -> str:
    """The projection of ``x``. Given ``src_max`` (int graphs: the largest ``|x|``), it runs in
    float32 when :func:`fits_float32`: ONNX ``Conv`` on the same integers. ``float32_out`` keeps
    such a result in float32 (it must then fit); otherwise it is cast back to the model's type."""
    fn = PROJECTIONS.get(p.kind)
    if fn is None:
        raise UserError(f"projection {p.name!r}: kind {p.kind!r} has no ONNX export; "
                        f"supported kinds: {', '.join(PROJECTIONS)}")
    if not fits_float32(p, src_max):
        return fn(b, p, b.cast(x, b.np, f"{p.name}/to_model_type"), shape)
    y = fn(b, p, b.cast(x, np.float32, f"{p.name}/to_f32"), shape, np.float32)
    b.types[y] = np.float32
    return y if float32_out else b.cast(y, b.np, f"{p.name}/to_model_type")

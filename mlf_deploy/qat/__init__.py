"""Quantization-aware training (``train --init CKPT --weight-bits N``): train the network on the
integer grid it is deployed on."""

from mlf_deploy.qat.forward import IntegerForward, IntGrid

__all__ = ["IntegerForward", "IntGrid"]

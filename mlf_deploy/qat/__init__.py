"""Quantization-aware fine-tuning: train the network on the integer grid it is deployed on."""

from mlf_deploy.qat.forward import IntegerForward, IntGrid, integer_logits

__all__ = ["IntegerForward", "IntGrid", "integer_logits"]

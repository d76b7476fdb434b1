"""The options of an export are checked when they are made, and the export reports what it wrote."""

import pytest

from mlf_deploy.errors import UserError
from mlf_deploy.workflows.export_checkpoint import export_checkpoint
from mlf_deploy.workflows.options import ExportOptions, VerifyOptions


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(target="ir", mode="step"), "mode=step applies to target=onnx only"),
    (dict(target="lava", logits_only=True), "logits_only applies to target=onnx"),
    (dict(as_float=True, weight_bits=4), "weight_bits=4 sets the integer graph's width"),
    (dict(target="nir", spikes="graded"), "NIR has no graded-spike neuron"),
    (dict(target="xml"), "unknown export target 'xml'"),
])
def test_bad_export_options_are_refused_when_made(kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        ExportOptions(**kwargs)


def test_bad_verify_options_are_refused_when_made():
    with pytest.raises(UserError, match="chunk must be at least 1 sample, got 0"):
        VerifyOptions(chunk=0)
    with pytest.raises(UserError, match="tolerance is a fraction"):
        VerifyOptions(tolerance=5)


def test_a_dequantised_nir_export_says_so(ckpt, tmp_path):
    pytest.importorskip("nir")
    info = export_checkpoint(ckpt, tmp_path / "d.nir", ExportOptions("nir", nir_dequantised=True))
    assert info["numeric"].startswith("int-dequantised") and "quantization" in info
    info = export_checkpoint(ckpt, tmp_path / "f.nir", ExportOptions("nir"))
    assert info["numeric"] == "float" and "quantization" not in info

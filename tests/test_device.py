"""``--device``: the plumbing on the CPU, one error line without CUDA, and (when a GPU is present)
the integer reference and the torch model on the integer grid bit for bit the CPU's."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.commands.app import main
from mlf_deploy.device import resolve_device
from mlf_deploy.errors import UserError
from mlf_deploy.ir.reference import ReferenceSimulator
from mlf_deploy.qat import IntegerForward, IntGrid
from mlf_deploy.workflows.options import VerifyOptions
from mlf_deploy.workflows.pipeline import load_pipeline
from mlf_deploy.workflows.verify import verify

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device: the GPU half of --device is "
                                "checked by benchmarks/gpu_check.sh on a GPU machine")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_same_run(a, b):
    assert a.spikes.keys() == b.spikes.keys() and a.states.keys() == b.states.keys()
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name], err_msg=name)
        np.testing.assert_array_equal(a.states[name], b.states[name], err_msg=name)
    np.testing.assert_array_equal(a.logits, b.logits)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    with pytest.raises(UserError, match="device must be one of"):
        resolve_device("tpu")


@pytest.mark.skipif(CUDA, reason="checks the error given when there is no CUDA device")
@pytest.mark.parametrize("cmd", [["verify", "{ckpt}"], ["energy", "{ckpt}"],
                                 ["evaluate", "{ckpt}"], ["run", "{ckpt}", "--input", "{ckpt}"],
                                 ["finetune", "{ckpt}", "--weight-bits", "4", "--out", "{tmp}/ft"]])
def test_cuda_without_cuda_is_one_error_line(ckpt, tmp_path, cmd):
    res = run(*[c.format(ckpt=ckpt, tmp=tmp_path) for c in cmd], "--device", "cuda")
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith("error: --device cuda: torch sees no CUDA device"), lines[0]
    assert not (tmp_path / "ft").exists()


def test_rounded_float64_projections_equal_the_cpu_path(small_model):
    """The GPU's arithmetic for int graphs (float64 projections rounded to integers), run on the
    CPU, against the CPU's own (float32 where exact): every spike and membrane equal."""
    _, graph_int = make_graphs(small_model)
    x = sample_input(6)
    cpu = ReferenceSimulator(graph_int).run(x)
    gpu_way = ReferenceSimulator(graph_int, rounded=True).run(x)
    assert_same_run(cpu, gpu_way)
    assert sum(int(s.sum()) for s in cpu.spikes.values()) > 0


def test_verify_with_device_cpu(ckpt):
    """The device reaches every torch backend: a verify on ``device='cpu'`` and the CLI option."""
    pipe = load_pipeline(ckpt, device="cpu")
    assert pipe.device == torch.device("cpu")
    summary = verify(pipe, ["torch", "ir-float", "ir-int", "torch-int"], VerifyOptions(samples=4))
    assert summary["passed"], summary
    res = run("verify", ckpt, "--samples", "3", "--device", "auto")
    assert res.exit_code == 0 and "PASSED" in res.output, res.output


@needs_cuda
def test_integer_reference_on_cuda_is_bit_exact(small_model):
    _, graph_int = make_graphs(small_model)
    x = sample_input(6)
    assert_same_run(ReferenceSimulator(graph_int).run(x),
                    ReferenceSimulator(graph_int, device="cuda").run(x))


@needs_cuda
def test_torch_int_on_cuda_is_bit_exact(small_model):
    _, graph_int = make_graphs(small_model)
    q = graph_int.metadata["quantization"]
    grid = IntGrid.of(small_model, q["weight_bits"], graph_int.input.encoding, q["input_max"])
    x = sample_input(6)
    runs = []
    for device in ("cpu", "cuda"):
        fwd = IntegerForward(make_model().to(device).eval(), grid, record=True)
        with torch.no_grad():
            logits = fwd(x).cpu().numpy()
        runs.append((fwd.spikes, fwd.states, logits))
    for name in runs[0][0]:
        np.testing.assert_array_equal(runs[0][0][name], runs[1][0][name], err_msg=name)
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name], err_msg=name)
    np.testing.assert_array_equal(runs[0][2], runs[1][2])

"""Bounded runs: verify chunk by chunk reports what one chunk reports; the input range comes from
the checkpoint, not the training split; the int graph is made only when something uses it."""

import json

import numpy as np
import pytest
from conftest import write_checkpoint

from mlf_deploy.checkpoint import read_checkpoint
from mlf_deploy.data import dataset_spec, load_split
from mlf_deploy.data.ranges import split_range, tensor_range
from mlf_deploy.data.streaming import TensorSplit
from mlf_deploy.errors import UserError
from mlf_deploy.ir import graph_checksum
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import parse_population
from mlf_deploy.qat.finetune import FinetuneConfig, finetune
from mlf_deploy.results import RunResult
from mlf_deploy.verification.tally import Tally
from mlf_deploy.workflows import pipeline
from mlf_deploy.workflows.options import VerifyOptions
from mlf_deploy.workflows.pipeline import load_pipeline
from mlf_deploy.workflows.verify import CHUNK_ENV, verify

BACKENDS = ["ir-float", "ir-int", "onnx-float", "onnx-int", "ir-int-graded", "torch-int"]


def _without_timing(summary: dict) -> dict:
    out = json.loads(json.dumps(summary))
    out.pop("chunk")
    for rep in out["backends"].values():
        rep.pop("seconds")
    return out


def test_verify_in_chunks_reports_what_one_chunk_reports(ckpt, monkeypatch):
    whole = verify(load_pipeline(ckpt), BACKENDS, VerifyOptions(samples=11, chunk=11))
    chunked = verify(load_pipeline(ckpt), BACKENDS, VerifyOptions(samples=11, chunk=3))
    assert (whole["chunk"], chunked["chunk"], chunked["samples"]) == (11, 3, 11)
    assert _without_timing(chunked) == _without_timing(whole)
    assert whole["backends"]["ir-int"]["spike_mismatches"] > 0  # something to sum and locate
    assert whole["backends"]["ir-int"]["statistics"]["task"]["samples"] == 11
    monkeypatch.setenv(CHUNK_ENV, "4")
    assert verify(load_pipeline(ckpt), ["ir-float"], VerifyOptions(samples=5))["chunk"] == 4
    monkeypatch.setenv(CHUNK_ENV, "four")
    with pytest.raises(UserError, match=CHUNK_ENV):
        verify(load_pipeline(ckpt), ["ir-float"], VerifyOptions(samples=5))


def test_chunked_counts_equal_a_whole_run_compared_directly(ckpt):
    """The tally against numpy on the whole run's arrays, computed without verify."""
    pipe = load_pipeline(ckpt)
    x, y = pipe.data("test", 10)
    ref, got = run_reference(pipe.graph_float, x), run_reference(pipe.graph_int, x)
    rep = verify(pipe, ["ir-int"], VerifyOptions(samples=10, chunk=4))["backends"]["ir-int"]
    diffs = {p: got.spikes[p] != s for p, s in ref.spikes.items()}
    assert rep["spike_mismatches"] == sum(int(d.sum()) for d in diffs.values())
    assert rep["spike_total"] == sum(d.size for d in diffs.values())
    first_pop = next(p for p, d in diffs.items() if d.any())
    t, *idx = (int(i) for i in np.argwhere(diffs[first_pop])[0])
    assert rep["first_mismatch"] == {"layer": parse_population(first_pop)[0],
                                     "level": parse_population(first_pop)[1],
                                     "timestep": t, "index": idx}
    for row in rep["populations"]:
        assert row["firing_rate"] == float(got.spikes[row["population"]].mean())
    pred = got.logits.argmax(1)
    assert rep["top1_disagreements_vs_ref"] == int((pred != ref.logits.argmax(1)).sum())
    assert rep["accuracy"] == float((pred == y.numpy()).mean())
    right, ref_right = pred == y.numpy(), ref.logits.argmax(1) == y.numpy()
    assert rep["ref_only_correct"] == int((ref_right & ~right).sum())
    assert rep["only_correct"] == int((right & ~ref_right).sum())


def _run(spikes: dict, logits) -> RunResult:
    return RunResult("x", "int", spikes, {}, np.asarray(logits, dtype=np.float64))


def test_first_mismatch_is_the_unchunked_one_when_a_later_chunk_has_an_earlier_population():
    zeros = np.zeros((2, 1, 1, 1, 1), np.uint8)
    hit = zeros.copy()
    hit[1, 0] = 1
    ref = {"l/L0": zeros, "l/L1": zeros}
    chunks = [({"l/L0": zeros, "l/L1": hit}, 0), ({"l/L0": hit, "l/L1": zeros}, 1)]
    tally = Tally("b", "r", 8)
    for spikes, offset in chunks:
        results = {"torch": _run(ref, [[0, 1]]), "r": _run(ref, [[0, 1]])}
        tally.add(_run(spikes, [[0, 1]]), results, np.array([1]), offset, 0.0)
    rep = tally.report()
    layer, level = parse_population("l/L0")
    assert rep.first_mismatch == {"layer": layer, "level": level, "timestep": 1,
                                  "index": [1, 0, 0, 0]}
    assert (rep.spike_mismatches, rep.spike_total, rep.samples) == (2, 8, 2)


def test_input_range_from_the_checkpoint_gives_the_same_graphs(tmp_path, monkeypatch):
    old = write_checkpoint(tmp_path / "old.pt")
    spec = load_pipeline(old).spec
    stored = write_checkpoint(tmp_path / "new.pt",
                              input=tensor_range(load_split(spec, "train")[0]))
    from_split = load_pipeline(old)

    def no_training_split(real):
        def read(spec, split, data_dir=None):
            assert split != "train", "read the training split although the checkpoint has the range"
            return real(spec, split, data_dir)
        return read

    monkeypatch.setattr(pipeline, "load_split", no_training_split(pipeline.load_split))
    monkeypatch.setattr(pipeline, "open_split", no_training_split(pipeline.open_split))
    from_ckpt = load_pipeline(stored)
    assert from_ckpt.input_max == from_split.input_max
    assert graph_checksum(from_ckpt.graph_float) == graph_checksum(from_split.graph_float)
    assert graph_checksum(from_ckpt.graph_int) == graph_checksum(from_split.graph_int)
    # the test split still reads
    assert verify(from_ckpt, ["ir-int"], VerifyOptions(samples=4))["samples"] == 4


def test_a_range_read_in_batches_equals_the_whole_split():
    for name in ("digits", "digits-events"):
        x, y = load_split(dataset_spec(name), "train")
        assert split_range(TensorSplit(x, y), batch_size=100) == tensor_range(x)
    with pytest.raises(UserError, match="empty"):
        split_range(TensorSplit(x[:0], y[:0]))


@pytest.mark.parametrize("change,match", [
    (dict(shape=[3, 8, 8]), "input shape"), (dict(timesteps=4), "input timesteps"),
    (dict(min=[float("nan")]), "input min/max"), (dict(min=[9.0], max=[1.0]), "input min/max"),
    (dict(extra=1), "'input' must hold exactly"),
])
def test_checkpoint_schema_refuses_a_bad_input_range(tmp_path, change, match):
    good = tensor_range(load_split(dataset_spec("digits"), "train")[0])
    path = write_checkpoint(tmp_path / "bad.pt", input={**good, **change})
    with pytest.raises(UserError, match=match):
        load_pipeline(path)


def test_finetune_stores_the_range_of_a_checkpoint_without_one(tmp_path):
    src = write_checkpoint(tmp_path / "src.pt")
    finetune(FinetuneConfig(str(src), str(tmp_path / "ft"), weight_bits=6, epochs=1,
                            max_samples=32), progress=False, log=lambda *_: None)
    out = read_checkpoint(tmp_path / "ft" / "checkpoint.pt")
    assert out["input"] == tensor_range(load_split(out["dataset"], "train")[0])


def test_float_work_never_quantizes(ckpt, tmp_path, monkeypatch):
    from mlf_deploy.workflows.export_checkpoint import export_checkpoint
    from mlf_deploy.workflows.options import ExportOptions

    def refuse(*a, **k):
        raise AssertionError("quantized for a float-only command")

    monkeypatch.setattr(pipeline, "quantize", refuse)
    export_checkpoint(ckpt, tmp_path / "f.mlfg", ExportOptions(as_float=True))
    summary = verify(load_pipeline(ckpt), ["ir-float", "onnx-float"], VerifyOptions(samples=3))
    assert summary["passed"]
    with pytest.raises(AssertionError, match="quantized"):
        _ = load_pipeline(ckpt).graph_int


@pytest.mark.slow
@pytest.mark.lava
def test_lava_chunks_are_whole_lava_runs(ckpt, monkeypatch):
    """A forced chunk of 2 rounds up to one Lava run's 8 samples: 9 samples start 2 Lava runs,
    as unchunked, not 5; and the chunked Lava report is exact against ir-int."""
    from mlf_deploy.exporters.lava.lava_import import lava_available
    if not lava_available():
        pytest.skip("lava-nc is not installed")
    from mlf_deploy.runtimes import lava

    started = []
    real = lava.run_chunk

    def counting(graph, frames, *args, **kwargs):
        started.append(frames.shape[1])
        return real(graph, frames, *args, **kwargs)

    monkeypatch.setattr(lava, "run_chunk", counting)
    summary = verify(load_pipeline(ckpt), ["lava-fixed"], VerifyOptions(samples=9, chunk=2))
    assert summary["chunk"] == 8 and started == [8, 1]
    rep = summary["backends"]["lava-fixed"]
    assert rep["within_tolerance"] and rep["spike_total"] > 0 and rep["state_mismatches"] == 0

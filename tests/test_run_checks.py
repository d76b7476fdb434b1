"""`mlf-deploy run` checks its samples against the artifact's recorded input pipeline (one error
line naming the problem, `--trust-input` to override the units), reads .npz and label files, and
scores a labelled set with a confidence interval."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mlf_deploy.commands.app import main
from mlf_deploy.data.static import digits_arrays
from mlf_deploy.verification.agreement import clopper_pearson
from mlf_deploy.workflows.pipeline import load_pipeline


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def artifacts(ckpt, tmp_path_factory):
    folder = tmp_path_factory.mktemp("artifacts")
    for kind, name in [("onnx", "m.onnx"), ("ir", "g.mlfg")]:
        assert run("export", ckpt, "--to", kind, "-o", folder / name).exit_code == 0
    raw, labels = digits_arrays(load_pipeline(ckpt).spec, "test")
    return folder, raw[:20, None].astype(np.float64), labels[:20]


def one_error(res, fragment):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("name", ["m.onnx", "g.mlfg"])
@pytest.mark.parametrize("change,fragment", [
    (lambda x: x / 16.0, "scaled to 0..1, but this model takes scikit-learn digits pixel values"),
    (lambda x: x * 255.0 / 16.0, "holds values 0..255; this model takes scikit-learn digits"),
    (lambda x: np.where(x > 8, np.nan, x), "NaN"),
    (lambda x: np.where(x > 8, np.inf, x), "infinite"),
    (lambda x: x.astype(np.complex128), "complex"),
    (lambda x: np.moveaxis(x, 1, -1), "shape (20, 8, 8, 1)"),
    (lambda x: x[:, 0], "this model takes (B, 1, 8, 8)"),
])
def test_inputs_that_do_not_match_the_recorded_pipeline(artifacts, tmp_path, name, change,
                                                        fragment):
    folder, raw, _ = artifacts
    np.save(tmp_path / "x.npy", change(raw))
    one_error(run("run", folder / name, "--input", tmp_path / "x.npy"), fragment)


def test_trust_input_runs_other_units_but_never_nan(artifacts, tmp_path):
    folder, raw, _ = artifacts
    np.save(tmp_path / "scaled.npy", raw / 16.0)
    res = run("run", folder / "m.onnx", "--input", tmp_path / "scaled.npy", "--trust-input")
    assert res.exit_code == 0, res.output
    np.save(tmp_path / "nan.npy", np.full_like(raw, np.nan))
    one_error(run("run", folder / "m.onnx", "--input", tmp_path / "nan.npy", "--trust-input"),
              "NaN")


@pytest.mark.parametrize("name", ["m.onnx", "g.mlfg"])
def test_labels_give_accuracy_with_an_interval(artifacts, tmp_path, name):
    folder, raw, labels = artifacts
    np.save(tmp_path / "x.npy", raw)
    (tmp_path / "labels.txt").write_text("\n".join(str(int(v)) for v in labels))
    res = run("run", folder / name, "--input", tmp_path / "x.npy", "--labels",
              tmp_path / "labels.txt", "--batch-size", "7", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.splitlines()[-1])
    correct = int((np.array(out["predictions"]) == labels).sum())
    assert out["correct"] == correct and out["accuracy"] == correct / 20
    low, high = clopper_pearson(correct, 20)
    assert out["accuracy_ci95"] == [low, high] and low < correct / 20 <= high
    assert f"accuracy {correct / 20:.4f} ({correct} of 20), 95 % CI" in res.stdout
    # the same samples and labels in one .npz give the same answer
    np.savez(tmp_path / "set.npz", x=raw, y=labels)
    res_npz = run("run", folder / name, "--input", tmp_path / "set.npz", "--json")
    assert json.loads(res_npz.stdout.splitlines()[-1])["accuracy"] == out["accuracy"]


def test_bad_label_files(artifacts, tmp_path):
    folder, raw, labels = artifacts
    np.save(tmp_path / "x.npy", raw)
    np.save(tmp_path / "short.npy", labels[:5])
    np.save(tmp_path / "big.npy", labels + 10)
    (tmp_path / "words.txt").write_text("cat dog")
    np.savez(tmp_path / "unnamed.npz", a=raw, b=labels)
    for extra, fragment in [(["--labels", tmp_path / "short.npy"], "5 labels for 20 samples"),
                            (["--labels", tmp_path / "big.npy"], "classes 0..9"),
                            (["--labels", tmp_path / "words.txt"], "whole-number class")]:
        one_error(run("run", folder / "m.onnx", "--input", tmp_path / "x.npy", *extra), fragment)
    one_error(run("run", folder / "m.onnx", "--input", tmp_path / "unnamed.npz"),
              "name the samples")


def test_recording_onnx_runs_in_batches_that_fit(artifacts, tmp_path, monkeypatch):
    from mlf_deploy.runtimes import onnx_standalone
    from mlf_deploy.workflows.options import RunOptions
    from mlf_deploy.workflows.run_artifact import run_artifact

    folder, raw, _ = artifacts
    np.save(tmp_path / "x.npy", raw)
    sess, _ = onnx_standalone.open_model(str(folder / "m.onnx"))  # records spikes and membranes
    per_sample = sum(8 * int(np.prod([d for d in o.shape if isinstance(d, int)]))
                     for o in sess.get_outputs())
    assert per_sample > 8 * 10  # more than the logits: the budget, not 32, sets the batch
    whole = run_artifact(folder / "m.onnx", tmp_path / "x.npy", RunOptions(batch_size=20))
    monkeypatch.setattr(onnx_standalone, "RECORD_BUDGET", 3 * per_sample)
    assert onnx_standalone.batch_size_for(sess) == 3
    batched = run_artifact(folder / "m.onnx", tmp_path / "x.npy")  # batches of 3
    np.testing.assert_array_equal(np.asarray(batched["logits"]), np.asarray(whole["logits"]))

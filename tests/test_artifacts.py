"""Artifacts a user can take elsewhere: each carries its input pipeline, `mlf-deploy run` takes
raw samples to classes for every kind, and a numpy + onnxruntime script needs nothing of ours."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from mlf_deploy.commands.app import main
from mlf_deploy.data.static import digits_arrays
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.workflows.pipeline import load_pipeline

STANDALONE = Path(__file__).resolve().parents[1] / "runtimes" / "onnx_standalone.py"
PORTABLE = Path(__file__).resolve().parents[1] / "mlf_deploy" / "ir" / "portable.py"
OURS = {"mlf_deploy", "runtimes", "exporters", "cli", "torch"}


def standalone_imports(path) -> set:
    """Top-level names a script imports when run as a copy: all but its ``if __package__:``
    branch, which only the package takes."""
    tree = ast.parse(path.read_text())
    package_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                    and isinstance(node.test, ast.Name) and node.test.id == "__package__"
                    for stmt in node.body for n in ast.walk(stmt)}
    imported = set()
    for node in ast.walk(tree):
        if id(node) in package_only:
            continue
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    return imported


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def raw_digits(ckpt, tmp_path_factory):
    """The first 12 raw test images (pixel values 0..16) and the integer graph's classes for them,
    computed from the checkpoint's own (torch) normalisation of the same samples."""
    pipe = load_pipeline(ckpt)
    raw = digits_arrays(pipe.spec, "test")[0][:12, None]  # (B, 1, 8, 8)
    x, _ = pipe.data("test", 12)
    path = tmp_path_factory.mktemp("raw") / "digits.npy"
    np.save(path, raw)
    return path, run_reference(pipe.graph_int, x).logits.argmax(1).tolist(), pipe


def test_every_artifact_carries_the_input_pipeline(ckpt, tmp_path, raw_digits):
    _, _, pipe = raw_digits
    assert run("export", ckpt, "--to", "onnx", "-o", tmp_path / "m.onnx").exit_code == 0
    meta = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    desc = json.loads(meta["input_pipeline"])
    channels = len(desc["normalise"]["mean"])  # one value per channel, as the Input holds it
    for key in ("mean", "std"):
        want = np.broadcast_to(pipe.spec[key], (channels,)).tolist()
        assert desc["normalise"][key] == pytest.approx(want)
    assert desc["encoding"] == "static" and desc["timesteps"] == pipe.graph_int.timesteps
    assert desc["input_scale"] == pipe.graph_int.input.scale
    assert desc["input_value_bits"] == pipe.graph_int.input.value_bits \
        == int(meta["input_value_bits"])
    assert json.loads(meta["class_names"]) == [str(i) for i in range(10)]
    assert run("export", ckpt, "-o", tmp_path / "g.mlfg").exit_code == 0
    from mlf_deploy.ir import load_graph
    assert load_graph(tmp_path / "g.mlfg").metadata["input_pipeline"]["dataset"] == "digits"


ARTIFACTS = [("ir", []), ("onnx", ["--mode", "step"]), ("onnx", ["--mode", "sequence"])]


def exported(ckpt, tmp_path, kind, args):
    out = tmp_path / ("model.onnx" if kind == "onnx" else "graph.mlfg")
    assert run("export", ckpt, "--to", kind, *args, "-o", out).exit_code == 0
    return out


@pytest.mark.parametrize("kind,args", ARTIFACTS)
def test_run_takes_raw_values_to_classes(ckpt, tmp_path, raw_digits, kind, args):
    raw_path, expected, _ = raw_digits
    out = exported(ckpt, tmp_path, kind, args)
    res = run("run", out, "--input", raw_path, "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout.splitlines()[-1])
    assert got["predictions"] == expected and got["classes"] == [str(p) for p in expected]
    assert "sample 0: class" in res.stdout


@pytest.mark.parametrize("kind,args", ARTIFACTS)
def test_run_in_batches_equals_one_batch(ckpt, tmp_path, raw_digits, kind, args):
    from mlf_deploy.workflows.options import RunOptions
    from mlf_deploy.workflows.run_artifact import run_artifact

    raw_path, expected, _ = raw_digits
    out = exported(ckpt, tmp_path, kind, args)
    whole = run_artifact(out, raw_path, RunOptions(batch_size=len(expected)))
    # 12 samples: batches of 5, 5 and 2
    batched = run_artifact(out, raw_path, RunOptions(batch_size=5))
    assert batched["predictions"] == whole["predictions"] == expected
    np.testing.assert_array_equal(np.asarray(batched["logits"]), np.asarray(whole["logits"]))


def test_standalone_onnx_script_imports_nothing_of_ours(ckpt, tmp_path, raw_digits):
    raw_path, expected, pipe = raw_digits
    assert standalone_imports(STANDALONE) == {"argparse", "json", "os", "sys", "numpy",
                                              "onnxruntime", "portable"}
    assert standalone_imports(PORTABLE) <= {"__future__", "hashlib", "io", "json", "zipfile",
                                            "types", "numpy"}
    model = tmp_path / "int.onnx"
    assert run("export", ckpt, "--to", "onnx", "-o", model).exit_code == 0
    from mlf_deploy.runtimes.onnx import run_onnx_file
    x, _ = pipe.data("test", 12)
    onnx_int = run_onnx_file(model, pipe.graph_int, x).logits.argmax(1).tolist()
    assert onnx_int == expected
    script = tmp_path / "predict.py"  # copies beside the model, as a user would take them
    shutil.copy(STANDALONE, script)
    shutil.copy(PORTABLE, tmp_path / "portable.py")
    probe = ("import runpy, sys; sys.argv = sys.argv[1:]; "
             "code = 0\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code\n"
             f"ours = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(OURS)!r})\n"
             "print(repr(ours), file=sys.stderr)\nsys.exit(code)")
    proc = subprocess.run([sys.executable, "-I", "-c", probe, str(script), str(model), "--input",
                           str(raw_path), "--json"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]"  # no module of ours was loaded
    assert json.loads(proc.stdout.splitlines()[-1])["predictions"] == onnx_int


def test_run_bad_input_is_one_error_line(ckpt, tmp_path, raw_digits):
    assert run("export", ckpt, "--to", "onnx", "-o", tmp_path / "m.onnx").exit_code == 0
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 8, 8)))
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 8, 8)))
    for artifact, inp, fragment in [(tmp_path / "m.onnx", tmp_path / "wrong.npy",
                                     "takes (B, 1, 8, 8)"),
                                    (tmp_path / "m.onnx", tmp_path / "empty.npy", "no samples"),
                                    (tmp_path / "nothing", tmp_path / "wrong.npy",
                                     "does not exist"),
                                    (tmp_path / "m.onnx", tmp_path / "nope.npy", "nope.npy")]:
        res = run("run", artifact, "--input", inp)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("target", ["ir", "lava"])
def test_mode_is_refused_outside_onnx(ckpt, tmp_path, target):
    res = run("export", ckpt, "--to", target, "--mode", "step", "-o", tmp_path / "out")
    assert res.exit_code == 2 and "--mode step applies to --to onnx only" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_run_a_lava_folder_with_progress(ckpt, tmp_path, raw_digits):
    from mlf_deploy.exporters.lava.lava_import import lava_available
    if not lava_available():
        pytest.skip("lava-nc is not installed")
    raw_path, expected, _ = raw_digits
    np.save(tmp_path / "two.npy", np.load(raw_path)[:2])
    assert run("export", ckpt, "--to", "lava", "-o", tmp_path / "lava").exit_code == 0
    assert json.loads((tmp_path / "lava" / "input.json").read_text())["class_names"][3] == "3"
    res = run("run", tmp_path / "lava", "--input", tmp_path / "two.npy", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["predictions"] == expected[:2]
    assert "lava: samples 1-2 of 2" in res.stderr and "Lava processes ran in" in res.stderr


def test_logits_only_onnx_runs_the_same_and_is_refused_by_verify(ckpt, tmp_path, raw_digits):
    from mlf_deploy.workflows.run_artifact import run_artifact

    raw_path, expected, _ = raw_digits
    full, lean = tmp_path / "full.onnx", tmp_path / "lean.onnx"
    assert run("export", ckpt, "--to", "onnx", "-o", full).exit_code == 0
    assert run("export", ckpt, "--to", "onnx", "--logits-only", "-o", lean).exit_code == 0
    assert [o.name for o in onnx.load(lean).graph.output] == ["logits"]
    assert len(onnx.load(lean).graph.node) < len(onnx.load(full).graph.node)
    a, b = run_artifact(full, raw_path), run_artifact(lean, raw_path)
    assert a["predictions"] == b["predictions"] == expected
    np.testing.assert_array_equal(np.asarray(a["logits"]), np.asarray(b["logits"]))
    res = run("verify", ckpt, "--onnx", lean, "--samples", "2")
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "--logits-only" in lines[0], res.output
    for args in (["--to", "ir"], ["--to", "onnx", "--mode", "step"]):
        res = run("export", ckpt, *args, "--logits-only", "-o", tmp_path / "x")
        assert res.exit_code == 2 and "--logits-only" in res.stderr, res.output

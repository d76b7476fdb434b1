"""Checkpoints, ONNX files and data files a user is handed: each bad one is one `error:` line naming
the file and field, exit 2, nothing written, no code from the file run."""

import os
import pickle

import numpy as np
import onnx
import pytest
import torch
from conftest import TINY_ARGS, make_graphs, make_model, write_checkpoint
from tamper import one_error, run

from mlf_deploy.data import dataset_spec, load_split
from mlf_deploy.errors import UserError
from mlf_deploy.exporters.onnx.export import export_onnx
from mlf_deploy.exporters.onnx.validate import OPS


def test_a_text_file_as_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("hello\n")
    one_error(run("export", bad, "--to", "ir", "-o", tmp_path / "y.mlfg"), "not a readable")
    one_error(run("energy", bad), "not a readable")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_text("hello\n")
    one_error(run("train", "--out", tmp_path / "run", "--resume", "--no-progress"),
              "not a readable")
    assert not (tmp_path / "y.mlfg").exists()


def _weights(fill):
    state = make_model().state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 4)
    state[key] = state[key].clone()
    state[key][0] = fill
    return state


def _events_spec_without(key):
    spec = dataset_spec("digits-events", seed=0)
    del spec[key]
    return spec


BAD_CHECKPOINTS = {  # name: (changes to the checkpoint dict, fragment of the error)
    "NaN weights": (lambda: dict(state_dict=_weights(float("nan"))), "NaN or infinite"),
    "inf weights": (lambda: dict(state_dict=_weights(float("inf"))), "NaN or infinite"),
    "huge timesteps": (lambda: dict(model_args={**TINY_ARGS, "timesteps": 10 ** 9}), "'timesteps'"),
    "levels a string": (lambda: dict(model_args={**TINY_ARGS, "levels": "3"}), "'levels'"),
    "bad test fraction": (lambda: dict(dataset={**dataset_spec("digits"), "test_fraction": 5.0}),
                          "'test_fraction'"),
    "missing event keys": (lambda: dict(dataset=_events_spec_without("steps_per_saccade"),
                                        model_args={**TINY_ARGS, "in_channels": 2}),
                           "lacks 'steps_per_saccade'"),
    "string for a mapping": (lambda: dict(dataset="digits"), "'dataset' is not a mapping"),
    "model_args a list": (lambda: dict(model_args=[1, 2]), "'model_args' is not a mapping"),
    "classes disagree": (lambda: dict(model_args={**TINY_ARGS, "num_classes": 11}), "num_classes"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_bad_checkpoint_fields(tmp_path, case):
    changes, fragment = BAD_CHECKPOINTS[case]
    path = write_checkpoint(tmp_path / "c.pt", **changes())
    one_error(run("export", path, "--to", "ir", "-o", tmp_path / "y.mlfg"), fragment)
    assert not (tmp_path / "y.mlfg").exists()


def test_run_larger_than_memory_is_refused_before_it_starts(tmp_path, monkeypatch):
    path = write_checkpoint(tmp_path / "c.pt")
    monkeypatch.setattr("mlf_deploy.limits.available_memory", lambda: 2 ** 20)
    one_error(run("verify", path, "--samples", "64"), "use --samples")


# -- ONNX ------------------------------------------------------------------------------------------

def test_allowed_operators_are_exactly_what_the_exporter_emits():
    float_graph, int_graph = make_graphs(make_model())
    used = set()
    for graph, precision in ((float_graph, "float64"), (float_graph, "float32"),
                             (int_graph, "float64")):
        for mode in ("sequence", "step"):
            used |= {n.op_type for n in export_onnx(graph, mode, precision=precision).graph.node}
    assert used <= OPS, used - OPS


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.opset_import[0].__setattr__("version", 99), "opset"),
    (lambda m: m.opset_import.append(onnx.helper.make_opsetid("com.evil", 1)), "opset"),
    (lambda m: m.graph.node[0].__setattr__("domain", "com.evil"), "com.evil"),
    (lambda m: m.graph.node[0].__setattr__("op_type", "Loop"), "Loop"),
    (lambda m: onnx.helper.set_model_props(m, {"format": "mlf-deploy-onnx/1", "numeric": "int",
                                               "mode": "warp"}), "'mode'"),
])
def test_foreign_onnx_files(tmp_path, ckpt, change, fragment):
    good = tmp_path / "m.onnx"
    assert run("export", ckpt, "--to", "onnx", "-o", good).exit_code == 0
    model = onnx.load(str(good))
    change(model)
    onnx.save_model(model, str(tmp_path / "bad.onnx"))
    one_error(run("verify", ckpt, "--onnx", tmp_path / "bad.onnx", "--samples", "2"), fragment)


# -- CIFAR-10 python batches --------------------------------------------------------------------

def _cifar_dir(tmp_path, first_batch: bytes):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    good = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 9],
            b"batch_label": b"x", b"filenames": [b"a"] * 4}
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        (folder / name).write_bytes(first_batch if i == 0 else pickle.dumps(good, protocol=2))
    return tmp_path


class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_crafted_cifar_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Marker(marker), b"labels": [0]})
    data_dir = _cifar_dir(tmp_path, evil)
    one_error(run("train", "--dataset", "cifar10", "--data-dir", data_dir, "--epochs", "1",
                  "--out", tmp_path / "run", "--no-progress"), "data_batch_1")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("labels, data, fragment", [
    ([0, 12], np.zeros((2, 3072), np.uint8), "label 12"),
    ([], np.zeros((0, 3072), np.uint8), "no samples"),
    ([0], np.zeros((1, 3071), np.uint8), "(N, 3072)"),
    ([0, 1], np.zeros((1, 3072), np.uint8), "1 images but 2 labels"),
])
def test_cifar_batch_contents_are_checked(tmp_path, labels, data, fragment):
    batch = pickle.dumps({b"data": data, b"labels": labels}, protocol=2)
    spec = dataset_spec("cifar10", data_dir=str(_cifar_dir(tmp_path, batch)))
    with pytest.raises(UserError, match="data_batch_1") as err:
        load_split(spec, "train")
    assert fragment in str(err.value)


@pytest.mark.parametrize("protocol", [2, 4])
def test_genuine_cifar_batches_still_load(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = pickle.dumps({b"data": data, b"labels": [3, 7], b"batch_label": b"training batch 1",
                          b"filenames": [b"a.png", b"b.png"]}, protocol=protocol)
    spec = dataset_spec("cifar10", data_dir=str(_cifar_dir(tmp_path, batch)))
    x, y = load_split(spec, "train")
    assert x.shape == (2 + 4 * 4, 3, 32, 32) and y[:2].tolist() == [3, 7]
    mean, std = (torch.tensor(spec[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    expected = (torch.from_numpy(data[:1].reshape(1, 3, 32, 32)).float() / 255.0 - mean) / std
    assert torch.equal(x[:1], expected)


# -- DVS recordings -------------------------------------------------------------------------------

def _gesture_dir(tmp_path, columns: int, odd_label: int | None = None):
    """A DVS128 Gesture layout of tonic's: 10 users x labels 0..9, each a few (x, y, p, t_ms)
    rows."""
    root = tmp_path / "DVSGesture"
    (root / "ibmGestureTrain").mkdir(parents=True)
    (root / "ibmGestureTrain.tar.gz").write_bytes(b"")
    rows = np.array([[1, 2, 1, 0], [3, 4, 0, 5], [5, 6, 1, 9]], np.int64)[:, :columns]
    for user in range(1, 11):
        folder = root / "ibmGestureTrain" / f"user{user:02d}_led"
        folder.mkdir()
        for label in range(10):
            odd = odd_label and user == 1 and label == 0
            np.save(folder / f"{odd_label if odd else label}.npy", rows)
    return tmp_path


@pytest.mark.parametrize("columns, odd_label, fragment", [
    (3, None, "not a readable dvs-gesture recording"),
    (4, 12, "12.npy: its place in the dvs-gesture layout gives no class label"),
])
def test_dvs_recordings_of_the_wrong_layout_or_label(tmp_path, columns, odd_label, fragment):
    spec = dataset_spec("dvs-gesture", data_dir=str(_gesture_dir(tmp_path, columns, odd_label)))
    with pytest.raises(UserError) as err:
        load_split(spec, "train")
    assert fragment in str(err.value), str(err.value)
    assert columns == 4 or ".npy" in str(err.value)

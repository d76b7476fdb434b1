"""Data sets: specs, splits, the digits event camera, and the offline error paths."""

import pickle

import numpy as np
import pytest
import torch

from mlf_deploy.data import DATASETS, dataset_spec, input_kind, load_split, model_input
from mlf_deploy.data.events import EVENT_DTYPE, digits_event_streams
from mlf_deploy.errors import UserError


def test_digits_split_is_seeded_stratified_and_normalised_on_train():
    spec = dataset_spec("digits", seed=3)
    x, y = load_split(spec, "train")
    xt, yt = load_split(spec, "test")
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(x) + len(xt) == 1797 and abs(len(xt) / 1797 - 0.2) < 0.01
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    assert np.bincount(yt.numpy()).min() >= 34  # stratified: every class present in test
    assert torch.equal(load_split(dataset_spec("digits", seed=3), "test")[0], xt)
    assert not torch.equal(load_split(dataset_spec("digits", seed=4), "test")[1], yt)
    assert input_kind(spec) == "static" and set(DATASETS) >= {"digits", "digits-events", "cifar10"}


def test_spec_is_json_primitives_and_rejects_unknowns():
    import json
    spec = dataset_spec("digits-events", seed=1, timesteps=6)
    assert json.loads(json.dumps(spec)) == spec and spec["timesteps"] == 6
    with pytest.raises(UserError, match="unknown dataset"):
        dataset_spec("mnist")
    with pytest.raises(UserError, match="no option"):
        dataset_spec("digits", timesteps=4)


def test_digits_events_are_tonic_structured_deterministic_integer_frames():
    spec = dataset_spec("digits-events", seed=0)
    streams, labels = digits_event_streams(spec, "test")
    assert streams[0].dtype == EVENT_DTYPE and set(np.unique(streams[0]["p"])) <= {0, 1}
    assert all(np.all(np.diff(s["t"]) >= 0) for s in streams[:20])
    x, y = load_split(spec, "test")
    assert x.shape == (len(labels), 4, 2, 8, 8) and torch.equal(y, torch.from_numpy(labels))
    assert torch.equal(x, x.round()) and x.min() >= 0
    # Every event lands in exactly one frame: the frame counts add up to the stream lengths.
    assert torch.equal(x.sum(dim=(1, 2, 3, 4)).long(), torch.tensor([len(s) for s in streams]))
    assert (x.sum(dim=(1, 2, 3, 4)) > 0).all() and x[:, :, 0].sum() > 0 and x[:, :, 1].sum() > 0
    assert torch.equal(load_split(dataset_spec("digits-events", seed=0), "test")[0], x)
    assert not torch.equal(load_split(dataset_spec("digits-events", seed=1), "test")[0][:5], x[:5])
    assert input_kind(spec) == "events"


def test_model_input_layout():
    xb = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).view(2, 3, 2, 4, 4)
    out = model_input(xb)
    assert out.shape == (3, 2, 2, 4, 4) and out.is_contiguous() and torch.equal(out[1, 0], xb[0, 1])
    static = torch.zeros(5, 1, 8, 8)
    assert model_input(static) is static


@pytest.mark.parametrize("name,fragment", [("dvs-gesture", "ibmGestureTrain.tar.gz"),
                                           ("cifar10-dvs", "CIFAR10DVS.zip"),
                                           ("nmnist", "train.zip"),
                                           ("cifar10", "data_batch_1")])
def test_missing_files_fail_fast_naming_them(tmp_path, name, fragment):
    spec = dataset_spec(name, data_dir=str(tmp_path))
    with pytest.raises(UserError, match=fragment):
        load_split(spec, "train")
    assert list(tmp_path.iterdir()) == []  # tonic never created its folder or downloaded anything
    with pytest.raises(UserError, match="data_dir=DIR"):
        load_split(dataset_spec(name), "train")


def _write_fake_cifar(root, n=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [(i + j) % 10 for j in range(n)], b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


def test_cifar10_reads_the_python_pickle_format(tmp_path):
    folder = _write_fake_cifar(tmp_path)
    spec = dataset_spec("cifar10", data_dir=str(tmp_path))
    x, y = load_split(spec, "train")
    xt, yt = load_split(spec, "test")
    assert x.shape == (30, 3, 32, 32) and xt.shape == (6, 3, 32, 32)
    assert y.tolist()[:6] == [0, 1, 2, 3, 4, 5] and yt.tolist()[0] == 5
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0].reshape(3, 32, 32)
    # Channel-major rows of 1024 bytes: red plane first, then the paper's Normalize constants.
    red = (torch.from_numpy(raw[0]).float() / 255 - 0.4914) / 0.2023
    assert torch.allclose(xt[0, 0], red, atol=1e-5)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="data_batch_3"):
        load_split(spec, "train")

"""The DVS loaders on small files in each set's exact on-disk format, malformed files, the split
rules, the frame cache, and streaming through DataLoader workers."""

import os

import numpy as np
import pytest
import torch

from mlf_deploy.data import dataset_spec, load_split, open_split, tonic_sets
from mlf_deploy.data.layouts import make_event_set
from mlf_deploy.data.streaming import batches
from mlf_deploy.errors import UserError

SETS = ["dvs-gesture", "cifar10-dvs", "nmnist"]


def expected_frames(spec, ev, layout_suffix):
    """Count frames computed from the written events with numpy alone (no tonic, no reader)."""
    t = (ev["t"] // 1000) * 1000 if layout_suffix == ".npy" else ev["t"]  # that format stores ms
    x = np.floor(ev["x"] * spec["spatial_factor"]).astype(int)
    y = np.floor(ev["y"] * spec["spatial_factor"]).astype(int)
    k = (t - t.min()) // spec["window_us"]
    keep = k < spec["timesteps"]
    out = np.zeros((spec["timesteps"], 2, spec["size"], spec["size"]), np.float32)
    np.add.at(out, (k[keep], ev["p"][keep], y[keep], x[keep]), 1)
    return out


@pytest.mark.parametrize("name", SETS)
def test_loader_reads_the_real_layout_without_its_archive(tmp_path, name):
    written = make_event_set(name, tmp_path, per_class=3, classes=3, events=400, seed=1)
    spec = dataset_spec(name, data_dir=str(tmp_path))
    train, test = open_split(spec, "train"), open_split(spec, "test")
    items = {str(p): (label, ev) for p, label, ev in written}
    assert len(train) + len(test) == len(written) and len(test) > 0
    suffix = tonic_sets.LAYOUTS[name].suffix
    for split in (train, test):
        for i in range(len(split)):
            x, label = split[i]
            want_label, ev = items[str(split.path(i))]
            assert label == want_label == int(split.labels[i])
            np.testing.assert_array_equal(x.numpy(), expected_frames(spec, ev, suffix))
    assert x.dtype == torch.float32 and x.shape == (spec["timesteps"], 2, spec["size"],
                                                    spec["size"])
    xs, ys = load_split(spec, "test")
    assert torch.equal(xs[-1], x) and torch.equal(ys, test.labels)


def test_cifar10_dvs_split_follows_each_class_count(tmp_path):
    make_event_set("cifar10-dvs", tmp_path, per_class=5, classes=2, events=50)
    spec = dataset_spec("cifar10-dvs", data_dir=str(tmp_path))
    train, test = open_split(spec, "train"), open_split(spec, "test")
    assert train.labels.tolist() == [0] * 4 + [1] * 4 and test.labels.tolist() == [0, 1]
    assert len(train.paths) and not set(train.paths) & set(test.paths)
    # A checkpoint of the old spec (900 per class) still gets a non-empty test split.
    old = {k: v for k, v in spec.items() if k != "test_fraction"} | {"train_per_class": 900}
    assert len(open_split(old, "test")) == 2
    (tmp_path / "CIFAR10DVS" / "bird").mkdir()
    (tmp_path / "CIFAR10DVS" / "automobile" / "cifar10_automobile_1.aedat4").unlink()
    for p in list((tmp_path / "CIFAR10DVS" / "automobile").iterdir())[:3]:
        p.unlink()
    with pytest.raises(UserError, match="'automobile' has 1 recording"):
        open_split(spec, "train")


@pytest.mark.parametrize("name,damage,fragment", [
    ("cifar10-dvs", lambda p: p.write_bytes(b"#!AER-DAT3.1\r\n" + p.read_bytes()[14:]), "magic"),
    ("cifar10-dvs", lambda p: p.write_bytes(p.read_bytes()[:-37]), "not a readable"),
    ("dvs-gesture", lambda p: np.save(p, np.zeros((5, 3), np.int32)), r"\(N, 4\)"),
    ("dvs-gesture", lambda p: p.write_bytes(b"garbage"), "not a readable"),
    ("nmnist", lambda p: p.write_bytes(p.read_bytes()[:-2]), "multiple of 5"),
    ("nmnist", lambda p: p.write_bytes(bytes([200, 3, 0, 0, 9])), "outside the 34x34"),
])
def test_malformed_recording_is_one_error_naming_the_file(tmp_path, name, damage, fragment):
    make_event_set(name, tmp_path, per_class=2, classes=2, events=100)
    dataset = open_split(dataset_spec(name, data_dir=str(tmp_path)), "train")
    list(batches(dataset, range(len(dataset)), 2))  # fills the cache with the good files
    victim = dataset.path(len(dataset) - 1)
    damage(victim)
    os.utime(victim, ns=(1, 1))  # a new mtime: the cache must not answer for the old file
    with pytest.raises(UserError, match=fragment) as info:
        for _ in batches(dataset, range(len(dataset)), 2, workers=0):
            pass
    assert str(victim) in str(info.value) and "\n" not in str(info.value)


def test_archive_without_extracted_files_says_extract(tmp_path):
    (tmp_path / "NMNIST").mkdir()
    (tmp_path / "NMNIST" / "train.zip").write_bytes(b"PK")
    with pytest.raises(UserError, match="train.zip is there but not extracted"):
        open_split(dataset_spec("nmnist", data_dir=str(tmp_path)), "train")
    make_event_set("nmnist", tmp_path / "other", per_class=1, classes=1, events=10)
    bad = tmp_path / "other" / "NMNIST" / "Train" / "x7" / "00000.bin"
    bad.parent.mkdir()
    bad.write_bytes(b"")
    with pytest.raises(UserError, match="x7/00000.bin: its place"):
        open_split(dataset_spec("nmnist", data_dir=str(tmp_path / "other")), "train")


def test_frame_cache_is_keyed_by_file_and_options(tmp_path, monkeypatch):
    make_event_set("nmnist", tmp_path, per_class=1, classes=2, events=300)
    spec = dataset_spec("nmnist", data_dir=str(tmp_path))
    first = open_split(spec, "train")
    x0 = first[0][0]
    cached = list(first.cache.folder.glob("*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).dtype == np.uint8
    calls = []
    real = tonic_sets.recording_frames
    monkeypatch.setattr(tonic_sets, "recording_frames", lambda *a: calls.append(a) or real(*a))
    assert torch.equal(first[0][0], x0) and calls == []  # served from the cache
    other = open_split(dataset_spec("nmnist", data_dir=str(tmp_path), timesteps=3), "train")
    assert other.cache.folder != first.cache.folder
    assert other[0][0].shape[0] == 3 and len(calls) == 1
    cached[0].write_bytes(b"torn")  # a damaged cache file is made again, not trusted
    assert torch.equal(first[0][0], x0) and len(calls) == 2
    monkeypatch.setenv("MLF_DEPLOY_CACHE", "off")
    assert open_split(spec, "train").cache is None


def test_workers_stream_the_same_batches_and_report_errors_in_one_line(tmp_path):
    make_event_set("nmnist", tmp_path, per_class=2, classes=3, events=200)
    dataset = open_split(dataset_spec("nmnist", data_dir=str(tmp_path), timesteps=2), "train")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    alone = list(batches(dataset, order, 4, workers=0))
    parallel = list(batches(dataset, order, 4, workers=2))
    assert len(alone) == 2 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                                   for a, b in zip(alone, parallel))
    dataset.path(3).write_bytes(b"12345678")
    os.utime(dataset.path(3), ns=(1, 1))
    with pytest.raises(UserError) as info:
        list(batches(dataset, order, 4, workers=2))
    assert str(info.value).startswith(str(dataset.path(3))) and "Traceback" not in str(info.value)


def _train(tmp_path, data_dir, workers, name):
    from mlf_deploy.training import TrainConfig, train
    return train(TrainConfig(dataset="nmnist", data_dir=str(data_dir), depth=8, widths=(2, 4, 4),
                             timesteps=2, epochs=1, batch_size=4, workers=workers, threads=1,
                             out_dir=str(tmp_path / name)), progress=False, log=lambda *a: None)


@pytest.mark.slow
def test_training_streams_an_event_set_the_same_with_or_without_workers(tmp_path):
    from mlf_deploy.checkpoint import load_model
    from mlf_deploy.training_files import weights_sha256

    make_event_set("nmnist", tmp_path / "data", per_class=2, classes=3, events=200)
    alone = _train(tmp_path, tmp_path / "data", 0, "alone")
    parallel = _train(tmp_path, tmp_path / "data", 2, "parallel")
    assert alone["test_accuracy"] == parallel["test_accuracy"] and alone["epochs"] == 1
    assert (weights_sha256(load_model(alone["checkpoint"])[0])
            == weights_sha256(load_model(parallel["checkpoint"])[0]))


def test_train_cli_names_a_malformed_recording_in_one_line(tmp_path):
    from click.testing import CliRunner

    from mlf_deploy.commands.app import main

    written = make_event_set("nmnist", tmp_path / "data", per_class=2, classes=2, events=50)
    written[2][0].write_bytes(b"\x01\x02\x03")
    res = CliRunner().invoke(main, ["train", "--dataset", "nmnist",
                                    "--data-dir", str(tmp_path / "data"),
                                    "--depth", "8", "--widths", "2,4,4", "--timesteps", "2",
                                    "--workers", "2", "--no-progress",
                                    "--out", str(tmp_path / "run")])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {written[2][0]} is not a readable nmnist recording")
    assert not (tmp_path / "run").exists()

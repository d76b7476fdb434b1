"""NIR files from others: nothing outside the file is read (external storage, soft and external
links), sizes are bounded before reading, and every malformed value is one ``error:`` line; the
importer never writes a graph file its own loader refuses."""

import json
import shutil

import numpy as np
import pytest
from tamper import one_error, run

h5py = pytest.importorskip("h5py")
pytest.importorskip("nir")

LIF = "/node/nodes/blocks_0_mlf1_L0"
CONV = "/node/nodes/blocks_0_mlf1_conv1_w0"


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    path = tmp_path_factory.mktemp("nir") / "model.nir"
    assert run("export", ckpt, "--to", "nir", "-o", path).exit_code == 0
    return path


def _copy(exported, tmp_path, edit) -> str:
    path = tmp_path / "hostile.nir"
    shutil.copyfile(exported, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _import_fails(path, tmp_path, fragment):
    out = tmp_path / "out.mlfg"
    one_error(run("import", path, "-o", out), fragment)
    assert not out.exists()


def test_external_storage_is_refused(exported, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(144, dtype=np.float64).tobytes())

    def edit(f):
        del f[CONV + "/weight"]
        f.create_dataset(CONV + "/weight", (4, 4, 3, 3), "<f8", external=[(str(secret), 0, 1152)])
    _import_fails(_copy(exported, tmp_path, edit), tmp_path, "another file")


@pytest.mark.parametrize("link", ["soft", "external"])
def test_links_are_refused(exported, tmp_path, link):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as g:
        g["w"] = np.ones((4, 4, 3, 3))

    def edit(f):
        del f[CONV + "/weight"]
        f[CONV + "/weight"] = h5py.SoftLink(LIF + "/tau") if link == "soft" else \
            h5py.ExternalLink(str(other), "/w")
    _import_fails(_copy(exported, tmp_path, edit), tmp_path, "Link")


def test_declared_sizes_are_bounded_before_reading(exported, tmp_path):
    def edit(f):
        del f[CONV + "/weight"]
        f.create_dataset(CONV + "/weight", (2 ** 32, 9),
                         "<f8", chunks=(1024, 9), compression="gzip")  # 288 GiB of fill value
    path = _copy(exported, tmp_path, edit)
    assert path.stat().st_size < 1_000_000
    _import_fails(path, tmp_path, "declare more than")


def test_deep_groups_are_refused_before_nir_recurses(exported, tmp_path):
    def edit(f):
        g = f["/node/nodes"].create_group("deep")
        for _ in range(1500):
            g = g.create_group("g")
    _import_fails(_copy(exported, tmp_path, edit), tmp_path, "deeper than")


def _replace(name, value):
    def edit(f):
        del f[name]
        f[name] = value
    return edit


@pytest.mark.parametrize("edit,fragment", [
    (_replace(CONV + "/type", "NoSuchPrimitive"), "not a readable NIR file"),
    (lambda f: f.__delitem__(CONV + "/stride"), "not a readable NIR file"),
    (_replace(CONV + "/weight", np.array(["w"] * 4, dtype="S8")), "NIR"),
    (_replace(CONV + "/weight", np.array(["w"] * 5000, dtype="S8")), "not numbers"),
    (_replace(LIF + "/tau", np.zeros((4, 8, 8))), "tau must be > 0"),
    (_replace(LIF + "/r", np.zeros((4, 8, 8))), "r must be > 0"),
    (_replace(LIF + "/v_threshold", np.full((4, 8, 8), np.nan)), "v_threshold must hold finite"),
])
def test_malformed_values_are_one_error(exported, tmp_path, edit, fragment):
    _import_fails(_copy(exported, tmp_path, edit), tmp_path, fragment)


@pytest.mark.parametrize("steps,fragment", [("abc", "timesteps"), (10 ** 9, "timesteps")])
def test_timesteps_in_the_file_are_checked(exported, tmp_path, steps, fragment):
    def edit(f):
        hint = json.loads(f["/node/metadata/mlf"][()])
        hint.setdefault("graph_metadata", {})["timesteps"] = steps
        del f["/node/metadata/mlf"]
        f["/node/metadata/mlf"] = json.dumps(hint)
    _import_fails(_copy(exported, tmp_path, edit), tmp_path, fragment)


def test_list_metadata_is_ignored_not_a_traceback(exported, tmp_path):
    def edit(f):
        del f[LIF + "/metadata"]
        f[LIF + "/metadata"] = np.array([1, 2, 3])
    path = _copy(exported, tmp_path, edit)
    res = run("import", path, "-o", tmp_path / "out.mlfg")
    assert "Traceback" not in res.output and res.exit_code in (0, 2), res.output
    if res.exit_code == 2:
        one_error(res, "NIR")

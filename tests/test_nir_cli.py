"""`mlf-deploy export --to nir` and `mlf-deploy import` end to end on a tiny digits checkpoint."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import make_model

from mlf_deploy.checkpoint import save_checkpoint
from mlf_deploy.commands.app import main
from mlf_deploy.data import dataset_spec
from mlf_deploy.ir import graph_checksum
from mlf_deploy.workflows.pipeline import load_pipeline

pytest.importorskip("nir")
ARGS = dict(depth=8, widths=(4, 8, 8), in_channels=1, num_classes=10, levels=3, timesteps=4,
            variant="ds")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    model = make_model(**{k: v for k, v in ARGS.items() if k != "depth"}, depth=8)
    save_checkpoint(path, {"model_args": ARGS, "state_dict": model.state_dict(),
                           "dataset": dataset_spec("digits", seed=0), "config": {}, "metrics": {},
                           "epoch": 0})
    return str(path)


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_export_import_verify_round_trip(ckpt, tmp_path):
    res = _invoke("export", ckpt, "--to", "nir", "--nir-target", "norse", "-o", tmp_path / "m.nir",
                  "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert (info["format"], info["nir_target"], info["numeric"]) == ("nir", "norse", "float")
    res = _invoke("import", tmp_path / "m.nir", "-o", tmp_path / "m.mlfg", "--json")
    assert res.exit_code == 0, res.output
    imported = json.loads(res.stdout.strip().splitlines()[-1])
    assert imported["checksum"] == graph_checksum(load_pipeline(ckpt).graph_float)
    res = _invoke("verify", ckpt, "--graph", tmp_path / "m.mlfg", "--backends", "torch,ir-float",
                  "--samples", 4)
    assert res.exit_code == 0, res.output


def test_dequantised_export_is_labelled_and_bad_input_is_one_line(ckpt, tmp_path):
    res = _invoke("export", ckpt, "--to", "nir", "--nir-dequantised", "-o", tmp_path / "q.nir",
                  "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["numeric"].startswith("int-dequantised")
    (tmp_path / "junk.nir").write_text("not hdf5")
    res = CliRunner().invoke(main, ["import", str(tmp_path / "junk.nir"), "-o",
                                    str(tmp_path / "g")])
    assert res.exit_code == 2 and res.output.startswith("error:") and "Traceback" not in res.output
    assert not (tmp_path / "g").exists()
    res = CliRunner().invoke(main, ["import", str(tmp_path / "missing.nir"), "-o",
                                    str(tmp_path / "g")])
    assert res.exit_code == 2 and "does not exist" in res.output

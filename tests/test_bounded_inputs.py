"""Sizes are bounded before anything is allocated, from headers and declared shapes, for every file
kind; every command that runs samples goes through one run-size check; a Lava network has a
process budget. Each case ends in one ``error:`` line."""

import io
import pickle
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY_ARGS, write_checkpoint
from tamper import npy, one_error, read_members, run, write_container

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph, Input, Layer, Population, Projection, Readout, save_graph


def chain_graph(layers: int, levels: int = 3, timesteps: int = 1, width: int = 1) -> Graph:
    """A legal float chain of ``layers`` layers of ``width`` neurons and ``levels`` populations."""
    nodes = {"input": Input("input", (1, 1, 1), "static", timesteps)}
    source = ["input"]
    for i in range(layers):
        name = f"l{i}"
        pops = [Population(f"{name}/L{k}", name, k, (width, 1, 1), 1.0 + k) for k in range(levels)]
        fan_in = 1 if i == 0 else width
        for j, s in enumerate(source):
            nodes[f"{name}.p{j}"] = Projection(f"{name}.p{j}", s, name, "dense",
                                               np.ones((width, fan_in)))
        nodes[name] = Layer(name, (width, 1, 1), np.zeros(width), tuple(p.name for p in pops))
        nodes.update({p.name: p for p in pops})
        source = [p.name for p in pops]
    nodes["readout"] = Readout("readout", tuple(source), np.ones((2, width)), np.zeros(2))
    return Graph(nodes, "float", {"levels": levels, "timesteps": timesteps})


def last_error(res, fragment):
    """Exit 2 and exactly one ``error:`` line (progress lines before it are fine), no traceback."""
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1 and fragment in errors[0], res.output
    assert "Traceback" not in res.output


def _peak_rss_mib(code: str, cwd) -> tuple[int, str]:
    """Run ``code`` in a fresh interpreter; (its peak RSS in MiB, its stderr)."""
    script = (code + "\nimport resource, sys\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=cwd, timeout=300)
    *rest, peak = done.stderr.strip().splitlines()
    return int(peak), "\n".join(rest)


def test_array_table_widening_is_bounded_before_any_array_is_made(tmp_path, small_graphs):
    path = tmp_path / "g.mlfg"
    save_graph(small_graphs[1], path)
    header, members = read_members(path)
    # one huge all-zero int8 member (compresses to almost nothing), widened by the table
    members["arrays/big.npy"] = npy(np.zeros(2 ** 28, np.int8))
    header["arrays"].update({f"x{i}": ["big", d] for i, d in enumerate(["<f8", "<i8", "<i4"])})
    write_container(header, members, tmp_path / "wide.mlfg")
    peak, err = _peak_rss_mib(
        "from mlf_deploy.ir import load_graph\nfrom mlf_deploy.errors import UserError\n"
        "try:\n load_graph('wide.mlfg')\nexcept UserError as e:\n import sys; print('error:', e,"
        " file=sys.stderr)", tmp_path)
    assert err.startswith("error:") and "array table" in err and peak < 1024, (peak, err)


@pytest.mark.parametrize("table", [[], {"a": "b"}, {"a": ["w", "<U8"]}])
def test_a_malformed_array_table_is_one_error(tmp_path, small_graphs, table):
    path = tmp_path / "g.mlfg"
    save_graph(small_graphs[1], path)
    header, members = read_members(path)
    header["arrays"] = table
    bad = write_container(header, members, tmp_path / "bad.mlfg")
    one_error(run("run", bad, "--input", _input(tmp_path)), "array table")


def _input(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8)))
    return tmp_path / "x.npy"


def test_checkpoint_model_args_are_bounded_before_the_model_is_built(tmp_path):
    write_checkpoint(tmp_path / "c.pt", model_args={**TINY_ARGS, "widths": [2048] * 3,
                                                           "depth": 38})
    peak, err = _peak_rss_mib(
        "from mlf_deploy.checkpoint import load_model\nfrom mlf_deploy.errors import UserError\n"
        "try:\n load_model('c.pt')\nexcept UserError as e:\n import sys; print('error:', e,"
        " file=sys.stderr)", tmp_path)
    assert err.startswith("error:") and "model arguments" in err and peak < 1024, (peak, err)


def test_cifar_batch_cannot_call_ndarray_directly(tmp_path):
    class Forged:
        def __reduce__(self):
            return (np.ndarray, ((2 ** 22, 3072), np.dtype("u1")))
    forged = {b"data": Forged(), b"labels": [0] * (2 ** 22)}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(forged, protocol=2))
    from mlf_deploy.data.cifar_pickle import read_cifar10_batch
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError, match="refused"):
        read_cifar10_batch(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 2 ** 20  # KiB: < 1 GiB
    real = {b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072), b"labels": [1, 2]}
    path.write_bytes(pickle.dumps(real, protocol=2))
    images, labels = read_cifar10_batch(path)
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [1, 2]
    assert np.array_equal(images.reshape(2, -1), real[b"data"])


def test_a_lying_npy_header_is_refused_before_allocating(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (640_000_000_000,)})
    path = tmp_path / "x.npy"
    path.write_bytes(buf.getvalue() + b"\0" * 16)  # 4.66 TiB declared, 16 bytes present
    one_error(run("run", _graph_file(tmp_path), "--input", path), "declares")


def _graph_file(tmp_path):
    path = tmp_path / "chain.mlfg"
    save_graph(chain_graph(2), path)
    return path


def test_lava_process_budget_refuses_a_legal_long_chain(monkeypatch):
    pytest.importorskip("lava")
    from mlf_deploy.runtimes import lava_guard
    from mlf_deploy.runtimes.lava import run_lava
    graph = chain_graph(800)  # 2,400 populations, 4,799 Lava processes
    monkeypatch.setattr(lava_guard, "available_memory", lambda: 24 * 2 ** 30)
    with pytest.raises(UserError, match="at least 2400 Lava processes"):
        run_lava(graph, np.zeros((1, 1, 1, 1)))


def test_every_command_that_runs_samples_checks_the_run_size(tmp_path, ckpt):
    graph = chain_graph(1, timesteps=100_000, width=4096)
    path = tmp_path / "long.mlfg"
    save_graph(graph, path)  # within the file limits: T = 100,000 is allowed
    np.save(tmp_path / "x.npy", np.zeros((32, 1, 1, 1)))
    last_error(run("run", path, "--input", tmp_path / "x.npy"), "fewer timesteps")
    last_error(run("evaluate", ckpt, "--weight-bits", "8", "--timesteps", "100000", "--samples",
                   "8"), "the sweep at T=100000")
    last_error(run("train", "--out", tmp_path / "t", "--timesteps", "100000", "--no-progress"),
               "training needs")
    assert not (tmp_path / "t").exists()
    torch.manual_seed(0)


def test_verify_checks_the_run_size_at_a_graph_files_own_timesteps(tmp_path, ckpt):
    from tamper import node, reseal
    path = tmp_path / "g.mlfg"
    assert run("export", ckpt, "--to", "ir", "-o", path).exit_code == 0
    def longer(graph, arrays):  # the metadata restates the Input's timesteps: both change
        node(graph, "Input").update(timesteps=100_000)
        graph["metadata"].update(timesteps=100_000)
    long = reseal(path, tmp_path / "long.mlfg", edit=longer)
    last_error(run("verify", ckpt, "--graph", long, "--backends", "ir-int", "--samples", "64",
                   "--chunk", "64"), "long.mlfg needs")

"""Graph files store each weight tensor once, integer mantissas in their narrowest type; files of
the first schema version still load."""

import io
import zipfile

import numpy as np
from conftest import sample_input
from tamper import write_without_table

from mlf_deploy.ir import graph_checksum, load_graph, save_graph
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.serialize import MAGIC, graph_to_dict


def _zip_of(path):
    data = path.read_bytes()[len(MAGIC):].partition(b"\n")[2]
    return zipfile.ZipFile(io.BytesIO(data))


def test_graph_file_stores_each_weight_once_in_its_precision(small_graphs, tmp_path):
    g_float, g_int = small_graphs
    x = sample_input(6)
    for g in (g_float, g_int):
        path = tmp_path / f"{g.numeric}.mlfg"
        save_graph(g, path)
        _, arrays = graph_to_dict(g)
        with _zip_of(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".npy")]
            stored = {n: np.load(io.BytesIO(zf.read(n))) for n in names}
        distinct = {(a.dtype.str, a.shape, a.tobytes()) for a in arrays.values()}
        assert len(names) == len(distinct) < len(arrays)
        if g.numeric == "int":  # 8-bit weight mantissas as int8, read back as computed
            weights = [a for k, a in stored.items() if ".weight" in k]
            assert weights and all(a.dtype == np.int8 for a in weights)
        loaded = load_graph(path)
        assert graph_checksum(loaded) == graph_checksum(g)
        a, b = run_reference(g, x), run_reference(loaded, x)
        for pop in a.spikes:
            assert np.array_equal(a.spikes[pop], b.spikes[pop])
            assert np.array_equal(a.states[pop], b.states[pop])


def test_version_1_graph_files_still_load(small_graphs, tmp_path):
    g = small_graphs[1]
    body, arrays = graph_to_dict(g)
    checksum = graph_checksum(g)
    header = {"schema": "mlf-deploy-graph", "schema_version": 1, "checksum": checksum,
              "graph": body}
    path = tmp_path / "v1.mlfg"
    write_without_table(path, header, arrays)
    assert graph_checksum(load_graph(path)) == checksum



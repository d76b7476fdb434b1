"""The graph file: exact round trips, tamper and corruption detection, no code execution."""

import dataclasses
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph, graph_checksum, load_graph, save_graph
from mlf_deploy.ir.serialize import MAGIC, graph_from_dict, graph_to_dict


def assert_same_graph(a: Graph, b: Graph):
    assert a.numeric == b.numeric and a.metadata == b.metadata
    assert list(a.nodes) == list(b.nodes)
    for name, na in a.nodes.items():
        nb = b.nodes[name]
        assert type(na) is type(nb)
        for f in dataclasses.fields(na):
            va, vb = getattr(na, f.name), getattr(nb, f.name)
            if isinstance(va, np.ndarray):
                assert va.dtype == vb.dtype and np.array_equal(va, vb), (name, f.name)
            else:
                assert va == vb and type(va) is type(vb), (name, f.name, va, vb)


@pytest.mark.parametrize("which", [0, 1])
def test_dict_and_file_round_trip_are_exact(small_graphs, tmp_path, which):
    g = small_graphs[which]
    assert_same_graph(g, graph_from_dict(*graph_to_dict(g)))
    path = tmp_path / "g.mlfg"
    checksum = save_graph(g, path)
    loaded = load_graph(path)
    assert_same_graph(g, loaded)
    assert graph_checksum(loaded) == checksum


def test_every_changed_byte_region_is_detected(small_graphs, tmp_path):
    path = tmp_path / "g.mlfg"
    save_graph(small_graphs[1], path)
    raw = path.read_bytes()
    for offset in list(range(0, len(raw), max(1, len(raw) // 60))) + [len(raw) - 1]:
        bad = bytearray(raw)
        bad[offset] ^= 0x01
        (tmp_path / "bad.mlfg").write_bytes(bytes(bad))
        with pytest.raises(UserError):
            load_graph(tmp_path / "bad.mlfg")


def _entries(path):
    raw = path.read_bytes()
    data = raw.split(b"\n", 2)[2]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rewrite(entries, path):
    """A well-formed file (valid outer hash) around edited content: only the content checksum
    can catch the edit."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
    data = buf.getvalue()
    path.write_bytes(MAGIC + b"sha256:" + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)


def test_edited_content_with_valid_zip_fails_checksum(small_graphs, tmp_path):
    path = tmp_path / "g.mlfg"
    save_graph(small_graphs[1], path)
    entries = _entries(path)
    header = json.loads(entries["graph.json"])
    pop = next(n for n in header["graph"]["nodes"] if n["type"] == "Population")
    pop["v_threshold"] += 1
    entries["graph.json"] = json.dumps(header).encode()
    _rewrite(entries, tmp_path / "t.mlfg")
    with pytest.raises(UserError, match="checksum"):
        load_graph(tmp_path / "t.mlfg")


def test_truncated_foreign_and_missing_files(small_graphs, tmp_path):
    path = tmp_path / "g.mlfg"
    save_graph(small_graphs[0], path)
    (tmp_path / "trunc.mlfg").write_bytes(path.read_bytes()[:200])
    (tmp_path / "foreign.mlfg").write_text("hello")
    for p, msg in [("trunc.mlfg", "checksum"), ("foreign.mlfg", "not a valid graph"),
                   ("missing.mlfg", "does not exist")]:
        with pytest.raises(UserError, match=msg):
            load_graph(tmp_path / p)


def test_pickled_arrays_are_refused(small_graphs, tmp_path):
    path = tmp_path / "g.mlfg"
    save_graph(small_graphs[0], path)
    entries = _entries(path)
    key = next(n for n in entries if n.startswith("arrays/"))
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    entries[key] = buf.getvalue()
    _rewrite(entries, tmp_path / "p.mlfg")
    with pytest.raises(UserError, match="pickled objects, which are refused"):
        load_graph(tmp_path / "p.mlfg")


def test_graph_validates_order_and_references(small_graphs):
    g = small_graphs[0]
    nodes = dict(reversed(list(g.nodes.items())))
    with pytest.raises(ValueError):
        Graph(nodes, g.numeric, g.metadata)
    edges = g.edges
    assert ("input", next(p.name for p in g.projections if p.source == "input")) in edges
    assert all(dst in g.nodes and src in g.nodes for src, dst in edges)


def test_save_is_atomic_on_failure(small_graphs, tmp_path, monkeypatch):
    import mlf_deploy.ir.serialize as ser
    path = tmp_path / "g.mlfg"
    monkeypatch.setattr(ser.np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_graph(small_graphs[0], path)
    assert list(tmp_path.iterdir()) == []

"""One portable file per graph.

Layout: the line ``MLFGRAPH 1``, the line ``sha256:<hex of the rest of the file>``, then a zip of
``graph.json`` (schema, version, content checksum, nodes) and one ``.npy`` per array. The outer hash
makes any changed byte (zip metadata included) an error; the content checksum identifies the graph
itself (ONNX and Lava exports carry it). Loading never executes code: JSON plus
``np.load(allow_pickle=False)``, and node classes are looked up by name in a fixed registry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
import zlib

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.fileio import atomic_path
from mlf_deploy.ir.graph import Graph
from mlf_deploy.ir.nodes import NODE_TYPES

SCHEMA, SCHEMA_VERSION = "mlf-deploy-graph", 1
MAGIC = b"MLFGRAPH 1\n"


def node_to_dict(node, arrays: dict) -> dict:
    out = {"type": type(node).__name__}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, np.ndarray):
            key = f"{node.name}.{f.name}"
            arrays[key] = value
            value = {"$array": key}
        elif isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out


def node_from_dict(d: dict, arrays: dict):
    cls = NODE_TYPES.get(d.get("type"))
    if cls is None:
        raise ValueError(f"unknown node type {d.get('type')!r}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        value = d[f.name]
        if isinstance(value, dict) and "$array" in value:
            value = arrays[value["$array"]]
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[f.name] = value
    return cls(**kwargs)


def graph_to_dict(graph: Graph) -> tuple[dict, dict]:
    arrays: dict = {}
    nodes = [node_to_dict(n, arrays) for n in graph.nodes.values()]
    body = {"numeric": graph.numeric, "metadata": graph.metadata, "nodes": nodes}
    if graph.graded:  # binary files stay as they were (and keep their checksums)
        body["spikes"] = graph.spikes
    return body, arrays


def graph_from_dict(d: dict, arrays: dict) -> Graph:
    nodes = [node_from_dict(n, arrays) for n in d["nodes"]]
    return Graph({n.name: n for n in nodes}, d["numeric"], d["metadata"], d.get("spikes", "binary"))


def _checksum(body: dict, arrays: dict) -> str:
    h = hashlib.sha256(json.dumps(body, sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def graph_checksum(graph: Graph) -> str:
    """sha256 of the graph's content; equal graphs give equal checksums."""
    return _checksum(*graph_to_dict(graph))


def save_graph(graph: Graph, path) -> str:
    """Write ``graph`` to ``path`` atomically; return its checksum."""
    body, arrays = graph_to_dict(graph)
    checksum = _checksum(body, arrays)
    header = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "checksum": checksum, "graph": body}
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("graph.json", json.dumps(header, sort_keys=True, indent=1))
        for key, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
            zf.writestr(f"arrays/{key}.npy", buf.getvalue())
    data = payload.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(MAGIC + b"sha256:" + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
    return checksum


def _payload(path) -> bytes:
    try:
        raw = open(path, "rb").read()
    except FileNotFoundError as exc:
        raise UserError(f"graph file {path} does not exist") from exc
    except OSError as exc:
        raise UserError(f"cannot read graph file {path}: {exc.strerror}") from exc
    if not raw.startswith(MAGIC):
        raise UserError(f"{path} is not a valid graph file (no mlf-deploy graph header); "
                        "write one with `mlf-deploy export --to ir`")
    head, _, data = raw[len(MAGIC):].partition(b"\n")
    if head != b"sha256:" + hashlib.sha256(data).hexdigest().encode():
        raise UserError(f"{path} failed its checksum: the file is truncated or was changed after "
                        "it was written; export it again")
    return data


def _load_array(path, name: str, data: bytes) -> np.ndarray:
    """A plain numeric array; an object array would need pickle, which could run code."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise UserError(f"{path}: {name} holds pickled objects, which are refused; export the "
                        "graph again with mlf-deploy") from exc


def load_graph(path) -> Graph:
    """Read a graph file; any corruption, tampering or foreign file is one UserError."""
    data = _payload(path)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            header = json.loads(zf.read("graph.json"))
            if header.get("schema") != SCHEMA:
                raise UserError(f"{path} is not an mlf-deploy graph file")
            if header.get("schema_version") != SCHEMA_VERSION:
                raise UserError(f"{path} has graph schema version {header.get('schema_version')}; "
                                f"this tool reads version {SCHEMA_VERSION}")
            arrays = {}
            for name in zf.namelist():
                if name.startswith("arrays/") and name.endswith(".npy"):
                    arrays[name[7:-4]] = _load_array(path, name, zf.read(name))
    except UserError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path} is not a valid graph file (corrupt or truncated: {exc})") from exc
    if _checksum(header["graph"], arrays) != header.get("checksum"):
        raise UserError(f"{path} failed its checksum: the file was changed after it was written; "
                        "export it again")
    try:
        return graph_from_dict(header["graph"], arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} holds an inconsistent graph: {exc}") from exc

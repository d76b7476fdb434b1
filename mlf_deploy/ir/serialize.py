"""One portable file per graph.

Layout: the line ``MLFGRAPH 1``, the line ``sha256:<hex of the rest of the file>``, then a zip of
``graph.json`` (schema, version, content checksum, nodes) and one ``.npy`` per distinct array.
Lowering repeats one weight tensor in every projection of a fan-in (K levels, residual sources),
so arrays are stored once by content and nodes reference them; integer mantissas are stored in
the narrowest signed type that holds them (int8 for 8-bit weights) and read back as int32, float
arrays as float64. Version 1 files (one array per node field, stored as computed) still load. The outer hash
makes any changed byte (zip metadata included) an error; the content checksum identifies the graph
itself (ONNX and Lava exports carry it). Loading never executes code: JSON plus
``np.load(allow_pickle=False)``, and node classes are looked up by name in a fixed registry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
import zlib

import numpy as np

from mlf_deploy import limits
from mlf_deploy.errors import UserError, option
from mlf_deploy.fileio import atomic_path
from mlf_deploy.ir.file_checks import check_array_table, check_readable
from mlf_deploy.ir.graph import Graph
from mlf_deploy.ir.nodes import NODE_TYPES
from mlf_deploy.ir.portable import MAGIC, SCHEMA, digest_line, field_arrays, field_value
from mlf_deploy.ir.validate import check_npy_header, json_depth, validate_graph_dict

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


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
        kwargs[f.name] = field_value(d[f.name], arrays)
    return cls(**kwargs)


def graph_to_dict(graph: Graph) -> tuple[dict, dict]:
    arrays: dict = {}
    nodes = [node_to_dict(n, arrays) for n in graph.nodes.values()]
    body = {"numeric": graph.numeric, "metadata": graph.metadata, "nodes": nodes}
    if graph.graded:  # binary files stay as they were (and keep their checksums)
        body["spikes"] = graph.spikes
    return body, arrays


def _narrowest(a: np.ndarray) -> np.ndarray:
    """Integer arrays in the smallest signed type that holds them exactly."""
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    peak = max(abs(int(a.min())), abs(int(a.max())))
    for dtype in (np.int8, np.int16, np.int32):
        if peak <= np.iinfo(dtype).max:
            return a.astype(dtype)
    return a


def _stored(arrays: dict) -> tuple[dict, dict]:
    """``(key -> [stored key, dtype in memory], stored key -> narrowed array)``: equal arrays
    share one entry."""
    refs, stored, by_content = {}, {}, {}
    for key, a in arrays.items():
        a = np.ascontiguousarray(a)
        content = (a.dtype.str, a.shape, hashlib.sha256(a.tobytes()).hexdigest())
        if content not in by_content:
            by_content[content] = key
            stored[key] = _narrowest(a)
        refs[key] = [by_content[content], a.dtype.str]
    return refs, stored


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
    refs, stored = _stored(arrays)
    header = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "checksum": checksum, "graph": body,
              "arrays": refs}
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("graph.json", json.dumps(header, sort_keys=True, indent=1))
        for key, a in stored.items():
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
            zf.writestr(f"arrays/{key}.npy", buf.getvalue())
    data = payload.getvalue()
    check_readable(body, arrays, graph, path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(MAGIC + digest_line(data) + b"\n" + data)
    return checksum


def _payload(path) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > limits.max_graph_bytes():
            raise UserError(f"graph file {path} is {size} bytes, over the limit of "
                            f"{limits.max_graph_bytes()} (a quarter of the available memory)")
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as exc:
        raise UserError(f"graph file {path} does not exist") from exc
    except OSError as exc:
        raise UserError(f"cannot read graph file {path}: {exc.strerror}") from exc
    if not raw.startswith(MAGIC):
        raise UserError(f"{path} is not a valid graph file (no mlf-deploy graph header); "
                        f"write one with `mlf-deploy export {option('target', 'ir')}`")
    head, _, data = raw[len(MAGIC):].partition(b"\n")
    if head != digest_line(data):
        raise UserError(f"{path} failed its checksum: the file is truncated or was changed after "
                        "it was written; export it again")
    return data


def _read_member(zf, info, limit: int) -> bytes:
    """A member's bytes, never inflating more than ``limit`` (its declared size may lie)."""
    if info.flag_bits & 0x1:
        raise UserError(f"member {info.filename} is encrypted; graph files never are")
    if info.file_size > limit:
        raise UserError(f"member {info.filename} declares {info.file_size} bytes, over the "
                        f"limit of {limit}")
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"member {info.filename} inflates beyond {limit} bytes")
    return data


def _read_npy(data: bytes, key: str) -> np.ndarray:
    buf = io.BytesIO(data)
    version = np.lib.format.read_magic(buf)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise ValueError(f"array {key}: .npy format version {version} is not supported")
    shape, _, dtype = read_header(buf)  # the header only: nothing is allocated yet
    check_npy_header(shape, dtype, len(data) - buf.tell(), key)
    buf.seek(0)
    return np.lib.format.read_array(buf, allow_pickle=False)


def _read_container(data: bytes) -> tuple[dict, dict]:
    budget = limits.max_graph_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > 2 * limits.MAX_GRAPH_NODES + 1:
            raise UserError(f"{len(infos)} members, more than a graph of "
                            f"{limits.MAX_GRAPH_NODES} nodes holds")
        total = sum(i.file_size for i in infos)
        if total > budget:
            raise UserError(f"members declare {total} bytes in all, over the limit of {budget} "
                            "(a quarter of the available memory)")
        text = _read_member(zf, zf.getinfo("graph.json"), limits.MAX_JSON_BYTES)
        if json_depth(text) > limits.MAX_JSON_DEPTH:
            raise UserError(f"graph.json nests deeper than {limits.MAX_JSON_DEPTH} levels")
        header = json.loads(text)
        arrays, used = {}, len(text)
        for info in infos:
            name = info.filename
            if name.startswith("arrays/") and name.endswith(".npy"):
                # declared sizes may lie: what was actually inflated counts against the budget
                member = _read_member(zf, info, min(limits.MAX_MEMBER_BYTES, budget - used))
                used += len(member)
                arrays[name[7:-4]] = _read_npy(member, name[7:-4])
            elif name != "graph.json":
                raise UserError(f"unexpected member {name!r}")
    return header, arrays


def _arrays_of(header: dict, stored: dict) -> dict:
    """Every node field's array, shared where stored once, in the dtype it was computed in."""
    if "arrays" in header:  # version 2: checked before any array is widened
        check_array_table(header["arrays"], stored, limits.max_graph_bytes())
    return field_arrays(header, stored)


def load_graph(path) -> Graph:
    """Read a graph file; any corruption, tampering, foreign file or value the graph cannot hold
    is one UserError naming the file (and the node and field)."""
    data = _payload(path)
    try:
        header, stored = _read_container(data)
    except UserError as exc:
        raise UserError(f"{path} is not a valid graph file: {exc.template}") from exc
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, zlib.error,
            NotImplementedError, RecursionError) as exc:
        raise UserError(f"{path} is not a valid graph file (corrupt or truncated: {exc})") from exc
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise UserError(f"{path} is not an mlf-deploy graph file")
    if header.get("schema_version") not in READABLE_VERSIONS:
        raise UserError(f"{path} has graph schema version {header.get('schema_version')}; "
                        f"this tool reads versions "
                        f"{', '.join(map(str, READABLE_VERSIONS))}: export it again")
    try:
        arrays = _arrays_of(header, stored)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not a valid graph file (bad array table: {exc})") from exc
    try:
        validate_graph_dict(header.get("graph"), arrays)
    except ValueError as exc:
        raise UserError(f"{path} holds an invalid graph: {exc}") from exc
    if _checksum(header["graph"], arrays) != header.get("checksum"):
        raise UserError(f"{path} failed its checksum: the file was changed after it was written; "
                        "export it again")
    try:
        graph = graph_from_dict(header["graph"], arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} holds an inconsistent graph: {exc}") from exc
    if graph.numeric == "int":
        from mlf_deploy.quantization.rules import REPRESENTABILITY_RULES, RuleViolation, check_rules
        try:
            check_rules(graph, REPRESENTABILITY_RULES)
        except RuleViolation as exc:
            raise UserError(f"{path} holds an int graph outside its fixed-point widths: {exc}") from exc
    return graph

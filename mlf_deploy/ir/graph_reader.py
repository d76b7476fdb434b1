"""Reading a graph file back: bounded, checked, and never executing code.

Every size is checked before it is allocated (the file, each zip member as it inflates, each
``.npy`` header against its payload, the array table against the memory limit), then every value
against the schema (:mod:`mlf_deploy.ir.validate`), then the content checksum. Loading is JSON plus
``np.load(allow_pickle=False)``, and node classes are looked up by name in a fixed registry.
Files of schema versions 1 (one array per node field, stored as computed) and 2 (the input
normalisation in the metadata) are read in the current layout (:func:`upgrade_body`); a graph read
from them has the current layout's checksum, so artifacts exported from the old file name a
different one and are exported again.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib

import numpy as np

from mlf_deploy import limits
from mlf_deploy.errors import UserError
from mlf_deploy.ir.file_checks import check_array_table, check_npy_header, json_depth
from mlf_deploy.ir.graph import Graph
from mlf_deploy.ir.normalisation import upgrade_body
from mlf_deploy.ir.portable import MAGIC, SCHEMA, SCHEMA_VERSION, digest_line, field_arrays
from mlf_deploy.ir.serialize import content_checksum, graph_from_dict
from mlf_deploy.ir.validate import validate_graph_dict

READABLE_VERSIONS = (1, 2, 3)


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
                        "write one with `mlf-deploy export --to ir`")
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
        raise UserError(f"{path} is not a valid graph file: {exc}") from exc
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, zlib.error,
            NotImplementedError, RecursionError) as exc:
        raise UserError(f"{path} is not a valid graph file (corrupt or truncated: {exc})") from exc
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise UserError(f"{path} is not an mlf-deploy graph file")
    version = header.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise UserError(f"{path} has graph schema version {str(version)[:20]}; this tool reads "
                        f"versions {', '.join(map(str, READABLE_VERSIONS))}: export it again")
    try:
        arrays = _arrays_of(header, stored)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not a valid graph file (bad array table: {exc})") from exc
    body = header.get("graph")
    if version < SCHEMA_VERSION:  # its checksum covers the body as written
        body = upgrade_body(body)
    try:
        validate_graph_dict(body, arrays)
    except ValueError as exc:
        raise UserError(f"{path} holds an invalid graph: {exc}") from exc
    if content_checksum(header["graph"], arrays) != header.get("checksum"):
        raise UserError(f"{path} failed its checksum: the file was changed after it was written; "
                        "export it again")
    try:
        graph = graph_from_dict(body, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} holds an inconsistent graph: {exc}") from exc
    if graph.numeric == "int":
        from mlf_deploy.quantization.rules import REPRESENTABILITY_RULES, RuleViolation, check_rules
        try:
            check_rules(graph, REPRESENTABILITY_RULES)
        except RuleViolation as exc:
            raise UserError(f"{path} holds an int graph outside its fixed-point widths: "
                            f"{exc}") from exc
    return graph

"""Files as an attacker or a careless sender would make them: resealed graphs, edited checkpoints.

A resealed graph has valid hashes (outer SHA-256 and content checksum recomputed), so only the
schema can refuse it.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile

import numpy as np
from click.testing import CliRunner

from mlf_deploy.commands.app import main
from mlf_deploy.ir.serialize import MAGIC, content_checksum


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(res, fragment, code=2):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == code, (res.exit_code, res.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in res.output


def read_members(path) -> tuple[dict, dict]:
    """``(header, {member name: bytes})`` of a graph file."""
    data = path.read_bytes().split(b"\n", 2)[2]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    return json.loads(members.pop("graph.json")), members


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def write_without_table(path, header: dict, arrays: dict):
    """A sealed graph file of ``header`` and one ``.npy`` per array, without an array table (the
    layout of schema version 1)."""
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as zf:
        zf.writestr("graph.json", json.dumps(header))
        for key, a in arrays.items():
            zf.writestr(f"arrays/{key}.npy", npy(a))
    data = payload.getvalue()
    path.write_bytes(MAGIC + b"sha256:" + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)


def reseal(path, out, edit=None, members_edit=None, raw_json=None, bomb=None):
    """Write ``out``: ``path``'s graph after ``edit(graph_dict, arrays)`` (arrays: name -> ndarray,
    editable) and ``members_edit(members)``, with both hashes recomputed."""
    header, members = read_members(path)
    header = copy.deepcopy(header)
    stored = {n[7:-4]: np.load(io.BytesIO(b)) for n, b in members.items()}
    # one array per node field, in the dtype it was computed in: the layout without an array table
    table = header.pop("arrays", None)
    arrays = stored if table is None else {k: stored[ref].astype(dtype)
                                           for k, (ref, dtype) in table.items()}
    if edit:
        edit(header["graph"], arrays)
    try:
        header["checksum"] = content_checksum(header["graph"], arrays)
    except (TypeError, ValueError):
        pass  # a body json cannot hash: the schema refuses it first anyway
    members = {f"arrays/{k}.npy": npy(v) for k, v in arrays.items()}
    if members_edit:
        members_edit(members)
    text = raw_json if raw_json is not None else json.dumps(header, sort_keys=True).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("graph.json", text)
        for name, data in members.items():
            zf.writestr(name, data)
        if bomb:
            zf.writestr("arrays/bomb.npy", b"\0" * bomb)
    data = buf.getvalue()
    out.write_bytes(MAGIC + b"sha256:" + hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
    return out


def node(graph: dict, type_name: str, index: int = 0) -> dict:
    return [n for n in graph["nodes"] if n["type"] == type_name][index]


def write_container(header: dict, members: dict, out, flag: int = 0):
    """A graph file of exactly ``header`` and ``members`` (an array table kept as given), sealed
    with a valid outer hash; ``flag`` is or-ed into the first central directory entry's flags."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("graph.json", json.dumps(header))
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if flag:
        i = raw.find(b"PK\x01\x02")
        raw[i + 8] |= flag
    out.write_bytes(MAGIC + b"sha256:" + hashlib.sha256(raw).hexdigest().encode() + b"\n" + raw)
    return out

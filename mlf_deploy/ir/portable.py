"""The part of a graph's meaning that travels with its artifacts, in numpy and the standard library
only: the graph file's layout and a minimal reader, the input pipeline (raw samples -> the values
the Input delivers) and the readout (spike counts -> logits).

The package uses these functions itself (:mod:`mlf_deploy.ir.semantics` re-exports them, the graph
file loader shares the layout), and the exporters copy this file whole beside the standalone
scripts: the exported Lava folder and ``onnx_standalone.py`` import it as the sibling module
``portable``. So it imports nothing of mlf-deploy. The reader here checks only what running needs
(header, SHA-256, schema); :func:`mlf_deploy.ir.load_graph` is the validating one.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from types import SimpleNamespace

import numpy as np

# -- fixed point ----------------------------------------------------------------------------------
DECAY_BITS = 12  # decays and retentions are mantissas of 2^-12
DECAY_UNIT = 2 ** DECAY_BITS


def retention_mant(rho: float) -> int:
    """The 12-bit mantissa ``r`` of a retention ``rho`` (the fraction of ``v`` kept per step)."""
    return round(rho * DECAY_UNIT)


def signed_limit(bits: int) -> int:
    """The largest magnitude of a symmetric signed ``bits``-bit value: ``2^(bits-1) - 1``."""
    return 2 ** (bits - 1) - 1


def payload_bits(levels: int) -> int:
    """Unsigned bits of a graded spike's payload, the level count ``0..levels``."""
    return max(1, int(levels).bit_length())


# -- graph file -----------------------------------------------------------------------------------
MAGIC = b"MLFGRAPH 1\n"
SCHEMA = "mlf-deploy-graph"
SCHEMA_VERSION = 3  # 3: the input normalisation is the Input node's, no longer the metadata's


def digest_line(data: bytes) -> bytes:
    """The file's second line: the SHA-256 of everything after it."""
    return b"sha256:" + hashlib.sha256(data).hexdigest().encode()


def field_value(value, arrays: dict):
    """A node field as ``graph.json`` stores it: an array reference, a list (a tuple, nested
    lists too) or a scalar."""
    if isinstance(value, dict) and "$array" in value:
        return arrays[value["$array"]]
    if isinstance(value, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return value


def field_arrays(header: dict, stored: dict) -> dict:
    """Every node field's array from the stored ones. Version 2 stores equal arrays once, integers
    narrowed (``arrays``: key -> [stored key, dtype in memory]); version 1 one per field."""
    refs = header.get("arrays")
    if refs is None:
        return stored
    widened: dict = {}
    out = {}
    for key, (ref, dtype) in refs.items():
        if np.dtype(dtype).kind not in "biuf":
            raise ValueError(f"array {key} has non-numeric dtype {dtype!r}")
        if (ref, dtype) not in widened:
            widened[ref, dtype] = stored[ref].astype(np.dtype(dtype), copy=False)
        out[key] = widened[ref, dtype]
    return out


class GraphView:
    """A graph file's nodes as attribute namespaces, with the lookups the standalone scripts use
    (the same names as :class:`mlf_deploy.ir.Graph`)."""

    def __init__(self, body: dict, arrays: dict):
        self.nodes = {d["name"]: SimpleNamespace(**{k: field_value(v, arrays)
                                                    for k, v in d.items()})
                      for d in body["nodes"]}
        self.numeric, self.metadata = body["numeric"], body["metadata"]
        self.spikes = body.get("spikes", "binary")
        kind = lambda t: [n for n in self.nodes.values() if n.type == t]
        self.input, self.readout = kind("Input")[0], kind("Readout")[0]
        self.layers, self.projections = kind("Layer"), kind("Projection")

    @property
    def graded(self) -> bool:
        return self.spikes == "graded"

    def projections_into(self, layer: str) -> list:
        return [p for p in self.projections if p.target == layer]

    def populations_of(self, layer: str) -> list:
        return [self.nodes[n] for n in self.nodes[layer].populations]


def read_graph(path) -> GraphView:
    """Read a graph file written by ``save_graph``; ValueError if it is not one or was changed."""
    with open(path, "rb") as f:
        raw = f.read()
    head, _, data = raw[len(MAGIC):].partition(b"\n")
    if not raw.startswith(MAGIC) or head != digest_line(data):
        raise ValueError(f"{path}: not an mlf-deploy graph file, or changed since it was written")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        header = json.loads(zf.read("graph.json"))
        stored = {n[7:-4]: np.load(io.BytesIO(zf.read(n)), allow_pickle=False)
                  for n in zf.namelist() if n.startswith("arrays/") and n.endswith(".npy")}
    if header.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not an mlf-deploy graph file")
    if header.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: graph schema version {header.get('schema_version')}, this "
                         f"reader takes {SCHEMA_VERSION}; export the network again")
    return GraphView(header["graph"], field_arrays(header, stored))


def layer_depths(graph, input_hops=lambda p: 1) -> dict:
    """Layer -> projections along the longest path from the input, a projection from the input
    counting ``input_hops(p)`` (the stem is 1 by default)."""
    depth: dict = {}
    for layer in graph.layers:
        depth[layer.name] = max(input_hops(p) if p.source == graph.input.name
                                else depth[graph.nodes[p.source].layer] + 1
                                for p in graph.projections_into(layer.name))
    return depth


# -- input ----------------------------------------------------------------------------------------
def input_normalisation(graph) -> SimpleNamespace:
    """The Input node's two per-channel affine steps (the one place that reads its fields):
    ``divide`` and the ``(C, 1, 1)`` float64 ``mean``, ``std`` of the data set's
    ``(raw / divide - mean) / std``, and ``gain``, ``offset`` of the folded ``x * gain + offset``;
    an absent step's arrays are None."""
    inp = graph.input
    per_channel = lambda v: np.asarray(v, dtype=np.float64)[:, None, None] if len(v) else None
    return SimpleNamespace(divide=float(inp.raw_divide), mean=per_channel(inp.raw_mean),
                           std=per_channel(inp.raw_std), gain=per_channel(inp.gain),
                           offset=per_channel(inp.offset))


def describe_input(graph) -> dict:
    """Everything between a raw sample and the Input's values (the ``pipe`` of the functions
    below, and the artifacts' ``input_pipeline``): the data set's description from the metadata
    plus the Input node's normalisation, encoding, steps and fixed-point step (``input_scale`` is
    None in float graphs)."""
    inp, norm = graph.input, input_normalisation(graph)
    integer = graph.numeric == "int"
    flat = lambda a: None if a is None else a.reshape(-1).tolist()
    return {
        **(graph.metadata.get("input_pipeline") or {}),
        "normalise": None if norm.mean is None else
        {"divide": norm.divide, "mean": flat(norm.mean), "std": flat(norm.std)},
        "encoding": inp.encoding, "timesteps": int(inp.timesteps), "shape": list(inp.shape),
        "input_gain": flat(norm.gain), "input_offset": flat(norm.offset),
        "input_scale": float(inp.scale) if integer else None,
        "input_value_bits": int(inp.value_bits) if integer else None,
        "steps": ["raw -> (raw / divide - mean) / std (normalise; none for event counts)",
                  "static images repeat over the timesteps; event frames go (B, T, ...) -> "
                  "(T, B, ...)",
                  "x * input_gain + input_offset per channel, when present",
                  "int graphs: clip(round(x / input_scale), -(2^(bits-1)-1), 2^(bits-1)-1)"],
    }


def model_units(pipe: dict, raw) -> np.ndarray:
    """Raw samples as the data set stores them -> the model's input: ``(B, C, H, W)`` normalised
    images or ``(T, B, C, H, W)`` event frames (unchanged without a ``normalise`` step)."""
    x = np.asarray(raw, dtype=np.float64)
    norm = pipe.get("normalise")
    if norm:
        chans = x.shape[-3] if x.ndim >= 3 else 1
        mean = np.broadcast_to(np.asarray(norm["mean"], np.float64).reshape(-1), (chans,))
        std = np.broadcast_to(np.asarray(norm["std"], np.float64).reshape(-1), (chans,))
        x = (x / norm["divide"] - mean[:, None, None]) / std[:, None, None]
    if pipe["encoding"] == "events" and x.ndim == 5:
        x = np.ascontiguousarray(np.moveaxis(x, 1, 0))
    return x


def input_values(pipe: dict, x) -> np.ndarray:
    """Model input ``(B, C, H, W)`` (static) or ``(T, B, C, H, W)`` (events), shapes already
    checked, -> the ``(T, B, C, H, W)`` float64 values the Input delivers (integers in int
    graphs)."""
    x = np.asarray(x, dtype=np.float64)
    if pipe["encoding"] == "static":
        x = np.broadcast_to(x, (pipe["timesteps"], *x.shape))
    if pipe["input_gain"] is not None:
        x = x * np.asarray(pipe["input_gain"], np.float64)[:, None, None] \
            + np.asarray(pipe["input_offset"], np.float64)[:, None, None]
    if pipe["input_scale"] is not None:
        limit = signed_limit(pipe["input_value_bits"])
        x = np.clip(np.round(x / pipe["input_scale"]), -limit, limit)
    return np.ascontiguousarray(x)


def raw_input_values(pipe: dict, raw) -> np.ndarray:
    """Raw samples -> the Input's ``(T, B, C, H, W)`` values; ValueError naming the layout the
    model takes when their shape does not fit."""
    x = model_units(pipe, raw)
    want, static = tuple(pipe["shape"]), pipe["encoding"] == "static"
    fits = x.ndim == 4 and x.shape[1:] == want if static else \
        x.ndim == 5 and x.shape[2:] == want and x.shape[0] == pipe["timesteps"]
    if not fits:
        raise ValueError(f"the model takes raw samples {pipe.get('raw_layout', '')} with "
                         f"(C, H, W) = {want}; got shape {np.shape(raw)}")
    return input_values(pipe, x)


# -- readout --------------------------------------------------------------------------------------
def readout_norm(graph) -> int:
    """``T H W``: the readout averages over time and space."""
    _, h, w = graph.nodes[graph.readout.sources[0]].shape
    return graph.input.timesteps * int(h) * int(w)


def logits(acc, scale: float, norm: int, bias) -> np.ndarray:
    """``acc * scale / norm + bias``, in this order (int logits agree bit for bit)."""
    return acc * scale / norm + np.asarray(bias, dtype=np.float64)


def logits_from_accumulator(graph, acc: np.ndarray) -> np.ndarray:
    """:func:`logits` with the graph's readout scale, ``T H W`` and bias."""
    ro = graph.readout
    return logits(acc, ro.scale, readout_norm(graph), ro.bias)


def logits_from_counts(graph, counts: np.ndarray) -> np.ndarray:
    """``(B, C)`` spike counts of the readout sources (summed over time, space and sources; a
    graded source counts its levels) -> logits; ``counts @ W^T`` holds exact integers in int
    graphs."""
    acc = counts @ np.asarray(graph.readout.weight, dtype=np.float64).T
    return logits_from_accumulator(graph, acc)

"""The NIR Output's input -> our readout: a whole-map ``Conv2d`` or an ``Affine``/``Linear`` into
the Output, or the neurons' spikes themselves (logits = spike counts)."""

from __future__ import annotations

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.nir.reader import NEURONS, WEIGHTS, NirReader
from mlf_deploy.ir import Readout


def import_readout(r: NirReader, preds: list[str], out_id: str) -> Readout:
    """The readout of the Output node ``out_id``, which reads ``preds``."""
    if len(preds) == 1 and r.kind(preds[0]) in WEIGHTS:
        wid = preds[0]
        return weighted_readout(r, wid, [r.names.get(s, s) for s in r.sources(wid)])
    if preds and all(r.kind(p) in NEURONS for p in preds):
        # the spikes are the output: logits are spike counts summed over time
        shape = r.neuron_shape(preds[0])
        if shape[1:] != (1, 1):
            raise UserError(f"NIR Output {out_id!r} reads spatial spike maps; only a whole-map "
                            "Conv2d or an Affine readout can pool them")
        return Readout("readout", tuple(r.names[p] for p in preds), np.eye(shape[0]),
                       np.zeros(shape[0]), float(r.steps))
    raise UserError(f"NIR Output {out_id!r} reads {preds}; expected one Conv2d/Affine/Linear "
                    "readout or the populations' spikes")


def weighted_readout(r: NirReader, wid: str, sources: list[str]) -> Readout:
    """The readout of the weight node ``wid``: a per-step dense one, or a whole-map ``Conv2d``
    (its MLF hint, where consistent with the weights, gives back the exported readout)."""
    node, hint = r.g.nodes[wid], r.hint(wid)
    w = np.asarray(node.weight, np.float64)
    b = np.asarray(getattr(node, "bias", np.zeros(w.shape[0])), np.float64)
    name = hint.get("node", "readout")
    if w.ndim == 2:  # per-step W s + b over (C,) spikes: logits = W counts + T b
        src = r.neuron_shape(r.sources(wid)[0])
        if src[1:] != (1, 1) or w.shape[1] != src[0]:
            raise UserError(f"NIR node {wid!r} ({r.kind(wid)}) reads spatial spike maps into the "
                            "Output; the mlf-deploy readout pools a map (use a whole-map Conv2d)")
        return Readout(name, tuple(sources), w, b * r.steps, float(r.steps))
    h, wd = w.shape[2:]
    src_shape = r.neuron_shape(r.sources(wid)[0])
    if (h, wd) != src_shape[1:] or np.any(np.asarray(node.padding) != 0):
        raise UserError(f"NIR node {wid!r} (Conv2d) feeds the Output but is not a whole-map "
                        "readout")
    if np.any(w != w[:, :, :1, :1]):
        raise UserError(f"NIR node {wid!r} (Conv2d readout) weighs positions differently; the "
                        "mlf-deploy readout averages over the map")
    k = r.steps * h * wd
    if "weight" in hint and "bias" in hint:
        hw, hb = np.asarray(hint["weight"], np.float64), np.asarray(hint["bias"], np.float64)
        scale = float(hint.get("scale", 1.0))
        if (hw.shape == w.shape[:2] and np.array_equal(hw * scale / k, w[:, :, 0, 0])
                and np.array_equal(hb / r.steps, b)):
            return Readout(name, tuple(sources), hw, hb, scale)
    return Readout(name, tuple(sources), w[:, :, 0, 0] * k, b * r.steps)

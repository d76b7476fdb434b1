"""Run an mlf-deploy ONNX export on raw inputs with numpy and onnxruntime only.

    python onnx_standalone.py model.onnx --input x.npy [--json]

``x.npy`` holds raw samples as the data set stores them (for digits: ``(B, 1, 8, 8)`` pixel values
0..16; event sets: ``(B, T, C, H, W)`` counts). Everything needed to turn them into the model's
input is in the model's metadata (``input_pipeline``); docs/onnx.md walks through the same steps.
It needs numpy, onnxruntime and ``portable.py`` (``mlf_deploy/ir/portable.py``: the input pipeline
and the readout the package itself uses): copy both files next to the model and use them anywhere.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort

if __package__:
    from mlf_deploy.ir import portable
else:  # a copy beside portable.py; `python -I` leaves the script's own folder off the import path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import portable


def model_input(meta: dict, raw) -> np.ndarray:
    """Raw samples -> the ``(T, B, C, H, W)`` float64 values the model's ``input`` takes."""
    return portable.raw_input_values(json.loads(meta["input_pipeline"]), raw)


RECORD_BUDGET = 128 * 2 ** 20  # bytes of recorded outputs one batch may produce


def open_model(path: str, threads: int | None = None):
    """``(session, metadata)`` of an exported model; ``threads``: ONNX Runtime's intra- and
    inter-op threads (None: its default, every core)."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = int(threads)
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess, sess.get_modelmeta().custom_metadata_map


def batch_size_for(sess, batch_size=None) -> int:
    """``batch_size``, else as many samples as keep the outputs the model computes besides the
    logits (a recording export's spikes and membranes, 8 bytes a value) within RECORD_BUDGET,
    at most 32: a recording cifar10 model holds about 100 MB of records per sample."""
    if batch_size:
        return int(batch_size)
    per_sample = 0
    for out in sess.get_outputs():
        per_sample += 8 * int(np.prod([d for d in out.shape if isinstance(d, int)] or [1]))
    return max(1, min(32, RECORD_BUDGET // max(per_sample, 1)))


def logits(path: str, raw, batch_size=None, session=None) -> tuple[np.ndarray, dict]:
    """The model's logits ``(B, classes)`` for raw samples, and its metadata. The samples run
    ``batch_size`` at a time (default :func:`batch_size_for`), so memory stays that of one batch
    however many there are."""
    sess, meta = session or open_model(path)
    raw = np.asarray(raw)
    size = batch_size_for(sess, batch_size)
    parts = [_batch_logits(sess, meta, model_input(meta, raw[i:i + size]))
             for i in range(0, len(raw), size)]
    return np.concatenate(parts), meta


def _batch_logits(sess, meta: dict, frames) -> np.ndarray:
    names = [o.name for o in sess.get_outputs()]
    if meta["mode"] == "sequence":
        return sess.run(["logits"], {"input": frames})[0]
    pops = json.loads(meta["populations"])
    state_dtype = np.int64 if meta["numeric"] == "int" else np.float64
    state = {i.name: np.zeros((frames.shape[1], *i.shape[1:]), state_dtype)
             for i in sess.get_inputs() if i.name.startswith("v/")}
    acc = 0.0
    for t in range(frames.shape[0]):  # one call per timestep, membranes carried between calls
        out = dict(zip(names, sess.run(None, {"input": frames[t], **state})))
        state = {f"v/{p}": out[f"v_next/{p}"] for p in pops}
        acc = acc + out["readout_increment"]
    return portable.logits(acc, float(meta["readout_scale"]), int(meta["readout_norm"]),
                           json.loads(meta["readout_bias"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="an .onnx file exported by `mlf-deploy export --to onnx`")
    ap.add_argument("--input", required=True, help=".npy of raw samples")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args(argv)
    try:
        out, meta = logits(args.model, np.load(args.input, allow_pickle=False))
    except (OSError, ValueError, KeyError) as exc:  # unreadable file, wrong shape, not our model
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = json.loads(meta["class_names"])
    pred = out.argmax(1).tolist()
    if args.json:
        print(json.dumps({"predictions": pred, "classes": [names[p] for p in pred],
                          "logits": out.tolist()}))
    else:
        for i, p in enumerate(pred):
            print(f"sample {i}: class {names[p]} (index {p})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

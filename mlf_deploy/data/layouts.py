"""Writers of each real data set's on-disk format, filled with synthetic content.

Nothing can be downloaded here, so tests and benchmarks make small (or full-sized) sets locally in
exactly the layout and byte format the loaders read; docs/datasets.md describes each format and
where it comes from. Event streams are uniform random (seeded): the loaders' job is the format.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from mlf_deploy.data import tonic_sets

_AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
# The DV description of one 128x128 polarity-event stream with id 0, as DV's recorder writes it.
_AEDAT4_DESCRIPTION = (
    '<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
    '<node name="0" path="/mainloop/Recorder/outInfo/0/">'
    '<attr key="compression" type="string">NONE</attr>'
    '<attr key="typeIdentifier" type="string">EVTS</attr>'
    '<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
    '<attr key="sizeX" type="int">{w}</attr><attr key="sizeY" type="int">{h}</attr>'
    '</node></node></node></dv>')
# The flatbuffer struct Event {t: int64; x: int16; y: int16; on: bool} is padded to 16 bytes.
_AEDAT4_EVENT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])


def random_events(rng: np.random.Generator, count: int, side: int, duration_us: int) -> dict:
    """``count`` events uniform over a ``side`` x ``side`` sensor and ``duration_us``, sorted by
    t."""
    return {"x": rng.integers(0, side, count), "y": rng.integers(0, side, count),
            "t": np.sort(rng.integers(0, duration_us, count)), "p": rng.integers(0, 2, count)}


def _aedat4_ioheader(description: bytes) -> bytes:
    # Flatbuffer table {compression: int32, file_data_position: int64, description: string} with
    # file identifier IOHE; the table sits at byte 24 so that its int64 field is 8-aligned.
    vtable = struct.pack("<HHHHH", 10, 20, 4, 8, 16) + b"\0" * 6
    table = struct.pack("<iiqI", 24 - 8, 0, -1, 4)  # no compression, no data table: read to EOF
    buf = struct.pack("<I", 24) + b"IOHE" + vtable + table
    buf += struct.pack("<I", len(description)) + description + b"\0"
    return buf + b"\0" * (-len(buf) % 4)


def _aedat4_packet(ev: dict, idx: np.ndarray) -> bytes:
    # Size-prefixed flatbuffer EventPacket {elements: [Event]} with identifier EVTS; the vector's
    # elements start at byte 32 (8-aligned for Event.t).
    events = np.zeros(len(idx), _AEDAT4_EVENT)
    for name, src in (("t", "t"), ("x", "x"), ("y", "y"), ("on", "p")):
        events[name] = ev[src][idx]
    body = (struct.pack("<I", 20 - 4) + b"EVTS" + struct.pack("<HHH", 6, 8, 4) + b"\0\0"
            + struct.pack("<iII", 20 - 12, 4, len(idx)) + events.tobytes())
    return struct.pack("<I", len(body)) + body


def write_aedat4(path: Path, ev: dict, side: int = 128, packets: int = 2) -> None:
    """An AEDAT 4.0 file (uncompressed) holding ``ev`` as polarity packets of stream 0."""
    header = _aedat4_ioheader(_AEDAT4_DESCRIPTION.format(w=side, h=side).encode())
    parts = [_AEDAT4_MAGIC, struct.pack("<I", len(header)), header]
    for idx in np.array_split(np.arange(len(ev["t"])), packets):
        packet = _aedat4_packet(ev, idx)
        parts += [struct.pack("<iI", 0, len(packet)), packet]
    path.write_bytes(b"".join(parts))


def write_nmnist_bin(path: Path, ev: dict) -> None:
    """N-MNIST's 40-bit events: x, y, then p in bit 23 and a 23-bit microsecond time stamp."""
    t = ev["t"].astype(np.int64)
    if t.max(initial=0) >= 1 << 23:
        raise ValueError("N-MNIST time stamps are 23 bits; keep duration_us below 8.39 s")
    raw = np.stack([ev["x"], ev["y"], (ev["p"] << 7) | (t >> 16), (t >> 8) & 255, t & 255], axis=1)
    path.write_bytes(raw.astype(np.uint8).tobytes())


def write_dvs_gesture_npy(path: Path, ev: dict) -> None:
    """tonic's preprocessed DVS-Gesture recording: an ``(N, 4)`` array of x, y, p, t (ms)."""
    np.save(path, np.stack([ev["x"], ev["y"], ev["p"], ev["t"] // 1000], axis=1).astype(np.int32))


def make_event_set(name: str, root, per_class: int, events: int = 2000, duration_us: int = 200_000,
                   classes: int | None = None, seed: int = 0, archive: bool = False) -> list[tuple]:
    """``per_class`` recordings of each class of an event set under ``root`` in tonic's layout.

    Args:
        name: ``dvs-gesture`` (per split), ``cifar10-dvs`` or ``nmnist`` (per split).
        root: the ``--data-dir``; files go to ``root/<tonic class name>/...``.
        per_class: recordings per class (and per split for the sets that ship one).
        events: events per recording.
        classes: only the first ``classes`` classes.
        archive: also write an (empty) archive file where tonic would expect one.

    Returns:
        ``(path, label, events)`` of each recording written; ``events`` as :func:`random_events`.
    """
    layout = tonic_sets.LAYOUTS[name]
    rng = np.random.default_rng(seed)
    base = Path(root, layout.folder)
    written = []
    for split, sub in layout.subfolders.items():
        for label in range(classes or layout.classes):
            for k in range(per_class):
                path = base / layout.recording_path(sub, label, k)
                path.parent.mkdir(parents=True, exist_ok=True)
                ev = random_events(rng, events, layout.sensor, duration_us)
                {".aedat4": write_aedat4, ".bin": write_nmnist_bin,
                 ".npy": write_dvs_gesture_npy}[layout.suffix](path, ev)
                written.append((path, label, ev))
        if archive:
            (base / layout.archives[split]).write_bytes(b"")
    return written


def make_cifar10_batches(root, per_batch: int = 6, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py/`` with the five training batches and the test batch."""
    folder = Path(root, "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {b"batch_label": name.encode(), b"labels": [(i + j) % 10 for j in range(per_batch)],
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{j}.png".encode() for j in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder

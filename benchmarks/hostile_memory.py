"""Peak memory of each hostile-file case: every one must end in one ``error:`` line under 1 GB.

Each case runs the real ``mlf-deploy`` command in a fresh process; its peak resident set size comes
from ``wait4``. The baseline is ``mlf-deploy --version`` (the interpreter and the CLI's imports),
measured in the same run, so the printed ratio is the cost of the validation itself.

    python benchmarks/hostile_memory.py [--keep DIR]
"""

import argparse
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

EXE = str(Path(sys.executable).with_name("mlf-deploy"))


def peak(args, cwd) -> tuple[float, int, str]:
    """(peak RSS in MiB, exit status, last stderr line) of one command."""
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, proc.returncode, err[-1] if err else ""


def build_cases(d: Path) -> dict:
    import numpy as np
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import TINY_ARGS, make_graphs, make_model, write_checkpoint
    from tamper import npy, read_members, write_container
    from test_bounded_inputs import chain_graph

    from mlf_deploy.ir import save_graph
    np.save(d / "x.npy", np.zeros((2, 1, 8, 8)))
    save_graph(make_graphs(make_model())[1], d / "g.mlfg")
    header, members = read_members(d / "g.mlfg")
    members["arrays/big.npy"] = npy(np.zeros(2 ** 28, np.int8))
    header["arrays"].update({f"x{i}": ["big", t] for i, t in enumerate(["<f8", "<i8", "<i4"])})
    write_container(header, members, d / "wide.mlfg")
    for name, widths, depth in (("w2048.pt", 2048, 20), ("w4096.pt", 4096, 38)):
        write_checkpoint(d / name, model_args={**TINY_ARGS, "widths": [widths] * 3, "depth": depth})
    cifar = d / "cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)

    class Forged:
        def __reduce__(self):
            return (np.ndarray, ((2 ** 21, 3072), np.dtype("u1")))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (cifar / name).write_bytes(pickle.dumps({b"data": Forged(), b"labels": [0] * 2 ** 16}, 2))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (640_000_000_000,)})
    (d / "lying.npy").write_bytes(buf.getvalue() + b"\0" * 16)
    save_graph(chain_graph(1, timesteps=100_000, width=4096), d / "long.mlfg")
    from mlf_deploy.exporters.lava.export import export_lava
    export_lava(chain_graph(1400), d / "chain-lava")
    write_checkpoint(d / "c.pt")
    import h5py
    subprocess.run([EXE, "export", "c.pt", "--to", "nir", "-o", "m.nir"], cwd=d, check=True,
                   capture_output=True)
    with h5py.File(d / "m.nir", "r+") as f:
        w = "/node/nodes/blocks_0_mlf1_conv1_w0/weight"
        del f[w]
        f.create_dataset(w, (2 ** 32,), "<f8", chunks=(1 << 16,), compression="gzip")
    np.save(d / "x1.npy", np.zeros((1, 1, 1, 1)))
    return {
        "graph array table widens an int8 member": ["run", "wide.mlfg", "--input", "x.npy"],
        "checkpoint model_args widths 2048x3, depth 20": ["export", "w2048.pt", "--to", "ir",
                                                          "-o", "o1.mlfg"],
        "checkpoint model_args widths 4096x3, depth 38": ["export", "w4096.pt", "--to", "ir",
                                                          "-o", "o2.mlfg"],
        "CIFAR batch with numpy.ndarray((N, 3072), u1)": ["train", "--dataset", "cifar10",
                                                          "--data-dir", "cifar", "--out", "t1",
                                                          "--epochs", "1", "--no-progress"],
        "NIR file with a compressed 32 GiB weight": ["import", "m.nir", "-o", "n.mlfg"],
        "lying .npy header (4.66 TiB)": ["run", "g.mlfg", "--input", "lying.npy"],
        "evaluate --samples 8 --timesteps 100000": ["evaluate", "c.pt", "--weight-bits", "8",
                                                    "--timesteps", "100000", "--samples", "8"],
        "graph file with T = 100,000 (run)": ["run", "long.mlfg", "--input", "x.npy"],
        "train --timesteps 100000": ["train", "--out", "t2", "--timesteps", "100000",
                                     "--no-progress"],
        "Lava folder of a legal 1,400-layer chain": ["run", "chain-lava", "--input", "x1.npy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="build the cases in this folder and keep them")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(Path(args.measure))
    d = Path(args.keep or tempfile.mkdtemp(prefix="hostile-memory-"))
    d.mkdir(parents=True, exist_ok=True)
    (d / "cases.json").write_text(json.dumps(build_cases(d)))
    # A child keeps the peak RSS of the process it was forked from, and building the cases
    # imported torch here: the commands are started from a fresh, small interpreter instead.
    subprocess.run([sys.executable, __file__, "--measure", str(d)], check=True)


def measure(d: Path) -> None:
    cases = json.loads((d / "cases.json").read_text())
    base, _, _ = peak([EXE, "--version"], d)
    print(f"baseline: mlf-deploy --version peaks at {base:.0f} MiB")
    print(f"{'case':48} {'peak MiB':>9} {'x base':>7} exit  last line")
    for name, argv in cases.items():
        mib, code, line = peak([EXE, *argv], d)
        ok = code == 2 and line.startswith("error:") and mib < 1024
        print(f"{name:48} {mib:9.0f} {mib / base:7.2f} {code:4}  {'ok ' if ok else 'BAD'} "
              f"{line[:110]}")


if __name__ == "__main__":
    main()

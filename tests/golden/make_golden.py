"""Regenerate the golden traces (only when a semantic change is intended and reviewed):

    .venv/bin/python tests/golden/make_golden.py

Writes, for a tiny seeded DS-ResNet, the float and int graph files, the input batch, and every
population's spikes and states from the reference simulator.
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent)]

from conftest import make_graphs, make_model, sample_input  # noqa: E402

from mlf_deploy.ir import save_graph  # noqa: E402
from mlf_deploy.ir.reference import run_reference  # noqa: E402


def main():
    model = make_model(depth=8, widths=(3, 4, 4), levels=3, in_hw=(6, 6), seed=7)
    x = sample_input(4, in_hw=(6, 6), seed=8)
    np.save(HERE / "input.npy", x.numpy())
    for graph in make_graphs(model, in_hw=(6, 6)):
        save_graph(graph, HERE / f"ds8_{graph.numeric}.mlfg")
        res = run_reference(graph, x)
        arrays = {f"{pop}|s": s for pop, s in res.spikes.items()}
        arrays.update({f"{pop}|v": v for pop, v in res.states.items()})
        arrays["logits"] = res.logits
        np.savez_compressed(HERE / f"ds8_{graph.numeric}_trace.npz", **arrays)


if __name__ == "__main__":
    main()

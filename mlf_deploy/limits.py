"""The largest inputs each command accepts, checked before anything is allocated.

File-format limits are fixed, far above any network this tool trains (a DS-ResNet-20 with K=3 on
CIFAR10-DVS's 42x42 frames lowers to 210 nodes and 1.05 M neurons). The size of a run
(samples x timesteps x neurons, recorded per backend) is bounded by the memory available now, the
honest bound for an in-memory simulator.
"""

from __future__ import annotations

import os

from mlf_deploy.errors import UserError
from mlf_deploy.errors import option as option_named

MAX_GRAPH_NODES = 10_000          # nodes in one graph file
MAX_MEMBER_BYTES = 512 * 2 ** 20  # one inflated zip member of a graph file
MAX_JSON_BYTES = 16 * 2 ** 20     # graph.json inflated
MAX_JSON_DEPTH = 16               # our graph.json nests 5 deep
MAX_NAME_CHARS = 256
MAX_DIM = 4096                    # any C, H or W
MAX_KERNEL = 64                   # kernel side, stride, padding
MAX_TIMESTEPS = 100_000           # T of a graph or checkpoint (the paper uses at most 40)
MAX_NEURONS = 50_000_000          # neurons of one graph
MAX_WEIGHTS = 200_000_000         # weights of one graph or checkpoint
MAX_LEVELS = 16                   # MLF levels K
# Bytes a run keeps per sample, timestep and neuron: spikes (1) and states (8) for up to three
# backends compared at once, plus the working copies of one step (the training checks' unit).
RUN_BYTES_PER_NEURON_STEP = 32


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable), or 4 GiB if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2 ** 30


def max_graph_bytes() -> int:
    """All inflated members of one graph file together: a quarter of the available memory."""
    return min(4 * 2 ** 30, available_memory() // 4)


def check_run_size(neurons: int, timesteps: int, samples: int, what: str = "this run",
                   option: str = "samples", bytes_per: int = RUN_BYTES_PER_NEURON_STEP) -> None:
    """Refuse a run whose recordings would not fit in half of the available memory."""
    need = int(neurons) * int(timesteps) * int(samples) * bytes_per
    have = available_memory() // 2
    if need > have:
        fit = have // max(1, int(neurons) * int(timesteps) * bytes_per)
        hint = f"use {option_named(option, fit)} or fewer" if fit else \
            "not even one sample fits: use fewer timesteps"
        raise UserError(f"{what} needs about {need / 2 ** 30:.1f} GiB for {samples} samples x "
                        f"{timesteps} timesteps x {neurons} neurons, more than half of the "
                        f"{2 * have / 2 ** 30:.1f} GiB available; {hint}")


def check_graph_run(graph, samples: int, what: str = "this run", option: str = "samples",
                    bytes_per: int | None = None, states: bool = True, totals: int = 0) -> None:
    """Refuse a run of ``samples`` of ``graph`` at its own timesteps whose buffers
    (:func:`mlf_deploy.run_memory.run_bytes`: ``states`` recorded, ``totals`` sets of streamed
    totals kept) would not fit in half of the available memory; every command that runs samples
    through a graph (a graph file's T, a sweep's T included) passes here first. ``bytes_per``:
    a flat rate per neuron-step instead (the training checks)."""
    from mlf_deploy import run_memory
    summary = graph.summary()
    if bytes_per is not None:
        check_run_size(summary["neurons"], summary["timesteps"], samples, what, option, bytes_per)
        return
    need = run_memory.run_bytes(graph, samples, states, totals)
    run_memory.record(what, graph, samples, need)
    have = available_memory() // 2
    if need > have:
        per = run_memory.run_bytes(graph, 1, states, 0)
        fit = (have - run_memory.run_bytes(graph, 0, states, totals)) // per
        hint = f"use {option_named(option, fit)} or fewer" if fit > 0 else \
            "not even one sample fits: use fewer timesteps"
        raise UserError(f"{what} needs about {need / 2 ** 30:.1f} GiB for {samples} samples x "
                        f"{summary['timesteps']} timesteps x {summary['neurons']} neurons "
                        f"(this process then holds about "
                        f"{(need + run_memory.resident_bytes()) / 2 ** 30:.1f} GiB), more than "
                        f"half of the {2 * have / 2 ** 30:.1f} GiB available; {hint}")

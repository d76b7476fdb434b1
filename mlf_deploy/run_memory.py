"""What a run of samples through a graph holds in memory, counted from the buffers the code
allocates, so the run-size guard (:func:`mlf_deploy.limits.check_graph_run`) estimates the peak
of the whole process rather than applying a flat rate.

A run of the reference simulator (``mlf_deploy.ir.reference``) on a chunk of B samples
keeps, per sample and timestep, until the run ends:

- the uint8 spike it records for every level neuron (``RunResult.spikes``);
- the float64 value every sender passes on to later layers (each level neuron in the binary
  form; one payload per position in the graded form), and the Input's float64 frames;
- with states recorded (verify), an 8-byte membrane of every level neuron.

While it computes one layer it also holds that layer's working arrays, per position and step:
the summed float64 sources and their float32 copy for the convolution (per source position),
the float32 convolution output, its float64 copy, the membrane input ``u = 64 a``, its 24-bit
wrap and the biased current (float64 each), and per level neuron the bool spike (and float64
membrane with states). The largest layer sets that part.

A streamed command (energy, evaluate) also keeps, per set of totals and whatever the number of
samples (``mlf_deploy.run_totals.RunTotals``), an int64 spike count per step and level neuron,
an int64 "any level fired" count per step and position, and for event inputs the float64 input
events per frame.

The process's peak is its resident size when the guard runs (the interpreter, torch, the model,
the graphs and tallies already built) plus these buffers: :func:`record` keeps each estimate so
``benchmarks/run_memory.py`` can set it beside the measured peak.
"""

from __future__ import annotations

import os

import numpy as np

SPIKE = np.dtype(np.uint8).itemsize     # a recorded spike
VALUE = np.dtype(np.float64).itemsize   # a value passed on, an Input frame, a working array
STATE = np.dtype(np.int64).itemsize     # a recorded membrane (float64 in float graphs: same size)
CONV = np.dtype(np.float32).itemsize    # the convolution's input copy and output
COUNT = np.dtype(np.int64).itemsize     # a streamed total
WORKING_PER_POSITION = CONV + 4 * VALUE  # conv output, its float64 copy, u, wrap, biased current
ESTIMATES: list[dict] = []  # every estimate made in this process, for the benchmark


def _size(shape) -> int:
    return int(np.prod([int(d) for d in shape]))


def _working(graph, layer, states: bool) -> int:
    """Bytes per sample and step while ``layer`` is computed."""
    sources = {p.source for p in graph.projections_into(layer.name)}
    src = max(_size(graph.nodes[s].shape) for s in sources)
    levels = sum(_size(p.shape) for p in graph.levels_of(layer.name))
    return (src * (VALUE + CONV) + _size(layer.shape) * WORKING_PER_POSITION
            + levels * (1 + (VALUE if states else 0)))


def run_parts(graph, samples: int, states: bool = True, totals: int = 0) -> dict:
    """Bytes of each part a run of ``samples`` of ``graph`` adds to the process (see the module
    text): ``recorded`` (the RunResult's spikes and states), ``passed_on`` (the senders' values
    and the Input frames), ``working`` (the largest layer's arrays) and ``totals`` (``totals``
    sets of streamed totals)."""
    steps, samples = graph.timesteps, int(samples)
    neurons = sum(_size(p.shape) for p in graph.level_populations)
    senders = sum(_size(p.shape) for p in graph.populations)
    positions = sum(_size(layer.shape) for layer in graph.layers)
    inputs = _size(graph.input.shape)
    per_set = (neurons + positions) * COUNT + (
        inputs * VALUE if graph.input.encoding == "events" else 0)
    return {"recorded": samples * steps * neurons * (SPIKE + (STATE if states else 0)),
            "passed_on": samples * steps * (senders + inputs) * VALUE,
            "working": samples * steps * max(_working(graph, layer, states)
                                             for layer in graph.layers),
            "totals": int(totals) * steps * per_set}


def run_bytes(graph, samples: int, states: bool = True, totals: int = 0) -> int:
    """Bytes a run of ``samples`` of ``graph`` adds to the process: :func:`run_parts` summed."""
    return sum(run_parts(graph, samples, states, totals).values())


def resident_bytes() -> int:
    """This process's resident memory now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def record(what: str, graph, samples: int, run: int) -> dict:
    """Keep the estimate of one check: resident now, what the run adds, their sum (the peak)."""
    resident = resident_bytes()
    entry = {"what": what, "samples": int(samples), "timesteps": graph.timesteps,
             "resident": resident, "run": int(run), "peak": resident + int(run)}
    ESTIMATES.append(entry)
    return entry

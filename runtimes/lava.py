"""Run a deployment graph on Lava's CPU simulator: 'lava-float' (floating_pt) or 'lava-fixed' (fixed_pt).

Lava is imported lazily, so the project works without lava-nc. ``samples_per_run`` samples share one
compiled network: they are laid back to back in time (see exporters/lava.py::build_processes). Spikes
and the post-reset membrane ``v`` come from Lava's own LIF models (a recording subclass writes them
to a memory-mapped file each step; Monitors would move them one element at a time), and the logits
are computed host-side from those spikes.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from exporters.lava_import import import_lava
from mlf_deploy.errors import UserError
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.results import RunResult


class LavaRunError(UserError):
    """A Lava run failed; its processes were stopped and control returned."""


def run_config(graph, fast_conv: bool = True, record: bool = True):
    """``Loihi2SimCfg`` for the graph's numeric, with our Conv, DelaySparse and recording LIF
    models (``fast_conv=False`` keeps Lava's stock Conv, for comparison)."""
    import_lava()
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import DelaySparse

    from exporters import lava_models as m

    integer = graph.numeric == "int"
    models = {DelaySparse: m.FastDelaySparseFixed if integer else m.FastDelaySparseFloat}
    if fast_conv:
        models[Conv] = m.FastConvFixed if integer else m.FastConvFloat
    if record:
        models[LIFReset] = m.RecordingLifFixed if integer else m.RecordingLifFloat
    return Loihi2SimCfg(select_tag="fixed_pt" if integer else "floating_pt",
                        exception_proc_model_map=models)


def hard_stop(proc) -> list[str]:
    """Tear down the actors of a failed run, where ``proc.stop()`` would wait forever on them;
    return the tracebacks the failed actors reported."""
    runtime = getattr(proc, "runtime", None)
    mi = getattr(runtime, "_messaging_infrastructure", None)
    if mi is None:
        return []
    errors, deadline = [], time.monotonic() + 2.0  # a failing actor reports just after the runtime
    for actor in mi._actors:
        try:
            while actor.exception is None and actor.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if actor.exception is not None:
                errors.append(actor.exception[1])
        except (ValueError, OSError):  # pipe already closed
            pass
    for actor in mi._actors:
        try:
            if actor.is_alive():
                actor.terminate()
        except ValueError:  # already closed
            pass
    for actor in mi._actors:
        try:
            actor.join()
        except Exception:  # noqa: BLE001 - best effort: the run already failed
            pass
    try:
        mi._smm.shutdown()
    except Exception:  # noqa: BLE001
        pass
    return errors


def execute(proc, num_steps: int, run_cfg) -> None:
    """Run the network that ``proc`` belongs to; always stop it, raise LavaRunError on failure."""
    import_lava()
    from lava.magma.core.run_conditions import RunSteps

    failure, errors = None, []
    try:
        proc.run(condition=RunSteps(num_steps=num_steps), run_cfg=run_cfg)
    except BaseException as exc:  # noqa: BLE001 - also KeyboardInterrupt: never leave actors behind
        failure = exc
    finally:
        if failure is None:
            proc.stop()
        else:
            errors = hard_stop(proc)
    if isinstance(failure, KeyboardInterrupt):
        raise failure
    if failure is not None:
        cause = errors[0].strip().splitlines()[-1] if errors else \
            f"{type(failure).__name__}: {str(failure).strip()[:200]}"
        more = f"\n{errors[0]}" if errors else ""
        raise LavaRunError(f"the Lava run failed in a Lava process ({cause}); all its processes "
                           f"were stopped{more}") from failure


def _scratch_dir() -> str | None:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def simulate(graph, frames, record_states: bool = True, fast_conv: bool = True):
    """Build and run one compiled network on ``frames`` (T, B, C, H, W) in *this* process; return
    spikes and states per population as (T, B, C, H, W) arrays at model timesteps."""
    from exporters.lava import build_processes
    from exporters.lava_models import RECORD_KEY

    steps_t, batch = frames.shape[:2]
    integer = graph.numeric == "int"
    dtype = np.int32 if integer else np.float64
    with tempfile.TemporaryDirectory(prefix="mlf-lava-", dir=_scratch_dir()) as tmp:
        net = build_processes(graph, frames)
        files = {}
        for i, (name, lif) in enumerate(net.lifs.items()):
            files[name] = os.path.join(tmp, f"{i}.rec")
            shape = (net.steps, 1 + record_states, *lif.v.shape)
            np.memmap(files[name], mode="w+", dtype=dtype, shape=shape).flush()
            lif.proc_params[RECORD_KEY] = (files[name], net.steps, bool(record_states))
        execute(net.procs[0], net.steps, run_config(graph, fast_conv))
        spikes, states = {}, {}
        for name, lif in net.lifs.items():
            rec = np.fromfile(files[name], dtype=dtype).reshape(net.steps, 1 + record_states,
                                                                *lif.v.shape)
            rows = net.depth[name] + np.arange(steps_t * batch)  # Lava step of (sample, model step)
            rec = rec[rows].reshape(batch, steps_t, *rec.shape[1:])
            rec = rec.transpose(1, 0, 2, 5, 4, 3)  # (T, B, s|v, C, H, W)
            spikes[name] = np.ascontiguousarray(rec[:, :, 0]).astype(np.uint8)
            if record_states:
                states[name] = np.ascontiguousarray(rec[:, :, 1]).astype(
                    np.int64 if integer else np.float64)
    return spikes, states, len(net.procs)


# Lava runs one OS process per Lava process; a BLAS thread pool in each (numpy's tensordot in the
# Conv models) multiplies the runnable threads and OpenBLAS threads spin while they wait.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _worker(job: str) -> None:
    """Entry point of the worker process: run one chunk, write the arrays beside the job file."""
    import warnings
    with open(job, "rb") as f:
        kw = pickle.load(f)
    # DelaySparse edits its csr matrix every step; the warning says nothing about correctness.
    warnings.filterwarnings("ignore", message=".*sparsity structure.*")
    spikes, states, procs = simulate(kw["graph"], kw["frames"], kw["record_states"], kw["fast_conv"])
    np.savez(job + ".out.npz", procs=procs, **{f"s|{k}": v for k, v in spikes.items()},
             **{f"v|{k}": v for k, v in states.items()})


def run_chunk(graph, frames, record_states: bool = True, fast_conv: bool = True,
              timeout: float | None = None):
    """:func:`simulate` in a fresh worker process. Lava forks one OS process per Lava process, and
    forking a parent that holds torch costs ~70 ms each (page tables), 10x a lean one; the worker
    is also a hard boundary: on failure or timeout its whole process group is killed."""
    steps = frames.shape[0] * frames.shape[1]
    timeout = timeout or 300 + 2.0 * steps
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
               **SINGLE_THREADED)
    with tempfile.TemporaryDirectory(prefix="mlf-lava-job-") as tmp:
        job = os.path.join(tmp, "job.pkl")
        with open(job, "wb") as f:
            pickle.dump(dict(graph=graph, frames=frames, record_states=record_states,
                             fast_conv=fast_conv), f)
        cmd = [sys.executable, "-c", "import sys, runtimes.lava as m; m._worker(sys.argv[1])", job]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except BaseException:  # timeout or Ctrl-C: take the Lava actors down with the worker
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise LavaRunError(f"the Lava run did not finish within {timeout:.0f} s; its "
                               "processes were killed") from None
        if proc.returncode != 0:
            tail = "\n".join(out.decode(errors="replace").strip().splitlines()[-12:])
            os.killpg(proc.pid, signal.SIGKILL) if _group_alive(proc.pid) else None
            raise LavaRunError(f"the Lava run failed (worker exit {proc.returncode}); its "
                               f"processes were stopped. Last output:\n{tail}")
        with np.load(job + ".out.npz") as z:
            spikes = {k[2:]: z[k] for k in z.files if k.startswith("s|")}
            states = {k[2:]: z[k] for k in z.files if k.startswith("v|")}
            return spikes, states, int(z["procs"])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def run_lava(graph, x, samples_per_run: int = 8, record_states: bool = True,
             log=None) -> RunResult:
    """Run ``graph`` on Lava; ``x`` is ``(B, C, H, W)`` images or ``(T, B, C, H, W)`` events.

    Returns spikes and (post-reset) membrane states per population and *model* timestep, as
    :class:`RunResult` with backend 'lava-float' or 'lava-fixed'. Raises ``LavaUnavailable`` without
    lava-nc, ``RuleViolation`` (before any process starts) for a graph Lava cannot run exactly, and
    ``LavaRunError`` when a run fails (its processes are stopped first). ``log`` (a callable
    taking one line) hears about each chunk, since a chunk takes tens of seconds to minutes.
    """
    import_lava()
    from exporters.lava import check_lava

    check_lava(graph)
    frames = prepare_input(graph, x)
    backend = "lava-fixed" if graph.numeric == "int" else "lava-float"
    parts = []
    total, step = frames.shape[1], max(1, samples_per_run)
    for i in range(0, total, step):
        start = time.perf_counter()
        if log:
            log(f"lava: samples {i + 1}-{min(i + step, total)} of {total}: building and running "
                f"{frames.shape[0] * min(step, total - i)} steps (one OS process per Lava process)")
        spikes, states, procs = run_chunk(graph, frames[:, i:i + step], record_states)
        if log:
            log(f"lava: {procs} Lava processes ran in {time.perf_counter() - start:.1f} s")
        parts.append(RunResult(backend, graph.numeric, spikes, states,
                               sem.readout_logits(graph, spikes)))
    return parts[0] if len(parts) == 1 else RunResult.concat(parts)

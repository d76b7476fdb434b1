"""Run a deployment graph on Lava's CPU simulator: 'lava-float' (floating_pt) or 'lava-fixed'
(fixed_pt).

Lava is imported lazily, so the project works without lava-nc. ``samples_per_run`` samples share one
compiled network: they are laid back to back in time (see
exporters/lava/lava_build.py::build_processes). Spikes and the post-reset membrane ``v`` come from
Lava's own LIF models (a recording subclass writes them to a memory-mapped file each step; Monitors
would move them one element at a time), and the logits are computed host-side from those spikes.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mlf_deploy
from mlf_deploy.errors import option
from mlf_deploy.exporters.lava.lava_import import import_lava
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.results import RunResult
from mlf_deploy.runtimes.lava_guard import (
    SAMPLES_PER_RUN,
    check_process_budget,
    default_timeout,
    failure_text,
    kill_group,
    process_count,
    wait_for_worker,
)
from mlf_deploy.runtimes.lava_shm import (
    SCRATCH_PREFIX,
    kill_group_but_me,
    record_held_shm,
    sweep_dead_runs,
)
from mlf_deploy.runtimes.lava_sim import LavaRunError, simulate
from mlf_deploy.runtimes.lava_sim import scratch_dir as _scratch_dir

# Lava runs one OS process per Lava process; a BLAS thread pool in each (numpy's tensordot in the
# Conv models) multiplies the runnable threads and OpenBLAS threads spin while they wait.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _worker(job: str) -> None:
    """Entry point of the worker process: run one chunk, write the arrays beside the job file."""
    import threading
    parent = os.getppid()

    with open(job, "rb") as f:
        kw = pickle.load(f)  # written by run_chunk into its own 0700 folder a moment ago

    def orphaned():  # the caller died (SIGKILL, OOM): take our Lava actors down with us
        ticks = 0
        while os.getppid() == parent:
            time.sleep(0.5)
            ticks += 1
            if kw["scratch"] and ticks % 10 == 0:  # for the next run's sweep, if we die too
                record_held_shm(os.getpgid(0), kw["scratch"])
        kill_group_but_me()  # Lava's segments outlive their processes: unlink them, then go
        shutil.rmtree(kw["scratch"], ignore_errors=True)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=orphaned, daemon=True).start()
    spikes, states, procs = simulate(kw["graph"], kw["frames"], kw["record_states"],
                                     kw["fast_conv"], kw["scratch"])
    np.savez(job + ".out.npz", procs=procs, **{f"s|{k}": v for k, v in spikes.items()},
             **{f"v|{k}": v for k, v in states.items()})
    sys.stdout.flush()
    os._exit(0)  # not multiprocessing's exit hook, which joins every exiting Lava process: the
    # parent kills and reaps the group (mlf_deploy.runtimes.lava_guard.kill_group)


# ``-I`` drops the working directory, PYTHONPATH and user site from the import path; the one path
# added is the folder holding the mlf_deploy package, so no module from the caller's folder can
# shadow ours.
def package_root() -> str:
    """The folder holding the mlf_deploy package: a source tree or site-packages."""
    return str(Path(mlf_deploy.__file__).resolve().parents[1])


_WORKER = ("import sys; sys.path.insert(0, sys.argv[1]); "
           "import mlf_deploy.runtimes.lava as m; m._worker(sys.argv[2])")


def run_chunk(graph, frames, record_states: bool = True, fast_conv: bool = True,
              timeout: float | None = None):
    """:func:`simulate` in a fresh worker process. Lava forks one OS process per Lava process, and
    forking a parent that holds torch costs ~70 ms each (page tables), 10x a lean one; the worker
    is also a hard boundary: however it ends (failure, timeout, Ctrl-C, a signal), its whole process
    group is killed and the shared memory its processes held is unlinked. ``timeout`` defaults to
    one derived from the network."""
    timeout = timeout or default_timeout(graph, frames.shape[1])
    root = package_root()
    env = dict(os.environ, **SINGLE_THREADED)
    sweep_dead_runs(_scratch_dir())  # what runs killed with SIGKILL left in /dev/shm
    # named after this process, so that a later run can tell whether it still runs
    scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=_scratch_dir())
    with tempfile.TemporaryDirectory(prefix="mlf-lava-job-") as tmp:
        job = os.path.join(tmp, "job.pkl")
        with open(job, "wb") as f:
            pickle.dump(dict(graph=graph, frames=frames, record_states=record_states,
                             fast_conv=fast_conv, scratch=scratch), f)
        proc = subprocess.Popen([sys.executable, "-I", "-c", _WORKER, root, job], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, dead = wait_for_worker(proc, timeout)
        except BaseException:  # Ctrl-C, SIGTERM: take the Lava actors down with the worker
            kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            kill_group(proc.pid)  # stragglers of a failed run; nothing once a run ended well
            shutil.rmtree(scratch, ignore_errors=True)
        if out is None:
            raise LavaRunError(f"the Lava run did not finish within {timeout:.0f} s "
                               f"({process_count(graph)} Lava processes); its processes were "
                               f"killed. Allow more with {option('lava_timeout', 'SECONDS')}")
        if dead is not None or proc.returncode != 0:
            raise LavaRunError(failure_text(proc.returncode, out.decode(errors="replace"), dead,
                                            graph, frames.shape[1]))
        with np.load(job + ".out.npz") as z:
            spikes = {k[2:]: z[k] for k in z.files if k.startswith("s|")}
            states = {k[2:]: z[k] for k in z.files if k.startswith("v|")}
            return spikes, states, int(z["procs"])


def run_lava(graph, x, samples_per_run: int = SAMPLES_PER_RUN, record_states: bool = True,
             timeout: float | None = None, log=None) -> RunResult:
    """Run ``graph`` on Lava; ``x`` is ``(B, C, H, W)`` images or ``(T, B, C, H, W)`` events.

    Returns spikes and (post-reset) membrane states per population and *model* timestep, as
    :class:`RunResult` with backend 'lava-float' or 'lava-fixed'. Raises ``LavaUnavailable`` without
    lava-nc, ``RuleViolation`` (before any process starts) for a graph Lava cannot run exactly, and
    ``LavaRunError`` when a run fails (its processes are stopped first). ``timeout``: seconds per
    run of ``samples_per_run`` samples (default: derived from the network, ``default_timeout``).
    ``log`` (a callable taking one line) hears about each chunk, since a chunk takes tens of
    seconds to minutes.
    """
    import_lava()
    from mlf_deploy.exporters.lava.export import check_lava

    check_lava(graph)
    check_process_budget(graph)
    frames = prepare_input(graph, x)
    backend = ("lava-fixed" if graph.numeric == "int" else "lava-float") + \
        ("-graded" if graph.graded else "")
    parts = []
    total, step = frames.shape[1], max(1, samples_per_run)
    for i in range(0, total, step):
        start = time.perf_counter()
        if log:
            log(f"lava: samples {i + 1}-{min(i + step, total)} of {total}: building and running "
                f"{frames.shape[0] * min(step, total - i)} steps (one OS process per Lava process)")
        spikes, states, procs = run_chunk(graph, frames[:, i:i + step], record_states,
                                          timeout=timeout)
        if log:
            log(f"lava: {procs} Lava processes ran in {time.perf_counter() - start:.1f} s")
        parts.append(RunResult(backend, graph.numeric, spikes, states,
                               sem.readout_logits(graph, spikes)))
    return parts[0] if len(parts) == 1 else RunResult.concat(parts)

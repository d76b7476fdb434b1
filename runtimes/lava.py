"""Run a deployment graph on Lava's CPU simulator: 'lava-float' (floating_pt) or 'lava-fixed' (fixed_pt).

Lava is imported lazily, so the project works without lava-nc. ``samples_per_run`` samples share one
compiled network: they are laid back to back in time (see exporters/lava.py::build_processes). Spikes
and the post-reset membrane ``v`` come from Lava's own LIF models (a recording subclass writes them
to a memory-mapped file each step; Monitors would move them one element at a time), and the logits
are computed host-side from those spikes.
"""

from __future__ import annotations

import gc
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
from mlf_deploy.errors import UserError
from mlf_deploy.exporters.lava_import import import_lava
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.results import RunResult
from mlf_deploy.runtimes.lava_guard import (
    default_timeout,
    failure_text,
    kill_group,
    process_count,
    wait_for_worker,
)


class LavaRunError(UserError):
    """A Lava run failed; its processes were stopped and control returned."""


def run_config(graph, net=None, fast_conv: bool = True, record: bool = True):
    """``Loihi2SimCfg`` for the graph's numeric, with our Conv, recording LIF and spike-delay
    models (``fast_conv=False`` keeps Lava's stock Conv, for comparison).

    Lava's compiler looks a process *instance* up in ``exception_proc_model_map`` before it
    searches packages for models (a directory scan and imports per process: ~7 s of a 232-process
    compile, measured), and our SpikeDelay is in no package it searches: so every process of
    ``net`` (from ``build_processes``) is mapped to its model by instance."""
    import_lava()
    from lava.magma.core.run_configs import Loihi2SimCfg

    from mlf_deploy.exporters.lava_models import model_table

    table = model_table(graph.numeric == "int", fast_conv, record)
    models = {p: table[type(p)] for p in net.procs} if net is not None else {}
    return Loihi2SimCfg(select_tag="fixed_pt" if graph.numeric == "int" else "floating_pt",
                        exception_proc_model_map={**table, **models})


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
    _end_actors(runtime)
    return errors


def release(proc) -> None:
    """End a *finished* run without Lava's stop handshake (a STOP and a reply through the runtime
    service per process, then a join per port: 18.8 s of a 232-process cifar10 run, measured).
    Every step's results are already in the record files, which are shared file mappings and
    outlive the processes that wrote them."""
    _end_actors(getattr(proc, "runtime", None), join=False)


def _end_actors(runtime, join: bool = True) -> None:
    """SIGTERM every actor, join them unless told not to (exiting processes need CPU time: joining
    232 took 16 s on the loaded 2-core machine; unjoined, they exit while the caller reads back
    and the group is reaped by its parent), and unlink the run's shared memory."""
    mi = getattr(runtime, "_messaging_infrastructure", None)
    if mi is None:
        return
    for actor in mi._actors:
        try:
            if actor.is_alive():
                actor.terminate()
        except ValueError:  # already closed
            pass
    for actor in mi._actors if join else ():
        try:
            actor.join()
        except Exception:  # noqa: BLE001 - best effort: the run already failed
            pass
    try:
        mi._smm.shutdown()
    except Exception:  # noqa: BLE001
        pass
    runtime._is_started = False  # else Runtime.__del__ calls stop(), which waits on the dead actors


def execute(proc, num_steps: int, run_cfg, fast_end: bool = False) -> None:
    """Run the network that ``proc`` belongs to; always stop it, raise LavaRunError on failure.
    ``fast_end``: end a finished run with :func:`release` instead of ``proc.stop()``."""
    import_lava()
    from lava.magma.core.run_conditions import RunSteps

    failure, errors = None, []
    try:
        proc.run(condition=RunSteps(num_steps=num_steps), run_cfg=run_cfg)
    except BaseException as exc:  # noqa: BLE001 - also KeyboardInterrupt: never leave actors behind
        failure = exc
    finally:
        if failure is None:
            release(proc) if fast_end else proc.stop()
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


def simulate(graph, frames, record_states: bool = True, fast_conv: bool = True,
             scratch: str | None = None):
    """Build and run one compiled network on ``frames`` (T, B, C, H, W) in *this* process; return
    spikes and states per population as (T, B, C, H, W) arrays at model timesteps. The record
    files go under ``scratch`` (default: /dev/shm)."""
    from mlf_deploy.exporters.lava import build_processes
    from mlf_deploy.exporters.lava_models import RECORD_KEY

    steps_t, batch = frames.shape[:2]
    integer = graph.numeric == "int"
    dtype = np.int32 if integer else np.float64
    with tempfile.TemporaryDirectory(prefix="mlf-lava-", dir=scratch or _scratch_dir()) as tmp:
        net = build_processes(graph, frames)
        files = {}
        for i, (name, lif) in enumerate(net.lifs.items()):
            files[name] = os.path.join(tmp, f"{i}.rec")
            shape = (net.steps, 1 + record_states, *lif.v.shape)
            np.memmap(files[name], mode="w+", dtype=dtype, shape=shape).flush()
            lif.proc_params[RECORD_KEY] = (files[name], net.steps, bool(record_states))
        gc.freeze()  # Lava forks each process from here: keep the GC off inherited pages (no COW)
        execute(net.procs[0], net.steps, run_config(graph, net, fast_conv), fast_end=True)
        spikes, states = {}, {}
        for name, lif in net.lifs.items():
            rec = np.fromfile(files[name], dtype=dtype).reshape(net.steps, 1 + record_states,
                                                                *lif.v.shape)
            rows = net.depth[name] + np.arange(steps_t * batch)  # Lava step of (sample, model step)
            rec = rec[rows].reshape(batch, steps_t, *rec.shape[1:])
            levels = graph.sender_levels(name)  # a graded population records (K, W, H, C)
            if not graph.graded:
                rec = rec[:, :, :, None]
            rec = rec.transpose(1, 0, 2, 3, 6, 5, 4)  # (T, B, s|v, level, C, H, W)
            for k, level in enumerate(levels):
                spikes[level] = np.ascontiguousarray(rec[:, :, 0, k]).astype(np.uint8)
                if record_states:
                    states[level] = np.ascontiguousarray(rec[:, :, 1, k]).astype(
                        np.int64 if integer else np.float64)
    return spikes, states, len(net.procs)


# Lava runs one OS process per Lava process; a BLAS thread pool in each (numpy's tensordot in the
# Conv models) multiplies the runnable threads and OpenBLAS threads spin while they wait.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _worker(job: str) -> None:
    """Entry point of the worker process: run one chunk, write the arrays beside the job file."""
    import threading
    parent = os.getppid()

    def orphaned():  # the caller died (SIGKILL, OOM): take our Lava actors down with us
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=orphaned, daemon=True).start()
    with open(job, "rb") as f:
        kw = pickle.load(f)  # written by run_chunk into its own 0700 folder a moment ago
    spikes, states, procs = simulate(kw["graph"], kw["frames"], kw["record_states"],
                                     kw["fast_conv"], kw["scratch"])
    np.savez(job + ".out.npz", procs=procs, **{f"s|{k}": v for k, v in spikes.items()},
             **{f"v|{k}": v for k, v in states.items()})
    sys.stdout.flush()
    os._exit(0)  # not multiprocessing's exit hook, which joins every exiting Lava process: the
    # parent kills and reaps the group (runtimes.lava_guard.kill_group)


# ``-I`` drops the working directory, PYTHONPATH and user site from the import path; the one path
# added is the folder holding the mlf_deploy package, so no module from the caller's folder can shadow ours.
def package_root() -> str:
    """The folder holding the mlf_deploy package: a source tree or site-packages."""
    return str(Path(mlf_deploy.__file__).resolve().parents[1])


_WORKER = "import sys; sys.path.insert(0, sys.argv[1]); import mlf_deploy.runtimes.lava as m; m._worker(sys.argv[2])"


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
    scratch = tempfile.mkdtemp(prefix="mlf-lava-", dir=_scratch_dir())  # removed even if killed
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
                               "killed. Allow more with --lava-timeout SECONDS")
        if dead is not None or proc.returncode != 0:
            raise LavaRunError(failure_text(proc.returncode, out.decode(errors="replace"), dead,
                                            graph, frames.shape[1]))
        with np.load(job + ".out.npz") as z:
            spikes = {k[2:]: z[k] for k in z.files if k.startswith("s|")}
            states = {k[2:]: z[k] for k in z.files if k.startswith("v|")}
            return spikes, states, int(z["procs"])


def run_lava(graph, x, samples_per_run: int = 8, record_states: bool = True,
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
    from mlf_deploy.exporters.lava import check_lava

    check_lava(graph)
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

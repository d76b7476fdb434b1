"""The Lava side of a run, executed inside the worker process: the simulator configuration with
our process models, the run itself with its record files, and the shortcut that ends 200 Lava
processes without Lava's per-process handshake. :mod:`mlf_deploy.runtimes.lava` starts the
worker and reads back what :func:`simulate` returns."""

from __future__ import annotations

import gc
import os
import tempfile
import time

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.lava.lava_import import import_lava


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

    from mlf_deploy.exporters.lava.process_models import model_table

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


def scratch_dir() -> str | None:
    """Where record files go: shared memory when writable (the Lava processes write every step)."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def simulate(graph, frames, record_states: bool = True, fast_conv: bool = True,
             scratch: str | None = None):
    """Build and run one compiled network on ``frames`` (T, B, C, H, W) in *this* process; return
    spikes and states per population as (T, B, C, H, W) arrays at model timesteps. The record
    files go under ``scratch`` (default: /dev/shm)."""
    from mlf_deploy.exporters.lava.export import build_processes
    from mlf_deploy.exporters.lava.process_models import RECORD_KEY

    steps_t, batch = frames.shape[:2]
    integer = graph.numeric == "int"
    dtype = np.int32 if integer else np.float64
    with tempfile.TemporaryDirectory(prefix="mlf-lava-", dir=scratch or scratch_dir()) as tmp:
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

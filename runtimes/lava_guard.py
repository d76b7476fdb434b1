"""Bounds and clean-up for a Lava run: its timeout, a watchdog on its processes, and a teardown that
leaves no process and no shared-memory file behind.

A Lava run is one worker process (its own process group) that forks one OS process per Lava
process. Lava cannot notice when one of them dies from a signal (the kernel's out-of-memory killer
sends SIGKILL): the rest wait for it forever. So the parent watches the group for such a death,
and whoever ends a run kills the whole group and unlinks the ``/dev/shm`` files its processes
held, which a killed Lava run cannot do itself.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.lava.export import host_fed, lava_step_offsets
from mlf_deploy.limits import available_memory

# Seconds, measured on this project's 2-core machine while it was shared (load average 60-100):
# 0.4 s per Lava process to compile and fork it and 17 ms per process per Lava step (232
# processes, cifar10 preset). The default timeout allows about 3x that on top of a fixed minute.
START_S, PER_PROCESS_S, PER_PROCESS_STEP_S = 60.0, 1.0, 0.05
SAMPLES_PER_RUN = 8  # samples one Lava run (one compile, one set of processes) takes, back to back
# Resident memory of one Lava process (its OS process, channels and buffers): a 50-layer chain ran
# 205 processes in 1.5 GB, 7.3 MiB each; twice that leaves room for larger layers' buffers.
PROCESS_BYTES = 16 * 2 ** 20


def max_processes() -> int:
    """Lava processes one run may start: those half of the available memory holds, and no more
    than the user's process limit leaves (each Lava process is an OS process)."""
    budget = available_memory() // 2 // PROCESS_BYTES
    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    return int(budget if soft == resource.RLIM_INFINITY else min(budget, soft // 2))


def check_process_budget(graph) -> None:
    """Refuse, before any process starts, a graph whose Lava network would not fit."""
    most = max_processes()
    # one process per population at least: a cheap bound first (the exact count walks the graph
    # once per layer, minutes for a chain of thousands of layers)
    procs = len(graph.populations)
    procs = procs if procs > most else process_count(graph)
    if procs > most:
        raise UserError(f"this graph needs at least {procs} Lava processes (one OS process each, "
                        f"about {PROCESS_BYTES >> 20} MiB apiece); this machine holds {most} now. "
                        "Run it on the reference or ONNX backend, or free memory")


def process_count(graph) -> int:
    """Lava processes ``mlf_deploy.exporters.lava.export.build_processes`` makes for ``graph``."""
    depth, feeds, relays, count = lava_step_offsets(graph), set(), set(), 0
    for layer in graph.layers:
        count += len(layer.populations)
        count += any(host_fed(graph, p) for p in graph.projections_into(layer.name))
        for p in graph.projections_into(layer.name):
            if host_fed(graph, p):
                continue
            count += 1
            if p.source == graph.input.name:
                feeds.add(depth[layer.name] - 1)
            elif depth[layer.name] - depth[graph.nodes[p.source].layer] - 1 > 0:
                relays.add((p.source, depth[layer.name] - depth[graph.nodes[p.source].layer]))
    return count + len(feeds) + len(relays)


def default_timeout(graph, batch: int) -> float:
    """Seconds a run of ``batch`` samples may take: grows with processes and Lava steps."""
    procs, steps = process_count(graph), batch * graph.input.timesteps + max(
        lava_step_offsets(graph).values())
    return START_S + PER_PROCESS_S * procs + PER_PROCESS_STEP_S * procs * steps


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def killed_member(pgid: int) -> tuple[int, str] | None:
    """(pid, signal name) of a process of the group that a signal other than SIGTERM (which the
    worker's own teardown sends) has killed and that nobody has reaped yet (a zombie keeps its
    exit status in /proc), else None. Lava reaps its processes only when it stops, so during a
    run this is a Lava process that died: the rest wait for it forever."""
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        sig = int(fields[-1]) & 0x7F if len(fields) >= 50 else 0
        if fields[0] == "Z" and sig and sig != signal.SIGTERM:  # SIGTERM: the worker's own teardown
            return pid, signal_name(-sig)
    return None


def wait_for_worker(proc, timeout: float):
    """(output, None) when the worker ends; (output so far, (pid, signal)) as soon as one of its
    Lava processes is found killed by a signal (Lava would wait for it forever); (None, None) at
    the timeout. The group is killed in the two last cases."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = max(0.01, deadline - time.monotonic())
            return proc.communicate(timeout=min(1.0, left))[0], None
        except subprocess.TimeoutExpired:
            dead = killed_member(proc.pid)
            if dead is not None or time.monotonic() >= deadline:
                kill_group(proc.pid)
                out = proc.communicate()[0]
                return (out, dead) if dead is not None else (None, None)


def failure_text(returncode: int, output: str, dead, graph, batch: int) -> str:
    """One clear cause first: a Lava process or the worker killed by a signal (SIGKILL: most
    likely the kernel's out-of-memory killer), else the worker's last output."""
    memory = (f"most likely out of memory, the kernel's out-of-memory killer "
              f"({process_count(graph)} Lava processes, {batch} samples "
              "per run): run fewer samples per run or free memory")
    if dead is not None:
        hint = f"; {memory}" if dead[1] == "SIGKILL" else ""
        return (f"the Lava run failed: one of its Lava processes (pid {dead[0]}) was killed by "
                f"{dead[1]}{hint}. All its processes were stopped")
    if returncode < 0:
        hint = f"; {memory}" if returncode == -signal.SIGKILL else ""
        return (f"the Lava run's worker was killed by {signal_name(returncode)}{hint}. All its "
                "processes were stopped")
    tail = "\n".join(output.strip().splitlines()[-12:])
    return (f"the Lava run failed (worker exit {returncode}); its processes were stopped. "
            f"Last output:\n{tail}")


def _processes():
    """(pid, parent pid, process group) of every process, read from /proc."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # exited meanwhile
                continue
            yield int(entry), int(fields[1]), int(fields[2])  # after "(comm)": state, ppid, pgrp


def group_pids(pgid: int) -> list[int]:
    return [pid for pid, _, group in _processes() if group == pgid]


def children(parent: int) -> list[int]:
    return [pid for pid, ppid, _ in _processes() if ppid == parent]


def lava_workers(parent: int) -> list[int]:
    """The ``run_lava`` workers ``parent`` started (their command line runs ``_worker``)."""
    found = []
    for pid in children(parent):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"_worker" in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def group_shm_files(pgid: int) -> set[str]:
    """``/dev/shm`` files that processes of the group map or hold open (Lava's channels)."""
    files = set()
    for pid in group_pids(pgid):
        files |= _shm_of(pid)
    return files


def _shm_of(pid: int) -> set[str]:
    files = set()
    try:
        with open(f"/proc/{pid}/maps") as f:
            files.update(line.split(None, 5)[5].strip() for line in f
                         if len(line.split(None, 5)) == 6 and "/dev/shm/" in line)
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("/dev/shm/"):
                files.add(target)
    except OSError:
        pass
    return {f.removesuffix(" (deleted)") for f in files}


def kill_group(pgid: int, wait_s: float = 10.0) -> set[str]:
    """SIGKILL every process of the group, wait until they are gone and unlink the shared-memory
    files they held; return those files."""
    files = group_shm_files(pgid)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(_alive(p) for p in group_pids(pgid)):
        time.sleep(0.05)
    for path in files:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return files


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie waits for its parent
    except OSError:
        return False


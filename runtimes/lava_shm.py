"""Shared memory that dead Lava runs left in ``/dev/shm``, swept at the next run.

Lava's channels are ``/dev/shm/psm_*`` segments that outlive the processes that made them. A run
whose caller and worker are both killed with SIGKILL cannot unlink them, so its worker keeps a list
of the segments its processes hold in the run's scratch folder (``mlf-lava-<caller pid>-*``), and
the next run removes the folders of dead callers with every listed segment no live process holds.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from mlf_deploy.runtimes.lava_guard import _alive, _processes, _shm_of, group_pids, group_shm_files

SCRATCH_PREFIX = "mlf-lava-"
HELD_SHM = "held-shm.txt"  # inside a run's scratch folder: the /dev/shm files its processes hold


def record_held_shm(pgid: int, scratch: str) -> None:
    """Write the /dev/shm files the group holds into its scratch folder, for a later sweep."""
    files = sorted(f for f in group_shm_files(pgid) if not f.startswith(scratch))
    tmp = os.path.join(scratch, HELD_SHM + ".tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(files))
    os.replace(tmp, os.path.join(scratch, HELD_SHM))


def sweep_dead_runs(folder: str | None) -> list[str]:
    """Remove the scratch folders (``mlf-lava-<pid>-*``) of runs whose caller is dead, and the
    Lava shared-memory files they recorded that no live process holds; return what was removed.
    A caller killed with SIGKILL, then its worker too, leaves them: they would fill /dev/shm."""
    removed = []
    for entry in Path(folder or "/nonexistent").glob(SCRATCH_PREFIX + "*-*"):
        pid = entry.name[len(SCRATCH_PREFIX):].split("-")[0]
        if not pid.isdigit() or _alive(int(pid)) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            held = (entry / HELD_SHM).read_text().split()
        except OSError:
            held = []
        live = _held_by_anyone() if held else set()
        for name in held:
            if name.startswith("/dev/shm/psm_") and "/" not in name[9:] and name not in live:
                try:
                    os.unlink(name)
                    removed.append(name)
                except OSError:
                    pass
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(str(entry))
    return removed


def _held_by_anyone() -> set[str]:
    files = set()
    for pid, _, _ in _processes():
        files |= _shm_of(pid)
    return files


def kill_group_but_me(wait_s: float = 5.0) -> None:
    """From the worker: SIGKILL every other process of its group, then unlink the /dev/shm files
    they held (the worker's own SIGKILL comes last, from its caller-watch thread)."""
    me, pgid = os.getpid(), os.getpgid(0)
    files = group_shm_files(pgid)
    for pid in group_pids(pgid):
        if pid != me:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(_alive(p) for p in group_pids(pgid) if p != me):
        time.sleep(0.05)
    for path in files:
        if path.startswith("/dev/shm/"):
            try:
                os.unlink(path)
            except OSError:
                pass

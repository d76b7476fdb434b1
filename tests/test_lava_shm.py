"""Shared memory of dead Lava runs is swept by the next run: only segments a dead run listed, only
``/dev/shm/psm_*`` ones, and never one a live process still holds."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlf_deploy.runtimes.lava_shm import HELD_SHM, SCRATCH_PREFIX, sweep_dead_runs

pytestmark = pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="needs /dev/shm")


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)


def test_segments_of_a_dead_run_are_swept_and_nothing_else(tmp_path):
    tag = uuid.uuid4().hex[:8]
    stale, held, other = (Path(f"/dev/shm/psm_test{tag}{i}") for i in range(3))
    foreign = Path(f"/dev/shm/notours{tag}")
    for p in (stale, held, foreign):
        p.write_bytes(b"x")
    keep_open = open(held, "rb")  # a live process (this one) still holds it
    try:
        dead = tmp_path / f"{SCRATCH_PREFIX}{_dead_pid()}-abc"
        live = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-abc"
        for d in (dead, live):
            d.mkdir()
            (d / HELD_SHM).write_text("\n".join(map(str, (stale, held, other, foreign))))
        removed = sweep_dead_runs(str(tmp_path))
        assert str(stale) in removed and not stale.exists()
        assert held.exists() and foreign.exists()  # held by a live process / not Lava's
        assert not dead.exists() and live.exists()
    finally:
        keep_open.close()
        for p in (stale, held, foreign):
            p.unlink(missing_ok=True)

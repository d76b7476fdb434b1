"""The Lava worker: no module from the working directory runs in it, and however it ends (killed,
out of memory, Ctrl-C, its caller killed) it leaves no process and no scratch file behind."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_graphs, make_model, sample_input
from lava_probe import running_lifs

from mlf_deploy.exporters.lava.lava_import import lava_available
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.runtimes.lava_guard import children
from mlf_deploy.runtimes.lava_shm import sweep_dead_runs

ROOT = Path(__file__).resolve().parents[1]


def _shadowing_folder(tmp_path):
    """A folder with its own mlf_deploy/runtimes/lava.py, which would create a marker file if
    imported."""
    marker = tmp_path / "ran"
    (tmp_path / "mlf_deploy" / "runtimes").mkdir(parents=True)
    (tmp_path / "mlf_deploy" / "__init__.py").write_text("")
    (tmp_path / "mlf_deploy" / "runtimes" / "__init__.py").write_text("")
    (tmp_path / "mlf_deploy" / "runtimes" / "lava.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n")
    return marker


def test_worker_imports_nothing_from_the_working_directory(tmp_path):
    from mlf_deploy.runtimes.lava import _WORKER
    marker = _shadowing_folder(tmp_path)
    job = str(tmp_path / "no-such-job.pkl")  # the worker fails at once, after its imports
    res = subprocess.run([sys.executable, "-I", "-c", _WORKER, str(ROOT), job], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "no-such-job.pkl" in res.stderr
    ran = {Path(f).resolve() for f in re.findall(r'File "([^"]+)"', res.stderr)}
    assert ROOT / "runtimes" / "lava.py" in ran and not marker.exists()  # (a strict install links)
    # The same folder does shadow the package for a plain `python -c` (what the worker used to
    # run), so this test can fail.
    subprocess.run([sys.executable, "-c", "import mlf_deploy.runtimes.lava"], cwd=tmp_path,
                   timeout=120, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert marker.exists()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


_DRIVER = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import make_graphs, make_model, sample_input
from lava_probe import running_lifs
from mlf_deploy.ir.semantics import prepare_input
import mlf_deploy.runtimes.lava as lava
lava._scratch_dir = lambda: {scratch!r}
graph = make_graphs(make_model(), weight_bits=8)[1]
try:
    lava.run_chunk(graph, prepare_input(graph, sample_input(2)), timeout=600)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
except lava.LavaRunError as exc:
    print("error:", exc, flush=True)
    sys.exit(2)
"""


def _start_driver(tmp_path):
    scratch = tmp_path / "shm"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER.format(tests=str(ROOT / "tests"),
                                                                  scratch=str(scratch))],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(1200):  # until the worker's Lava processes run the network
        workers = children(proc.pid)
        if workers and running_lifs(workers[0]):
            return proc, workers[0], scratch
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the Lava worker did not start: {proc.communicate()[0][-2000:]}")


pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")]


# how the run ends: whom to signal, the signal, the caller's exit status, what its output says,
# and who empties the scratch folder: the run itself, or for a caller killed outright its
# orphaned worker when it gets there first, else the next run's sweep of dead runs' folders
ENDS = {
    "worker SIGKILL": ("worker", signal.SIGKILL, 2, ["killed by SIGKILL", "out-of-memory"], "run"),
    "Ctrl-C": ("caller", signal.SIGINT, 130, ["interrupted"], "run"),
    "caller SIGKILL": ("caller", signal.SIGKILL, -signal.SIGKILL, [], "next run"),
}


@pytest.mark.slow
@pytest.mark.parametrize("how", list(ENDS))
def test_every_end_of_a_lava_run_cleans_up(tmp_path, how):
    whom, sig, status, says, emptied_by = ENDS[how]
    proc, worker, scratch = _start_driver(tmp_path)
    os.kill(worker if whom == "worker" else proc.pid, sig)  # worker SIGKILL: the OOM killer
    out, _ = proc.communicate(timeout=120)
    for _ in range(100):  # an orphaned worker notices its caller is gone within half a second
        if not _group_alive(worker):
            break
        time.sleep(0.1)
    assert not _group_alive(worker), "Lava processes were left running"
    assert proc.returncode == status and all(text in out for text in says), out
    if emptied_by == "next run":
        sweep_dead_runs(str(scratch))  # what run_chunk does first
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_run_chunk_still_matches_after_the_isolation(tmp_path, monkeypatch):
    """Run from a folder that shadows the package: the run works and the shadow never runs."""
    import numpy as np

    from mlf_deploy.ir.reference import run_reference
    from mlf_deploy.runtimes.lava import run_chunk
    marker = _shadowing_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    graph = make_graphs(make_model())[1]
    x = sample_input(2)
    spikes, states, _ = run_chunk(graph, prepare_input(graph, x))
    ref = run_reference(graph, x)
    assert all(np.array_equal(spikes[p], ref.spikes[p]) for p in ref.spikes)
    assert not marker.exists()

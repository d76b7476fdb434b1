"""Nothing of the user's is deleted: --force replaces only earlier outputs of ours; two commands
never share an output; full, read-only or odd output paths are one error line."""

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tamper import one_error, run

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.lava.lava_import import lava_available
from mlf_deploy.outputs import MANIFEST, output_lock, sweep_stale_stages

pytestmark = pytest.mark.skipif(not lava_available(), reason="the Lava export needs lava-nc")


def test_force_never_deletes_the_current_directory(tmp_path, ckpt, monkeypatch):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    (work / "sub" / "data.bin").write_bytes(b"1")
    own = work / "checkpoint.pt"
    own.write_bytes(ckpt.read_bytes())
    monkeypatch.chdir(work)
    one_error(run("export", "checkpoint.pt", "--to", "lava", "-o", ".", "--force"),
              "current directory")
    one_error(run("export", "checkpoint.pt", "--to", "lava", "-o", "..", "--force"),
              "current directory")
    one_error(run("demo", "--out", ".", "--force"), "current directory")
    assert sorted(p.name for p in work.iterdir()) == ["checkpoint.pt", "notes.txt", "sub"]
    assert (work / "sub" / "data.bin").read_bytes() == b"1"


def test_force_replaces_only_an_earlier_export_of_ours(tmp_path, ckpt):
    out = tmp_path / "lava"
    assert run("export", ckpt, "--to", "lava", "-o", out).exit_code == 0
    assert (out / MANIFEST).is_file()
    one_error(run("export", ckpt, "--to", "lava", "-o", out), "--force")
    res = run("export", ckpt, "--to", "lava", "-o", out, "--force")
    assert res.exit_code == 0, res.output
    (out / "my-results.csv").write_text("1,2")
    one_error(run("export", ckpt, "--to", "lava", "-o", out, "--force"), "my-results.csv")
    assert (out / "my-results.csv").read_text() == "1,2"
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "a.jpg").write_bytes(b"x")
    one_error(run("export", ckpt, "--to", "lava", "-o", foreign, "--force"), "not written by")
    one_error(run("demo", "--out", foreign, "--force"), "not written by")
    assert (foreign / "a.jpg").exists()


def test_force_onto_a_symlink_or_a_file(tmp_path, ckpt):
    target = tmp_path / "real"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    one_error(run("export", ckpt, "--to", "lava", "-o", tmp_path / "link", "--force"),
              "symbolic link")
    one_error(run("export", ckpt, "--to", "ir", "-o", tmp_path / "link", "--force"),
              "symbolic link")
    (tmp_path / "plain").write_text("keep")
    one_error(run("export", ckpt, "--to", "lava", "-o", tmp_path / "plain", "--force"),
              "not a folder")
    one_error(run("export", ckpt, "--to", "ir", "-o", tmp_path / "plain", "--force"),
              "did not write it")
    assert (tmp_path / "plain").read_text() == "keep"


def test_a_locked_output_refuses_a_second_command(tmp_path, ckpt):
    out = tmp_path / "g.mlfg"
    with output_lock(out):
        one_error(run("export", ckpt, "--to", "ir", "-o", out), "another mlf-deploy command")
        one_error(run("train", "--out", out, "--epochs", "1", "--no-progress"),
                  "another mlf-deploy command")
    assert not out.exists()
    assert run("export", ckpt, "--to", "ir", "-o", out).exit_code == 0
    assert not (tmp_path / ".g.mlfg.lock").exists()


def test_train_refuses_an_existing_run_and_bad_numbers(tmp_path, ckpt):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(ckpt.read_bytes())
    one_error(run("train", "--out", run_dir, "--epochs", "1"), "--resume")
    assert (run_dir / "checkpoint.pt").read_bytes() == ckpt.read_bytes()
    for option in (["--lr", "nan"], ["--lr", "inf"], ["--weight-decay", "nan"],
                   ["--momentum", "nan"]):
        one_error(run("train", "--out", tmp_path / "new", *option), "finite")
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_full_disk_is_one_error_and_leaves_nothing(tmp_path, ckpt):
    """A file-size limit (SIGXFSZ ignored) makes writes fail as on a full disk, in a real CLI."""
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000)); "
              "from mlf_deploy.commands.app import main; "
              "sys.argv = ['mlf-deploy'] + sys.argv[1:]; main()")
    for target, out in (("onnx", tmp_path / "m.onnx"), ("lava", tmp_path / "lava")):
        res = subprocess.run([sys.executable, "-c", script, "export", str(ckpt), "--to", target,
                              "-o", str(out)], capture_output=True, text=True, timeout=300,
                             cwd=Path(__file__).resolve().parents[1])
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and "File too large" in lines[0], res.stderr
        assert list(tmp_path.iterdir()) == []


def test_read_only_output_is_one_error(tmp_path, ckpt, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(kwargs.get("dir")))
    monkeypatch.setattr("tempfile.mkstemp", read_only)
    one_error(run("export", ckpt, "--to", "ir", "-o", tmp_path / "g.mlfg"), "Read-only file system")
    assert list(tmp_path.iterdir()) == []


def test_stale_staging_folders_of_dead_processes_are_swept(tmp_path):
    out = tmp_path / "demo-output"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".demo-output.stage-{dead}-abc"
    live = tmp_path / f".demo-output.stage-{os.getpid()}-abc"
    for d in (stale, live):
        d.mkdir()
        (d / "x").write_text("x")
    sweep_stale_stages(out)
    assert not stale.exists() and live.exists()


def _staged_files(folder) -> list:
    try:
        return [p for stage in folder.glob(".demo.stage-*") for p in stage.rglob("*")
                if p.is_file()]
    except OSError:  # the stage was renamed while being listed
        return []


@pytest.mark.slow
def test_sigterm_of_demo_removes_its_staging_folder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "cli", "demo", "--quick", "--no-progress",
                             "--out", str(tmp_path / "demo")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        for _ in range(3000):  # until the demo has written a file into its staging folder
            if _staged_files(tmp_path) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the demo ended before it could be interrupted"
        proc.terminate()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert list(tmp_path.iterdir()) == []


def test_lock_is_refused_with_a_clear_message_in_the_library(tmp_path):
    with output_lock(tmp_path / "x"):
        with pytest.raises(UserError, match="another mlf-deploy command"):
            with output_lock(tmp_path / "x"):
                pass


_RUNS_A_SNIPPET_FROM_C = '''
import ctypes
from mlf_deploy.commands.app import user_errors

@user_errors
def work():
    run = ctypes.pythonapi.PyRun_String
    run.restype = ctypes.py_object
    run.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
    scope = {}
    run(b"import os, signal, time\\nos.kill(os.getpid(), signal.SIGTERM)\\ntime.sleep(30)\\n",
        257, scope, scope)

work()
'''


def test_sigterm_inside_code_run_from_c_still_exits_130(tmp_path):
    # Libraries run snippets through PyRun_*; a bare KeyboardInterrupt escaping one makes CPython
    # exit by SIGINT (-2) at the end whatever sys.exit said, which broke the demo's exit status.
    (tmp_path / "snippet_from_c.py").write_text(_RUNS_A_SNIPPET_FROM_C)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo)])}
    done = subprocess.run([sys.executable, "-m", "snippet_from_c"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "interrupted", done.stderr

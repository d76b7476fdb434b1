"""Output folders we may replace, a lock that keeps two commands off one output, staging folders.

``--force`` must never delete what a user owns. A folder this tool writes (a Lava export, a demo
output, a training run) carries a ledger, :data:`MANIFEST`, with the SHA-256 of every file it wrote
(:mod:`mlf_deploy.ownership`); only a folder each of whose files, at any depth, still has the bytes
a ledger of ours records may be replaced. The
current directory, any folder above it and any folder above a protected input (the checkpoint) are
never replaced, whatever they hold.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from mlf_deploy.errors import UserError, option
from mlf_deploy.fileio import WRITE_ERRNOS, write_error
from mlf_deploy.ownership import LEDGER, foreign_files, record_tree

MANIFEST = LEDGER  # every file of an output folder, nested ones included, with its SHA-256


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_dir(out, force: bool, protect=(), what: str = "output") -> Path:
    """Fail, naming why, unless ``out`` is free or (with ``force``) an earlier output of ours."""
    out = Path(out)
    if out.is_symlink():
        raise UserError(f"{what} {out} is a symbolic link; give the real path of a folder")
    if not out.exists():
        return out
    if not out.is_dir():
        raise UserError(f"{what} {out} exists and is not a folder; choose another path")
    real = out.resolve()
    for guarded in [Path.cwd(), *(Path(p).resolve().parent for p in protect if p)]:
        if _inside(guarded.resolve(), real):
            raise UserError(f"{what} {out} holds the current directory or an input file; "
                            "choose a new folder")
    if not any(out.iterdir()):
        return out
    if not force:
        raise UserError(f"{what} {out} exists and is not empty; pass {option('force')} to replace "
                        f"an "
                        "earlier output of mlf-deploy, or choose another path")
    foreign = foreign_files(out)
    if foreign is None:
        raise UserError(f"{what} {out} was not written by mlf-deploy (no {MANIFEST} with file "
                        "hashes; outputs of versions before the hashes have none: remove such "
                        f"a folder yourself); {option('force')} replaces only earlier outputs of "
                        f"this tool: "
                        "choose another path")
    if foreign:
        raise UserError(f"{what} {out} holds files mlf-deploy did not write, or that changed since "
                        f"({', '.join(foreign[:3])}{'...' if len(foreign) > 3 else ''}); move them "
                        "away or choose another path")
    return out


def new_stage(out: Path) -> Path:
    """A hidden staging folder beside ``out``, tagged with our pid so a later run can sweep it."""
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.stage-{os.getpid()}-", dir=out.parent))
    return stage


def sweep_stale_stages(out: Path) -> None:
    """Remove staging folders of ``out`` whose process no longer runs (it was SIGKILLed)."""
    prefix = f".{out.name}.stage-"
    for entry in out.parent.glob(prefix + "*"):
        pid = entry.name[len(prefix):].split("-")[0]
        if entry.is_dir() and not entry.is_symlink() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def install_stage(stage: Path, out: Path, kind: str) -> None:
    """Mark ``stage`` as ours and rename it onto ``out``; an old output (checked by
    :func:`check_output_dir`) is moved aside first and removed only after the swap."""
    record_tree(stage, kind)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        os.replace(out, old / "previous")
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out: Path, kind: str):
    """A staging folder for ``out``'s contents; it becomes ``out`` when the block ends well and is
    removed otherwise, so ``out`` is never half-written (write errors: one :class:`UserError`)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_stages(out)
        stage = new_stage(out)
    except OSError as exc:
        raise write_error(out, exc) from exc
    try:
        yield stage
        install_stage(stage, out, kind)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise write_error(out, exc) from exc
        raise


@contextlib.contextmanager
def output_lock(out):
    """Hold ``.<name>.lock`` beside ``out`` for the block; a second command on it fails at once."""
    out = Path(out)
    lock = out.parent / f".{out.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise UserError(f"cannot create the lock file {lock}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise UserError(f"another mlf-deploy command is writing {out} (it holds {lock}); "
                                "wait for it to finish or choose another output") from None
            raise
        # The holder before us may have unlinked the file after we opened it: retry on the new one.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)

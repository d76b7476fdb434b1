"""Atomic file writes: a file appears complete under its name or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from mlf_deploy import ownership
from mlf_deploy.errors import UserError


def check_writable(path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Fail early, with a clear message, when ``path`` cannot be written."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; choose another output path or remove it")
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link; give the real path of the file to write")
    if path.exists() and path.is_dir():
        raise UserError(f"{path} is a directory; give a file path")
    if path.exists():
        ownership.check_replace(path)  # only a file this tool wrote, and only where allowed
    parent = path.parent if str(path.parent) else Path(".")
    blocker = next((p for p in [parent, *parent.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"cannot write {path}: {blocker} is a file, not a directory")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create directory {parent}: {exc.strerror}") from exc
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write to {parent}: permission denied; choose a writable location")
    return path


# Failures of the storage, not of our code: reported as one line naming the path.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                errno.EIO, errno.ENOTDIR, errno.EISDIR}


def write_error(path, exc: OSError) -> UserError:
    return UserError(f"cannot write {path}: {exc.strerror or exc}; choose a writable location "
                     "with free space (nothing was written)")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An existing ``path`` is replaced only when it is ours (:func:`ownership.check_replace`), checked
    before the work and again just before the rename; what was written is recorded as ours."""
    path = check_writable(path, overwrite)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the result is an ordinary file
        digest = ownership.sha256_file(tmp)
        if path.exists() or path.is_symlink():
            ownership.check_replace(path)
        os.replace(tmp, path)
        ownership.record(path, digest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise write_error(path, exc) from exc
        raise


def atomic_write_text(path, text: str, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)

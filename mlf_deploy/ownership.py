"""What mlf-deploy wrote, recorded by content hash, so that nothing else is ever replaced.

Every file this tool writes goes through :func:`mlf_deploy.fileio.atomic_path`, which records the
SHA-256 of the bytes it installed in the ledger (:data:`LEDGER`) of that file's folder; a folder
output (a demo, a Lava export) records every file under it, nested folders included, in its own
ledger. An existing file is replaced only when this process wrote it, or when the command was given
``--force`` (:func:`allow_replace`) and the file's bytes still hash to what a ledger recorded.
Marker text inside a file proves nothing: anyone's notes may contain it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from mlf_deploy.errors import UserError, option

LEDGER = ".mlf-deploy-output.json"
TOOL = "mlf-deploy"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LEDGER_BYTES = 64 * 2 ** 20  # a ledger larger than this is not one of ours

_written_here: dict[str, str] = {}  # real path -> SHA-256 of what this process installed there
_allowed: set[str] = set()          # real paths (files or folders) a --force allows to replace


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_ledger(folder) -> dict[str, str]:
    """The ledger of ``folder`` as {path relative to it: SHA-256}; empty when it has none of
    ours."""
    path = Path(folder) / LEDGER
    try:
        if path.is_symlink() or path.stat().st_size > _LEDGER_BYTES:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("tool") == TOOL else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)
            and _HEX64.fullmatch(v)}


def _write_ledger(folder: Path, files: dict[str, str], kind: str | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f"{LEDGER}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"tool": TOOL, "kind": kind, "files": dict(sorted(files.items()))}, f)
        os.replace(tmp, folder / LEDGER)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def record(path, digest: str) -> None:
    """Note in the ledger of ``path``'s folder that its bytes, hashing to ``digest``, are ours."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)  # two commands writing one folder keep both entries
        files = read_ledger(folder)
        files[path.name] = digest
        kind = _ledger_kind(folder)
        _write_ledger(folder, files, kind)
    finally:
        os.close(dir_fd)
    _written_here[os.path.realpath(path)] = digest


def _ledger_kind(folder: Path):
    try:
        return json.loads((folder / LEDGER).read_text()).get("kind")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None


def record_tree(folder, kind: str) -> None:
    """Record every file under ``folder`` (nested folders included) in its ledger; call last."""
    folder = Path(folder)
    files = {}
    for path in _walk(folder):
        rel = path.relative_to(folder).as_posix()
        if rel != LEDGER and path.is_file() and not path.is_symlink():
            files[rel] = sha256_file(path)
    _write_ledger(folder, files, kind)


def _walk(folder: Path):
    """Every entry under ``folder`` that is not a folder, symbolic links included (not followed)."""
    for root, dirs, names in os.walk(folder, followlinks=False):
        for d in dirs:
            if os.path.islink(os.path.join(root, d)):
                yield Path(root, d)
        for n in names:
            yield Path(root, n)


def _is_ledger(path: Path) -> bool:
    """A ledger of ours (ledgers change as files are added, so they are not hashed themselves)."""
    try:
        if path.name != LEDGER or path.is_symlink() or path.stat().st_size > _LEDGER_BYTES:
            return False
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return (isinstance(data, dict) and data.get("tool") == TOOL
            and isinstance(data.get("files"), dict))


def owned(path, top=None) -> bool:
    """True when ``path`` is a plain file whose bytes a ledger of its folder, or of a folder above
    it (up to ``top``), records as ours."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    digest = None
    folder = path.parent if str(path.parent) else Path(".")
    stop = Path(top).resolve() if top is not None else None
    for _ in range(32):
        entry = read_ledger(folder).get(os.path.relpath(path, folder).replace(os.sep, "/"))
        if entry is not None:
            digest = digest or sha256_file(path)
            if entry == digest:
                return True
        if (stop is not None and folder.resolve() == stop
                or folder.resolve() == folder.parent.resolve()):
            return False
        folder = folder.parent
    return False


def foreign_files(folder) -> list[str] | None:
    """Entries under ``folder`` (nested included) that mlf-deploy did not write, or that changed
    since; None when ``folder`` holds no ledger of ours at all."""
    folder = Path(folder)
    if not _is_ledger(folder / LEDGER):
        return None
    foreign = []
    for path in _walk(folder):
        if _is_ledger(path):
            continue
        if not owned(path, top=folder):
            foreign.append(path.relative_to(folder).as_posix())
    return sorted(foreign)


def new_command() -> None:
    """Forget what an earlier command of this process wrote or was allowed to replace."""
    _written_here.clear()
    _allowed.clear()


def allow_replace(path) -> None:
    """A ``--force`` was given: ``path`` (a file, or every file in a folder) may be replaced, but
    only while its bytes are still ones a ledger records as ours."""
    _allowed.add(os.path.realpath(path))


def adopt(path) -> None:
    """Treat the current bytes of ``path`` as written by this process (``--resume`` continues the
    checkpoint it was pointed at, which it read and validated)."""
    _written_here[os.path.realpath(path)] = sha256_file(path)


def check_replace(path) -> None:
    """Called before an existing file is replaced: fail unless it is ours and replacing is
    allowed."""
    real = os.path.realpath(path)
    if real in _written_here and _written_here[real] == sha256_file(path):
        return
    ours = owned(path)
    if ours and (real in _allowed or os.path.dirname(real) in _allowed):
        return
    if ours:
        raise UserError(f"{path} already exists (an earlier output of mlf-deploy); pass "
                        f"{option('force')} "
                        "to replace it, or choose another path")
    raise UserError(f"{path} already exists and mlf-deploy did not write it (or it changed "
                    f"since); it is never replaced, even with {option('force')}: choose another "
                    f"path")


def check_output_file(path, force: bool) -> Path:
    """Early check of a file a command will write: free, or (``force``) an earlier output of
    ours."""
    path = Path(path)
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link; give the real path of the file to write")
    if not path.exists():
        return path
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file path")
    if force:
        allow_replace(path)
    check_replace(path)
    return path

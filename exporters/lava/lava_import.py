"""Import lava-nc 0.10.0 on Python 3.11, reproducibly, without touching site-packages.

lava-nc 0.10.0 (the last release; upstream is archived) declares Python<3.11. On 3.11 it fails at
import: ``lava/magma/compiler/var_model.py`` gives dataclass fields a shared mutable default (``x:
ByteEncoder = ByteEncoder()``), which Python 3.11's dataclasses reject. While that one module is
imported we wrap ``dataclasses.dataclass`` so that such defaults become ``default_factory`` (a fresh
instance per object, which is also what the field meant). Everything else in lava is imported
untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import multiprocessing
import sys

INSTALL_HINT = (
    "lava-nc is not installed: run `make venv`, or "
    "`pip install --no-deps --ignore-requires-python lava-nc==0.10.0` in this environment"
)


class LavaUnavailable(RuntimeError):
    """Raised when the Lava backend is asked for and lava-nc cannot be imported."""


def _factory_for_mutable_defaults(cls):
    for name, value in list(vars(cls).items()):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if type(value).__hash__ is None:
                setattr(cls, name, dataclasses.field(default_factory=type(value)))
    return cls


@contextlib.contextmanager
def _tolerant_dataclasses():
    original = dataclasses.dataclass

    def patched(cls=None, /, **kwargs):
        def wrap(c):
            return original(**kwargs)(_factory_for_mutable_defaults(c))
        return wrap if cls is None else wrap(cls)

    dataclasses.dataclass = patched
    try:
        yield
    finally:
        dataclasses.dataclass = original


@contextlib.contextmanager
def _forced_start_method():
    """Lava's message infrastructure calls ``mp.set_start_method('fork')`` at import, which raises
    once anything in the process has fixed the start method (torch, a test runner, an earlier
    multiprocessing use). Lava needs fork either way, so let that one call force it."""
    original = multiprocessing.set_start_method

    def forced(method, force=False):
        return original(method, force=True)

    multiprocessing.set_start_method = forced
    try:
        yield
    finally:
        multiprocessing.set_start_method = original


_PATCHED_MODULES = ("lava.magma.compiler.var_model",
                    "lava.magma.runtime.message_infrastructure.multiprocessing")


def import_lava():
    """Import lava and return the top package; raise LavaUnavailable with the install command."""
    if not all(m in sys.modules for m in _PATCHED_MODULES):
        try:
            importlib.import_module("lava")
        except ImportError as exc:
            raise LavaUnavailable(INSTALL_HINT) from exc
        with _tolerant_dataclasses(), _forced_start_method():
            for module in _PATCHED_MODULES:
                importlib.import_module(module)
    return importlib.import_module("lava")


def lava_available() -> bool:
    try:
        import_lava()
    except LavaUnavailable:
        return False
    return True

"""Import lava-nc 0.10.0 on Python 3.11, reproducibly, without touching site-packages.

lava-nc 0.10.0 (the last release; upstream is archived) declares Python<3.11. On 3.11 it fails at import:
``lava/magma/compiler/var_model.py`` gives dataclass fields a shared mutable default (``x: ByteEncoder =
ByteEncoder()``), which Python 3.11's dataclasses reject. While that one module is imported we wrap
``dataclasses.dataclass`` so that such defaults become ``default_factory`` (a fresh instance per object,
which is also what the field meant). Everything else in lava is imported untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
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


def import_lava():
    """Import lava and return the top package; raise LavaUnavailable with the install command."""
    if "lava.magma.compiler.var_model" not in sys.modules:
        try:
            importlib.import_module("lava")
        except ImportError as exc:
            raise LavaUnavailable(INSTALL_HINT) from exc
        with _tolerant_dataclasses():
            importlib.import_module("lava.magma.compiler.var_model")
    return importlib.import_module("lava")


def lava_available() -> bool:
    try:
        import_lava()
    except LavaUnavailable:
        return False
    return True

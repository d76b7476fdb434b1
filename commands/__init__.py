"""The ``mlf-deploy`` command line: one thin click command per stage of the toolchain. Installed as
``mlf_deploy.commands`` (its folder sits at the top of the repository beside ``cli.py``, the shim
that runs it from a source tree), so that no top-level ``cli`` module lands in site-packages."""

from . import deploy, evaluation, training  # noqa: F401 - importing registers the commands
from .app import main

__all__ = ["main"]

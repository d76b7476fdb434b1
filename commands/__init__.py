"""The ``mlf-deploy`` command line: one thin click command per stage of the toolchain. Installed as
``mlf_deploy.commands`` (its folder sits at the top of the repository beside ``cli.py``, the shim
that runs it from a source tree), so that no top-level ``cli`` module lands in site-packages."""

import os as _os
import sys as _sys

# An empty PYTHONPATH entry puts the current directory ahead of the standard library, so a
# signal.py or json.py lying there would run as ours. The CLI never imports from the current
# directory: drop it before anything else is imported (unless it is the source tree itself).
# Only in the `mlf-deploy` program: a Python session that imports this package keeps its path.
# realpath: an editable install reaches this file through a link tree outside the source tree.
_here = _os.path.dirname(_os.path.dirname(_os.path.realpath(__file__)))
if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "mlf-deploy":
    _sys.path[:] = [p for p in _sys.path
                    if _os.path.abspath(p or _os.curdir) != _os.getcwd() or _os.getcwd() == _here]

from . import deploy, evaluation, training  # noqa: E402, F401 - importing registers the commands
from .app import main  # noqa: E402

__all__ = ["main"]

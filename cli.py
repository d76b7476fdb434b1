"""Runs the ``mlf-deploy`` command line from a checkout: ``python cli.py ...``, ``python -m cli`` or
``torchrun cli.py ...``, with a Python that has the package installed (``make venv`` installs it
editable into ``.venv``, so use ``.venv/bin/python``). The install is needed: the folders
``exporters/``, ``runtimes/`` and ``commands/`` sit beside ``mlf_deploy/`` but are the packages
``mlf_deploy.exporters``, ``.runtimes`` and ``.commands``, a mapping only the install makes.
Installing puts only ``mlf_deploy`` into site-packages, so this file's name collides with
nothing."""

import sys

try:
    from mlf_deploy.commands import main
except ModuleNotFoundError as exc:
    if exc.name not in ("mlf_deploy", "mlf_deploy.commands"):
        raise
    sys.exit("error: this Python has no mlf_deploy installed; run `make venv` and use "
             ".venv/bin/python cli.py (or `pip install -e .` into your environment)")

if __name__ == "__main__":
    main()

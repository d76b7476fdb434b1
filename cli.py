"""Runs the ``mlf-deploy`` command line from a source tree: ``python cli.py ...``, ``python -m cli``
or ``torchrun cli.py ...``. The commands live in the installed package ``mlf_deploy.commands``;
installing puts only ``mlf_deploy`` into site-packages, so this file's name collides with nothing."""

from mlf_deploy.commands import main

if __name__ == "__main__":
    main()

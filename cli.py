"""The ``mlf-deploy`` command line: one thin click command per stage of the toolchain.

Every command turns a :class:`mlf_deploy.errors.UserError` into one line on stderr and exit code 2;
with ``--json`` the last line of stdout is one JSON object (schemas in the README).
"""

from __future__ import annotations

import functools
import json
import sys
from importlib.metadata import PackageNotFoundError, version

import click

from mlf_deploy.errors import UserError

try:
    __version__ = version("mlf-deploy")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"


def user_errors(fn):
    """Report UserError (and Ctrl-C) as one line and a non-zero exit, never as a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


def emit_json(obj) -> None:
    """The documented machine-readable result: one JSON object on the last stdout line."""
    click.echo(json.dumps(obj, sort_keys=True, default=float))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlf-deploy")
def main():
    """Train MLF spiking DS-ResNets, lower them to single-threshold neurons, and run and verify
    them on an integer reference, Lava and ONNX Runtime.

    \b
    Example:
      mlf-deploy demo --out demo-output
    """


# ---- train (issue 3) -------------------------------------------------------------------------

# ---- export / verify (issues 4, 5, 6) ---------------------------------------------------------

# ---- energy / evaluate (issue 7) ---------------------------------------------------------------

# ---- demo (issue 8) ----------------------------------------------------------------------------


if __name__ == "__main__":
    main()

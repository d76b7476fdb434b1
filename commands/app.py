"""The ``mlf-deploy`` command group and what every command shares: one-line errors, the exit
codes, ``--json`` output and the common options.

Every command turns a :class:`mlf_deploy.errors.UserError` into one line on stderr and exit code 2;
with ``--json`` the last line of stdout is one JSON object (schemas in the README).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from importlib.metadata import PackageNotFoundError, version

import click

from mlf_deploy import ownership
from mlf_deploy.errors import UserError
from mlf_deploy.fileio import WRITE_ERRNOS
from mlf_deploy.ir.semantics import WEIGHT_BITS_RANGE

try:
    __version__ = version("mlf-deploy")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C so staging folders and workers go too. A subclass because
    CPython marks a bare KeyboardInterrupt that escapes C-level ``PyRun_*`` code (libraries run
    snippets that way) as unhandled and then exits by SIGINT whatever ``sys.exit`` said."""


def _terminate(signum, frame):
    raise Terminated


class OneLineErrors(click.Group):
    """Bad options and arguments (click's usage errors) also end as one ``error:`` line, exit 2."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)


class IntList(click.ParamType):
    """Comma-separated integers, each in ``[low, high]``."""

    name = "integers"

    def __init__(self, low: int, high: int | None = None, example: str = "8,6,4"):
        self.low, self.high, self.example = low, high, example

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            items = [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            items = []
        if not items:
            self.fail(f"expected comma-separated integers like {self.example}, got {value!r}",
                      param, ctx)
        bad = [i for i in items if i < self.low or (self.high is not None and i > self.high)]
        if bad:
            upto = f" to {self.high}" if self.high is not None else " or more"
            self.fail(f"{bad[0]} is out of range: each must be {self.low}{upto}", param, ctx)
        return items


def flag_of(name: str, command: click.Command | None = None) -> str:
    """The flag of a library option ``name``: the option of ``command`` whose parameter has that
    name (``input_path`` is ``--input``), else of the first other command that has one (a message
    may name another command's option: export's ``target`` is ``--to``), else the name spelt as
    a flag."""
    for cmd in [command, *main.commands.values()]:
        for param in cmd.params if cmd is not None else ():
            if isinstance(param, click.Option) and param.name == name:
                return max(param.opts, key=len)
    return name if name.startswith("-") else "--" + name.replace("_", "-")


def flag_spelling(command: click.Command | None = None):
    """How a command writes the options a library message names: ``--flag value``."""
    if command is None:
        ctx = click.get_current_context(silent=True)
        command = ctx.command if ctx is not None else None

    def spell(name: str, value: str | None) -> str:
        flag = flag_of(name, command)
        return flag if value is None else f"{flag} {value}"
    return spell


def flag_log(err: bool = True):
    """A log for a library run: its notes name options (:func:`mlf_deploy.errors.option`), the
    user typed flags, so each note is printed with this command's flags."""
    spell = flag_spelling()
    return lambda note: click.echo(UserError(note).render(spell), err=err)


def user_errors(fn):
    """Report UserError (and Ctrl-C or SIGTERM) as one line and a non-zero exit, never as a
    traceback; a full or read-only disk met outside our own writers is one line too."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _terminate)
        ownership.new_command()  # what "this command wrote" and "--force allows" start empty
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            click.echo(f"error: {exc.render(flag_spelling())}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            click.echo(f"error: cannot write {exc.filename or 'the output'}: {exc.strerror}; "
                       "choose a writable location with free space", err=True)
            sys.exit(2)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return wrapper


def emit_json(obj) -> None:
    """The documented machine-readable result: one JSON object on the last stdout line."""
    click.echo(json.dumps(obj, sort_keys=True, default=float))


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlf-deploy")
def main():
    """Train MLF spiking DS-ResNets, lower them to single-threshold neurons, and run and verify
    them on an integer reference, Lava and ONNX Runtime.

    \b
    Example:
      mlf-deploy demo --out demo-output
    """


CKPT = click.argument("checkpoint", type=click.Path(dir_okay=False))
DATA_DIR = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                        help="Where the checkpoint's dataset files live (for non-embedded sets).")
WEIGHT_BITS = click.option(
    "--weight-bits", type=click.IntRange(*WEIGHT_BITS_RANGE), default=None,
    help="Signed weight mantissa bits of the integer graph ({}..{}) [default: the width the "
         "checkpoint was fine-tuned for, else 8].".format(*WEIGHT_BITS_RANGE))
JSON = click.option("--json", "as_json", is_flag=True,
                    help="Print one JSON object as the last line of stdout.")
SPIKES = click.option("--spikes", type=click.Choice(["binary", "graded"]), default="binary",
                      show_default=True,
                      help="Lowering: binary (one single-threshold population per level, any "
                           "chip) or graded (one neuron per position sending its level count, "
                           "Loihi 2 graded spikes).")
ENERGY_MODEL = click.option("--model", "energy_model", default="45nm-fp32", show_default=True,
                            help="Energy model of the table and plots: 45nm-fp32, 45nm-int8, "
                                 "loihi1-proxy (the JSON has all).")
SPLIT = click.option("--split", type=click.Choice(["test", "train"]), default="test",
                     show_default=True)
DEVICE = click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu",
                      show_default=True,
                      help="Where torch, torch-int and the reference simulator run (auto: a GPU "
                           "when torch sees one); ONNX Runtime and Lava run on the CPU.")
ALL_SAMPLES = click.option("--samples", type=click.IntRange(1), default=None,
                           help="First N samples of the split [default: all].")
THREADS = click.option("--threads", type=click.IntRange(1), default=None,
                       help="torch threads [default: OMP_NUM_THREADS, else 1; a fixed number, "
                            "never the machine's load: docs/determinism.md].")


def set_threads(threads: int | None, default: int | None = None) -> str:
    """Apply ``--threads`` (see :mod:`mlf_deploy.threads`); returns the line that says which
    count runs and why, for the command's own progress line (stderr stays one line on errors)."""
    from mlf_deploy.threads import RUN_THREADS, describe, use_threads
    return describe(*use_threads(threads, RUN_THREADS if default is None else default),
                    name="--threads")

"""Only the command layer knows flags: no string a library module holds (messages, defaults, log
lines) spells a command-line flag such as ``--weight-bits``. A library message names the option
with :func:`mlf_deploy.errors.option`, and the command renders it as its flag."""

import ast
import re
from pathlib import Path

from mlf_deploy.errors import UserError, option

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ("mlf_deploy", "exporters", "runtimes", "verification", "workflows")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")

# Files whose strings are a command line of their own, not ours.
OWN_COMMAND_LINE = {
    "exporters/lava/run_lava_network.py": "the exported Lava folder's own script and its flags",
    "exporters/lava/readme_text.py": "the exported folder's README: that script's flags",
    "runtimes/onnx_standalone.py": "the standalone ONNX script shipped beside a model",
    "exporters/lava/lava_import.py": "pip's own flags in the install command it prints",
}
# Still spelling flags, and rewritten by the training work in progress; remove each entry when
# its file names options with mlf_deploy.errors.option.
PENDING: set[str] = set()


def _docstrings(tree) -> set[int]:
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, nodes) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def flags_in(source: str) -> list[tuple[int, str]]:
    """``(line, flag)`` of every flag spelt in a string constant of ``source`` (f-string parts
    included), docstrings aside: they may say how the command line uses a function."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [(node.lineno, flag) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skip for flag in FLAG.findall(node.value)]


def library_files():
    for folder in LIBRARY:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in OWN_COMMAND_LINE and rel not in PENDING:
                yield rel


def test_no_library_module_spells_a_flag():
    found = [f"{rel}:{line}: {flag}" for rel in library_files()
             for line, flag in flags_in((ROOT / rel).read_text())]
    assert not found, "name options with mlf_deploy.errors.option:\n" + "\n".join(found)


def test_the_check_catches_a_flag_and_passes_docstrings_and_marks():
    planted = '''"""Docstring: ``--force`` is how the command line asks for it."""
def f(n):
    """Also fine: --samples."""
    if n:
        raise ValueError("pass --weight-bits 4")
    return f"use {n} or --batch-size {n}", "a-b--c is no flag", option("batch_size", n)
'''
    assert flags_in(planted) == [(5, "--weight-bits"), (6, "--batch-size")]
    assert all(rel in {p.relative_to(ROOT).as_posix() for f in LIBRARY
                       for p in (ROOT / f).rglob("*.py")} for rel in {*OWN_COMMAND_LINE, *PENDING})


def test_a_message_reads_as_options_in_the_library_and_as_flags_on_the_command_line():
    from mlf_deploy.commands.app import flag_spelling, main
    err = UserError(f"{option('batch_size', 0)} must be at least 1; or pass {option('force')}")
    assert str(err) == "batch_size=0 must be at least 1; or pass force"
    run = main.commands["run"]
    assert err.render(flag_spelling(run)) == "--batch-size 0 must be at least 1; or pass --force"
    # an option of another command keeps that command's flag (export's target is --to)
    assert UserError(f"export {option('target', 'ir')}").render(flag_spelling(run)) == \
        "export --to ir"
    assert err.options == ["batch_size", "force"]

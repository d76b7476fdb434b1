"""Code the artifacts carry is real package files, copied whole: no exporter splices source with
``inspect.getsource`` or holds Python in string literals, where ruff, ``duplicates`` and coverage
could not see it."""

import ast
from pathlib import Path

from conftest import make_graphs, make_model

ROOT = Path(__file__).resolve().parents[1]
# The core, the exporters and the script an ONNX model travels with. (runtimes/lava.py starts its
# worker with a one-line ``python -c`` bootstrap that imports the package; it is no shipped code.)
CHECKED_FILES = [p for folder in ("mlf_deploy", "exporters")
                 for p in sorted((ROOT / folder).rglob("*.py"))] \
    + [ROOT / "runtimes" / "onnx_standalone.py"]


def _holds_python(text: str) -> bool:
    """A string that parses as Python with a definition or an import in it is source code
    (prose, paths, error messages and single expressions are not)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
               for n in ast.walk(tree))


def _findings(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("getsource", "getsourcelines"):
            found.append(f"line {node.lineno}: inspect.{node.attr}")
        elif isinstance(node, ast.alias) and node.name in ("getsource", "getsourcelines"):
            found.append(f"line {node.lineno}: imports {node.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _holds_python(node.value):
            found.append(f"line {node.lineno}: Python source in a string")
    return found


def test_no_exporter_splices_or_holds_source():
    found = [f"{p.relative_to(ROOT)} {f}" for p in CHECKED_FILES for f in _findings(p.read_text())]
    assert not found, found


def test_the_check_sees_spliced_and_string_held_source():
    spliced = "import inspect\nbody = inspect.getsource(f)\n"
    held = 'LOADER = """import numpy as np\\n\\ndef run(g):\\n    return g\\n"""\n'
    prose = 'README = """# MLF network\\n\\nrun it: `python run.py --input x.npy`"""\n'
    assert _findings(spliced) == ["line 2: inspect.getsource"]
    assert _findings(held) == ["line 1: Python source in a string"]
    assert _findings(prose) == []


def test_the_lava_export_ships_package_files_whole(tmp_path):
    from mlf_deploy.exporters.lava import export as lava
    from mlf_deploy.ir import portable

    _, graph = make_graphs(make_model(widths=(2, 4, 4)))
    out = lava.export_lava(graph, tmp_path / "net")
    shipped = {name: Path(lava.__file__).parent / name for name in lava.SHIPPED}
    shipped["portable.py"] = Path(portable.__file__)
    for name, source in shipped.items():
        assert (out / name).read_bytes() == source.read_bytes(), name
    assert not [f for p in out.glob("*.py") for f in _findings(p.read_text())]

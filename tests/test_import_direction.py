"""Imports point one way: commands (and cli.py) -> workflows -> verification -> runtimes ->
exporters -> the core (mlf_deploy).
The core imports no backend and no command line; checked on every import statement, including the
ones inside functions, so a lazy import cannot hide a breach."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"mlf_deploy": 0, "exporters": 1, "runtimes": 2, "verification": 3, "workflows": 4,
          "commands": 5}
SUBPACKAGE_LAYERS = {f"mlf_deploy.{folder}": layer for folder, layer in LAYERS.items() if layer}


def _layer_of_module(name: str):
    for prefix, layer in SUBPACKAGE_LAYERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return layer
    return 0 if name.split(".")[0] == "mlf_deploy" else None


def _files():
    for folder, layer in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, layer
    yield ROOT / "cli.py", LAYERS["commands"]


def _imported(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _breaches(source: str, layer: int) -> list[str]:
    return [name for name in _imported(ast.parse(source)) if (_layer_of_module(name) or 0) > layer]


def test_imports_point_one_way():
    found = [f"{path.relative_to(ROOT)} imports {name}" for path, layer in _files()
             for name in _breaches(path.read_text(), layer)]
    assert not found, found


def test_the_check_sees_a_lazy_import_from_the_core_into_a_backend():
    source = ("def f():\n    from mlf_deploy.workflows.verify import verify\n"
              "    import mlf_deploy.ir\n")
    assert _breaches(source, LAYERS["mlf_deploy"]) == ["mlf_deploy.workflows.verify"]
    assert _breaches(source, LAYERS["workflows"]) == []


def test_nothing_imports_the_old_top_level_names():
    old = []
    for path, _ in _files():
        for name in _imported(ast.parse(path.read_text())):
            if name.split(".")[0] in (*LAYERS, "cli") and name.split(".")[0] != "mlf_deploy":
                old.append(f"{path.relative_to(ROOT)}: {name}")
    assert not old, old

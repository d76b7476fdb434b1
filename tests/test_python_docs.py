"""docs/python.md's examples run as written: every ```python block, in order, in one namespace,
in an empty folder."""

import os
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_python_walkthrough_runs(tmp_path, monkeypatch):
    pytest.importorskip("snntorch")
    blocks = code_blocks(DOC.read_text())
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name} block {i + 1}", "exec"), namespace)  # noqa: S102
    for written in ("run/checkpoint.pt", "model.mlfg", "model.onnx", "model.nir", "lava-model"):
        assert os.path.exists(tmp_path / written), written
    assert namespace["summary"]["samples"] == 16
    assert namespace["energy"]["samples"] == 16
    assert namespace["agreement"] >= 0.75  # snnTorch's float32 run of the file

"""What ``pip install`` puts into site-packages: one top-level package, ``mlf_deploy``, with the
repository's top-level folders (exporters, runtimes, verification, workflows, commands) installed
beneath it."""

import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = ("exporters", "runtimes", "verification", "workflows", "commands")


def _package_folders():
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "mlf_deploy").rglob("__init__.py")}
    return found | {"mlf_deploy." + ".".join(p.parent.relative_to(ROOT).parts)
                    for name in MAPPED for p in (ROOT / name).rglob("__init__.py")}


def test_the_package_list_names_every_package_folder():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(setuptools["packages"]) == _package_folders()
    assert setuptools["package-dir"] == {f"mlf_deploy.{n}": n for n in MAPPED}


def test_every_module_imports_by_its_package_name():
    """`make venv` installs in strict editable mode, which links each file: a module added since
    then is missing until the next `make venv` re-links, and this test says so."""
    missing = [f"mlf_deploy.{'.'.join(p.relative_to(ROOT).with_suffix('').parts)}"
               for name in MAPPED for p in sorted((ROOT / name).rglob("*.py"))
               if p.name != "__init__.py"]
    missing = [m for m in missing if importlib.util.find_spec(m) is None]
    assert not missing, f"not importable (run `make venv` to link new modules): {missing}"


@pytest.mark.slow
def test_the_wheel_installs_only_mlf_deploy_and_runs_from_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "cli.py"):
        shutil.copy(ROOT / name, src / name)
    for name in ("mlf_deploy", *MAPPED):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path / "wheel"), str(src)],
                   check=True, capture_output=True, timeout=300)
    wheel, = (tmp_path / "wheel").glob("*.whl")
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"mlf_deploy"}

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    probe = ("import mlf_deploy.commands, mlf_deploy.runtimes.lava, "
             "mlf_deploy.exporters.onnx.export as o; "
             "print(o.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={"PYTHONPATH": str(site), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(site))
    # The Lava worker runs isolated (-I) and finds the package through the root run_chunk passes;
    # a missing job file makes it fail right after its imports, naming the file it ran from.
    worker = ("import subprocess, sys; from mlf_deploy.runtimes.lava import _WORKER, package_root; "
              "r = subprocess.run([sys.executable, '-I', '-c', _WORKER, package_root(), "
              "'no-job.pkl'], "
              "capture_output=True, text=True); print(r.stderr)")
    out = subprocess.run([sys.executable, "-c", worker], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={"PYTHONPATH": str(site), "PATH": ""})
    assert str(site / "mlf_deploy" / "runtimes" / "lava.py") in out.stdout, out.stdout + out.stderr
    entry = (site / "mlf_deploy-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "mlf-deploy = mlf_deploy.commands:main" in entry

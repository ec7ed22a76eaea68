"""The package as a user gets it: an sdist and a wheel built offline (the wheel from the sdist, as
``python -m build`` does), the wheel installed (not editable) into a fresh venv, and the
``pdeflow`` command and a shipped model run from there.

Nothing is downloaded: the build runs setuptools' PEP 517 hooks in this interpreter (as
``python -m build --no-isolation`` would), and the fresh venv finds pdeflow's dependencies (torch,
numpy, ...) through a ``.pth`` file pointing at this interpreter's site-packages; pdeflow itself
comes only from the wheel.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import pdeflow

ROOT = Path(__file__).resolve().parents[2]
# slow: builds an sdist and a wheel (compiling the C extension), installs it into a fresh venv and runs the full-size
# demo from there; packaging rarely breaks, and CI's second tier runs it
pytestmark = pytest.mark.slow

SHIPPED = sorted(p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "pdeflow").glob("*/weights/*")
                 if p.suffix in {".safetensors", ".json"})


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _run(cmd, cwd, timeout=300) -> str:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _build(hook: str, src: Path, dist: Path) -> Path:
    code = f"import sys, setuptools.build_meta as b; print(b.{hook}(sys.argv[1]))"
    name = _run([sys.executable, "-c", code, dist], cwd=src).strip().splitlines()[-1]
    return dist / name


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(sdist, wheel): the sdist from a copy of the source, the wheel from the unpacked sdist."""
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src-copy"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp / "dist"
    dist.mkdir()
    sdist = _build("build_sdist", src, dist)
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    wheel = _build("build_wheel", tmp / "unpacked" / sdist.name.removesuffix(".tar.gz"), dist)
    return sdist, wheel


def test_the_sdist_and_the_wheel_carry_the_shipped_weights_and_the_metadata(built):
    sdist, wheel = built
    assert SHIPPED and any(p.endswith(".safetensors") for p in SHIPPED)
    version = pdeflow.__version__
    assert sdist.name == f"pdeflow-{version}.tar.gz" and wheel.name == f"pdeflow-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(f"pdeflow-{version}.dist-info/METADATA").decode()
    assert set(SHIPPED) <= names
    assert f"\nVersion: {version}\n" in meta and "\nLicense-Expression: BSD-3-Clause\n" in meta
    assert not any(n.startswith(("tests/", "benchmarks/", "experiments/")) for n in names)
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {f"src/{p}" for p in SHIPPED} <= in_sdist


def test_the_wheel_installs_into_a_fresh_venv_and_runs(built, tmp_path):
    _, wheel = built
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    # the dependencies: this interpreter's site-packages, after the venv's own (which gets pdeflow)
    deps = [p for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}]
    (site / "_pdeflow_test_dependencies.pth").write_text("\n".join(deps) + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "--no-compile",
          "--disable-pip-version-check", wheel], cwd=tmp_path)

    out = _run([venv / "bin" / "pdeflow", "demo", "--out", "D"], cwd=tmp_path, timeout=600)
    print(out)  # shown with -s: the demo's report from the installed copy
    assert "reconstruction error" in out and (tmp_path / "D" / "demo.png").stat().st_size > 0

    code = ("import pdeflow, torch; from importlib.metadata import version; "
            "m = pdeflow.tvflownet.load('default'); "
            "u = pdeflow.tvflownet.flow(torch.rand(1, 1, 16, 16), [0.1], m); "
            "print(pdeflow.__file__); print(version('pdeflow'), pdeflow.__version__, tuple(u.shape))")
    file, info = _run([py, "-c", code], cwd=tmp_path).strip().splitlines()[-2:]
    assert Path(file).resolve().is_relative_to(site.resolve())
    assert info.split()[:2] == [pdeflow.__version__] * 2

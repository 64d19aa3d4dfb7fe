"""The installed product, not the checkout: a wheel built from this tree, installed into a fresh
virtual environment, copies out its notebooks and runs the demo from an unrelated folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def _run(*command: str | Path, cwd: Path, timeout: float) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVIA_", "PYTHON"))}
    env["MPLBACKEND"] = "Agg"
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, ROOT,
         cwd=out, timeout=300)
    return next(out.glob("invia_data-*.whl"))


def test_the_wheel_carries_the_notebooks(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in NOTEBOOKS if f"invia_data/notebooks/{n}" not in names] == []
    assert "invia_data/py.typed" in names or not (ROOT / "invia_data" / "py.typed").exists()


@pytest.mark.slow
def test_an_installed_wheel_runs_the_demo_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, timeout=120)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
         wheel, cwd=tmp_path, timeout=600)
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    copied = _run(venv / "bin" / "invia-data", "notebooks", "mine", cwd=elsewhere, timeout=60)
    assert sorted(p.name for p in (elsewhere / "mine").glob("*.ipynb")) == NOTEBOOKS, copied
    _run(venv / "bin" / "invia-data", "demo", "--out", "report", cwd=elsewhere, timeout=600)
    assert (elsewhere / "report" / "report.html").stat().st_size > 10_000
    assert sorted((elsewhere / "report").glob("*.ipynb")), "the demo's notebooks were executed"

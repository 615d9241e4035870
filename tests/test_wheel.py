"""``pip install`` from a wheel: the package, its command and its shipped configs work without the repository.

The wheel is built from a copy of the sources (``pip wheel --no-deps --no-build-isolation``, so that
nothing is downloaded and the work tree gets no build/ or egg-info/ folder) and installed, alone,
into a fresh virtual environment. Re-installing torch and the other dependencies there would take
minutes, so that environment borrows them from the project's: a ``.pth`` file adds the project
environment's site-packages *after* the fresh one's (a path added that way does not run the ``.pth``
files inside it, so the project's editable mvmr stays out). mvmr itself comes only from the wheel:
the commands run from a folder outside the repository, without PYTHONPATH, and the test checks where
``mvmr`` was imported from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_installs_and_runs_without_the_repository(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "mvmr", source / "mvmr", ignore=shutil.ignore_patterns("__pycache__"))
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        tmp_path,
        env,
    )
    (wheel,) = (tmp_path / "dist").glob("mvmr-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        tmp_path,
        env,
    )
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).strip()
    )
    (site / "zz-project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(python), "-c", "import mvmr; print(mvmr.__file__)"], elsewhere, env)
    assert Path(where.strip()).is_relative_to(site), where  # the wheel's mvmr, not the repository's
    mvmr = str(venv / "bin" / "mvmr")
    assert "MV-MR" in _run([mvmr, "--help"], elsewhere, env)
    config = yaml.safe_load(_run([mvmr, "info", "--config", "stl10"], elsewhere, env))  # a config shipped as data
    assert config["data"]["kind"] == "stl10" and config["model"]["encoder"] == "resnet50"

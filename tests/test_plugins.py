"""Plugins: a representation, a teacher and a method from a user's own package, used from YAML and the CLI.

The test builds and installs (``pip install --target``) a tiny package that declares the three
through entry points, then runs the real ``mvmr`` command line in a subprocess that sees it. A
second, plain module registers a representation with ``@register`` and is loaded with ``--plugin``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "mvmr-test-plugin"
version = "0.1.0"

[project.entry-points."mvmr.representations"]
edges = "mvmr_test_plugin:Edges"

[project.entry-points."mvmr.teachers"]
meanpool = "mvmr_test_plugin:build_meanpool"

[project.entry-points."mvmr.methods"]
invariance = "mvmr_test_plugin:INVARIANCE"
"""

PLUGIN_CODE = '''
"""A user's package: an edge-magnitude representation, an average-pooling 'teacher', a method."""
import torch
import torch.nn.functional as F
from torch import nn

from mvmr.data import TwoViews
from mvmr.methods import Method, StepOutput
from mvmr.representations import Representation
from mvmr.representations.teachers import ImagePreprocess, Teacher


class Edges(Representation):
    name = "edges"
    deterministic = True

    def output_dim(self, c, h, w):
        return (h - 1) * (w - 1)

    def forward(self, x):
        gray = x.mean(dim=1)
        return (gray[:, 1:, 1:] - gray[:, :-1, :-1]).abs().flatten(1)


def build_meanpool(arg, *, weights=None, name="teacher", **options):
    side = int(arg or 4)
    net = nn.Sequential(nn.AdaptiveAvgPool2d(side), nn.Flatten())
    return Teacher(net=net, preprocess=ImagePreprocess(input_size=16, resize_size=16, mean=(0.0,) * 3, std=(1.0,) * 3),
                   embed_dim=3 * side * side, spec=f"meanpool:{side}", name=name)


class Invariance(Method):
    """invariance + variance only, on MV-MR's clean and augmented views (a test plugin)."""
    name = "invariance"
    description = "invariance + variance only (a test plugin)"

    @classmethod
    def views(cls, config, full, *, augmentation, seed):
        return TwoViews(full, size=config.data.image_size, augmentation=augmentation, seed=seed)

    def step(self, model, batch):
        h, z_a = model.forward_with_features(batch[0])
        _, z_b = model.forward_with_features(batch[1])
        loss = F.mse_loss(z_a, z_b) + F.relu(1 - z_a.std(dim=0)).mean() + F.relu(1 - z_b.std(dim=0)).mean()
        return StepOutput(loss, {"loss": loss.detach(), "invariance": F.mse_loss(z_a, z_b).detach()}, h, z_a)


INVARIANCE = Invariance
'''

MODULE_PLUGIN = '''
"""A plain module: importing it registers a representation."""
from mvmr.representations import Representation, register


@register("stripes")
class Stripes(Representation):
    name = "stripes"

    def output_dim(self, c, h, w):
        return c * h

    def forward(self, x):
        return x.mean(dim=3).flatten(1)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PYTHONPATH with the installed plugin package (entry points) and a plain plugin module."""
    root = tmp_path_factory.mktemp("plugin")
    package = root / "src"
    (package / "mvmr_test_plugin").mkdir(parents=True)
    (package / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (package / "mvmr_test_plugin" / "__init__.py").write_text(PLUGIN_CODE)
    site = root / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(site.glob("mvmr_test_plugin-0.1.0.dist-info/entry_points.txt"))
    modules = root / "modules"
    modules.mkdir()
    (modules / "my_stripes.py").write_text(MODULE_PLUGIN)
    return os.pathsep.join([str(site), str(modules), str(REPO)])


def _mvmr(args: list[str], pythonpath: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mvmr", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _tiny(cifar10_root: Path, out: Path) -> list[str]:
    return [
        "--out",
        str(out),
        "data.kind=imagefolder",
        f"data.root={cifar10_root}",
        "data.split=test",
        "data.image_size=16",
        "data.subset=32",
        "data.batch_size=8",
        "data.num_workers=0",
        "data.val_fraction=0",
        "model.encoder=resnet18",
        "model.projector=32-32",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.max_steps=2",
        "trainer.log_every_n_steps=1",
        "trainer.progress_bar=false",
        "probe.enabled=false",
    ]


def test_entry_point_plugins_from_the_command_line(plugin_path: str, cifar10_root: Path, tmp_path: Path) -> None:
    # the plugin's representation and teacher in an MV-MR run, named in a YAML file and on the command line
    config = tmp_path / "mine.yaml"
    config.write_text(
        textwrap.dedent("""
        base: cifar10.yaml
        representations:
          items: [{name: edges}, {name: local_std}]
        teacher:
          spec: meanpool:2
          cache: false
    """)
    )
    proc = _mvmr(["pretrain", "--config", str(config), *_tiny(cifar10_root, tmp_path / "a")], plugin_path, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(next((tmp_path / "a").glob("csv/version_*/metrics.csv")).open()))
    logged = {k for r in rows for k, v in r.items() if v}
    assert {"train/dcor/edges", "train/dcor/local_std", "train/dcor/teacher"} <= logged

    # the plugin's method
    proc = _mvmr(
        ["pretrain", "--config", "cifar10", *_tiny(cifar10_root, tmp_path / "b"), "method=invariance"],
        plugin_path,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["method"] == "invariance" and ckpt["global_step"] == 2

    # without the package on the path, the same names are clear errors
    proc = _mvmr(["info", "--config", str(config)], str(REPO), tmp_path)
    assert proc.returncode == 2 and "teacher.spec: unknown teacher kind 'meanpool'" in proc.stderr
    proc = _mvmr(["info", "--config", str(config), "teacher.spec=null"], str(REPO), tmp_path)
    assert proc.returncode == 2 and "unknown representation 'edges'" in proc.stderr
    proc = _mvmr(["info", "--config", "cifar10", "method=invariance"], str(REPO), tmp_path)
    assert proc.returncode == 2 and "method: unknown method 'invariance'" in proc.stderr


def test_module_plugin_with_the_plugin_option(plugin_path: str, tmp_path: Path) -> None:
    over = ["representations.items=[{name: stripes}]"]
    proc = _mvmr(["info", "--config", "cifar10", *over], plugin_path, tmp_path)
    assert proc.returncode == 2 and "unknown representation 'stripes'" in proc.stderr
    proc = _mvmr(["--plugin", "my_stripes", "info", "--config", "cifar10", *over], plugin_path, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "name: stripes" in proc.stdout
    proc = _mvmr(["--plugin", "no_such_plugin", "info", "--config", "cifar10"], plugin_path, tmp_path)
    assert proc.returncode == 2 and "--plugin[0]: cannot import plugin module 'no_such_plugin'" in proc.stderr
    # or listed in the YAML file itself
    config = tmp_path / "with_plugin.yaml"
    config.write_text("base: cifar10.yaml\nplugins: [my_stripes]\nrepresentations:\n  items: [{name: stripes}]\n")
    proc = _mvmr(["info", "--config", str(config)], plugin_path, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_one_registry_kind_holds_representations_teachers_built_ins_included_and_methods() -> None:
    from mvmr.errors import ConfigError
    from mvmr.methods.registry import METHODS
    from mvmr.plugins import Registry
    from mvmr.representations.base import REPRESENTATIONS
    from mvmr.representations.teachers.factory import TEACHER_KINDS, TEACHERS

    assert all(isinstance(r, Registry) for r in (REPRESENTATIONS, TEACHERS, METHODS))
    assert {"open_clip", "hf-clip", "torchvision", "timm", "efficientnet-lite0", "embeddings"} <= set(
        TEACHERS.registered()
    )
    assert list(TEACHER_KINDS) == list(TEACHERS.registered()) and "hog" in REPRESENTATIONS and "vicreg" in METHODS
    things: Registry[object] = Registry("thing", "mvmr.methods")
    item = object()
    assert things.register("a", item) is item and things.register("a", item) is item  # the same again: no change
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        things.register("a", object())
    with pytest.raises(ConfigError, match=r"unknown thing 'b'; available: .*\ba\b"):
        things.get("b")
    with pytest.raises(ValueError, match="unknown plugin group"):
        Registry("thing", "mvmr.things")

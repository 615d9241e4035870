"""Distillation: the teacher config, a frozen teacher out of checkpoints and optimiser, the cached
teacher (never run during steps), a real distillation raising dCor(student, teacher), the report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from mvmr.config import load_config
from mvmr.errors import ConfigError, DataError
from mvmr.losses import distance_correlation
from mvmr.methods import effective_betas
from mvmr.training.build import build_data, teacher_source
from mvmr.training.trainer import pretrain

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import FEATURE_DIM, tiny_config, tiny_model  # noqa: E402
from conftest import load_images  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: the real teacher, small and fast: EfficientNet-Lite0 (ImageNet weights) at 64 px input
LITE0 = ["teacher.spec=efficientnet-lite0", "teacher.options={input_size: 64, crop_pct: 1.0}", "teacher.batch_size=128"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these small steps gain nothing from more, and lose a lot when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _distill_config(root: Path, out: Path, overrides: list[str] = ()) -> object:
    """Imagenette train images at 32 px, teacher only, 256 images, batch 32 (8 steps an epoch)."""
    return tiny_config(
        root,
        out,
        [
            "data.split=train",
            "data.image_size=32",
            "data.subset=256",
            "data.batch_size=32",
            "data.val_fraction=0.0",
            "representations.items=[]",
            "probe.enabled=false",
            *LITE0,
            *overrides,
        ],
    )


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["teacher.spec=clip:ViT-B-16"], r"^teacher\.spec: unknown teacher kind 'clip'"),
        (["teacher.spec=open_clip"], r"^teacher\.spec: teacher spec 'open_clip' needs an argument"),
        (["teacher.weights=w.pt"], r"^teacher\.weights: given without teacher\.spec"),
        (
            ["teacher.spec=efficientnet-lite0", "teacher.name=hog"],
            r"^teacher\.name: 'hog' is also representations\.items\[3\]",
        ),
        (["teacher.spec=efficientnet-lite0", "teacher.name=a b"], r"^teacher\.name: expected letters"),
        (["teacher.spec=efficientnet-lite0", "teacher.beta=-1"], r"^teacher\.beta: must be >= 0\.0"),
        (["teacher.spec=efficientnet-lite0", "teacher.cache=maybe"], r"^teacher\.cache: expected bool"),
        (
            ["teacher.spec=efficientnet-lite0", "teacher.options={name: t}"],
            r"^teacher\.options\.name: .*set teacher\.name",
        ),
        (
            ["teacher.spec=efficientnet-lite0", "teacher.options={input_size: 4}"],
            r"^teacher\.options\.input_size: expected an int >= 8",
        ),
        (["teacher.spec=embeddings:t.npy", "teacher.cache=false"], r"^teacher\.cache: .*precomputed embeddings"),
        (["teacher.spec=embeddings:t.npy", "teacher.weights=w.pt"], r"^teacher\.weights: .*has no weights"),
        (
            ["teacher.spec=embeddings:t.npy", "teacher.options={input_size: 64}"],
            r"^teacher\.options\.input_size: embeddings",
        ),
        (["teacher.spec=efficientnet-lite0", "loss.l3=minimize"], r"^loss\.l3: 'minimize' would push the student AWAY"),
        (
            [
                "teacher.spec=efficientnet-lite0",
                "loss.beta={pixels: 1, scatnet: 1, augmented_pixels: 1, hog: 1, local_std: 1, teacher: 2}",
            ],
            r"^loss\.beta\.teacher: the teacher's weight is teacher\.beta",
        ),
        (
            ["evaluation.ssl_representations=[{name: sift}]"],
            r"^evaluation\.ssl_representations\[0\]\.name: unknown representation",
        ),
        (["evaluation.epochs=0"], r"^evaluation\.epochs: must be >= 1"),
    ],
)
def test_teacher_config_errors_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("stl10", overrides)


def test_teacher_beta_joins_the_representation_weights() -> None:
    base = load_config("stl10", ["teacher.spec=efficientnet-lite0"])
    assert effective_betas(base) == 1.0  # every weight 1: the plain float
    c = load_config(
        "stl10", ["teacher.spec=efficientnet-lite0", "teacher.beta=3", "representations.items=[{name: hog}]"]
    )
    assert effective_betas(c) == {"hog": 1.0, "teacher": 3.0}
    assert effective_betas(load_config("stl10", ["teacher.beta=3"])) == 1.0  # no teacher spec: no teacher term


def test_shipped_distill_configs() -> None:
    clip = load_config("distill_clip_imagenet")
    assert (clip.teacher.spec, clip.teacher.options.get("tag"), clip.teacher.cache) == (
        "open_clip:ViT-B-16",
        "laion400m_e32",
        True,
    )
    assert (clip.model.encoder, clip.model.projector, clip.data.batch_size) == ("resnet50", "8192-8192-8192", 512)
    assert (clip.optim.optimizer, clip.optim.lr, clip.optim.scheduler) == ("adam", 1e-4, "cosine")
    assert (clip.trainer.max_epochs, clip.trainer.precision, clip.representations.items) == (200, "16-mixed", [])
    demo = load_config("distill_demo")
    assert demo.teacher.spec == "efficientnet-lite0" and demo.data.root is None and demo.trainer.accelerator == "cpu"
    # the demo's default follows the equal-budget evidence; the paper's recipe is the named preset
    assert (demo.teacher.objective, demo.teacher.view, demo.teacher.cached_views) == ("dcor+cosine", "augmented", 0)
    paper = load_config("distill_demo_paper")
    assert (paper.teacher.objective, paper.teacher.view, paper.teacher.cached_views) == ("dcor", "clean", 0)
    assert (clip.teacher.objective, clip.teacher.view) == ("dcor", "clean")
    # the preset differs from the demo in the teacher's objective and view (and its run folder) only
    assert paper.model == demo.model and paper.data == demo.data and paper.optim == demo.optim
    assert paper.trainer == demo.trainer and paper.evaluation == demo.evaluation and paper.output_dir != demo.output_dir


def test_cli_distill_needs_a_teacher_and_a_data_root(capsys: pytest.CaptureFixture[str]) -> None:
    from mvmr.cli import main

    assert main(["distill", "--config", "distill_demo"]) == 2
    assert "data.root: required" in capsys.readouterr().err
    assert main(["distill", "--config", "stl10"]) == 2
    assert "teacher.spec: mvmr distill needs a teacher" in capsys.readouterr().err
    assert main(["distill", "--config", "distill_demo", "data.root=/nonexistent/imagenette"]) == 2
    assert "image folder not found: /nonexistent/imagenette/train" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# a real distillation (shared by the tests below)
# --------------------------------------------------------------------------------------------
class TeacherWatch(L.Callback):
    """Counts teacher forwards (cache build vs training steps) and checks it stays frozen."""

    def __init__(self) -> None:
        self.calls = 0
        self.calls_at_train_start = -1
        self.calls_in_training = -1
        self.steps = 0
        self.optimised: set[int] = set()

    @staticmethod
    def teacher(pl_module: L.LightningModule) -> torch.nn.Module:
        (source,) = [s for s in pl_module.method.sources if "teacher" in s.names]
        return source.representations["teacher"]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # runs before the module's setup, where the cache is built
        self.teacher(pl_module).register_forward_hook(lambda *_: setattr(self, "calls", self.calls + 1))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.calls_at_train_start = self.calls
        self.optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        teacher = self.teacher(pl_module)
        assert pl_module.training and not teacher.training
        assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
        self.steps += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.calls_in_training = self.calls - self.calls_at_train_start


def _held_dcor(model: torch.nn.Module, teacher: torch.nn.Module, images: torch.Tensor) -> float:
    """dCor(student z_aug, teacher(x)) on held-out images (augmented views drawn with a fixed seed)."""
    from mvmr.transforms.augmentation import PaperAugmentation

    aug = PaperAugmentation(images.shape[-1])
    g = torch.Generator().manual_seed(0)
    x_aug = torch.stack([aug(img, generator=g) for img in images])
    model.eval()
    with torch.no_grad():
        return float(distance_correlation(model(x_aug), teacher(images)))


@pytest.fixture(scope="module")
def distilled(imagenette_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("distill") / "run"
    config = _distill_config(imagenette_root, out, ["trainer.max_epochs=4", "optim.lr=3e-3"])
    held = load_images(imagenette_root / "val", 96, size=32)
    model = tiny_model(seed=0)
    from mvmr.representations.teachers import build_teacher

    t = config.teacher
    teacher = build_teacher(t.spec, weights=t.weights, name=t.name, **t.options)
    before = _held_dcor(model, teacher, held)
    watch = TeacherWatch()
    pretrain(config, model=model, feature_dim=FEATURE_DIM, callbacks=[watch])
    return {
        "config": config,
        "out": out,
        "watch": watch,
        "model": model,
        "before": before,
        "after": _held_dcor(model, teacher, held),
        "teacher": teacher,
    }


def test_distillation_raises_dcor_to_the_teacher_on_held_images(distilled: dict) -> None:
    rows = list(csv.DictReader((next(distilled["out"].glob("csv/version_*/metrics.csv"))).open()))
    assert any(r.get("train/dcor/teacher") for r in rows)  # the teacher's term is logged
    assert distilled["watch"].steps == 32
    # measured: 0.20 before, 0.39 after 32 steps
    assert distilled["after"] > distilled["before"] + 0.1, (distilled["before"], distilled["after"])


def test_cached_teacher_is_not_run_during_steps_and_stays_frozen(distilled: dict) -> None:
    watch, model = distilled["watch"], distilled["model"]
    assert watch.calls_at_train_start == 2  # the cache build: 256 images in batches of 128
    assert watch.calls_in_training == 0
    assert watch.optimised == {id(p) for p in model.parameters()}  # student only (probe disabled)
    assert (distilled["out"] / "teacher-cache" / "manifest.json").is_file()


def test_teacher_weights_are_not_in_the_checkpoint(distilled: dict) -> None:
    ckpt = torch.load(distilled["out"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    assert state and all(k.startswith("model.") for k in state), sorted(state)[:5]
    assert sum(v.numel() for v in state.values()) == sum(v.numel() for v in distilled["model"].state_dict().values())
    assert ckpt["hyper_parameters"]["teacher"]["spec"] == "efficientnet-lite0"  # the config, not the weights


def test_cached_teacher_features_equal_the_live_teacher(distilled: dict) -> None:
    from mvmr.sources import CachedSource

    config = distilled["config"]
    data = build_data(config)
    source = teacher_source(config, data.base)
    assert isinstance(source, CachedSource) and source.names == ["teacher"]
    calls = []
    source.representations["teacher"].register_forward_hook(lambda *_: calls.append(1))
    source.prepare("cpu")  # opens the run's cache (it matches: same data, teacher, size): no teacher run
    assert calls == [] and source.cache is not None and source.build_seconds is None
    idx = torch.as_tensor(data.train_indices[[5, 0, 200, 5]])
    x = torch.stack([data.views[int(i)][0] for i in idx])
    cached = source(x, idx)["teacher"]
    live = distilled["teacher"](x)
    torch.testing.assert_close(cached, live, rtol=1e-2, atol=2e-3)  # float16 storage


def test_live_teacher_runs_every_step(imagenette_root: Path, tmp_path: Path) -> None:
    config = _distill_config(
        imagenette_root, tmp_path / "run", ["teacher.cache=false", "trainer.max_steps=3", "data.subset=96"]
    )
    watch = TeacherWatch()
    pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM, callbacks=[watch])
    assert watch.calls_at_train_start == 0 and watch.calls_in_training == watch.steps == 3
    assert not (tmp_path / "run" / "teacher-cache").exists()


def test_precomputed_embeddings_are_read_by_dataset_index(imagenette_root: Path, tmp_path: Path) -> None:
    from mvmr.data import DatasetSubset
    from mvmr.sources import PrecomputedSource

    full = 9469  # Imagenette train images: row i of the file = dataset[i]
    table = np.random.default_rng(0).standard_normal((full, 7)).astype(np.float32)
    np.save(tmp_path / "emb.npy", table)
    config = _distill_config(
        imagenette_root,
        tmp_path / "run",
        [f"teacher.spec=embeddings:{tmp_path / 'emb.npy'}", "teacher.options={}", "data.subset=64"],
    )
    data = build_data(config)
    assert isinstance(data.base, DatasetSubset)
    source = teacher_source(config, data.base)
    assert isinstance(source, PrecomputedSource)  # nothing to prepare
    idx = torch.tensor([3, 0, 63])
    got = source(torch.zeros(3, 3, 32, 32), idx)["teacher"]
    np.testing.assert_array_equal(got.numpy(), table[data.base.indices[idx.numpy()]])
    np.save(tmp_path / "short.npy", table[:10])
    bad = _distill_config(
        imagenette_root, tmp_path / "run", [f"teacher.spec=embeddings:{tmp_path / 'short.npy'}", "teacher.options={}"]
    )
    with pytest.raises(DataError, match="have 10 rows but the dataset has 9469 items"):
        teacher_source(bad, build_data(bad).base)


# --------------------------------------------------------------------------------------------
# DDP: rank 0 fills the cache, rank 1 waits and reads it; the same weights as one process
# --------------------------------------------------------------------------------------------
DDP_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from _training_support import FEATURE_DIM, tiny_model
from test_distill import _distill_config
from mvmr.training.trainer import pretrain
config = _distill_config({root!r}, {out!r}, {overrides!r})
pretrain(config, model=tiny_model(projector_bn=False), feature_dim=FEATURE_DIM, resume=None)
"""


def test_ddp_distillation_matches_one_process(imagenette_root: Path, tmp_path: Path) -> None:
    # as tests/test_training.py's DDP test: the same global batch (2 x 8 vs 1 x 16), statistics over
    # the gathered batch, no BatchNorm, LARS; here both ranks fill the teacher's cache, each its half
    common = [
        "data.subset=48",
        "loss.gather_distributed=true",
        "trainer.max_epochs=1",
        "optim.optimizer=lars",
        "optim.lr=0.5",
        "optim.trust_coefficient=0.02",
        "data.augmentation.blur=false",
    ]
    script = tmp_path / "ddp_fit.py"
    script.write_text(
        DDP_SCRIPT.format(
            tests=str(Path(__file__).parent),
            root=str(imagenette_root),
            out=str(tmp_path / "ddp"),
            overrides=[*common, "data.batch_size=8", "trainer.devices=2", "trainer.strategy=ddp"],
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = pretrain(
        _distill_config(imagenette_root, tmp_path / "single", [*common, "data.batch_size=16"]),
        model=tiny_model(projector_bn=False),
        feature_dim=FEATURE_DIM,
        resume=None,
    )
    a = torch.load(tmp_path / "ddp/checkpoints/last.ckpt", weights_only=True)
    b = torch.load(single / "checkpoints/last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 3
    for key in b["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=1e-4, atol=1e-5, msg=key)
    manifest = json.loads((tmp_path / "ddp" / "teacher-cache" / "manifest.json").read_text())
    assert manifest["shards"] == [{"rank": 0, "rows": [0, 24]}, {"rank": 1, "rows": [24, 48]}]


# --------------------------------------------------------------------------------------------
# the report of a distillation run
# --------------------------------------------------------------------------------------------
def test_report_compares_student_teacher_ssl_and_random(imagenette_root: Path, tmp_path: Path) -> None:
    from mvmr.workflows.distill_report import distill_report, ssl_baseline_config

    over = [
        "model.encoder=resnet18",
        "model.projector=32-32",
        "data.subset=64",
        "trainer.max_epochs=1",
        "evaluation.test_split=val",
        "evaluation.train_subset=40",
        "evaluation.test_subset=20",
        "evaluation.epochs=3",
        "evaluation.timing_steps=1",
        "evaluation.ssl_representations=[{name: local_std}]",
    ]
    config = _distill_config(imagenette_root, tmp_path / "run", over)
    run = pretrain(config)
    ssl_config = ssl_baseline_config(config, run / "ssl-baseline")
    assert ssl_config.teacher.spec is None and [s.name for s in ssl_config.representations.items] == ["local_std"]
    assert (ssl_config.model, ssl_config.optim, ssl_config.trainer) == (config.model, config.optim, config.trainer)
    ssl = pretrain(ssl_config)
    lines: list[str] = []
    report = distill_report(config, run, ssl_run=ssl, progress=False, echo=lines.append)
    assert [r["row"] for r in report["rows"]] == ["student", "teacher", "ssl", "random"]
    params = {r["row"]: r["parameters"] for r in report["rows"]}
    assert params["student"] == params["ssl"] == params["random"] == 11_176_512  # ResNet-18 without fc
    assert 3.3e6 < params["teacher"] < 3.4e6  # EfficientNet-Lite0 embedding network
    assert all(0.0 <= r["test_top1"] <= 100.0 for r in report["rows"])
    assert [t["mode"] for t in report["timings"]] == ["cached", "live"]
    text = (run / "results.md").read_text()
    assert "| MV-MR distilled resnet18 (student) | 11.18M | 512 |" in text and "teacher run every step" in text
    assert {p.name for p in (run / "results").glob("*.json")} == {f"linear-{k}.json" for k in params}

"""``mvmr plan``: dimensions and sources equal the real run's, the cache size equals a built cache,
the encoder FLOPs match ResNet-18's published count, and every shipped config is sensible at its scale."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mvmr.cli import main
from mvmr.config import load_config, shipped_configs
from mvmr.errors import DataError
from mvmr.workflows.plan import format_plan, make_plan

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import DETERMINISTIC_REPS, FEATURE_DIM, tiny_config, tiny_model  # noqa: E402

REPS = DETERMINISTIC_REPS.rstrip("]") + ", {name: augmented_pixels}]"


def _plan_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_gives_the_dims_and_sources_of_the_real_run(
    cifar10_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mvmr.training.build import build_data, build_module

    over = [
        f"representations.items={REPS}",
        "representations.project_dim=500",
        f"representations.cache_dir={tmp_path / 'cache'}",
    ]
    config = tiny_config(cifar10_root, tmp_path / "run", over)
    plan = make_plan(config, timing_images=2)
    # the real targets of the same config: built, prepared, computed on a batch
    data = build_data(config)
    module = build_module(config, data, tiny_model(), FEATURE_DIM)
    for source in module.method.sources:
        source.prepare("cpu")
    idx = torch.as_tensor(data.train_indices[:4])
    targets = module.method.targets(torch.stack([data.views[int(i)][0] for i in idx]), idx)
    assert {r.name: r.dim for r in plan.representations} == {k: v.shape[1] for k, v in targets.items()}
    cached = {n for s in module.method.sources if type(s).__name__ == "CachedSource" for n in s.names}
    assert {r.name for r in plan.representations if r.source == "cache"} == cached == {"pixels", "hog", "local_std"}
    # the cache it predicts is the cache that was built: float16 rows, one file per representation
    files = sorted((tmp_path / "cache").glob("*.npy"))
    data_bytes = sum(np.load(f, mmap_mode="r").nbytes for f in files)
    assert plan.cache_bytes == data_bytes and plan.images == len(data.base)
    assert plan.train_images == len(data.train_indices)
    assert plan.batches_per_epoch == len(data.train_indices) // config.data.batch_size
    assert plan.total_batches == plan.batches_per_epoch * config.trainer.max_epochs
    # the same as JSON from the command line, which says where each representation comes from
    out = _plan_json(capsys, ["--config", str(_save(config, tmp_path)), "--timing-images", "0"])
    assert [(r["name"], r["dim"], r["source"]) for r in out["representations"]] == [
        (r.name, r.dim, r.source) for r in plan.representations
    ]


def _save(config, tmp_path: Path) -> Path:
    from mvmr.config import save_config

    return save_config(config, tmp_path / "planned.yaml")


def test_encoder_flops_are_resnet18s_published_count() -> None:
    """torchvision's ResNet-18 does 1.814 GMACs = 3.63 GFLOP forward at 224 px; forward + backward
    is three times that (the backward of a conv or a linear layer costs two forwards)."""
    config = load_config(
        "cifar10",
        [
            "model.encoder=resnet18",
            "model.small_images=false",
            "model.projector=''",
            "data.image_size=224",
            "representations.items=[]",
            "trainer.precision=32-true",
        ],
    )
    plan = make_plan(config, images=1000, timing_images=0, device="cuda")
    assert plan.encoder_gflop_per_image == pytest.approx(3 * 3.63, rel=0.03)
    assert plan.encoder_tflop_per_step == pytest.approx(plan.encoder_gflop_per_image * config.data.batch_size * 2 / 1e3)
    assert "process baseline (measured)" not in plan.memory_bytes  # a GPU's memory starts empty


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_is_sensible_at_its_scale(name: str) -> None:
    """On 8 GPUs of 80 GB: no representation of hundreds of thousands of values is computed at every
    step, the targets gathered over the global batch stay small, and the estimate fits the card."""
    config = load_config(name, ["trainer.devices=8", "data.root=unused"])
    plan = make_plan(config, images=100_000, timing_images=0, device="cuda")
    for r in plan.representations:
        assert r.source != "live" or r.dim <= 200_000, (
            f"{name}: {r.name} computes {r.dim:,} values per image every step"
        )
    assert sum(r.batch_bytes for r in plan.representations) <= 2 * 2**30, name
    assert plan.peak_memory_bytes <= 80 * 2**30, (name, plan.memory_bytes)


def test_measured_plan_projects_the_wall_time(
    cifar10_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(cifar10_root, tmp_path / "run", [f"representations.items={DETERMINISTIC_REPS}"])
    path = _save(config, tmp_path)
    assert main(["plan", "--config", str(path), "--measure", "2", "--timing-images", "0"]) == 0
    text = capsys.readouterr().out
    assert "peak memory (estimate, per process)" in text and "measured here: median of 2 steps" in text
    out = _plan_json(capsys, ["--config", str(path), "--throughput", "80", "--timing-images", "0"])
    assert out["step_seconds"] == pytest.approx(8 / 80)
    assert out["wall_seconds"] == pytest.approx(out["total_batches"] * 8 / 80)
    assert out["decode_images_per_second"] == pytest.approx(80)


def test_representation_timing_leaves_out_the_first_call_at_a_batch_size(monkeypatch) -> None:
    """A representation's first call at a new batch size pays one-off costs (kymatio: ~3.4x per image
    at batch 4); the plan warms up on the timed batch itself, so only the steady cost is counted."""
    from types import SimpleNamespace

    from mvmr.workflows import plan as plan_module

    now = [0.0]
    monkeypatch.setattr(plan_module, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    class OneOffCostPerShape(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.seen: set[int] = set()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] not in self.seen:  # a new batch size: 100 s of one-off work
                self.seen.add(x.shape[0])
                now[0] += 100.0
            now[0] += 0.5 * x.shape[0]  # the steady cost: 0.5 s per image
            return x.flatten(1)

    assert plan_module._time_per_image(OneOffCostPerShape(), torch.zeros(8, 1, 4, 4)) == 0.5


@pytest.mark.parametrize(
    ("name", "overrides", "images", "known"),
    [
        ("stl10", [], 105_000, "stl10 split train+unlabeled"),
        ("imagenet", [], 1_281_167, "imagenet split train"),
        ("cifar10", [], 50_000, "cifar10 split train"),
        ("demo", ["data.subset=null"], 60_000, "fashion_mnist split train"),
    ],
)
def test_a_shipped_dataset_is_planned_without_its_data(
    tmp_path: Path, name: str, overrides: list[str], images: int, known: str
) -> None:
    config = load_config(name, [f"data.root={tmp_path / 'absent'}", *overrides])
    plan = make_plan(config, timing_images=0, device="cuda", name=name)
    assert plan.images == images
    assert plan.images_source == f"the known size of {known}; the data is not here"
    assert f"{images:,} ({plan.images_source})" in format_plan(plan)


def test_other_missing_data_asks_for_the_number_of_images(tmp_path: Path) -> None:
    config = load_config("distill_demo", [f"data.root={tmp_path / 'absent'}"])
    with pytest.raises(DataError, match=r"image folder not found: .*give the number of images \(--images N\)"):
        make_plan(config, timing_images=0, device="cuda", name="distill_demo")
    assert make_plan(config, images=1000, timing_images=0, device="cuda").images_source == "given (--images)"

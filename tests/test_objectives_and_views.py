"""Fixed targets learnt through an objective (dCor, a cosine regression head, or both) from a view
(the clean image, the student's augmented view, or stored augmented views)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _training_support import FEATURE_DIM, CrashAt, tiny_config, tiny_model

from mvmr.cache import CacheMismatchError, CorruptCacheError, FeatureCache, StoredViewParameters, open_or_build
from mvmr.data import AugmentedViewBank, DatasetSubset, StoredViews, build_dataset
from mvmr.errors import ConfigError
from mvmr.losses import CosineRegressionLoss, NonFiniteInputError, cosine_regression_loss, distance_correlation
from mvmr.models import RegressionHead, TargetRegression, normalize_targets
from mvmr.representations.base import Representation
from mvmr.training.build import build_data, build_module
from mvmr.transforms import PARAMETER_COLUMNS, PaperAugmentation, parameters_to_vector, vector_to_parameters

LITE0 = ["teacher.spec=efficientnet-lite0", "teacher.options={input_size: 32}"]


# --------------------------------------------------------------------------------------------
# the cosine regression loss and its heads
# --------------------------------------------------------------------------------------------
def test_cosine_regression_equals_its_definition_and_ignores_scale() -> None:
    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(16, 7, generator=g, dtype=torch.float64), torch.randn(16, 7, generator=g, dtype=torch.float64)
    pn, tn = (
        p.numpy() / np.linalg.norm(p.numpy(), axis=1, keepdims=True),
        t.numpy() / np.linalg.norm(t.numpy(), axis=1, keepdims=True),
    )
    expected = np.mean(np.sum((pn - tn) ** 2, axis=1))  # ||p/|p| - t/|t|||^2 = 2 - 2 cos
    loss, cos = cosine_regression_loss(p, t)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert cos.item() == pytest.approx(np.mean(np.sum(pn * tn, axis=1)), rel=1e-12)
    scaled = cosine_regression_loss(3.0 * p, 0.25 * t)[0]  # only directions count
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-12)
    assert cosine_regression_loss(t, t)[0].item() == pytest.approx(0.0, abs=1e-12)
    assert cosine_regression_loss(-t, t)[0].item() == pytest.approx(4.0, abs=1e-12)
    assert CosineRegressionLoss()(p, t).item() == pytest.approx(loss.item())


def test_cosine_regression_gradcheck_and_no_gradient_to_the_target() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: cosine_regression_loss(x, t)[0], (p,))
    cosine_regression_loss(p, t)[0].backward()
    assert t.grad is None  # the target is fixed


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_cosine_regression_refuses_nonfinite_and_mismatched_input(bad: float) -> None:
    p, t = torch.randn(4, 3), torch.randn(4, 3)
    p[1, 2] = bad
    with pytest.raises(NonFiniteInputError, match="prediction"):
        cosine_regression_loss(p, t)
    with pytest.raises(ValueError, match="same shape"):
        cosine_regression_loss(torch.randn(4, 3), torch.randn(4, 5))


def test_target_regression_heads_terms_and_weights() -> None:
    torch.manual_seed(0)
    reg = TargetRegression(
        8, {"teacher.v2": 5, "hog": 3}, weights={"teacher.v2": 2.0, "hog": 0.5}, depth=2, width=16, target_norm="none"
    )
    assert isinstance(reg.head("teacher.v2"), RegressionHead) and reg.head("hog").out_dim == 3
    h = torch.randn(10, 8)
    targets = {"teacher.v2": torch.randn(10, 5), "hog": torch.randn(10, 3)}
    loss, terms = reg(h, targets)
    by_hand = sum(w * cosine_regression_loss(reg.head(n)(h), targets[n])[0] for n, w in reg.weights.items())
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert set(terms) == {"cos/teacher.v2", "cos/hog", "regression"}
    with pytest.raises(ValueError, match="regresses"):
        reg(h, {"hog": targets["hog"]})
    assert len(RegressionHead(8, 4, depth=1).layers) == 1  # depth 1: one linear map


def test_centred_targets_leave_nothing_to_the_mean_direction(imagenette_images: torch.Tensor) -> None:
    """A teacher's pooled features are non-negative: their mean direction alone scores cos ~0.5 against the
    raw targets, and nothing once they are centred (the reason for regression.target_norm)."""
    from mvmr.representations.teachers import build_teacher

    teacher = build_teacher("efficientnet-lite0", input_size=64)
    t = teacher(imagenette_images[:64])
    assert (t >= 0).all()
    mean_guess = t.mean(dim=0, keepdim=True).expand_as(t)
    assert cosine_regression_loss(mean_guess, t)[1] > 0.4  # the raw target: half solved by a constant
    centred = normalize_targets(t, "center")
    torch.testing.assert_close(centred.mean(dim=0), torch.zeros(t.shape[1]), atol=1e-4, rtol=0)
    assert abs(cosine_regression_loss(mean_guess, centred)[1].item()) < 0.05  # a constant explains nothing
    standardized = normalize_targets(t, "standardize")
    alive = t.std(dim=0) > 1e-3
    torch.testing.assert_close(standardized.std(dim=0)[alive], torch.ones(int(alive.sum())), atol=1e-3, rtol=1e-3)
    assert normalize_targets(t, "none") is t


# --------------------------------------------------------------------------------------------
# config errors name the key
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["representations.items=[{name: hog, objective: l2}]"],
            r"^representations\.items\[0\]\.objective: expected one of 'dcor', 'cosine', 'dcor\+cosine', got 'l2'",
        ),
        (["representations.items=[{name: hog, view: noisy}]"], r"^representations\.items\[0\]\.view: expected one of"),
        ([*LITE0, "teacher.objective=mse"], r"^teacher\.objective: expected one of 'dcor', 'cosine', 'dcor\+cosine'"),
        ([*LITE0, "teacher.view=both"], r"^teacher\.view: expected one of 'clean', 'augmented'"),
        ([*LITE0, "teacher.view=augmented", "teacher.cached_views=-2"], r"^teacher\.cached_views: must be >= 0"),
        ([*LITE0, "teacher.cached_views=4"], r"^teacher\.cached_views: stored views are augmented views"),
        ([*LITE0, "teacher.view=augmented", "teacher.cached_views=4", "teacher.cache=false"], r"^teacher\.cache: "),
        ([*LITE0, "teacher.cached_views=yes"], r"^teacher\.cached_views: expected int"),
        (["regression.input=pixels"], r"^regression\.input: expected one of 'features', 'embedding'"),
        (["regression.depth=0"], r"^regression\.depth: must be >= 1"),
    ],
)
def test_bad_objective_view_or_cached_views_names_the_key(
    cifar10_root: Path, tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_config(cifar10_root, tmp_path, overrides)


def test_precomputed_embeddings_cannot_describe_the_augmented_view(cifar10_root: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "emb.npy", np.zeros((40, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"^teacher\.view: .* precomputed embeddings of the clean images"):
        tiny_config(
            cifar10_root, tmp_path, [f"teacher.spec=embeddings:{tmp_path / 'emb.npy'}", "teacher.view=augmented"]
        )


def test_a_wide_cosine_target_needs_the_projection(cifar10_root: Path, tmp_path: Path) -> None:
    items = "representations.items=[{name: pixels, objective: cosine}]"
    config = tiny_config(cifar10_root, tmp_path, [items, "data.image_size=64", "regression.max_target_dim=4096"])
    data = build_data(config)
    with pytest.raises(
        ConfigError,
        match=r"^representations\.items\[0\]\.objective: a cosine head to 'pixels' would "
        r"predict 12,288 values .* representations\.project_dim",
    ):
        build_module(config, data, tiny_model(), FEATURE_DIM)
    projected = tiny_config(cifar10_root, tmp_path, [items, "data.image_size=64", "representations.project_dim=256"])
    module = build_module(projected, build_data(projected), tiny_model(), FEATURE_DIM)
    assert module.method.regression is not None and module.method.regression.head("pixels").out_dim == 256


# --------------------------------------------------------------------------------------------
# the training step: each objective reaches the loss it names; each view its images
# --------------------------------------------------------------------------------------------
def _module(cifar10_root: Path, tmp_path: Path, items: str, extra: list[str] = ()):  # noqa: ANN202
    config = tiny_config(cifar10_root, tmp_path, [f"representations.items={items}", "regression.width=16", *extra])
    data = build_data(config)
    module = build_module(config, data, tiny_model(), FEATURE_DIM)
    for source in module.method.sources + module.method.augmented_sources:
        source.prepare("cpu")
    return module, data


def _batch(data, n: int = 8):  # noqa: ANN001, ANN202
    items = [data.views[int(i)] for i in data.train_indices[:n]]
    return tuple(torch.stack([torch.as_tensor(item[k]) for item in items]) for k in range(len(items[0])))


def test_each_objective_reaches_the_loss_it_names(cifar10_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    items = "[{name: pixels}, {name: hog, objective: cosine}, {name: local_std, objective: dcor+cosine}]"
    module, data = _module(cifar10_root, tmp_path, items)
    assert module.method.objectives == {"pixels": "dcor", "hog": "cosine", "local_std": "dcor+cosine"}
    assert module.method.regression is not None and module.method.regression.names == ["hog", "local_std"]
    assert set(module.method.loss_fn.beta if isinstance(module.method.loss_fn.beta, dict) else {}) <= {
        "pixels",
        "local_std",
    }
    batch = _batch(data)
    out = module.ssl_step(batch)
    t = out.terms
    assert {"dcor/pixels", "dcor/hog", "dcor/local_std", "cos/hog", "cos/local_std"} <= set(t)
    assert "cos/pixels" not in t
    # L3 holds the dCor targets only; the cosine terms come on top, in the total
    assert t["l3"].item() == pytest.approx((1 - t["dcor/pixels"] + 1 - t["dcor/local_std"]).item(), rel=1e-5)
    assert t["loss"].item() == pytest.approx((t["l1"] + t["l2"] + t["l3"] + t["regression"]).item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(t["loss"].item(), rel=1e-6)
    out.loss.backward()  # the heads learn with the model
    assert all(p.grad is not None for p in module.method.regression.parameters())


def test_the_augmented_view_targets_describe_the_students_augmented_images(cifar10_root: Path, tmp_path: Path) -> None:
    module, data = _module(cifar10_root, tmp_path, "[{name: pixels, view: augmented}, {name: local_std}]")
    assert [s.names for s in module.method.augmented_sources] == [["pixels"]]
    x_clean, x_aug, index, _ = _batch(data)
    assert not torch.equal(x_clean, x_aug)
    targets = module.method.targets(x_clean, index, x_aug)
    torch.testing.assert_close(targets["pixels"], x_aug.flatten(1))  # the augmented view, not the clean one
    assert list(targets) == ["pixels", "local_std"]  # the config's order


def test_a_cosine_only_teacher_is_monitored_by_dcor(imagenette_root: Path, tmp_path: Path) -> None:
    config = tiny_config(
        imagenette_root,
        tmp_path,
        [
            "data.split=val",
            "representations.items=[]",
            *LITE0,
            "teacher.objective=cosine",
            "teacher.view=augmented",
            "regression.width=16",
        ],
    )
    data = build_data(config)
    module = build_module(config, data, tiny_model(), FEATURE_DIM)
    for source in module.method.augmented_sources:
        source.prepare("cpu")
    x_clean, x_aug, index, _ = _batch(data)
    out = module.ssl_step((x_clean, x_aug, index, torch.zeros(8, dtype=torch.long)))
    assert out.terms["l3"].item() == 0.0  # not in L3
    teacher = module.method.augmented_sources[0].representations["teacher"]
    _, z_aug = module.model.forward_with_features(x_aug)
    expected = distance_correlation(z_aug.detach(), teacher(x_aug))
    assert out.terms["dcor/teacher"].item() == pytest.approx(expected.item(), rel=1e-4)
    assert -1.0 <= out.terms["cos/teacher"].item() <= 1.0


# --------------------------------------------------------------------------------------------
# stored views: the student sees exactly the pixels the teacher embedded
# --------------------------------------------------------------------------------------------
class RecordingTeacher(Representation):
    """A deterministic 'teacher' that keeps every image it is shown."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def output_dim(self, channels: int, height: int, width: int) -> int:
        return channels

    def config(self) -> dict[str, str]:
        return {"kind": "recorder"}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.extend(images.clone())
        return images.mean(dim=(2, 3))


def test_parameters_round_trip_exactly(imagenette_images: torch.Tensor) -> None:
    aug = PaperAugmentation(48)
    g = torch.Generator().manual_seed(3)
    for image in imagenette_images[:12]:
        params = aug.draw(image.shape[1], image.shape[2], g)
        vector = parameters_to_vector(params)
        assert vector.dtype == np.float64 and vector.shape == (len(PARAMETER_COLUMNS),)
        assert vector_to_parameters(vector) == params
        assert torch.equal(aug.apply(image, vector_to_parameters(vector)), aug.apply(image, params))
    with pytest.raises(ValueError, match="17 finite augmentation parameters"):
        vector_to_parameters(np.zeros(5))


def test_stored_views_give_the_student_the_teachers_pixels(imagenette_root: Path, tmp_path: Path) -> None:
    full = DatasetSubset(build_dataset("imagefolder", imagenette_root, split="val", size=None), np.arange(12))
    aug = PaperAugmentation(48)
    bank = AugmentedViewBank(full, size=48, augmentation=aug, count=3, seed=7)
    teacher = RecordingTeacher()
    cache = open_or_build(
        tmp_path / "views", dataset=bank, representations={"t": teacher}, image_size=48, batch_size=5, progress=False
    )
    assert len(cache) == 36 and cache.view_columns == list(PARAMETER_COLUMNS)
    assert len(teacher.seen) == 36  # each stored view embedded once
    views = StoredViews(
        full, size=48, augmentation=aug, count=3, seed=7, parameters=StoredViewParameters(tmp_path / "views")
    )
    picked = set()
    for epoch in range(3):
        views.set_epoch(epoch)
        for i in range(12):
            x_clean, x_aug, index, row, _ = views[i]
            assert index == i and row // 3 == i
            assert torch.equal(x_aug, teacher.seen[row]), (epoch, i, row)  # the very same pixels
            torch.testing.assert_close(cache.get([row])["t"][0], x_aug.mean(dim=(1, 2)), atol=1e-3, rtol=1e-3)
            picked.add(row)
    assert len(picked) > 12  # the views change from epoch to epoch
    # the stored parameters are what made each view
    for row in (0, 17, 35):
        assert vector_to_parameters(cache.view_parameters([row])[0]) == bank.parameters(row, 96, 96)


def test_stored_views_refuse_a_stale_cache_and_detect_damage(imagenette_root: Path, tmp_path: Path) -> None:
    full = DatasetSubset(build_dataset("imagefolder", imagenette_root, split="val", size=None), np.arange(6))
    aug = PaperAugmentation(32)
    reps = {"t": RecordingTeacher()}
    open_or_build(
        tmp_path / "v",
        dataset=AugmentedViewBank(full, size=32, augmentation=aug, count=2, seed=0),
        representations=reps,
        image_size=32,
        progress=False,
    )
    for bank, field in (
        (AugmentedViewBank(full, size=32, augmentation=aug, count=3, seed=0), "views.count"),
        (AugmentedViewBank(full, size=32, augmentation=aug, count=2, seed=1), "views.seed"),
        (
            AugmentedViewBank(full, size=32, augmentation=PaperAugmentation(32, blur=False), count=2, seed=0),
            "views.augmentation",
        ),
    ):
        with pytest.raises(CacheMismatchError, match=re.escape(f"field '{field}' differs")):
            open_or_build(tmp_path / "v", dataset=bank, representations=reps, image_size=32, progress=False)
    views_file = tmp_path / "v" / "views.npy"
    data = bytearray(views_file.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the last view's parameters
    views_file.write_bytes(bytes(data))
    cache = FeatureCache.open(tmp_path / "v")  # opening checks sizes and headers; rows are checked when read
    with pytest.raises(CorruptCacheError, match=r"views\.npy: chunk 0 .* fails its crc32 checksum"):
        cache.view_parameters([0])  # one chunk holds all 12 rows: no parameter of it is used


def test_stored_views_train_through_the_real_trainer(imagenette_root: Path, tmp_path: Path) -> None:
    from mvmr.training.trainer import pretrain

    config = tiny_config(
        imagenette_root,
        tmp_path / "run",
        [
            "data.split=val",
            "data.image_size=32",
            "data.subset=48",
            "data.batch_size=8",
            "data.val_fraction=0.0",
            "representations.items=[]",
            "probe.enabled=false",
            "trainer.max_epochs=1",
            *LITE0,
            "teacher.view=augmented",
            "teacher.cached_views=2",
            "teacher.objective=dcor+cosine",
            "regression.width=16",
        ],
    )
    pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM)
    cache = FeatureCache.open(tmp_path / "run" / "teacher-views-2")
    assert len(cache) == 96 and cache.view_columns is not None
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("method.regression.") for k in ckpt["state_dict"])


# --------------------------------------------------------------------------------------------
# the heads: trained, checkpointed, resumed exactly, never exported
# --------------------------------------------------------------------------------------------
HEADED = [
    "representations.items=[{name: hog, objective: cosine}, {name: local_std, objective: dcor+cosine, "
    "view: augmented}]",
    "regression.width=16",
]


def test_heads_resume_exactly_after_a_crash(cifar10_root: Path, tmp_path: Path) -> None:
    from mvmr.models import read_lightning_checkpoint
    from mvmr.training.trainer import pretrain

    over = [*HEADED, "trainer.checkpoint_every_n_steps=1"]
    full = pretrain(tiny_config(cifar10_root, tmp_path / "full", over), model=tiny_model(), feature_dim=FEATURE_DIM)
    cut = tiny_config(cifar10_root, tmp_path / "cut", over)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(cut, model=tiny_model(), feature_dim=FEATURE_DIM, callbacks=[CrashAt(5)])
    pretrain(cut, model=tiny_model(seed=99), feature_dim=FEATURE_DIM)  # resumes from step 5, heads included
    a = read_lightning_checkpoint(Path(full) / "checkpoints" / "last.ckpt")["state_dict"]
    b = read_lightning_checkpoint(tmp_path / "cut" / "checkpoints" / "last.ckpt")["state_dict"]
    heads = [k for k in a if k.startswith("method.regression.")]
    assert heads and {k.split(".")[3] for k in heads} == {"t_hog", "t_local_std"}
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_heads_stay_out_of_exports(cifar10_root: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from mvmr.models import read_lightning_checkpoint
    from mvmr.training.export import export_checkpoint, read_trained_model
    from mvmr.training.trainer import pretrain

    run = pretrain(tiny_config(cifar10_root, tmp_path / "run", [*HEADED, "trainer.max_epochs=1"]))  # resnet18, 16 px
    ckpt = Path(run) / "checkpoints" / "last.ckpt"
    assert any(k.startswith("method.regression.") for k in read_lightning_checkpoint(ckpt)["state_dict"])
    trained = read_trained_model(ckpt)  # a strict load of the model alone
    assert not any("regression" in k for k in trained.model.state_dict())
    written = export_checkpoint(ckpt, tmp_path / "export")
    exported = load_file(str(next(p for p in written if p.suffix == ".safetensors")))
    assert set(exported) == set(trained.model.encoder.state_dict())  # the backbone, nothing else


# --------------------------------------------------------------------------------------------
# mvmr plan and mvmr cache know stored views and the augmented view's targets
# --------------------------------------------------------------------------------------------
def test_plan_costs_stored_views_and_live_augmented_targets(imagenette_root: Path, tmp_path: Path) -> None:
    from mvmr.workflows.plan import make_plan

    common = [
        "data.split=val",
        "data.image_size=32",
        "data.subset=40",
        "representations.items=[{name: hog, view: augmented}, {name: local_std}]",
        f"representations.cache_dir={tmp_path / 'reps'}",
        *LITE0,
    ]
    clean = make_plan(tiny_config(imagenette_root, tmp_path, common), timing_images=0)
    stored = make_plan(
        tiny_config(imagenette_root, tmp_path, [*common, "teacher.view=augmented", "teacher.cached_views=4"]),
        timing_images=0,
    )
    live = make_plan(tiny_config(imagenette_root, tmp_path, [*common, "teacher.view=augmented"]), timing_images=0)
    sources = {
        p: {r.name: r.source for r in plan.representations}
        for p, plan in (("clean", clean), ("stored", stored), ("live", live))
    }
    assert sources["clean"] == {"hog": "live", "local_std": "cache", "teacher": "cache"}  # hog: of the augmented view
    assert sources["stored"]["teacher"] == "cache (4 stored views)" and sources["live"]["teacher"] == "live"
    teacher_bytes = 1280 * 2 * 40  # float16 rows of the 40 clean images
    assert stored.cache_bytes - clean.cache_bytes == 3 * teacher_bytes + 4 * 40 * 17 * 8  # 4 views + parameters
    assert live.cache_bytes == clean.cache_bytes - teacher_bytes


def test_cache_command_builds_stored_views_that_the_run_reads(
    imagenette_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mvmr.cli import main

    common = [
        "--config",
        str(
            _saved(
                tiny_config(
                    imagenette_root,
                    tmp_path / "run",
                    [
                        "data.split=val",
                        "data.image_size=32",
                        "data.subset=24",
                        "data.batch_size=8",
                        "data.val_fraction=0.0",
                        "representations.items=[]",
                        "probe.enabled=false",
                        "trainer.max_steps=2",
                        *LITE0,
                        "teacher.view=augmented",
                        "teacher.cached_views=3",
                        "teacher.objective=dcor+cosine",
                        "regression.width=16",
                    ],
                ),
                tmp_path,
            )
        ),
    ]
    assert main(["cache", *common]) == 0
    assert "(built): 72 stored augmented views, teacher=1280" in capsys.readouterr().out
    built = FeatureCache.open(tmp_path / "run" / "teacher-views-3").manifest["build_id"]
    assert main(["pretrain", *common]) == 0
    assert FeatureCache.open(tmp_path / "run" / "teacher-views-3").manifest["build_id"] == built  # read, not rebuilt


def _saved(config, tmp_path: Path) -> Path:  # noqa: ANN001
    from mvmr.config import save_config

    return save_config(config, tmp_path / "config.yaml")


def test_the_distillation_report_times_the_runs_own_teacher_mode_first(imagenette_root: Path, tmp_path: Path) -> None:
    from mvmr.workflows.distill_report import teacher_modes

    def modes(*over: str) -> list[str]:
        return teacher_modes(tiny_config(imagenette_root, tmp_path, [*LITE0, *over]))

    assert modes() == ["cached", "live"]
    assert modes("teacher.cache=false") == ["live", "cached"]
    assert modes("teacher.view=augmented") == ["live_augmented"]
    assert modes("teacher.view=augmented", "teacher.cached_views=4") == ["stored", "live_augmented"]


def test_a_checkpoint_from_before_methods_owned_their_heads_still_resumes(cifar10_root: Path, tmp_path: Path) -> None:
    """Checkpoints of the former MVMRModule kept the heads at ``regression.*``; they load, strictly, as ``method.*``."""
    from mvmr.training.build import build_data, build_module
    from mvmr.training.module import migrate_state_dict

    config = tiny_config(cifar10_root, tmp_path, HEADED)
    module = build_module(config, build_data(config), tiny_model(), FEATURE_DIM)
    current = {k: v.clone() for k, v in module.state_dict().items()}
    legacy = {k.removeprefix("method."): v.clone() + 1 for k, v in current.items()}  # the old layout, other values
    assert any(k.startswith("regression.") for k in legacy)
    checkpoint = {"state_dict": legacy}
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"], strict=True)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, current[key] + 1, msg=key)
    untouched = {"model.encoder.0.weight": torch.zeros(1), "classifier.bias": torch.zeros(1)}
    migrate_state_dict(untouched)
    assert set(untouched) == {"model.encoder.0.weight", "classifier.bias"}

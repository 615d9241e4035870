"""Tests of the evaluation protocols (mvmr.evaluation, mvmr evaluate, mvmr report).

Small and on the CPU: real CIFAR-10 JPEGs from ../shared/data (conftest fixtures), a random
ResNet-18 with the standard stem (cheap at 32 px), toy feature sets, and a tiny VOCdevkit tree
written by the test itself.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mvmr.data import DatasetSubset
from mvmr.errors import CheckpointError, ConfigError, DataError
from mvmr.evaluation import dataset_info, encoders, frozen, knn, linear, metrics, subsets
from mvmr.evaluation.embed import EmbedConfig, embed_on_features, plot_embedding
from mvmr.evaluation.finetune import FinetuneConfig, choose_labelled_subset, run_finetune
from mvmr.evaluation.report import build_report, write_report
from mvmr.evaluation.results import ProtocolResult, load_results, save_result
from mvmr.evaluation.voc07 import VOC_CLASSES, VOC2007Classification, parse_annotation, run_voc07


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread is fastest."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- helpers


class CountingDataset(torch.utils.data.Dataset):
    """Wraps a dataset and counts how often each item is read."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.classes = dataset_info.dataset_classes(dataset)
        self.labels = dataset_info.dataset_labels(dataset)
        self.reads = Counter()

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.reads[int(index)] += 1
        return self.dataset[index]


def _cifar(root: Path, split: str, n: int, seed: int = 0):
    from mvmr.data import build_dataset

    ds = build_dataset("imagefolder", root, split=split)
    return DatasetSubset(ds, subsets.stratified_limit(dataset_info.dataset_labels(ds), n, seed=seed))


def _toy(n_per_class: int, num_classes: int, dim: int, *, sep: float, seed: int, noise_seed: int = 0):
    """Gaussian clusters: class centres from ``seed`` (times ``sep``), unit noise from ``noise_seed``."""
    centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(seed)) * sep
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = centres[y] + torch.randn(len(y), dim, generator=torch.Generator().manual_seed(1000 + noise_seed))
    return x, y


def _random_resnet18():
    return encoders.resolve_encoder(encoder="random:resnet18", small_images=False, seed=0)


# --------------------------------------------------------------------------- linear probe


def test_linear_probe_separates_a_well_separated_toy_embedding():
    train = _toy(60, 5, 16, sep=4.0, seed=0, noise_seed=0)
    val = _toy(10, 5, 16, sep=4.0, seed=0, noise_seed=1)
    test = _toy(20, 5, 16, sep=4.0, seed=0, noise_seed=2)
    cfg = linear.LinearConfig(epochs=40, lr=1e-2, batch_size=64, device="cpu", progress=False)
    out, selected = linear.linear_on_features(train, val, test, num_classes=5, config=cfg)
    assert out["test_top1"] >= 99.0
    assert out["test_top5"] == 100.0
    assert 1 <= out["chosen_epoch"] <= 40 and len(selected.history) == 40
    # the standardised classifier is one linear map: folding gives the same logits
    folded = selected.classifier.folded()
    assert torch.allclose(folded(test[0]), selected.classifier(test[0]), atol=1e-4)


def test_top5_only_reported_with_at_least_five_classes():
    train, test = _toy(30, 3, 8, sep=4.0, seed=2), _toy(10, 3, 8, sep=4.0, seed=2, noise_seed=1)
    cfg = linear.LinearConfig(epochs=5, lr=1e-2, device="cpu", progress=False)
    out, _ = linear.linear_on_features(train, None, test, num_classes=3, config=cfg)
    assert "test_top1" in out and "test_top5" not in out
    assert out["chosen_epoch"] == 5  # no validation: last epoch


def test_linear_probe_on_random_encoder_is_above_chance_and_far_from_solved(cifar10_root, monkeypatch):
    train = _cifar(cifar10_root, "train", 500)
    test = CountingDataset(_cifar(cifar10_root, "test", 200))
    seen = {}
    real_fit = frozen.fit_with_selection

    def spy(train_src, val, **kw):
        # selection happens before a single test image has been read
        seen["test_reads_at_selection"] = sum(test.reads.values())
        seen["val_rows"] = int(val[0].shape[0])
        seen["train_rows"] = int(train_src[0].shape[0])
        return real_fit(train_src, val, **kw)

    monkeypatch.setattr(frozen, "fit_with_selection", spy)
    cfg = linear.LinearConfig(epochs=30, lr=1e-3, device="cpu", progress=False, seed=0)
    result = frozen.run_linear(_random_resnet18(), train, test, config=cfg, encoder="random:resnet18")
    m = result.metrics
    assert seen["test_reads_at_selection"] == 0
    assert seen["train_rows"] + seen["val_rows"] == 500 and seen["val_rows"] == 50
    assert all(v == 1 for v in test.reads.values()) and len(test.reads) == 200  # test set used once
    assert 13.0 < m["test_top1"] < 60.0, m  # chance is 10%
    assert m["num_val"] == 50 and m["num_test"] == 200 and m["feature_dim"] == 512
    assert "val_top1" in m and 1 <= m["chosen_epoch"] <= 30


def test_augmented_linear_probe_reextracts_train_views_each_epoch(cifar10_root):
    train = CountingDataset(_cifar(cifar10_root, "train", 60))
    test = CountingDataset(_cifar(cifar10_root, "test", 20))
    cfg = linear.LinearConfig(epochs=3, lr=1e-3, augment=True, val_fraction=0.2, device="cpu", progress=False)
    result = frozen.run_linear(_random_resnet18(), train, test, config=cfg)
    assert result.key == "linear-augment" and len(result.details["history"]) == 3
    val_idx = set(subsets.stratified_split(train.labels, 0.2, seed=0)[1].tolist())
    assert all(train.reads[i] == (1 if i in val_idx else 3) for i in range(60))  # one view per epoch
    assert set(test.reads.values()) == {1}


def test_fit_with_selection_has_no_test_argument():
    import inspect

    params = inspect.signature(linear.fit_with_selection).parameters
    assert not any("test" in name for name in params)
    with pytest.raises(TypeError):
        linear.fit_with_selection(
            _toy(5, 2, 4, sep=1, seed=0), None, test=None, num_classes=2, config=linear.LinearConfig(epochs=1)
        )


def test_selection_picks_best_validation_epoch():
    train, val = _toy(40, 4, 8, sep=1.0, seed=3), _toy(10, 4, 8, sep=1.0, seed=3, noise_seed=1)
    cfg = linear.LinearConfig(epochs=15, lr=3e-3, batch_size=32, device="cpu", progress=False)
    sel = linear.fit_with_selection(train, val, num_classes=4, config=cfg)
    scores = [h["val_top1"] for h in sel.history]
    assert sel.chosen_epoch == 1 + scores.index(max(scores))
    assert sel.val_metrics["val_top1"] == max(scores)
    assert linear.evaluate_classifier(sel.classifier, *val, prefix="val_")["val_top1"] == pytest.approx(max(scores))


def test_learning_rate_is_chosen_on_the_hold_out_and_matches_the_single_lr_fit():
    train, val = _toy(40, 4, 8, sep=0.4, seed=3), _toy(10, 4, 8, sep=0.4, seed=3, noise_seed=1)
    base = dict(epochs=6, batch_size=32, device="cpu", progress=False)
    lrs = (1e-5, 3e-3, 3e-1)
    single = {
        lr: linear.fit_with_selection(train, val, num_classes=4, config=linear.LinearConfig(lr=lr, **base))
        for lr in lrs
    }
    swept = linear.fit_with_selection(train, val, num_classes=4, config=linear.LinearConfig(lrs=lrs, **base))
    best = max(lrs, key=lambda lr: (single[lr].val_metrics["val_top1"], -lrs.index(lr)))
    assert swept.val_metrics["chosen_lr"] == best
    assert single[1e-5].val_metrics["val_top1"] < swept.val_metrics["val_top1"]  # a too-small lr is not kept
    assert swept.chosen_epoch == single[best].chosen_epoch
    assert swept.history == single[best].history  # trained in lockstep, each head equals its own fit exactly
    torch.testing.assert_close(swept.classifier.linear.weight, single[best].classifier.linear.weight, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="held-out"):
        linear.fit_with_selection(train, None, num_classes=4, config=linear.LinearConfig(lrs=lrs, **base))
    with pytest.raises(ConfigError, match="lrs"):
        linear.LinearConfig(lrs=(1e-3, 0.0))


# --------------------------------------------------------------------------- k-NN


def _brute_force_knn(train_x, train_y, query_x, num_classes, k, t):
    out = torch.zeros(len(query_x), num_classes, dtype=torch.float64)
    tn = [v / v.norm() for v in train_x.double()]
    for qi, q in enumerate(query_x.double()):
        q = q / q.norm()
        sims = sorted(((float(q @ tv), i) for i, tv in enumerate(tn)), reverse=True)[:k]
        for s, i in sims:
            out[qi, int(train_y[i])] += np.exp(s / t)
    return out


def test_knn_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    train_x, train_y = torch.randn(57, 6, generator=g), torch.randint(0, 4, (57,), generator=g)
    query_x = torch.randn(23, 6, generator=g)
    for k, t in ((5, 0.1), (20, 0.07), (100, 0.5)):  # k > N is capped at N
        got = knn.knn_scores(
            train_x, train_y, query_x, num_classes=4, k=k, temperature=t, max_similarity_elements=100
        )  # forces chunks of one query row
        want = _brute_force_knn(train_x, train_y, query_x, 4, min(k, 57), t)
        assert torch.allclose(got.double(), want, rtol=1e-4)
        assert torch.equal(got.argmax(1), want.argmax(1))


def test_knn_on_separable_features_is_perfect():
    train, test = _toy(30, 6, 10, sep=5.0, seed=4), _toy(10, 6, 10, sep=5.0, seed=4, noise_seed=1)
    out = knn.knn_on_features(train, test, num_classes=6, config=knn.KNNConfig(k=10, device="cpu"))
    assert out["test_top1"] == 100.0 and out["test_top5"] == 100.0


# --------------------------------------------------------------------------- subsets


def test_balanced_subset_class_balance_and_seed():
    labels = np.repeat(np.arange(5), [300, 250, 200, 150, 1000])
    sub = subsets.balanced_subset(labels, 0.1, seed=7)
    counts = Counter(labels[sub].tolist())
    assert counts == {0: 30, 1: 25, 2: 20, 3: 15, 4: 100}
    assert len(set(sub.tolist())) == len(sub)
    assert np.array_equal(sub, subsets.balanced_subset(labels, 0.1, seed=7))
    assert not np.array_equal(sub, subsets.balanced_subset(labels, 0.1, seed=8))
    tiny = subsets.balanced_subset(labels, 0.001, seed=0)  # at least one image per class
    assert Counter(labels[tiny].tolist()) == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    excl = subsets.balanced_subset(labels, 0.1, seed=7, exclude=sub)
    assert not set(excl.tolist()) & set(sub.tolist())
    with pytest.raises(ConfigError):
        subsets.balanced_subset(labels, 0.0)


def test_stratified_split_is_disjoint_complete_and_stratified():
    labels = np.repeat(np.arange(4), [100, 50, 20, 1])
    tr, va = subsets.stratified_split(labels, 0.1, seed=0)
    assert not set(tr.tolist()) & set(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(len(labels)))
    assert Counter(labels[va].tolist()) == {0: 10, 1: 5, 2: 2}  # the single-image class stays in train
    tr2, va2 = subsets.stratified_split(labels, 0.1, seed=0)
    assert np.array_equal(va, va2)


def test_subset_file_parsing_and_matching(tmp_path):
    f = tmp_path / "1percent.txt"
    f.write_text("n01440764_10026.JPEG\n\n# comment\nn01443537/n01443537_2.JPEG 1\n  n01484850_17.JPEG  \n")
    names = subsets.read_subset_file(f)
    assert names == ["n01440764_10026.JPEG", "n01443537/n01443537_2.JPEG", "n01484850_17.JPEG"]
    paths = [
        "/d/train/n01484850/n01484850_17.JPEG",
        "/d/train/n01440764/n01440764_10026.JPEG",
        "/d/train/n01440764/n01440764_3.JPEG",
        "/d/train/n01443537/n01443537_2.JPEG",
    ]
    assert subsets.match_subset(names, paths).tolist() == [0, 1, 3]
    with pytest.raises(DataError, match="n09999999_1.JPEG"):
        subsets.match_subset(names + ["n09999999_1.JPEG"], paths)
    dup = tmp_path / "dup.txt"
    dup.write_text("a.JPEG\nb.JPEG\na.JPEG\n")
    with pytest.raises(DataError, match="twice"):
        subsets.read_subset_file(dup)
    entries = subsets.subset_entries([paths[0], paths[3]], paths)
    out = subsets.write_subset_file(tmp_path / "saved.txt", entries)
    assert subsets.read_subset_file(out) == ["n01484850_17.JPEG", "n01443537_2.JPEG"]
    # repeated file names (CIFAR-style class folders) are written and matched with their folder
    cifar = ["/c/train/cat/0001.jpg", "/c/train/dog/0001.jpg", "/c/train/dog/0002.jpg"]
    assert subsets.subset_entries([cifar[1]], cifar) == ["dog/0001.jpg"]
    assert subsets.match_subset(["dog/0001.jpg", "cat/0001.jpg"], cifar).tolist() == [0, 1]
    with pytest.raises(DataError, match="several"):
        subsets.match_subset(["0001.jpg"], cifar)


def test_finetune_subset_saved_and_reusable(cifar10_root, tmp_path):
    train = _cifar(cifar10_root, "train", 200)
    test = _cifar(cifar10_root, "test", 40)
    cfg = FinetuneConfig(fraction=0.1, epochs=1, batch_size=16, device="cpu", progress=False, seed=3, val_fraction=0.5)
    result = run_finetune(_random_resnet18(), train, test, config=cfg, out_dir=tmp_path, encoder="random:resnet18")
    labelled = np.asarray(result.details["labelled_indices"])
    labels = dataset_info.dataset_labels(train)
    assert Counter(labels[labelled].tolist()) == {c: 2 for c in range(10)}
    assert result.key == "finetune-10pct" and result.metrics["num_labelled"] == 20
    # the epoch is chosen on labels from WITHIN the 10% budget: 20 labels used in all, not 20 + a hold-out
    assert result.metrics["num_labels_used"] == 20
    assert result.metrics["num_val"] == 10 and result.metrics["num_trained"] == 10
    assert 0.0 <= result.metrics["test_top1"] <= 100.0
    saved = Path(result.artifacts["subset"])
    assert saved.is_file() and len(subsets.read_subset_file(saved)) == 20
    # the saved file reproduces the subset; the hold-out is a part of it, never more labels
    again, val = choose_labelled_subset(
        train, FinetuneConfig(fraction=None, subset_file=str(saved), val_fraction=0.5, seed=3)
    )
    assert np.array_equal(np.sort(np.concatenate([again, val])), labelled)
    assert not set(val.tolist()) & set(again.tolist())
    # same seed, same draw
    assert np.array_equal(choose_labelled_subset(train, cfg)[0], again)
    # the default is the paper's fixed schedule: no hold-out at all, the last epoch is kept
    trained, held = choose_labelled_subset(train, FinetuneConfig(fraction=0.1, seed=3))
    assert held.size == 0 and np.array_equal(trained, labelled)


def test_finetune_refuses_fixed_representation():
    from mvmr.evaluation.extractor import FeatureExtractor

    ext = FeatureExtractor(torch.nn.Flatten(), mean=None, std=None, description="representation:x", trainable=False)
    with pytest.raises(ConfigError, match="trainable"):
        run_finetune(ext, None, None, config=FinetuneConfig(fraction=0.1))


# --------------------------------------------------------------------------- VOC07


def test_average_precision_matches_sklearn_with_ties_and_ignored():
    from sklearn.metrics import average_precision_score

    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        n = 40
        scores = (torch.rand(n, generator=g) * 5).round() / 5 if trial % 2 else torch.rand(n, generator=g)  # ties
        targets = torch.randint(-1, 2, (n,), generator=g)
        targets[0] = 1
        keep = targets >= 0
        want = average_precision_score(targets[keep].numpy(), scores[keep].numpy())
        assert metrics.average_precision(scores, targets) == pytest.approx(want, abs=1e-12)
    assert np.isnan(metrics.average_precision(torch.rand(5), torch.zeros(5, dtype=torch.long)))


def test_eleven_point_ap_known_value():
    ap = metrics.average_precision(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([1, 0, 1]), interpolation="11point")
    assert ap == pytest.approx((6 * 1.0 + 5 * 2 / 3) / 11)


_VOC_TRAINVAL = {  # image id -> [(class, difficult)]
    "000001": [("cat", 0), ("person", 0)],
    "000002": [("dog", 0)],
    "000003": [("cat", 1)],  # only a difficult cat: ignored for "cat"
    "000004": [("cat", 1), ("cat", 0), ("car", 0)],  # a non-difficult cat too: positive
    "000005": [("person", 0), ("dog", 0)],
    "000006": [("car", 0)],
    "000007": [("cat", 0)],
    "000008": [("dog", 0), ("person", 1)],
    "000009": [("car", 0), ("person", 0)],
    "000010": [("dog", 0), ("cat", 0)],
}
_VOC_TEST = {
    "000101": [("cat", 0)],
    "000102": [("dog", 0), ("person", 0)],
    "000103": [("car", 1)],
    "000104": [("car", 0), ("cat", 1)],
    "000105": [("person", 0)],
    "000106": [("dog", 0)],
}


def _write_voc(root: Path, cifar_root: Path) -> Path:
    voc = root / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    sources = sorted((cifar_root / "test").rglob("*.jpg"))[::97]
    for split, table in (("trainval", _VOC_TRAINVAL), ("test", _VOC_TEST)):
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in table))
        for j, (image_id, objects) in enumerate(table.items()):
            Image.open(sources[(j + len(split)) % len(sources)]).convert("RGB").resize((48, 40)).save(
                voc / "JPEGImages" / f"{image_id}.jpg", quality=90
            )
            objs = "".join(
                f"<object><name>{c}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{d}</difficult>"
                f"<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
                for c, d in objects
            )
            (voc / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
                f"<size><width>48</width><height>40</height><depth>3</depth></size>{objs}</annotation>"
            )
    return root / "VOCdevkit"


def test_voc_labels_and_difficult_handling(tmp_path, cifar10_root):
    devkit = _write_voc(tmp_path, cifar10_root)
    voc = devkit / "VOC2007"
    cat, person, car = VOC_CLASSES.index("cat"), VOC_CLASSES.index("person"), VOC_CLASSES.index("car")
    assert parse_annotation(voc / "Annotations" / "000003.xml")[cat] == -1
    assert parse_annotation(voc / "Annotations" / "000004.xml")[cat] == 1
    t8 = parse_annotation(voc / "Annotations" / "000008.xml")
    assert t8[person] == -1 and t8[VOC_CLASSES.index("dog")] == 1 and t8[car] == 0
    ds = VOC2007Classification(devkit, split="trainval", size=32)
    image, target = ds[2]
    assert image.shape == (3, 32, 32) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert target.shape == (20,) and int(target[cat]) == -1
    # the difficult-only image is neither positive nor negative for "cat": mAP equals sklearn on the rest
    from sklearn.metrics import average_precision_score

    g = torch.Generator().manual_seed(0)
    scores = torch.rand(len(ds), 20, generator=g)
    labels = torch.from_numpy(ds.labels.astype(np.int64))
    mean_ap, per_class = metrics.mean_average_precision(scores, labels)
    expected = []
    for c in range(20):
        keep = labels[:, c] >= 0
        if (labels[keep, c] == 1).any():
            ap = average_precision_score(labels[keep, c].numpy(), scores[keep, c].numpy())
            assert per_class[c] == pytest.approx(ap, abs=1e-12)
            expected.append(ap)
        else:
            assert np.isnan(per_class[c])
    assert mean_ap == pytest.approx(100 * np.mean(expected))
    # counting "difficult" as negative would change the cat AP: the ignore matters
    as_negative = labels[:, cat].clamp_min(0)
    assert per_class[cat] != pytest.approx(average_precision_score(as_negative.numpy(), scores[:, cat].numpy()))


def test_voc07_protocol_end_to_end(tmp_path, cifar10_root):
    devkit = _write_voc(tmp_path, cifar10_root)
    cfg = linear.LinearConfig(epochs=3, lr=1e-3, val_fraction=0.2, device="cpu", progress=False)
    result = run_voc07(_random_resnet18(), devkit, config=cfg, size=32, encoder="random:resnet18")
    assert result.protocol == "voc07" and 0.0 <= result.metrics["test_map"] <= 100.0
    ap = result.details["per_class_ap"]
    assert set(ap) == set(VOC_CLASSES)
    assert ap["cat"] is not None and ap["aeroplane"] is None  # no aeroplane in the test split
    assert result.metrics["num_val"] == 2 and result.metrics["num_test"] == 6
    with pytest.raises(DataError, match="VOC2007"):
        VOC2007Classification(tmp_path / "nowhere")


# --------------------------------------------------------------------------- embedding plots


def test_embedding_plot_is_written_and_readable(tmp_path):
    x, y = _toy(20, 3, 12, sep=4.0, seed=5)
    cfg = EmbedConfig(method="tsne", max_points=45, seed=0)
    png, n = embed_on_features(x, y, tmp_path / "plots" / "embed.png", config=cfg, class_names=["a", "b", "c"])
    assert n == 45
    with Image.open(png) as img:
        img.load()
        assert img.format == "PNG" and img.size == (900, 780)
        assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 10  # something was drawn
    with pytest.raises(ValueError):
        plot_embedding(np.zeros((4, 3)), [0, 1, 0, 1], tmp_path / "bad.png")


# --------------------------------------------------------------------------- encoders


def test_random_encoder_is_seeded_and_normalises(cifar_images):
    a = encoders.resolve_encoder(encoder="random:resnet18", seed=1)
    b = encoders.resolve_encoder(encoder="random:resnet18", seed=1)
    a.eval(), b.eval()
    with torch.no_grad():
        fa, fb = a(cifar_images[:4]), b(cifar_images[:4])
    assert fa.shape == (4, 512) and torch.equal(fa, fb)
    assert a.mean is not None and a.description == "random:resnet18"


def test_exported_backbone_and_lightning_checkpoint(tmp_path, cifar_images):
    from mvmr.models import MVMRModel, Projector, build_encoder, save_backbone

    torch.manual_seed(0)
    enc, dim = build_encoder("resnet18", small_images=True)
    model = MVMRModel(enc, Projector("", dim), mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3)).eval()
    with torch.no_grad():
        want = model.features(cifar_images[:3])
    exported = save_backbone(model, tmp_path / "backbone.safetensors")
    ext = encoders.resolve_encoder(checkpoint=exported).eval()
    with torch.no_grad():
        assert torch.allclose(ext(cifar_images[:3]), want, atol=1e-5)
    # a Lightning checkpoint of pretraining: the encoder is found under model.encoder.
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["model.projector.fake.weight"] = torch.zeros(2, 2)
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "epoch": 3, "hyper_parameters": {"model": {"encoder": "resnet18"}}}, ckpt)
    ext2 = encoders.resolve_encoder(checkpoint=ckpt).eval()
    assert ext2.metadata["small_images"] is True and ext2.metadata["epoch"] == 3
    with torch.no_grad():
        assert torch.allclose(ext2(cifar_images[:3]), want, atol=1e-5)


def test_checkpoint_of_another_architecture_fails_naming_keys(tmp_path):
    from mvmr.models import build_encoder, save_backbone

    enc, _ = build_encoder("resnet18")
    ckpt = tmp_path / "r18.ckpt"
    torch.save({"state_dict": {f"model.encoder.{k}": v for k, v in enc.state_dict().items()}}, ckpt)
    with pytest.raises(CheckpointError, match=r"missing keys.*layer1\.0\.conv3\.weight"):
        encoders.resolve_encoder(checkpoint=ckpt, arch="resnet50")
    # an exported backbone whose metadata names another architecture (strict load_backbone)
    pt = save_backbone(enc, tmp_path / "r18.pt", format="pt", metadata={"mean": [0.5] * 3, "std": [0.5] * 3})
    blob = torch.load(pt, weights_only=True)
    blob["metadata"]["encoder"] = "resnet34"
    torch.save(blob, tmp_path / "lying.pt")
    with pytest.raises(CheckpointError, match=r"(missing|unexpected) keys.*layer"):
        encoders.resolve_encoder(checkpoint=tmp_path / "lying.pt")


def test_torchvision_and_timm_need_local_weights(tmp_path, cifar_images):
    import torchvision

    with pytest.raises(ConfigError, match=r"resnet50-\w+\.pth"):
        encoders.resolve_encoder(encoder="torchvision:resnet50")
    with pytest.raises(ConfigError, match="random:resnet18"):
        encoders.resolve_encoder(encoder="resnet18")
    with pytest.raises(ConfigError, match="exactly one"):
        encoders.resolve_encoder(encoder="random:resnet18", representation="hog")
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    ext = encoders.resolve_encoder(encoder="torchvision:resnet18", weights=weights).eval()
    with torch.no_grad():
        assert ext(cifar_images[:2]).shape == (2, 512)  # head removed
    wrong = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), wrong)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        encoders.resolve_encoder(encoder="torchvision:resnet18", weights=wrong)
    timm = pytest.importorskip("timm")
    with pytest.raises(ConfigError, match="needs local weights"):
        encoders.resolve_encoder(encoder="timm:resnet18")
    tw = tmp_path / "timm_r18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tw)
    ext = encoders.resolve_encoder(encoder="timm:resnet18", weights=tw).eval()
    with torch.no_grad():
        assert ext(cifar_images[:2]).shape == (2, 512)


def test_representation_features_are_its_output(cifar_images):
    from mvmr import representations

    if "hog" not in representations.available():
        pytest.skip("no hog representation registered")
    ext = encoders.resolve_encoder(representation="hog")
    with torch.no_grad():
        got = ext(cifar_images[:3])
        want = representations.build("hog")(cifar_images[:3])
    assert torch.allclose(got, want.flatten(1))
    assert ext.trainable is False and ext.mean is None


# --------------------------------------------------------------------------- datasets


def _mini_folder(root: Path, cifar_root: Path, layout: dict[str, list[str]]) -> Path:
    for split, classes in layout.items():
        for c in classes:
            src = sorted((cifar_root / "test" / c).glob("*.jpg"))[:3]
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for s in src:
                shutil.copy(s, root / split / c / s.name)
    return root


def test_class_mismatch_is_a_clear_error(tmp_path, cifar10_root, capsys):
    from mvmr.cli import main
    from mvmr.data import build_dataset

    root = _mini_folder(tmp_path / "d", cifar10_root, {"train": ["cat", "dog", "frog"], "test": ["cat", "dog", "ship"]})
    tr = build_dataset("imagefolder", root, split="train")
    te = build_dataset("imagefolder", root, split="test")
    with pytest.raises(DataError, match=r"only in train: frog; only in test: ship"):
        dataset_info.check_same_classes(tr, te)
    rc = main(
        [
            "evaluate",
            "knn",
            "--encoder",
            "random:resnet18",
            "--data",
            str(root),
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
        ]
    )
    assert rc == 2
    assert "only in train: frog" in capsys.readouterr().err


# --------------------------------------------------------------------------- results and report


def test_results_md_aggregation_and_report(tmp_path):
    a, b = tmp_path / "runA", tmp_path / "runB"
    (a / "plots").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(a / "plots" / "embed-tsne.png")
    save_result(
        a,
        ProtocolResult(
            "linear", {"test_top1": 71.234, "test_top5": 90.0, "chosen_epoch": 12}, encoder="random:resnet18"
        ),
    )
    save_result(a, ProtocolResult("knn", {"test_top1": 60.5}, encoder="random:resnet18"))
    save_result(
        a,
        ProtocolResult(
            "embed",
            {"num_test": 10},
            variant="tsne",
            encoder="random:resnet18",
            artifacts={"map": str(a / "plots" / "embed-tsne.png")},
        ),
    )
    save_result(b, ProtocolResult("linear", {"test_top1": 80.0, "test_top5": 95.5}, encoder="checkpoint:x"))
    save_result(b, ProtocolResult("linear", {"test_top1": 81.0, "test_top5": 96.0}, encoder="checkpoint:x"))
    md = (a / "results.md").read_text()
    assert md.count("## ") == 3 and "71.23" in md and "![map](plots/embed-tsne.png)" in md
    assert (b / "results.md").read_text().count("## linear") == 2  # history kept
    assert json.loads((b / "results" / "linear.json").read_text())["metrics"]["test_top1"] == 81.0  # latest
    assert [r.key for r in load_results(a)] == ["embed-tsne", "knn", "linear"]
    table = build_report([a, b], link_base=tmp_path)
    lines = table.strip().splitlines()
    assert lines[0].startswith("| run | encoder |") and "linear top-1" in lines[0] and "knn top-1" in lines[0]
    row_a = next(line for line in lines if line.startswith("| runA"))
    row_b = next(line for line in lines if line.startswith("| runB"))
    assert "71.23" in row_a and "60.50" in row_a and "[embed-tsne](runA/plots/embed-tsne.png)" in row_a
    assert "81.00" in row_b and " - |" in row_b  # runB has no knn
    out = write_report([a, b], tmp_path / "reports" / "cmp.md")
    assert "../runA/plots/embed-tsne.png" in out.read_text()
    with pytest.raises(DataError, match="no evaluation results"):
        load_results(tmp_path)


def test_cli_evaluate_all_and_report(tmp_path, cifar10_root, capsys):
    from mvmr.cli import main

    common = [
        "--data",
        str(cifar10_root),
        "--limit-train",
        "200",
        "--limit-test",
        "60",
        "--epochs",
        "3",
        "--small-images",
        "no",
        "--no-progress",
        "--max-points",
        "60",
    ]
    rc = main(["evaluate", "all", "--encoder", "random:resnet18", "--out", str(tmp_path / "rand"), *common])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "test top-1 (%)" in printed and "| knn | value |" in printed
    run = tmp_path / "rand"
    assert {p.name for p in (run / "results").iterdir()} == {"linear.json", "knn.json", "embed-tsne.json"}
    with Image.open(run / "plots" / "embed-tsne.png") as img:
        assert img.size[0] > 100
    lin = json.loads((run / "results" / "linear.json").read_text())
    assert lin["metrics"]["num_train"] + lin["metrics"]["num_val"] == 200 and lin["metrics"]["num_test"] == 60
    rc = main(
        ["evaluate", "linear", "--encoder", "random:resnet18", "--seed", "1", "--out", str(tmp_path / "rand2"), *common]
    )
    assert rc == 0
    capsys.readouterr()
    rc = main(["report", str(run), str(tmp_path / "rand2"), "--out", str(tmp_path / "report.md")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| rand |" in out and "| rand2 |" in out and "rand/plots/embed-tsne.png" in out
    assert (tmp_path / "report.md").is_file()

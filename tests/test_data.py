"""mvmr.data: datasets on real images and on fake files in the real layouts, views, splits, loaders."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mvmr.data import (
    DatasetSubset,
    TwoViews,
    build_dataset,
    make_loader,
    resize_center_crop,
    split_train_val,
)
from mvmr.data.fashion_mnist import FASHION_MNIST_ROOT
from mvmr.errors import ConfigError, DataError

# --------------------------------------------------------------------------- helpers


class RandomCropStandIn:
    """A stand-in augmentation with PaperAugmentation's interface: random crop + resize to ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _, h, w = image.shape
        side = int(torch.randint(min(h, w) // 2, min(h, w) + 1, (1,), generator=generator))
        top = int(torch.randint(0, h - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - side + 1, (1,), generator=generator))
        crop = image[:, top : top + side, left : left + side]
        return torch.nn.functional.interpolate(crop[None], size=(self.size, self.size), mode="bilinear")[0]


def _copy_images(src: Path, dst: Path, n: int) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sorted(src.glob("*.jpg"))[:n]:
        shutil.copy(p, dst / p.name)
        out.append(dst / p.name)
    return out


@pytest.fixture()
def small_folder(tmp_path: Path, cifar10_root: Path) -> Path:
    """An ImageFolder root with split 'train': 3 classes x 4 real CIFAR JPEGs."""
    for name in ("airplane", "cat", "ship"):
        _copy_images(cifar10_root / "test" / name, tmp_path / "train" / name, 4)
    return tmp_path


def _pil_tensor(path: Path) -> torch.Tensor:
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


# --------------------------------------------------------------------------- image folders


def test_imagefolder_real_cifar(cifar10_root: Path) -> None:
    ds = build_dataset("imagefolder", cifar10_root, split="test")
    assert len(ds) == 10_000
    assert ds.classes[:3] == ["airplane", "automobile", "bird"] and len(ds.classes) == 10
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    image, label = ds[1234]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert label == int(ds.labels[1234]) and ds.paths[1234].parent.name == ds.classes[label]
    torch.testing.assert_close(image, _pil_tensor(ds.paths[1234]))
    assert ds[-1][1] == 9


def test_imagefolder_size_and_channels(imagenette_root: Path) -> None:
    ds = build_dataset("imagefolder", imagenette_root, split="val", size=64)
    image, _ = ds[0]
    assert image.shape == (3, 64, 64) and 0 <= image.min() and image.max() <= 1
    gray = build_dataset("imagefolder", imagenette_root, split="val", channels=1)
    assert gray[0][0].shape == (1, 96, 96)
    assert ds.fingerprint() != gray.fingerprint()


def test_resize_center_crop_non_square() -> None:
    image = torch.rand(3, 40, 80)
    out = resize_center_crop(image, 20)
    assert out.shape == (3, 20, 20)
    assert 0 <= out.min() and out.max() <= 1
    # the crop is centred: a left/right asymmetric image keeps its middle column pattern
    marked = torch.zeros(1, 20, 60, dtype=torch.uint8)
    marked[:, :, 20:40] = 255
    assert resize_center_crop(marked, 20).min() == 255


def test_flat_folder_split_empty(small_folder: Path) -> None:
    ds = build_dataset("folder", small_folder, split="train")
    assert len(ds) == 12 and ds.classes == [] and set(ds.labels.tolist()) == {-1}
    assert ds[0][1] == -1
    ds2 = build_dataset("imagefolder", small_folder / "train", split="")
    assert len(ds2) == 12 and ds2.classes == ["airplane", "cat", "ship"]


def test_fingerprint_stable_and_sensitive(small_folder: Path, cifar10_root: Path) -> None:
    a = build_dataset("imagefolder", small_folder, split="train")
    b = build_dataset("imagefolder", small_folder, split="train")
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != build_dataset("imagefolder", small_folder, split="train", size=16).fingerprint()
    _copy_images(cifar10_root / "test" / "dog", small_folder / "train" / "cat", 5)
    assert build_dataset("imagefolder", small_folder, split="train").fingerprint() != a.fingerprint()


def test_corrupt_image_raises_with_path(small_folder: Path) -> None:
    bad = small_folder / "train" / "cat" / "0000_bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 3)
    ds = build_dataset("imagefolder", small_folder, split="train")
    index = ds.paths.index(bad)
    with pytest.raises(DataError, match="0000_bad.jpg"):
        ds[index]


def test_truncated_image_skipped_and_counted(small_folder: Path) -> None:
    good = sorted((small_folder / "train" / "airplane").glob("*.jpg"))[0]
    truncated = small_folder / "train" / "airplane" / "zz_truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage = small_folder / "train" / "ship" / "zz_garbage.png"
    garbage.write_bytes(b"garbage")
    ds = build_dataset("imagefolder", small_folder, split="train", skip_corrupt=True)
    assert len(ds) == 14
    items = [ds[i] for i in range(len(ds))]
    assert ds.num_skipped == 2 and ds.skipped == {truncated, garbage}
    assert all(img.shape == (3, 32, 32) for img, _ in items)
    # the substitute is the next readable item, with its own label
    t = ds.paths.index(truncated)
    torch.testing.assert_close(items[t][0], items[t + 1][0])
    assert items[t][1] == int(ds.labels[t + 1])
    ds[t]
    assert ds.num_skipped == 2  # counted once per file


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        build_dataset("imagefolder", tmp_path, split="empty")
    with pytest.raises(DataError, match="no images found"):
        build_dataset("folder", tmp_path / "empty", split="")
    (tmp_path / "empty" / "cls").mkdir()
    (tmp_path / "empty" / "cls" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no images found"):
        build_dataset("imagefolder", tmp_path, split="empty")
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=re.escape(str(missing / "train"))):
        build_dataset("imagefolder", missing, split="train")
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build_dataset("folder", missing, split="")


def test_loose_images_hint_folder_kind(small_folder: Path) -> None:
    with pytest.raises(DataError, match="kind='folder'"):
        build_dataset("imagefolder", small_folder / "train", split="cat")


@pytest.mark.parametrize(
    ("kind", "split", "expected"),
    [
        ("stl10", "train", "stl10_binary"),
        ("cifar10", "train", "cifar-10-batches-py"),
        ("cifar100", "test", "cifar-100-python"),
        ("fashion_mnist", "train", "train-images-idx3-ubyte.gz"),
    ],
)
def test_missing_dataset_message(tmp_path: Path, kind: str, split: str, expected: str) -> None:
    with pytest.raises(DataError) as info:
        build_dataset(kind, tmp_path / "data", split=split)
    message = str(info.value)
    assert str(tmp_path / "data") in message and expected in message
    assert "download=True" in message


def test_bad_kind_split_size(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset kind 'mnist'"):
        build_dataset("mnist", tmp_path, split="train")
    with pytest.raises(DataError, match="split"):
        build_dataset("cifar10", tmp_path, split="val")
    with pytest.raises(DataError, match="size"):
        build_dataset("folder", tmp_path, split="", size=0)
    with pytest.raises(DataError, match="channels"):
        build_dataset("folder", tmp_path, split="", channels=2)


# --------------------------------------------------------------------------- array datasets


def _write_cifar10(root: Path, per_batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f)
        written[name] = data
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    return written


def test_cifar10_fake_batches(tmp_path: Path) -> None:
    written = _write_cifar10(tmp_path, per_batch=6, rng=np.random.default_rng(0))
    train = build_dataset("cifar10", tmp_path, split="train")
    test = build_dataset("cifar10", tmp_path, split="test", size=16, channels=1)
    assert len(train) == 30 and len(test) == 6
    assert train.classes[0] == "airplane" and train.classes[-1] == "truck"
    image, label = train[7]  # second batch, second row
    expected = torch.from_numpy(written["data_batch_2"][1].reshape(3, 32, 32).astype(np.float32) / 255)
    torch.testing.assert_close(image, expected)
    assert 0 <= label < 10
    assert test[0][0].shape == (1, 16, 16)


def test_cifar_pickle_refuses_code(tmp_path: Path) -> None:
    _write_cifar10(tmp_path, per_batch=2, rng=np.random.default_rng(1))

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(DataError, match="test_batch"):
        build_dataset("cifar10", tmp_path, split="test")


def test_stl10_fake_binary(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, size=(5, 3, 96, 96), dtype=np.uint8)
    unlabeled = rng.integers(0, 256, size=(3, 3, 96, 96), dtype=np.uint8)
    # STL10 stores each channel column-major
    (folder / "train_X.bin").write_bytes(train.transpose(0, 1, 3, 2).tobytes())
    (folder / "train_y.bin").write_bytes(np.array([1, 2, 10, 3, 1], dtype=np.uint8).tobytes())
    (folder / "unlabeled_X.bin").write_bytes(unlabeled.transpose(0, 1, 3, 2).tobytes())
    ds = build_dataset("stl10", tmp_path, split="train")
    assert len(ds) == 5 and ds.labels.tolist() == [0, 1, 9, 2, 0] and len(ds.classes) == 10
    torch.testing.assert_close(ds[2][0], torch.from_numpy(train[2].astype(np.float32) / 255))
    both = build_dataset("stl10", tmp_path, split="train+unlabeled", size=32)
    assert len(both) == 8 and both.labels.tolist()[5:] == [-1, -1, -1]
    assert both[6][0].shape == (3, 32, 32) and both[6][1] == -1
    unl = build_dataset("stl10", tmp_path, split="unlabeled")
    torch.testing.assert_close(unl[1][0], torch.from_numpy(unlabeled[1].astype(np.float32) / 255))
    # workers receive a pickled copy without the open memory map
    clone = pickle.loads(pickle.dumps(unl))
    torch.testing.assert_close(clone[1][0], unl[1][0])
    with pytest.raises(DataError, match="test_X.bin"):
        build_dataset("stl10", tmp_path, split="test")
    (folder / "train_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(DataError, match="train_X.bin"):
        build_dataset("stl10", tmp_path, split="train")


@pytest.mark.skipif(not FASHION_MNIST_ROOT.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_real() -> None:
    ds = build_dataset("fashion_mnist", None, split="test")
    assert len(ds) == 10_000 and ds.classes[0] == "T-shirt/top"
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert image.max() == 1.0 and image.min() == 0.0 and label == 9  # the first test item is an ankle boot
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    rgb = build_dataset("fashion_mnist", FASHION_MNIST_ROOT, split="test", channels=3, size=32)
    x, _ = rgb[0]
    assert x.shape == (3, 32, 32) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert ds.fingerprint() == build_dataset("fashion_mnist", None, split="test").fingerprint()
    assert ds.fingerprint() != rgb.fingerprint()


# --------------------------------------------------------------------------- views


def test_two_views_shapes_and_epochs(cifar10_root: Path) -> None:
    base = build_dataset("imagefolder", cifar10_root, split="test")
    views = TwoViews(base, size=24, augmentation=RandomCropStandIn(24))
    assert len(views) == len(base) and views.classes == base.classes
    x_clean, x_aug, index, label = views[17]
    assert x_clean.shape == x_aug.shape == (3, 24, 24) and index == 17 and label == base[17][1]
    for x in (x_clean, x_aug):
        assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    torch.testing.assert_close(x_clean, resize_center_crop(base[17][0], 24))
    # a second "epoch": same clean view, new augmentation
    x_clean2, x_aug2, _, _ = views[17]
    assert torch.equal(x_clean, x_clean2) and not torch.equal(x_aug, x_aug2)
    assert views.fingerprint() != TwoViews(base, size=16, augmentation=RandomCropStandIn(16)).fingerprint()


def test_two_views_seeded_epochs(small_folder: Path) -> None:
    base = build_dataset("imagefolder", small_folder, split="train")
    views = TwoViews(base, size=32, augmentation=RandomCropStandIn(32), seed=3)
    first = views[5][1]
    assert torch.equal(first, views[5][1])  # same seed, epoch and index
    views.set_epoch(1)
    assert not torch.equal(first, views[5][1])
    views.set_epoch(0)
    assert torch.equal(first, views[5][1])


def test_two_views_bad_augmentation(small_folder: Path) -> None:
    base = build_dataset("imagefolder", small_folder, split="train")
    views = TwoViews(base, size=16, augmentation=lambda img: img)
    with pytest.raises(DataError, match=r"\(3, 16, 16\)"):
        views[0]


def test_two_views_grayscale_default_augmentation() -> None:
    pytest.importorskip("mvmr.transforms.augmentation")
    if not FASHION_MNIST_ROOT.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    ds = build_dataset("fashion_mnist", None, split="test")
    views = TwoViews(ds, size=28)
    x_clean, x_aug, _, _ = views[3]
    assert x_clean.shape == x_aug.shape == (1, 28, 28)
    assert 0 <= x_aug.min() and x_aug.max() <= 1


# --------------------------------------------------------------------------- splits and loaders


def test_stratified_split(cifar10_root: Path) -> None:
    ds = build_dataset("imagefolder", cifar10_root, split="test")
    train, val = split_train_val(ds, 0.1, seed=0)
    assert isinstance(train, DatasetSubset)
    assert len(train) + len(val) == len(ds)
    assert len(np.intersect1d(train.indices, val.indices)) == 0
    assert np.bincount(val.labels, minlength=10).tolist() == [100] * 10
    assert np.bincount(train.labels, minlength=10).tolist() == [900] * 10
    assert val[3][1] == int(ds.labels[val.indices[3]])
    again, _ = split_train_val(ds, 0.1, seed=0)
    other, _ = split_train_val(ds, 0.1, seed=1)
    assert np.array_equal(again.indices, train.indices) and not np.array_equal(other.indices, train.indices)
    assert train.fingerprint() != val.fingerprint() and train.classes == ds.classes


def test_split_keeps_ratio_of_unbalanced_classes() -> None:
    class Labelled(torch.utils.data.Dataset):
        labels = np.array([0] * 80 + [1] * 20 + [-1] * 50)
        classes = ["a", "b"]

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return torch.zeros(1), int(self.labels[i])

    train, val = split_train_val(Labelled(), 0.25, seed=4)
    counts = {v: int((val.labels == v).sum()) for v in (0, 1, -1)}
    assert counts == {0: 20, 1: 5, -1: 12}  # round(50 * 0.25) = 12 (banker's rounding of 12.5)
    assert len(train) == 150 - 37
    with pytest.raises(ConfigError, match="val_fraction"):
        split_train_val(Labelled(), 1.0, seed=0)


class _RandomItems(torch.utils.data.Dataset):
    """Each item draws from torch's and numpy's global RNGs (as augmentations do)."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i), float(torch.rand(())), float(np.random.rand())])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_make_loader_reproducible(num_workers: int) -> None:
    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(123)
        np.random.seed(123)
        loader = make_loader(_RandomItems(), 4, shuffle=True, drop_last=False, num_workers=num_workers, seed=seed)
        return torch.cat([batch for _ in range(2) for batch in loader])

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.equal(a[:, 0], c[:, 0])  # another order
    first, second = a[:12, 0], a[12:, 0]
    assert sorted(first.tolist()) == list(range(12)) and not torch.equal(first, second)


def test_make_loader_errors() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(_RandomItems(), 0, shuffle=False)
    with pytest.raises(DataError, match="drop_last"):
        make_loader(_RandomItems(), 64, shuffle=True, drop_last=True)


# ----------------------------------------------------------- views from the full image; flat val folders; fingerprints
def _striped_folder(root: Path, n: int = 3) -> Path:
    """ImageFolder of 240x80 images: red left (x < 60), green middle, blue right (x >= 180)."""
    folder = root / "train" / "a"
    folder.mkdir(parents=True)
    array = np.zeros((80, 240, 3), dtype=np.uint8)
    array[:, :60, 0] = 255
    array[:, 60:180, 1] = 255
    array[:, 180:, 2] = 255
    for i in range(n):
        Image.fromarray(array).save(folder / f"{i}.png")
    return root


def test_views_crop_the_full_image_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The random resized crop comes from the whole decoded image (it can reach the red and blue
    edges), the clean view is its resize + centre crop (green only), and each item is decoded once."""
    import sys

    from mvmr.data import folders
    from mvmr.training.build import build_data

    sys.path.insert(0, str(Path(__file__).parent))
    from _training_support import tiny_config

    root = _striped_folder(tmp_path / "data")
    decodes: list[Path] = []
    real_decode = folders.decode_image
    monkeypatch.setattr(folders, "decode_image", lambda path, **kw: decodes.append(path) or real_decode(path, **kw))
    config = tiny_config(
        root,
        tmp_path / "run",
        [
            "data.split=train",
            "data.image_size=32",
            "data.subset=null",
            "data.batch_size=2",
            "data.val_fraction=0",
            "probe.enabled=false",
            "data.augmentation={crop: true, flip: false, color: false, grayscale: false, blur: false}",
        ],
    )
    data = build_data(config)
    edges = 0
    for epoch in range(20):
        data.views.set_epoch(epoch)
        decodes.clear()
        items = [data.views[index] for index in range(3)]
        assert len(decodes) == 3  # one decode per item for both views
        for index, (clean, aug, _, _) in enumerate(items):
            assert torch.equal(clean, data.base[index][0])  # the clean view: resize + centre crop
            assert float(clean[0].max()) < 0.05 and float(clean[2].max()) < 0.05  # green only
            edges += int(float(aug[0].max()) > 0.5 or float(aug[2].max()) > 0.5)
    assert edges > 10  # crops of the full image reach the edges (never, when cropped from the centre crop)


def _flat_imagenet(root: Path) -> list[str]:
    """root/train/<synset>/ and a flat root/val/ of 6 images; returns the val images' true classes."""
    rng = np.random.default_rng(0)
    for synset in ("n01440764", "n02102040", "n03000684"):
        (root / "train" / synset).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / "train" / synset / "x.JPEG")
    (root / "val").mkdir()
    truth = ["n02102040", "n01440764", "n03000684", "n02102040", "n02102040", "n01440764"]
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
            root / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        )
    return truth


def test_flat_imagenet_val_folder_with_its_ground_truth_file(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    truth = _flat_imagenet(root)
    classes = ["n01440764", "n02102040", "n03000684"]
    with pytest.raises(DataError, match="no ground-truth file.*LOC_val_solution.csv"):
        build_dataset("imagefolder", root, split="val")
    # Kaggle's solution file, in another order than the files, with boxes after the synset
    rows = [f"ILSVRC2012_val_{i + 1:08d},{c} 1 2 30 40 {c} 5 6 7 8" for i, c in enumerate(truth)]
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(reversed(rows)) + "\n")
    val = build_dataset("imagefolder", root, split="val", size=16)
    assert val.classes == classes and [classes[i] for i in val.labels] == truth
    assert val[0][0].shape == (3, 16, 16) and val[0][1] == classes.index(truth[0])
    # one synset per line, in sorted file order (TensorFlow's file), given explicitly
    per_line = tmp_path / "synsets.txt"
    per_line.write_text("\n".join(truth) + "\n")
    assert [classes[i] for i in build_dataset("imagefolder", root, split="val", labels_file=per_line).labels] == truth
    per_line.write_text("\n".join(truth[:5]) + "\n")
    with pytest.raises(DataError, match="gives 5 labels.*has 6 images"):
        build_dataset("imagefolder", root, split="val", labels_file=per_line)
    two_columns = tmp_path / "pairs.txt"
    two_columns.write_text("\n".join(f"ILSVRC2012_val_{i + 1:08d}.JPEG\t{c}" for i, c in enumerate(truth[:5])))
    with pytest.raises(DataError, match="no label for 1 of the 6 images"):
        build_dataset("imagefolder", root, split="val", labels_file=two_columns)
    two_columns.write_text("\n".join(f"ILSVRC2012_val_{i + 1:08d} n09999999" for i in range(6)))
    with pytest.raises(DataError, match="names 1 classes that .* has no folder for, e.g. 'n09999999'"):
        build_dataset("imagefolder", root, split="val", labels_file=two_columns)


def test_an_edited_image_of_the_same_size_changes_the_fingerprint(small_folder: Path) -> None:
    import os

    first = build_dataset("imagefolder", small_folder, split="").fingerprint()
    path = sorted(small_folder.rglob("*.jpg"))[0]
    data = bytearray(path.read_bytes())
    data[-10:-2] = bytes(8)  # new content, same length
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later edit, whatever the clock resolution
    assert path.stat().st_size == stat.st_size
    assert build_dataset("imagefolder", small_folder, split="").fingerprint() != first

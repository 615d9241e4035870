"""``data.kind=hf``: image datasets of the Hugging Face ``datasets`` library (a save_to_disk folder here;
a Hub id reads the same Arrow files from the Hugging Face cache). Training on one is tested with the
short run of ``tests/test_run_output.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from mvmr.config import load_config
from mvmr.data import build_dataset
from mvmr.data.image_utils import decode_image, resize_center_crop, to_float
from mvmr.errors import ConfigError, DataError

sys.path.insert(0, str(Path(__file__).parent))
from _training_support import save_hf_images  # noqa: E402


@pytest.fixture(scope="module")
def hf_folder(cifar10_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_hf_images(cifar10_root / "test", tmp_path_factory.mktemp("hf") / "cifar", per_class=2)


def _hf(folder: Path, **kwargs: object):
    return build_dataset(
        "hf", None, name=str(folder), split="train", image_column="picture", label_column="category", **kwargs
    )


def test_items_are_the_decoded_images_and_their_labels(hf_folder: Path, cifar10_root: Path) -> None:
    ds = _hf(hf_folder, size=16)
    classes = sorted(p.name for p in (cifar10_root / "test").iterdir())
    assert len(ds) == 20 and ds.classes == classes and ds.labels.tolist() == [i // 2 for i in range(20)]
    files = [sorted((cifar10_root / "test" / c).glob("*.jpg"))[:2] for c in classes]
    for index in (0, 7, 19):
        image, label = ds[index]
        expected = resize_center_crop(to_float(decode_image(files[index // 2][index % 2], channels=3)), 16)
        assert label == index // 2
        torch.testing.assert_close(image, expected, rtol=0, atol=0)
    gray, _ = _hf(hf_folder, channels=1)[3]
    assert gray.shape == (1, 32, 32) and 0.0 <= float(gray.min()) and float(gray.max()) <= 1.0
    assert _hf(hf_folder).fingerprint() == _hf(hf_folder).fingerprint() != _hf(hf_folder, size=16).fingerprint()


def test_unlabelled_and_string_labels(hf_folder: Path, tmp_path: Path) -> None:
    from datasets import load_from_disk

    unlabelled = build_dataset("hf", str(hf_folder), split="train", image_column="picture", label_column=None)
    assert unlabelled.classes == [] and set(unlabelled.labels.tolist()) == {-1}  # root names the dataset too
    table = load_from_disk(str(hf_folder))["train"]
    names = table.features["category"].names
    table.map(lambda row: {"kind": names[row["category"]]}).save_to_disk(str(tmp_path / "strings"))
    ds = build_dataset(
        "hf", None, name=str(tmp_path / "strings"), split="", image_column="picture", label_column="kind"
    )
    assert ds.classes == sorted(names) and [ds.classes[i] for i in ds.labels[:4]] == [names[0]] * 2 + [names[1]] * 2


def test_mistakes_are_errors_that_say_what_to_change(hf_folder: Path) -> None:
    with pytest.raises(DataError, match=r"no image column 'image'; columns: picture, category \(set data.image_col"):
        build_dataset("hf", None, name=str(hf_folder), split="train")
    with pytest.raises(DataError, match="no label column 'label'.*set data.label_column, or null"):
        build_dataset("hf", None, name=str(hf_folder), split="train", image_column="picture")
    with pytest.raises(DataError, match="split 'test' not in .*; it holds train"):
        build_dataset("hf", None, name=str(hf_folder), split="test", image_column="picture")
    with pytest.raises(DataError, match="not in the Hugging Face cache and data.download is false"):
        build_dataset("hf", None, name="nobody/no-such-dataset", split="train")  # never touches the network
    with pytest.raises(DataError, match="dataset folder not found"):
        build_dataset("hf", None, name=str(hf_folder / "missing"), split="train")
    with pytest.raises(ConfigError, match=r"^data.name: required with data.kind=hf"):
        load_config(None, ["data.kind=hf"])
    with pytest.raises(ConfigError, match=r"^data.name: only read with data.kind=hf"):
        load_config(None, ["data.name=user/images"])
    config = load_config(
        None, ["data.kind=hf", "data.name=user/images", "data.image_column=img", "data.label_column=null"]
    )
    assert (config.data.name, config.data.image_column, config.data.label_column) == ("user/images", "img", None)

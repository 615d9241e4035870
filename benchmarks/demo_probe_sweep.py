"""Choose the demo's linear-probe protocol on the validation copy of Fashion-MNIST (never the test set).

For the pretrained candidates given (run folders of ``benchmarks/demo_tuning.py``), the untrained
encoder and the raw pixels, the features of the probe's images are extracted once; then every probe
setting (lr, epochs, weight decay, number of labelled images) is fitted on the same features, the
same way for every row. The table shows MV-MR minus the better baseline for each setting.

    python benchmarks/demo_probe_sweep.py --out runs/demo-tuning p1-noproj r1-paper-crop
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from torch import nn


def main(argv: list[str] | None = None) -> int:
    from mvmr.config import load_config
    from mvmr.data import build_dataset, random_subset
    from mvmr.evaluation import resolve_encoder
    from mvmr.evaluation.extraction import extract_features
    from mvmr.evaluation.extractor import FeatureExtractor
    from mvmr.evaluation.linear import LinearConfig, linear_on_features
    from mvmr.training.export import last_checkpoint

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo-tuning")
    p.add_argument("--train-sizes", type=int, nargs="*", default=[5000, 10000])
    p.add_argument("--test-size", type=int, default=5000)
    p.add_argument("--lrs", type=float, nargs="*", default=[1e-4, 1e-3, 3e-3])
    p.add_argument("--wds", type=float, nargs="*", default=[0.0])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("runs", nargs="+")
    a = p.parse_args(argv)
    out = Path(a.out)
    data = out / "fashion-mnist-val"
    config = load_config("demo", [f"data.root={data}"])
    d, seed = config.data, config.trainer.seed
    assert d.channels is not None  # the demo config fixes it (1: grayscale)
    train = build_dataset("fashion_mnist", data, split="train", size=d.image_size, channels=d.channels)
    test = build_dataset("fashion_mnist", data, split="test", size=d.image_size, channels=d.channels)
    big = max(a.train_sizes)
    train_part, test_part = random_subset(train, big, seed + 1), random_subset(test, a.test_size, seed + 2)
    rows: dict[str, nn.Module] = {
        "untrained": resolve_encoder(
            encoder=f"random:{config.model.encoder}",
            small_images=config.model.small_images,
            in_chans=d.channels,
            seed=seed,
        ),
        "pixels": FeatureExtractor(nn.Flatten(), mean=None, std=None, description="raw pixels", trainable=False),
    }
    for name in a.runs:
        rows[name] = resolve_encoder(checkpoint=last_checkpoint(out / name))
    feats = {
        k: (extract_features(m, train_part, progress=False), extract_features(m, test_part, progress=False))
        for k, m in rows.items()
    }
    results = []
    for n, lr, wd in itertools.product(a.train_sizes, a.lrs, a.wds):
        line = {"train": n, "lr": lr, "wd": wd}
        for k, ((xtr, ytr), test_xy) in feats.items():
            xtr, ytr = xtr[:n], ytr[:n]
            hold = max(1, n // 10)  # the demo's 10% hold-out picks the epoch
            cfg = LinearConfig(epochs=a.epochs, lr=lr, weight_decay=wd, seed=seed, device="cpu", progress=False)
            metrics, _ = linear_on_features(
                (xtr[hold:], ytr[hold:]), (xtr[:hold], ytr[:hold]), test_xy, num_classes=10, config=cfg
            )
            line[k] = round(float(metrics["test_top1"]), 2)
        results.append(line)
        print(json.dumps(line), flush=True)
    (out / "probe-sweep.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
